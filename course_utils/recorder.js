// Microphone recorder for Jupyter: MediaRecorder in the browser, the recording sent to Python
// as one binary buffer in a custom message {type: "audio", mime}. Failures are sent as
// {type: "error", reason} so the Python side can explain them in Spanish.

function pickMime() {
  const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
  return wanted.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
}

function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "course-rec-button jupyter-button";
  button.type = "button";
  el.classList.add("course-rec");
  el.appendChild(button);

  let recorder = null;
  let stream = null;

  const refresh = () => {
    const recording = model.get("recording");
    // Font Awesome 4 ships with ipywidgets in JupyterLab and Voilà (emoji fonts often don't).
    button.innerHTML = `<i class="fa fa-${recording ? "stop" : "microphone"}"></i> `;
    button.append(model.get(recording ? "label_stop" : "label_record"));
    button.title = recording ? "Detener la grabación y transcribirla" : "Grabar una pregunta con el micrófono";
    button.classList.toggle("course-rec-on", recording);
    button.disabled = model.get("disabled") && !recording;
  };

  const setRecording = (value) => {
    model.set("recording", value);
    model.save_changes();
    refresh();
  };

  const fail = (reason, detail) => {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    recorder = null;
    setRecording(false);
    model.send({ type: "error", reason, detail: String(detail || "") });
  };

  const start = async () => {
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
    recorder = new MediaRecorder(stream, mime ? { mimeType: mime } : undefined);
    recorder.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      const blob = new Blob(chunks, { type: recorder.mimeType || mime });
      const buffer = await blob.arrayBuffer();
      stream = null;
      recorder = null;
      setRecording(false);
      model.send({ type: "audio", mime: blob.type, size: buffer.byteLength }, undefined, [buffer]);
    };
    recorder.start(250);  // a chunk every 250 ms, so a short recording still yields data
    setRecording(true);
  };

  button.addEventListener("click", () => {
    if (recorder && recorder.state === "recording") recorder.stop();
    else start();
  });
  model.on("change:disabled", refresh);
  model.on("change:recording", refresh);
  refresh();
  return () => { if (recorder && recorder.state === "recording") recorder.stop(); };
}

export default { render };
