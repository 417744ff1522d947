// Shared by every page: the CSRF header on API calls, readable errors, local times.
"use strict";

const vidprod = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // The API answers errors as problem+json; show its words (and its list of problems).
  async function errorText(response) {
    try {
      const body = await response.json();
      // A list of problems is the detail, one a line (the detail joins them with "; ").
      if (Array.isArray(body.problems) && body.problems.length) return body.problems.join("\n");
      return body.detail || body.title || `Error ${response.status}`;
    } catch {
      return `The server answered ${response.status}. Try again in a moment.`;
    }
  }

  async function api(method, url, body) {
    const init = { method, headers: { "X-CSRF-Token": csrf(), Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new Error("No connection to the server. Check the network and try again.");
    }
    if (response.status === 401) {
      location.href = "/signin?next=" + encodeURIComponent(location.pathname);
      throw new Error("Signed out.");
    }
    if (!response.ok) throw new Error(await errorText(response));
    return response.status === 204 ? null : response.json();
  }

  let toastTimer;
  function toast(text) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  function showError(element, error) {
    if (!element) return toast(error.message || String(error));
    element.textContent = error ? (error.message || String(error)) : "";
    element.hidden = !error;
  }

  // <time datetime="...Z"> shown in the reader's own time zone (data-zoned: the
  // server wrote it in that zone already).
  // With the zone's name ("9:00 AM GMT+1"): a post's time must not be read in another zone.
  const formatter = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZoneName: "short",
  });
  function localTimes(root = document) {
    for (const el of root.querySelectorAll("time[datetime]:not([data-zoned])")) {
      const when = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) el.textContent = formatter.format(when);
    }
  }

  function bytes(n) {
    const units = ["bytes", "KB", "MB", "GB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
  }

  // The publish choices of _publish_fields.html as the API's request body (null: none).
  function publishRequest(form) {
    const accounts = [...form.querySelectorAll('input[name="account"]:checked')].map((box) => box.value);
    if (!accounts.length) return null;
    const value = (name) => form.querySelector(`[name="${name}"]`)?.value.trim() || "";
    const request = { accounts, privacy: value("privacy") || "public" };
    if (value("title")) request.title = value("title");
    if (value("caption")) request.caption = value("caption");
    const tags = value("hashtags").split(/[\s,]+/).filter(Boolean);
    if (tags.length) request.hashtags = tags;
    const when = form.querySelector('input[name="when"]:checked')?.value || "now";
    if (when === "spread") {
      if (!value("start")) throw new Error("Choose when the first part goes out.");
      request.schedule = {
        mode: "spread", start: value("start"), every_hours: Number(value("every_hours") || 24),
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      };
    }
    return request;
  }

  document.addEventListener("DOMContentLoaded", () => localTimes());
  return { api, csrf, toast, showError, localTimes, bytes, publishRequest };
})();
