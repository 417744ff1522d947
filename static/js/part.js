// A part's posts: the phone preview follows the fields as they are typed, Save sends
// the changes to the API.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const tags = (text) => text.split(/[\s,]+/).map((t) => t.replace(/^#+/, "")).filter(Boolean);

  function preview(editor) {
    const form = editor.querySelector("form.post-form");
    if (!form) return;
    const caption = form.elements.caption.value.trim();
    const words = tags(form.elements.hashtags.value).map((t) => `#${t}`);
    editor.querySelector(".phone-caption").textContent = [caption, ...words].join(" ");
    const title = editor.querySelector(".phone-title");
    if (title && form.elements.title) title.textContent = form.elements.title.value;
    const cover = form.querySelector('input[name="cover"]:checked');
    const video = editor.querySelector(".phone video");
    if (cover?.dataset.url) video.poster = cover.dataset.url;
  }

  for (const editor of document.querySelectorAll(".post-editor")) {
    editor.addEventListener("input", () => preview(editor));
    editor.addEventListener("change", () => preview(editor));
    editor.querySelector('[data-action="play"]').addEventListener("click", (event) => {
      const video = editor.querySelector(".phone video");
      if (video.paused) { video.play(); event.target.textContent = "Pause preview"; }
      else { video.pause(); event.target.textContent = "Play preview"; }
    });
    const form = editor.querySelector("form.post-form");
    if (!form) continue;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = form.querySelector(".error");
      const button = form.querySelector('button[type="submit"]');
      const cover = form.querySelector('input[name="cover"]:checked')?.value || "";
      const body = {
        caption: form.elements.caption.value,
        hashtags: tags(form.elements.hashtags.value),
        cover_ms: cover === "" ? null : Number(cover),
      };
      if (form.elements.title) body.title = form.elements.title.value;
      button.disabled = true;
      try {
        await vidprod.api("PATCH", `/publications/${editor.dataset.publication}`, body);
        vidprod.showError(errorBox, null);
        vidprod.toast("Saved.");
      } catch (error) {
        vidprod.showError(errorBox, error);
      } finally {
        button.disabled = false;
      }
    });
  }
});
