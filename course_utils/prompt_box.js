// The chat's text area: Enter sends, Shift+Enter starts a new line. The text is synced to
// Python as `value`; sending is a custom message {type: "submit", value}.
// An image pasted into the area, or dropped anywhere on the chat, goes to Python as
// {type: "image", name, mime, count} with the file's bytes as one binary buffer (a file over
// max_image_bytes as {type: "image-too-big", name, size, count}, without its bytes).

function render({ model, el }) {
  const area = document.createElement("textarea");
  area.className = "course-prompt-area";
  area.rows = model.get("rows");
  area.setAttribute("aria-label", model.get("label") || model.get("placeholder"));
  // JupyterLab must not treat these keys as notebook shortcuts (Shift+Enter runs a cell).
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  el.classList.add("course-prompt");
  el.appendChild(area);

  const pull = () => {
    if (area.value !== model.get("value")) area.value = model.get("value");
    area.placeholder = model.get("placeholder");
    area.title = model.get("hint");
    area.disabled = model.get("disabled");
  };
  area.addEventListener("input", () => {
    model.set("value", area.value);
    model.save_changes();
  });
  area.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.stopPropagation();
    if (event.shiftKey || event.isComposing) return;  // new line / IME composition
    event.preventDefault();
    model.set("value", area.value);
    model.save_changes();
    model.send({ type: "submit", value: area.value });
  });
  area.addEventListener("paste", (event) => {
    if (sendFiles(model, event.clipboardData?.files)) event.preventDefault();  // text pastes as usual
  });
  const stopFollowing = followPane(el);
  const stopDrops = acceptDrops(el, model);
  model.on("change:value", pull);
  model.on("change:placeholder", pull);
  model.on("change:hint", pull);
  model.on("change:disabled", pull);
  pull();
  return () => {
    stopFollowing();
    stopDrops();
    model.off("change:value", pull);
    model.off("change:placeholder", pull);
    model.off("change:hint", pull);
    model.off("change:disabled", pull);
  };
}

// Send the first image among `files` (else the first file, for Python to explain); false if there is none.
function sendFiles(model, files) {
  const list = [...(files || [])];
  if (!list.length) return false;
  const file = list.find((f) => f.type.startsWith("image/")) || list[0];
  const head = { name: file.name || "imagen pegada", mime: file.type, size: file.size, count: list.length };
  if (file.size > model.get("max_image_bytes")) {
    model.send({ type: "image-too-big", ...head });
  } else {
    file.arrayBuffer().then((buffer) => model.send({ type: "image", ...head }, undefined, [buffer]));
  }
  return true;
}

// Files dragged over the chat are accepted anywhere on it (outlined while over it); returns a cleanup function.
function acceptDrops(el, model) {
  let chat = null;
  let timer = null;
  const carriesFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  const over = (event) => {
    if (!carriesFiles(event)) return;  // dragged text goes on to the text area as usual
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    chat.classList.add("course-drop-target");
  };
  const leave = (event) => {
    if (!chat.contains(event.relatedTarget)) chat.classList.remove("course-drop-target");
  };
  const drop = (event) => {
    chat.classList.remove("course-drop-target");
    if (!carriesFiles(event)) return;
    event.preventDefault();  // the browser would open the file in place of the page
    event.stopPropagation();  // and JupyterLab would upload it to the file browser
    sendFiles(model, event.dataTransfer.files);
  };
  const events = { dragenter: over, dragover: over, dragleave: leave, drop };
  const attach = (tries) => {
    chat = el.closest(".course-chat");
    if (!chat) {
      if (tries > 0) timer = setTimeout(() => attach(tries - 1), 100);  // not attached to the page yet
      return;
    }
    for (const [name, handler] of Object.entries(events)) chat.addEventListener(name, handler);
  };
  attach(50);
  return () => {
    clearTimeout(timer);
    if (chat) for (const [name, handler] of Object.entries(events)) chat.removeEventListener(name, handler);
  };
}

// Keep the conversation scrolled to its newest message while answers arrive; returns a cleanup function.
function followPane(el) {
  let observer = null;
  let pane = null;
  let timer = null;
  const scroll = () => { pane.scrollTop = pane.scrollHeight; };
  const attach = (tries) => {
    pane = el.closest(".course-chat")?.querySelector(".course-chat-pane");
    if (!pane) {
      if (tries > 0) timer = setTimeout(() => attach(tries - 1), 100);  // not attached to the page yet
      return;
    }
    observer = new MutationObserver(scroll);
    observer.observe(pane, { childList: true, subtree: true, characterData: true });
    pane.addEventListener("load", scroll, true);  // thumbnails grow the pane after they decode
    scroll();
  };
  attach(50);
  return () => {
    clearTimeout(timer);
    observer?.disconnect();
    pane?.removeEventListener("load", scroll, true);
  };
}

export default { render };
