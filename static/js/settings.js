// Settings: webhook endpoints, their secrets and delivery log (resend one or all failed).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("webhook-form");
  const errorBox = document.getElementById("webhook-error");
  const secretBox = document.getElementById("secret-box");
  const secretValue = document.getElementById("secret-value");

  function showSecret(secret) {
    secretValue.textContent = secret;
    secretBox.hidden = false;
    secretBox.scrollIntoView({ block: "nearest" });
  }

  document.getElementById("copy-secret").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secretValue.textContent);
      vidprod.toast("Copied.");
    } catch {
      vidprod.toast("Select the secret and copy it.");
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { url: form.url.value.trim() };
    if (form.description.value.trim()) body.description = form.description.value.trim();
    const chosen = [...form.querySelectorAll('input[name="event_types"]:checked')].map((box) => box.value);
    if (!form.all.checked || chosen.length) body.event_types = chosen;
    try {
      if (!body.url) throw new Error("Enter the endpoint's https:// address.");
      const created = await vidprod.api("POST", "/webhooks", body);
      vidprod.showError(errorBox, null);
      sessionStorage.setItem("vidprod-new-secret", created.secret);
      location.reload();
    } catch (error) {
      vidprod.showError(errorBox, error);
    }
  });

  const fresh = sessionStorage.getItem("vidprod-new-secret");
  if (fresh) {
    sessionStorage.removeItem("vidprod-new-secret");
    showSecret(fresh);
  }

  document.querySelector("main").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    const section = button?.closest("[data-endpoint]");
    if (!button || !section) return;
    const base = `/webhooks/${section.dataset.endpoint}`;
    button.disabled = true;
    try {
      switch (button.dataset.action) {
        case "toggle":
          await vidprod.api("PATCH", base, { enabled: button.dataset.enabled !== "true" });
          break;
        case "rotate": {
          const rotated = await vidprod.api("POST", `${base}/rotate-secret`);
          sessionStorage.setItem("vidprod-new-secret", rotated.secret);
          break;
        }
        case "resend-failed": {
          const { requeued } = await vidprod.api("POST", `${base}/resend-failed`);
          vidprod.toast(`${requeued} sent again.`);
          return;
        }
        case "resend":
          await vidprod.api("POST", `${base}/deliveries/${button.closest("[data-delivery]").dataset.delivery}/resend`);
          vidprod.toast("Sent again.");
          return;
        case "delete":
          if (!confirm("Delete this endpoint and its delivery log?")) return;
          await vidprod.api("DELETE", base);
          break;
        default:
          return;
      }
      location.reload();
    } catch (error) {
      vidprod.toast(error.message);
    } finally {
      button.disabled = false;
    }
  });
});
