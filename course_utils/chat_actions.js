// The chat's page behaviour that HTML bubbles cannot carry themselves (ipywidgets.HTML runs no script):
// one delegated handler per chat element, attached by the invisible style widget.
//  - button.course-copy: copies its data-copy attribute, else the text of the .course-copy-source of its
//    closest .course-copy-scope (code blocks, whole messages), and says «Copiado».
//  - button.course-speak: reads the message aloud with the browser's speechSynthesis (Spanish voice when
//    there is one); the chat gets .course-can-speak only when the browser has voices, so the buttons stay
//    hidden otherwise.
//  - button[data-action]: a message to Python {type: "action", action, index} (regenerate, edit).
//  - Esc anywhere in the chat: {type: "stop"}; ↑ in the empty text area: {type: "edit_last"}.

const COPIED_MS = 1500;

function render({ model, el }) {
  let chat = null;
  let timer = null;

  const onClick = (event) => {
    const button = event.target.closest("button");
    if (!button || !chat.contains(button)) return;
    if (button.classList.contains("course-copy")) copy(button);
    else if (button.classList.contains("course-speak")) speak(button);
    else if (button.dataset.action) {
      model.send({ type: "action", action: button.dataset.action, index: Number(button.dataset.index) });
    }
  };
  const onKey = (event) => {
    if (event.key === "Escape") {
      if (window.speechSynthesis?.speaking) window.speechSynthesis.cancel();
      model.send({ type: "stop" });
    } else if (event.key === "ArrowUp" && event.target.matches?.(".course-prompt-area")) {
      if (event.target.value === "" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        model.send({ type: "edit_last" });
      }
    }
  };
  const voices = () => {
    const found = window.speechSynthesis ? window.speechSynthesis.getVoices() : [];
    chat?.classList.toggle("course-can-speak", found.length > 0);
  };

  const attach = (tries) => {
    chat = el.closest(".course-chat");
    if (!chat) {
      if (tries > 0) timer = setTimeout(() => attach(tries - 1), 100); // not in the page yet
      return;
    }
    if (chat.dataset.courseActions) {
      chat = null; // another view of this widget already listens to this chat
      return;
    }
    chat.dataset.courseActions = "1";
    chat.setAttribute("data-lm-suppress-shortcuts", "true"); // Esc and ↑ belong to the chat in JupyterLab
    chat.addEventListener("click", onClick);
    chat.addEventListener("keydown", onKey);
    window.speechSynthesis?.addEventListener?.("voiceschanged", voices);
    voices();
    labelWidgets();
    widgetsAdded = new MutationObserver(labelWidgets);
    widgetsAdded.observe(chat, { childList: true, subtree: true });
  };
  // What ipywidgets leave unnamed: noUiSlider's handle (role=slider) gets its slider's label, and the
  // status line becomes a polite live region, so a screen reader says «Transcripción lista», etc.
  const labelWidgets = () => {
    chat.querySelectorAll(".widget-slider").forEach((slider) => {
      const handle = slider.querySelector(".noUi-handle");
      const label = slider.querySelector(".widget-label")?.textContent.trim();
      if (handle && label && handle.getAttribute("aria-label") !== label) handle.setAttribute("aria-label", label);
    });
    const status = chat.querySelector(".course-chat-status .widget-html-content");
    if (status && status.getAttribute("role") !== "status") status.setAttribute("role", "status");
  };
  let widgetsAdded = null;
  attach(50);

  return () => {
    clearTimeout(timer);
    widgetsAdded?.disconnect();
    if (!chat) return;
    chat.removeEventListener("click", onClick);
    chat.removeEventListener("keydown", onKey);
    window.speechSynthesis?.removeEventListener?.("voiceschanged", voices);
    delete chat.dataset.courseActions;
  };
}

function sourceText(button) {
  if (button.hasAttribute("data-copy")) return button.getAttribute("data-copy");
  const scope = button.closest(".course-copy-scope");
  const source = scope?.matches(".course-copy-source") ? scope : scope?.querySelector(".course-copy-source");
  return source ? source.textContent : "";
}

async function copy(button) {
  const text = sourceText(button);
  let done = false;
  try {
    await navigator.clipboard.writeText(text);
    done = true;
  } catch {
    done = copyByHand(text); // no clipboard API (a page served without HTTPS from another machine)
  }
  flash(button, done ? "Copiado" : "No se pudo copiar");
}

function copyByHand(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch {
    done = false;
  }
  area.remove();
  return done;
}

function flash(button, text) {
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = text;
  button.classList.add("course-copied");
  clearTimeout(button._courseTimer);
  button._courseTimer = setTimeout(() => {
    button.textContent = button.dataset.label;
    button.classList.remove("course-copied");
  }, COPIED_MS);
}

// What is read aloud: the message as the student sees it, without the buttons' labels.
function speechText(button) {
  const body = button.closest(".course-bubble")?.querySelector(".course-body");
  if (!body) return sourceText(button);
  const copy = body.cloneNode(true);
  copy.querySelectorAll("button, .katex-html, [aria-hidden='true']").forEach((node) => node.remove());
  return copy.textContent.replace(/\s+/g, " ").trim();
}

function spanishVoice() {
  const all = window.speechSynthesis.getVoices();
  return all.find((v) => v.lang === "es-ES") || all.find((v) => v.lang?.toLowerCase().startsWith("es")) || null;
}

function speak(button) {
  const synth = window.speechSynthesis;
  if (!synth) return;
  if (synth.speaking) {
    // A second press stops the reading (of this or another message).
    synth.cancel();
    if (button.classList.contains("course-speaking")) return;
  }
  const utterance = new SpeechSynthesisUtterance(speechText(button));
  const voice = spanishVoice();
  utterance.lang = voice ? voice.lang : "es-ES";
  if (voice) utterance.voice = voice;
  button.classList.add("course-speaking");
  button.setAttribute("aria-pressed", "true");
  const done = () => {
    button.classList.remove("course-speaking");
    button.setAttribute("aria-pressed", "false");
  };
  utterance.addEventListener("end", done);
  utterance.addEventListener("error", done);
  synth.speak(utterance);
}

export default { render };
