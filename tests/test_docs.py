"""The reference in docs/ stays true where a machine can tell: every setting with its
default, every route of the OpenAPI document, every event type of the catalogue."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

from litestar.routes import HTTPRoute

from vidprod.config import Settings
from vidprod.events import CATALOGUE
from vidprod.web.app import create_app

DOCS = Path(__file__).resolve().parent.parent / "docs"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def table_rows(page: str) -> dict[str, list[str]]:
    """First cell's `code` -> the other cells, for every table row that starts with code."""
    rows: dict[str, list[str]] = {}
    for line in page.splitlines():
        if match := re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line):
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def settings_problems(page: str) -> list[str]:
    """Each setting needs a row `| VIDPROD_X | default | meaning |` whose default, read by
    the setting's own parser, is the default in config.py (a setting without one says so
    in plain words, no `code`); the page names no variable config.py lacks."""
    rows = table_rows(page)
    known = {f.metadata["env"] for f in fields(Settings)}
    problems = [f"{name} is in docs/settings.md but not in config.py" for name in
                sorted(set(re.findall(r"VIDPROD_[A-Z0-9_]+", page)) - known)]  # fmt: skip
    for f in fields(Settings):
        name, default = f.metadata["env"], f.default
        assert default is not MISSING
        if name not in rows:
            problems.append(f"{name} has no row in docs/settings.md")
            continue
        cell = rows[name][0]
        literal = re.fullmatch(r"`([^`]*)`", cell)
        if default is None:
            if literal or not cell:
                problems.append(f"{name} has no default value; docs/settings.md says {cell!r} (use words)")
        elif not literal:
            problems.append(f"{name}: docs/settings.md gives no `default` (config.py: {default!r})")
        elif f.metadata["parse"](literal[1]) != default:
            problems.append(f"{name}: docs/settings.md says {literal[1]!r}, config.py {default!r}")
    return problems


def test_every_setting_is_documented_with_its_default():
    assert settings_problems((DOCS / "settings.md").read_text()) == []


def routes(settings: Settings) -> tuple[set[str], set[str]]:
    """(the routes of the OpenAPI document, every route the app serves) as `METHOD /path`
    with the document's parameter names. Pages and the like may be served yet left out
    of the document; they are documented too."""
    app = create_app(settings, run_worker=False)
    documented = {
        f"{method.upper()} {path}"
        for path, item in app.openapi_schema.paths.items()
        for method in METHODS
        if getattr(item, method, None) is not None
    }
    served = {
        f"{method} {route.path_format}"
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in route.methods
    }
    return documented, served


def api_problems(page: str, documented: set[str], served: set[str]) -> list[str]:
    """Every route of the OpenAPI document is on the page as `METHOD /path`; every
    `METHOD /path` on the page is a route the app serves."""
    pattern = r"`((?:%s) /[^`\s?]*)" % "|".join(m.upper() for m in METHODS)
    written = set(re.findall(pattern, page))
    return [f"{route} is not in docs/api.md" for route in sorted(documented - written)] + [
        f"docs/api.md has {route}, which is no route" for route in sorted(written - served)
    ]


def test_every_route_is_in_the_api_page(settings):
    documented, served = routes(settings)
    assert "POST /upload" in documented and len(documented) > 25  # the document was read
    assert documented <= served
    assert api_problems((DOCS / "api.md").read_text(), documented, served) == []


def event_problems(page: str) -> list[str]:
    """The catalogue table has one row per event type, and no other."""
    written = {name for name in table_rows(page) if re.fullmatch(r"[a-z_]+\.[a-z_]+", name)}
    return [f"{kind} is not in docs/events-and-webhooks.md" for kind in sorted(set(CATALOGUE) - written)] + [
        f"docs/events-and-webhooks.md has {kind}, which is no event type" for kind in sorted(written - set(CATALOGUE))
    ]


def test_every_event_type_is_in_the_events_page():
    assert event_problems((DOCS / "events-and-webhooks.md").read_text()) == []


def test_the_readme_links_pages_that_exist():
    readme = (DOCS.parent / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 8
    assert [link for link in links if not (DOCS.parent / link).is_file()] == []
    assert len(readme.encode()) < 6 * 1024
    assert "uv run pytest" in readme  # CI (.ci/run) runs the README's test command


def test_links_between_pages_resolve():
    """Every relative link in the README and docs/ names a file that exists."""
    pages = [DOCS.parent / "README.md", *DOCS.glob("*.md")]
    broken = [
        f"{page.name}: {target}"
        for page in pages
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)|src=\"([^\":]+)\"", page.read_text())
        for target in [t for t in target if t]
        if not (page.parent / target).exists()
    ]
    assert len(pages) >= 11
    assert broken == []

