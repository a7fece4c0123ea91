// The chat's text area: Enter sends, Shift+Enter starts a new line. The text is synced to
// Python as `value`; sending is a custom message {type: "submit", value}.

function render({ model, el }) {
  const area = document.createElement("textarea");
  area.className = "course-prompt-area";
  area.rows = model.get("rows");
  area.setAttribute("aria-label", model.get("placeholder"));
  // JupyterLab must not treat these keys as notebook shortcuts (Shift+Enter runs a cell).
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  el.classList.add("course-prompt");
  el.appendChild(area);

  const pull = () => {
    if (area.value !== model.get("value")) area.value = model.get("value");
    area.placeholder = model.get("placeholder");
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
  const stopFollowing = followPane(el);
  model.on("change:value", pull);
  model.on("change:placeholder", pull);
  model.on("change:disabled", pull);
  pull();
  return () => {
    stopFollowing();
    model.off("change:value", pull);
    model.off("change:placeholder", pull);
    model.off("change:disabled", pull);
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
