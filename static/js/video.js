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
      if (data.state !== document.getElementById("job-state")?.dataset.state) refresh();
    });
    source.addEventListener("end", () => { source.close(); source = null; refresh(); });
    for (const type of ["job.processing", "job.completed", "job.failed", "job.cancelled", "job.retried", "job.transcript_edited",
      "segment.ready", "publication.scheduled", "publication.uploading", "publication.published",
      "publication.failed", "publication.dead_lettered", "publication.cancelled", "publication.refused"]) {
      source.addEventListener(type, refresh);
    }
  }

  const actions = {
    "cancel-job": () => vidprod.api("POST", `/jobs/${job}/cancel`),
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
