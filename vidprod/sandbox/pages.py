"""The consent pages a browser sees at the three authorize URLs.

Plain HTML with no inline script or style (the app's Content-Security-Policy forbids
both). Allow and Cancel are GET forms back to the same URL with every parameter plus
approve=1 or approve=0, so the page needs no state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape


def consent_page(
    *, platform: str, client_id: str, account: str, scopes: Sequence[str], action: str, params: Mapping[str, str]
) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in params.items()
        if name != "approve"
    )
    scope_items = "".join(f"<li><code>{escape(scope)}</code></li>" for scope in scopes)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox {escape(platform)}: allow access?</title></head>
<body>
<main>
<h1>Sandbox {escape(platform)}</h1>
<p>This page is part of the vidprod sandbox. It is not {escape(platform)}: no real account is
connected and nothing is posted anywhere.</p>
<p>The app <strong>{escape(client_id)}</strong> asks to act as <strong>{escape(account)}</strong>
with these permissions:</p>
<ul>{scope_items}</ul>
<form method="get" action="{escape(action)}">{hidden}<input type="hidden" name="approve" value="1">
<button type="submit">Allow</button></form>
<form method="get" action="{escape(action)}">{hidden}<input type="hidden" name="approve" value="0">
<button type="submit">Cancel</button></form>
</main>
</body>
</html>
"""


def error_page(message: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sandbox: error</title></head>
<body><main><h1>Sandbox: this request cannot be authorized</h1><p>{escape(message)}</p></main></body>
</html>
"""
