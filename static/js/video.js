// A video's page: live updates over Server-Sent Events, and its buttons.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("video");
  const live = document.getElementById("live");
  const job = root.dataset.job;
  const announce = document.getElementById("announce");
  let source = null;
  let refreshing = null;
  let again = false;

  // Re-render the changing part with the server's own template. When only the
  // contents changed, just the changed [data-swap] blocks are replaced: playing (or
  // fullscreen) videos, a half-filled form and the focus stay as they are. When parts
  // appear or sections come and go, everything is replaced, keeping the videos.
  const rendered = new Map(); // id -> the HTML last received for that block
  const shape = (root) => [
    ...[...root.querySelectorAll("[data-swap]")].map((el) => el.id),
    ...[...root.querySelectorAll("video")].map((el) => el.getAttribute("src")),
    root.querySelector("#publish-form") ? "form" : "",
    root.querySelector("#transcript-form") ? "transcript" : "",
  ].join("|");

  function patch(fresh) {
    const focused = document.activeElement;
    const focusedBlock = focused?.closest?.("[data-swap]")?.id;
    const focusedAction = focused?.dataset?.action;
    for (const block of fresh.querySelectorAll("[data-swap]")) {
      const html = block.outerHTML;
      if (rendered.get(block.id) === html) continue;
      rendered.set(block.id, html);
      const old = document.getElementById(block.id);
      if (old && old.outerHTML !== html) {
        old.replaceWith(block);
        vidprod.localTimes(block);
      }
    }
    if (focusedBlock && focusedAction && !document.body.contains(focused)) {
      document.querySelector(`#${CSS.escape(focusedBlock)} [data-action="${focusedAction}"]`)?.focus();
    }
  }

  function replaceAll(parsed) {
    // Into this document first: moving a playing <video> into a template's inert
    // document would reset it.
    const fresh = document.createElement("div");
    fresh.append(...parsed.childNodes);
    for (const video of fresh.querySelectorAll("video")) {
      const old = live.querySelector(`video[src="${CSS.escape(video.getAttribute("src"))}"]`);
      if (old) video.replaceWith(old);
    }
    const oldForm = live.querySelector("#publish-form");
    const newForm = fresh.querySelector("#publish-form");
    if (oldForm && newForm) newForm.replaceWith(oldForm);
    const oldText = live.querySelector("#transcript-form");
    const newText = fresh.querySelector("#transcript-form");
    if (oldText && newText) newText.replaceWith(oldText); // a half-made correction stays
    for (const block of fresh.querySelectorAll("[data-swap]")) rendered.set(block.id, block.outerHTML);
    live.replaceChildren(...fresh.childNodes);
    vidprod.localTimes(live);
  }

  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      try {
        const response = await fetch(`/videos/${job}/live`, { credentials: "same-origin" });
        if (response.status === 404) { location.href = "/videos"; return; }
        if (!response.ok) return;
        const before = document.getElementById("job-state")?.dataset.state;
        const fresh = document.createElement("template");
        fresh.innerHTML = await response.text();
        if (shape(fresh.content) === shape(live)) patch(fresh.content);
        else replaceAll(fresh.content);
        const state = document.getElementById("job-state");
        if (state && state.dataset.state !== before) announce.textContent = `Status: ${state.textContent}`;
      } finally {
        refreshing = null;
        if (again) { again = false; refresh(); }
      }
    })();
    return refreshing;
  }

  // Time left while the parts are made, from the pace since this page first saw the
  // stage (the server sends percent only; a render's pace is steady enough to go by).
  let pace = null; // {at, progress} of the first sample of the rendering stage
  function timeLeft(data) {
    if (data.stage !== "rendering") { pace = null; return ""; }
    const now = performance.now() / 1000;
    if (!pace || data.progress < pace.progress) { pace = { at: now, progress: data.progress }; return ""; }
    const rate = (data.progress - pace.progress) / (now - pace.at); // percent a second
    if (now - pace.at < 1.5 || rate <= 0) return "";
    const seconds = (100 - data.progress) / rate;
    return seconds < 60 ? ` · about ${Math.max(5, Math.ceil(seconds / 5) * 5)} s left`
      : ` · about ${Math.round(seconds / 60)} min left`;
  }

  function listen() {
    if (source) source.close();
    source = new EventSource(`/jobs/${job}/events`);
    source.addEventListener("progress", (event) => {
      const data = JSON.parse(event.data);
      const bar = document.getElementById("job-progress");
      const percent = document.getElementById("job-percent");
      if (bar && percent) {
        bar.value = Math.floor(data.progress);
        percent.textContent = Math.floor(data.progress);
      }
      const left = document.getElementById("job-left");
      if (left) left.textContent = timeLeft(data);
      // A new stage ("Finding the natural pauses" -> "Making the parts") or state: the
      // status block is drawn again, so its words never lag behind the bar.
      if (data.state !== document.getElementById("job-state")?.dataset.state
        || (data.stage || "") !== (document.getElementById("job-stage")?.dataset.stage ?? "")) refresh();
    });
    source.addEventListener("end", () => { source.close(); source = null; refresh(); });
    for (const type of ["job.processing", "job.completed", "job.failed", "job.cancelled", "job.retried", "job.recut", "job.transcript_edited",
      "segment.ready", "publication.scheduled", "publication.uploading", "publication.published",
      "publication.failed", "publication.dead_lettered", "publication.cancelled", "publication.refused"]) {
      source.addEventListener(type, refresh);
    }
  }

  const actions = {
    "cancel-job": async () => {
      if (!confirm("Stop making this video's parts? What is made so far is thrown away; Start again begins from the beginning.")) return;
      await vidprod.api("POST", `/jobs/${job}/cancel`);
    },
    "retry-job": () => vidprod.api("POST", `/jobs/${job}/retry`).then(listen),
    "delete-job": async () => {
      if (!confirm("Delete this video and all its parts? This cannot be undone.")) return;
      await vidprod.api("DELETE", `/jobs/${job}`);
      location.href = "/videos";
    },
    // Try again keeps the post's time; Post now is the creator asking for it at once.
    "retry-post": (button) => vidprod.api("POST", `/publications/${button.closest("[data-publication]").dataset.publication}/retry`).then(listen),
    "post-now": (button) => vidprod.api("POST", `/publications/${button.closest("[data-publication]").dataset.publication}/retry?now=true`).then(listen),
    "cancel-post": (button) => vidprod.api("POST", `/publications/${button.closest("[data-publication]").dataset.publication}/cancel`),
  };

  live.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !actions[button.dataset.action]) return;
    button.disabled = true;
    try {
      await actions[button.dataset.action](button);
      await refresh();
    } catch (error) {
      vidprod.toast(error.message);
    } finally {
      button.disabled = false;
    }
  });

  live.addEventListener("submit", async (event) => {
    if (event.target.id !== "cuts-form") return;
    event.preventDefault();
    const form = event.target;
    const button = form.querySelector('button[type="submit"]');
    const cuts = [...form.querySelectorAll('select[name="cut"]')].map((s) => s.value).filter(Boolean).map(Number);
    try {
      button.disabled = true;
      await vidprod.api("POST", `/jobs/${job}/cuts`, { cuts });
      vidprod.toast("Cutting again: only the parts that change are made again.");
      listen();
      await refresh();
    } catch (error) {
      vidprod.showError(form.querySelector("#cuts-error"), error);
      button.disabled = false;
    }
  });

  live.addEventListener("submit", async (event) => {
    if (event.target.id !== "transcript-form") return;
    event.preventDefault();
    const form = event.target;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await vidprod.api("PATCH", `/jobs/${job}/transcript`, { text: form.elements.text.value });
      vidprod.showError(form.querySelector("#transcript-error"), null);
      vidprod.toast("Saved. The parts are being made again.");
      listen();
      await refresh();
    } catch (error) {
      vidprod.showError(form.querySelector("#transcript-error"), error);
      button.disabled = false;
    }
  });

  live.addEventListener("submit", async (event) => {
    if (event.target.id !== "publish-form") return;
    event.preventDefault();
    const form = event.target;
    const errorBox = form.querySelector("#publish-error");
    const button = form.querySelector('button[type="submit"]');
    try {
      const request = vidprod.publishRequest(form);
      if (!request) throw new Error("Choose at least one account.");
      button.disabled = true;
      await vidprod.api("POST", `/jobs/${job}/publications`, request);
      vidprod.showError(errorBox, null);
      vidprod.toast("Scheduled.");
      form.reset();
      listen();
      await refresh();
    } catch (error) {
      vidprod.showError(errorBox, error);
    } finally {
      button.disabled = false;
    }
  });

  listen();
});
