// The accounts page: connect (the platform's consent page, then back here), disconnect.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.querySelector("main").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const platform = button.closest("[data-platform]").dataset.platform;
    button.disabled = true;
    try {
      if (button.dataset.action === "connect") {
        const { authorize_url } = await vidprod.api("POST", `/accounts/${platform}/connect`);
        location.href = authorize_url;
        return;
      }
      if (button.dataset.action === "disconnect") {
        const account = button.closest("[data-account]");
        const name = account.querySelector(".account-name").textContent;
        if (!confirm(`Disconnect ${name}? Posts scheduled for it are cancelled.`)) return;
        await vidprod.api("DELETE", `/accounts/${account.dataset.account}`);
        location.reload();
      }
    } catch (error) {
      vidprod.toast(error.message);
    } finally {
      button.disabled = false;
    }
  });
});
