"""Every page audited the way issue 21 asks: axe-core (0 violations, light and dark) and
Lighthouse mobile (accessibility 100, best practices 100, no console errors) against the
real server process, signed in, with a video whose part has been posted.

Lighthouse is the npm package pinned in .ci/lh (`npm ci --prefix .ci/lh`, which .ci/run
does); the test installs it there itself when it is missing and skips only if it cannot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import TOKEN
from tests.server import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LH_DIR = Path(__file__).parent.parent / ".ci" / "lh"
LH_CLI = LH_DIR / "node_modules" / "lighthouse" / "cli" / "index.js"
PHONE_390 = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(browser: Browser, tmp_path_factory: pytest.TempPathFactory, short_clip: Path) -> Iterator[tuple[Server, dict[str, str], str]]:
    """The real server with one posted video; yields it, the pages to audit and the
    signed-in session's Cookie header."""
    root = tmp_path_factory.mktemp("audit")
    server = Server(root / "data", root / "server.log", VIDPROD_SEGMENT_SECONDS="10", VIDPROD_DISPATCH_SECONDS="1",
                    VIDPROD_GAZE="off")  # fmt: skip
    server.start()
    try:
        context = browser.new_context(base_url=server.url, **PHONE_390)
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto("/signin")
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/$"))
        consent = ""

        def at_consent(page: Page) -> None:
            nonlocal consent
            assert page.url.startswith(server.url), page.url
            consent = page.url.removeprefix(server.url)  # the sandbox's consent page, audited too

        account = server.connect_instagram(page, at_consent)
        upload = server.upload(short_clip, publish=json.dumps({"accounts": [account], "title": "Morning routine"}))
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["id"]
        assert server.wait_done(job_id)["state"] == "done"
        server.wait_published(job_id)
        page.goto(f"/videos/{job_id}")
        posted = page.get_by_role("link", name="View post").first.get_attribute("href")
        assert posted and posted.startswith(server.url), posted
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
        context.close()
        pages = {"signin": "/signin", "upload": "/", "videos": "/videos", "queue": "/queue", "accounts": "/platforms",
                 "settings": "/settings", "video": f"/videos/{job_id}", "part": f"/videos/{job_id}/parts/1",
                 "sandbox-consent": consent, "sandbox-post": posted.removeprefix(server.url)}  # fmt: skip
        yield server, pages, cookie
    finally:
        server.stop()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_violations_on_any_page(browser: Browser, site: tuple[Server, dict[str, str], str], scheme: str) -> None:
    server, pages, cookie = site
    context = browser.new_context(base_url=server.url, color_scheme=scheme, **PHONE_390)
    context.set_default_timeout(20_000)
    page = context.new_page()
    reports = {}
    for name, path in pages.items():  # the sign-in page first, before the session cookie goes on
        if name != "signin":
            context.set_extra_http_headers({"Cookie": cookie})
        page.goto(path)
        page.wait_for_load_state("networkidle") if name not in ("video", "queue") else page.wait_for_timeout(800)
        if name == "signin":
            expect(page.get_by_label("Admin token")).to_be_visible()
        else:
            expect(page).not_to_have_url(re.compile("/signin"))  # audited signed in, not the sign-in page again
        results = Axe().run(page)
        if results.violations_count:
            reports[name] = results.generate_report()
    context.close()
    assert not reports, "\n".join(f"--- {name} ({scheme})\n{report}" for name, report in reports.items())


def lighthouse() -> list[str]:
    """The pinned Lighthouse CLI, installed from .ci/lh's lock file when missing."""
    if not LH_CLI.exists():
        if not (shutil.which("node") and shutil.which("npm")):
            pytest.skip("Lighthouse needs node and npm (.ci/run installs them)")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(LH_DIR)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if done.returncode != 0 or not LH_CLI.exists():
            pytest.skip(f"could not install lighthouse: {done.stderr[-1000:]}")
    return [shutil.which("node") or "/usr/bin/node", str(LH_CLI)]


def test_lighthouse_mobile_scores_100_with_no_console_errors_on_every_page(
    site: tuple[Server, dict[str, str], str], tmp_path: Path
) -> None:
    server, pages, cookie = site
    command = lighthouse()
    failures = {}
    for name, path in pages.items():
        out = tmp_path / f"{name}.json"
        headers = json.dumps({"Cookie": cookie}) if name != "signin" else "{}"
        done = subprocess.run(
            [*command, server.url + path, "--only-categories=accessibility,best-practices", "--output=json",
             f"--output-path={out}", "--quiet", f"--extra-headers={headers}",
             "--chrome-flags=--headless=new " + " ".join(FLAGS)],
            env={**os.environ, "CHROME_PATH": CHROMIUM}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0 and out.exists(), f"{name}: lighthouse failed: {done.stderr[-3000:]}"
        report = json.loads(out.read_text())
        final = report.get("finalDisplayedUrl") or report.get("finalUrl")
        assert "/signin" not in final or name == "signin", f"{name}: audited the sign-in page instead ({final})"
        scores = {key: category["score"] for key, category in report["categories"].items()}
        failing = {
            key: (audit["title"], [item for item in (audit.get("details") or {}).get("items", [])][:5])
            for key, audit in report["audits"].items()
            if audit["scoreDisplayMode"] in ("binary", "numeric") and audit["score"] is not None and audit["score"] < 1
        }  # fmt: skip
        print(f"lighthouse {name}: {scores}")
        if scores != {"accessibility": 1.0, "best-practices": 1.0} or "errors-in-console" in failing:
            failures[name] = (scores, failing)
    assert not failures, "\n".join(
        f"--- {name} {scores}\n" + "\n".join(f"  {key}: {title}\n    {json.dumps(items)[:1500]}" for key, (title, items) in failing.items())
        for name, (scores, failing) in failures.items()
    )  # fmt: skip
