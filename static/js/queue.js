// The queue: every post by day in the browser's time zone (told to the server in a
// cookie, so the days are grouped where the page is made), and each post's buttons.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("tz="))?.slice(3);
  if (zone && decodeURIComponent(cookie || "") !== zone) {
    document.cookie = `tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; samesite=lax`;
    location.reload();
    return;
  }
  // While a post is being sent or due within minutes, the list is fetched again every
  // few seconds (not while a new time is being chosen); otherwise it stays as it is.
  async function refresh() {
    const current = document.getElementById("queue");
    if (current.dataset.busy !== "yes") return;
    if (!document.querySelector("details.reschedule-box[open]") && !document.activeElement?.closest?.("form.reschedule")) {
      try {
        const response = await fetch("/queue", { credentials: "same-origin" });
        if (response.ok) {
          const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("queue");
          if (fresh) current.replaceWith(document.adoptNode(fresh));
        }
      } catch { /* offline for a moment: the next round tries again */ }
    }
    setTimeout(refresh, 3000);
  }
  setTimeout(refresh, 3000);

  const id = (el) => el.closest("[data-publication]").dataset.publication;
  const actions = {
    // Try again keeps the post's time; Post now is the creator asking for it at once.
    "retry-post": (button) => vidprod.api("POST", `/publications/${id(button)}/retry`),
    "post-now": async (button) => {
      const row = button.closest("[data-publication]");
      const state = row.querySelector(".badge").classList;
      if (state.contains("state-dead") || state.contains("state-cancelled")) {
        return vidprod.api("POST", `/publications/${id(button)}/retry?now=true`);
      }
      return vidprod.api("PATCH", `/publications/${id(button)}`, { due_at: "now" });
    },
    "cancel-post": (button) => vidprod.api("POST", `/publications/${id(button)}/cancel`),
  };
  const main = document.getElementById("main");
  main.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !actions[button.dataset.action]) return;
    button.disabled = true;
    try {
      await actions[button.dataset.action](button);
      location.reload();
    } catch (error) {
      vidprod.toast(error.message);
      button.disabled = false;
    }
  });
  main.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.reschedule");
    if (!form) return;
    event.preventDefault();
    const errorBox = form.querySelector(".error");
    const value = form.elements.when.value;
    const when = new Date(value); // a datetime-local value is read in the browser's zone
    if (!value || Number.isNaN(when.getTime())) {
      vidprod.showError(errorBox, new Error("Choose a day and a time."));
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await vidprod.api("PATCH", `/publications/${id(form)}`, { due_at: when.toISOString() });
      location.reload();
    } catch (error) {
      vidprod.showError(errorBox, error);
      button.disabled = false;
    }
  });
});
