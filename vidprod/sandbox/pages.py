"""The consent pages a browser sees at the three authorize URLs.

Plain HTML with no inline script or style (the app's Content-Security-Policy forbids
both), styled by the app's own stylesheet. Allow and Cancel are GET forms back to the same URL with every parameter plus
approve=1 or approve=0, so the page needs no state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any


@dataclass(frozen=True)
class PageLook:
    """The host app's stylesheet and icon, by URL: the fake's pages look like the app
    that serves them (the fake imports nothing of the app; a standalone fake has none)."""

    stylesheet: str
    icon: str


def _head(title: str, look: PageLook | None) -> str:
    links = (f'<link rel="icon" href="{escape(look.icon)}" type="image/svg+xml">\n'
             f'<link rel="stylesheet" href="{escape(look.stylesheet)}">') if look else ""  # fmt: skip
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{escape(title)}</title>
{links}</head>
<body>
"""


def consent_page(
    *, platform: str, client_id: str, account: str, scopes: Sequence[str], action: str, params: Mapping[str, str],
    look: PageLook | None = None,
) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in params.items()
        if name != "approve"
    )
    scope_items = "".join(f"<li><code>{escape(scope)}</code></li>" for scope in scopes)
    return _head(f"Sandbox {platform}: allow access?", look) + f"""<header><p class="sandbox-banner">Sandbox: not the real {escape(platform)}.</p></header>
<main class="narrow">
<section class="card">
<h1>Sandbox {escape(platform)}</h1>
<p>This page is part of the vidprod sandbox. It is not {escape(platform)}: no real account is
connected and nothing is posted anywhere.</p>
<p>The app <strong>{escape(client_id)}</strong> asks to act as <strong>{escape(account)}</strong>
with these permissions:</p>
<ul>{scope_items}</ul>
<div class="actions">
<form method="get" action="{escape(action)}">{hidden}<input type="hidden" name="approve" value="1">
<button type="submit" class="primary">Allow</button></form>
<form method="get" action="{escape(action)}">{hidden}<input type="hidden" name="approve" value="0">
<button type="submit" class="secondary">Cancel</button></form>
</div>
</section>
</main>
</body>
</html>
"""


def post_page(
    *, platform: str, post: Mapping[str, Any] | None, account: str, video_url: str | None, when: str,
    look: PageLook | None = None,
) -> str:
    """A sandbox post as its platform's page would show it: the posted file playing."""
    if post is None:
        return _head(f"Sandbox {platform}: no such post", look) + f"""<header><p class="sandbox-banner">Sandbox: not the real {escape(platform)}.</p></header>
<main class="narrow"><h1>No such post</h1><p>The sandbox {escape(platform)} has no post at this address.</p></main>
</body>
</html>
"""
    words = post.get("caption") or post.get("title") or ""
    video = (
        f'<video class="posted" controls playsinline preload="metadata" src="{escape(video_url)}" aria-label="The posted video"></video>'
        if video_url
        else "<p class=\"hint\">The sandbox keeps only its latest posted files; this one is gone.</p>"
    )
    return _head(f"Sandbox {platform}: a post by {account}", look) + f"""<header><p class="sandbox-banner">Sandbox: this page stands in for {escape(platform)}; nothing was posted there.</p></header>
<main class="narrow">
<article class="card part">
<h1>{escape(platform)} post</h1>
{video}
<p class="posted-caption">{escape(words)}</p>
<p class="hint">Posted by {escape(account)} on <time datetime="{escape(when)}">{escape(when.replace("T", " ")[:16])} UTC</time>
{" · " + escape(str(post["privacy"])) if post.get("privacy") else ""}{" · a draft in the creator's inbox" if post.get("draft") else ""}</p>
</article>
</main>
</body>
</html>
"""


def error_page(message: str) -> str:
    return _head("Sandbox: error", None) + f"""<main class="narrow"><h1>Sandbox: this request cannot be authorized</h1><p>{escape(message)}</p></main>
</body>
</html>
"""
