// The upload page: files are picked, then the options set, then nothing is sent before
// *Start* (an upload that began on picking ignored every option set after it). Resumable
// tus uploads (a dropped connection, a locked phone or a
// reload resumes where it stopped), with the bytes the server holds, speed and time left
// per file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("uploads");
  const rowTemplate = document.getElementById("upload-row");
  const errorBox = document.getElementById("upload-error");
  const strength = document.getElementById("gaze_strength");
  const strengthOut = document.getElementById("gaze_strength_out");
  const maxBytes = Number(form.dataset.maxBytes);
  const chunkBytes = Number(form.dataset.chunkBytes) || Infinity;
  let running = 0;
  let started = 0;
  const picked = [];  // [file, row] waiting for Start

  strength.addEventListener("input", () => { strengthOut.textContent = `${Math.round(strength.value * 100)} %`; });
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => { event.preventDefault(); addFiles(event.dataTransfer.files); });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    vidprod.showError(errorBox, null);
    if (!picked.length) {
      vidprod.showError(errorBox, new Error("Choose a video first."));
      errorBox.scrollIntoView({ block: "nearest" });
      return;
    }
    // The options are read now, at Start, so whatever was set after picking counts.
    const batch = [];
    for (const [file] of picked) {
      try {
        batch.push(metadata(file));
      } catch (error) {
        vidprod.showError(errorBox, error);
        errorBox.scrollIntoView({ block: "nearest" });
        return;
      }
    }
    for (const [index, [file, row]] of picked.splice(0).entries()) start(file, batch[index], row);
  });

  function metadata(file) {
    const fields = {
      filename: file.name, filetype: file.type || "application/octet-stream",
      segment_seconds: form.segment_seconds.value,
      gaze: form.gaze.checked ? "on" : "off", gaze_strength: strength.value,
      captions: form.captions.checked ? "on" : "off",
    };
    if (form.gaze_notes_below.value) fields.gaze_notes_below = form.gaze_notes_below.value;
    const publish = vidprod.publishRequest(form);
    if (publish) fields.publish = JSON.stringify(publish);
    return fields;
  }

  function addFiles(files) {
    vidprod.showError(errorBox, null);
    for (const file of files) {
      if (!file.type.startsWith("video/") && !/\.(mp4|mov|m4v|webm|mkv|3gp)$/i.test(file.name)) {
        refuse(file, "Not a video", `${file.name} is not a video. Choose a video file (MP4, MOV, WebM or MKV).`);
        continue;
      }
      if (file.size > maxBytes) {
        refuse(file, "Too big", `${file.name} is ${vidprod.bytes(file.size)}; this server takes up to ${vidprod.bytes(maxBytes)}. ` +
          "Trim it or export it at a lower quality, then choose it again.");
        continue;
      }
      const row = newRow(file);
      row.querySelector(".status").textContent = "Ready";
      row.querySelector(".bytes").textContent = `${vidprod.bytes(file.size)}. Set the options, then tap Start.`;
      row.querySelector(".pause").hidden = true;
      row.querySelector("progress").hidden = true;  // nothing is sent yet
      picked.push([file, row]);
    }
  }

  function newRow(file) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.querySelector(".name").textContent = file.name;
    row.querySelector("progress").setAttribute("aria-label", `Upload progress of ${file.name}`);
    list.prepend(row);
    return row;
  }

  // Why a file stopped goes in its own row, just under the picker, scrolled to: an error
  // drawn below the options sat ~1900 px down a phone screen, where nobody saw it.
  function rowError(row, status, text) {
    row.classList.add("stopped");
    row.querySelector(".status").textContent = status;
    for (const selector of [".speed", ".eta"]) row.querySelector(selector).textContent = "";
    row.querySelector(".pause").hidden = true;
    const error = row.querySelector(".row-error");
    error.textContent = text;
    error.hidden = false;
    row.scrollIntoView({ block: "nearest" });
  }

  function refuse(file, status, text) {
    const row = newRow(file);
    row.querySelector("progress").hidden = true;
    row.querySelector(".row-foot").hidden = true;
    rowError(row, status, text);
  }

  function start(file, fields, row) {
    const $ = (selector) => row.querySelector(selector);
    $(".pause").hidden = false;
    $("progress").hidden = false;
    // Screen readers hear changes of state, not every progress tick.
    const say = (text) => { $(".status").textContent = text; $(".announce").textContent = `${file.name}: ${text}`; };
    say("Starting…");
    $(".bytes").textContent = `0 of ${vidprod.bytes(file.size)}`;
    running += 1;
    started += 1;

    // Bytes, percent, speed and time left count what the server holds: its Upload-Offset
    // before each request and after each one (onChunkComplete). The bytes the browser has
    // sent (onProgress) run a whole request ahead of that and are lost if the connection
    // drops, so they are not shown (issue 21).
    const samples = [];  // [time, bytes the server holds], the last ~20 s, for the speed
    let held = 0;
    let paused = false;
    $("progress").max = file.size || 1;
    const hold = (bytes, total) => {
      const now = performance.now();
      held = Math.max(held, bytes);
      samples.push([now, held]);
      while (samples.length > 2 && now - samples[0][0] > 20000) samples.shift();
      const [t0, b0] = samples[0];
      const speed = now > t0 ? ((held - b0) * 1000) / (now - t0) : 0;
      $("progress").max = total || 1;
      $("progress").value = held;
      $(".status").textContent = `${total ? Math.floor((held / total) * 100) : 0} %`;
      $(".bytes").textContent = `${vidprod.bytes(held)} of ${vidprod.bytes(total)}`;
      $(".speed").textContent = speed > 0 ? `${vidprod.bytes(Math.round(speed))}/s` : "";
      $(".eta").textContent = speed > 0 ? `${timeLeft((total - held) / speed)} left` : "";
    };
    const upload = new tus.Upload(file, {
      endpoint: "/tus/",
      chunkSize: chunkBytes,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000],
      metadata: fields,
      headers: { "X-CSRF-Token": vidprod.csrf() },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onBeforeRequest(request) {
        // A request of bytes starts from the offset the server last said it holds
        // (after a resume, its HEAD answer): the start of this request's speed sample.
        const offset = Number.parseInt(request.getHeader("Upload-Offset"), 10);
        if (request.getMethod() === "PATCH" && !paused && Number.isFinite(offset)) hold(offset, file.size);
      },
      onChunkComplete(chunkSize, accepted, total) {
        if (!paused) hold(accepted, total);
      },
      onShouldRetry(error, attempt, options) {
        const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        say("Connection lost, retrying…");
        return !(status >= 400 && status < 500 && status !== 409 && status !== 423);
      },
      onError(error) {
        running -= 1;
        const response = error.originalResponse;
        let text = "The upload stopped. Choose the file again to continue where it left off.";
        let status = "Stopped";
        if (response) {
          try {
            const body = JSON.parse(response.getBody() || "{}");
            if (body.detail) [text, status] = [body.detail, "Refused by the server"];
          } catch { /* not problem+json */ }
        }
        $(".announce").textContent = "";  // the row's alert says it, once
        rowError(row, status, `${file.name}: ${text}`);
      },
      onSuccess({ lastResponse }) {
        running -= 1;
        const job = lastResponse.getHeader("Vidprod-Job-Id");
        $("progress").value = $("progress").max;
        $(".bytes").textContent = `${vidprod.bytes(file.size)} of ${vidprod.bytes(file.size)}`;  // a resume that found it all there
        say("Uploaded");
        $(".speed").textContent = "";
        $(".eta").textContent = "";
        $(".pause").hidden = true;
        if (job) {
          const link = $(".open");
          link.href = `/videos/${job}`;
          link.hidden = false;
          if (running === 0 && started === 1) location.href = link.href;
        }
      },
    });

    $(".pause").addEventListener("click", (event) => {
      paused = !paused;
      event.target.textContent = paused ? "Resume" : "Pause";
      if (paused) {
        upload.abort();
        say("Paused");
        $(".speed").textContent = "";
        $(".eta").textContent = "";
      } else {
        samples.length = 0;  // the time paused is no part of the speed
        upload.start();
      }
    });

    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        say("Resuming…");
      }
      upload.start();
    });
  }

  function timeLeft(seconds) {
    if (!Number.isFinite(seconds)) return "";
    if (seconds < 60) return `${Math.ceil(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.ceil((seconds % 3600) / 60)} min`;
  }

  // A phone that goes offline: tus retries on its own; say so instead of looking stuck.
  window.addEventListener("offline", () => {
    for (const status of list.querySelectorAll(".status")) {
      if (/%|Resuming|Starting/.test(status.textContent)) status.textContent = "Offline, waiting…";
    }
  });
});
