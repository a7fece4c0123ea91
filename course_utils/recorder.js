// Microphone recorder for Jupyter: MediaRecorder in the browser, the recording sent to Python
// as one binary buffer in a custom message {type: "audio", mime, seconds, at_limit}. Failures are sent
// as {type: "error", reason} so the Python side can explain them in Spanish.
// While recording, a level meter (Web Audio's AnalyserNode) and a clock are shown; at max_seconds the
// recording stops by itself and a note says so. A selector sets the spoken language (`language`);
// while recording, the meter and the clock take its place.

const FLOOR_DB = -60; // the meter's empty end: a quiet room; 0 dBFS fills it

function pickMime() {
  const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
  return wanted.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
}

function clock(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function element(tag, className, attributes = {}) {
  const node = document.createElement(tag);
  node.className = className;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// The microphone's level, 0–100, about 30 times a second while `stream` lives; returns a stop function.
function watchLevel(stream, show) {
  const AudioContext = window.AudioContext || window.webkitAudioContext;
  if (!AudioContext) return () => {};
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(stream).connect(analyser);
  context.resume();
  const samples = new Float32Array(analyser.fftSize);
  let shown = 0;
  let frame = 0;
  const tick = () => {
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    const db = 20 * Math.log10(rms + 1e-9);
    const level = Math.max(0, Math.min(100, (100 * (db - FLOOR_DB)) / -FLOOR_DB));
    shown = Math.max(level, shown * 0.85); // rises at once, falls slowly: readable
    show(Math.round(shown));
    frame = requestAnimationFrame(tick);
  };
  tick();
  return () => {
    cancelAnimationFrame(frame);
    context.close();
    show(0);
  };
}

function render({ model, el }) {
  el.classList.add("course-rec");
  const button = element("button", "course-rec-button jupyter-button", { type: "button" });
  const language = element("select", "course-rec-select", { "aria-label": "Idioma hablado" });
  const languageLabel = element("label", "course-rec-language");
  languageLabel.append("Idioma ", language);
  const meter = element("span", "course-rec-meter", {
    role: "meter",
    "aria-label": "Nivel del micrófono",
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-valuenow": "0",
  });
  const bar = element("span", "course-rec-level");
  meter.append(bar);
  const timer = element("span", "course-rec-clock", { role: "timer", "aria-label": "Tiempo de grabación" });
  const live = element("span", "course-rec-live");
  live.append(meter, timer);
  const note = element("span", "course-rec-note", { role: "status" });
  el.append(button, languageLabel, live, note);

  let recorder = null;
  let stream = null;
  let stopLevel = () => {};
  let ticker = null;
  let started = 0;
  let atLimit = false;

  const showLevel = (value) => {
    bar.style.width = `${value}%`;
    meter.setAttribute("aria-valuenow", String(value));
    meter.setAttribute("aria-valuetext", `${value} %`);
  };
  const showClock = () => {
    timer.textContent = `${clock((performance.now() - started) / 1000)} / ${clock(model.get("max_seconds"))}`;
  };

  const refresh = () => {
    const recording = model.get("recording");
    // Font Awesome 4 ships with ipywidgets in JupyterLab and Voilà (emoji fonts often don't).
    button.innerHTML = `<i class="fa fa-${recording ? "stop" : "microphone"}" aria-hidden="true"></i> `;
    button.append(model.get(recording ? "label_stop" : "label_record"));
    button.title = recording
      ? "Detener la grabación y transcribirla"
      : `Grabar una pregunta con el micrófono (máximo ${clock(model.get("max_seconds"))})`;
    button.classList.toggle("course-rec-on", recording);
    button.disabled = model.get("disabled") && !recording;
    live.classList.toggle("course-rec-hidden", !recording);
    languageLabel.classList.toggle("course-rec-hidden", recording); // the meter takes its place meanwhile
  };

  const fillLanguages = () => {
    language.replaceChildren(
      ...model.get("languages").map(([code, name]) => {
        const option = document.createElement("option");
        option.value = code;
        option.textContent = name;
        return option;
      }),
    );
    language.value = model.get("language");
  };
  language.addEventListener("change", () => {
    model.set("language", language.value);
    model.save_changes();
  });

  const setRecording = (value) => {
    model.set("recording", value);
    model.save_changes();
    refresh();
  };

  const release = () => {
    clearInterval(ticker);
    stopLevel();
    stopLevel = () => {};
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    recorder = null;
  };

  const fail = (reason, detail) => {
    release();
    setRecording(false);
    model.send({ type: "error", reason, detail: String(detail || "") });
  };

  const start = async () => {
    note.textContent = "";
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return fail("insecure", window.location.origin);
    }
    if (!window.MediaRecorder) return fail("unsupported", navigator.userAgent);
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      return fail(err.name || "Error", err.message);
    }
    const mime = pickMime();
    const chunks = [];
    atLimit = false;
    recorder = new MediaRecorder(stream, mime ? { mimeType: mime } : undefined);
    recorder.ondataavailable = (e) => {
      if (e.data && e.data.size) chunks.push(e.data);
    };
    recorder.onstop = async () => {
      const seconds = (performance.now() - started) / 1000;
      const type = recorder.mimeType || mime;
      release();
      const blob = new Blob(chunks, { type });
      const buffer = await blob.arrayBuffer();
      setRecording(false);
      if (atLimit) {
        note.textContent = `Se llegó al máximo de ${clock(model.get("max_seconds"))}: la grabación se detuvo sola.`;
      }
      const head = { type: "audio", mime: blob.type, size: buffer.byteLength, seconds, at_limit: atLimit };
      model.send(head, undefined, [buffer]);
    };
    recorder.start(250); // a chunk every 250 ms, so a short recording still yields data
    started = performance.now();
    stopLevel = watchLevel(stream, showLevel);
    showClock();
    ticker = setInterval(() => {
      showClock();
      if (recorder && recorder.state === "recording" && performance.now() - started >= 1000 * model.get("max_seconds")) {
        atLimit = true;
        recorder.stop();
      }
    }, 200);
    setRecording(true);
  };

  button.addEventListener("click", () => {
    if (recorder && recorder.state === "recording") recorder.stop();
    else start();
  });
  model.on("change:disabled", refresh);
  model.on("change:recording", refresh);
  model.on("change:max_seconds", refresh);
  model.on("change:languages", fillLanguages);
  model.on("change:language", () => {
    language.value = model.get("language");
  });
  fillLanguages();
  refresh();
  return () => {
    if (recorder && recorder.state === "recording") recorder.stop();
  };
}

export default { render };
