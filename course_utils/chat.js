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
  followPane(el);
  model.on("change:value", pull);
  model.on("change:placeholder", pull);
  model.on("change:disabled", pull);
  pull();
}

// Keep the conversation scrolled to its newest message while answers arrive.
function followPane(el, tries = 50) {
  const pane = el.closest(".course-chat")?.querySelector(".course-chat-pane");
  if (!pane) {
    if (tries > 0) setTimeout(() => followPane(el, tries - 1), 100);  // not attached to the page yet
    return;
  }
  const scroll = () => { pane.scrollTop = pane.scrollHeight; };
  new MutationObserver(scroll).observe(pane, { childList: true, subtree: true, characterData: true });
  pane.addEventListener("load", scroll, true);  // thumbnails grow the pane after they decode
  scroll();
}

export default { render };
