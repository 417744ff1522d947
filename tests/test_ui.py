"""The pages in a real browser: Debian's chromium driven by Playwright against the real
server process (sandbox platforms built in), at a phone's size.

Screenshots of every page at phone and desktop width land in tests/artifacts/ (not
committed): look at them after a change to the pages.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.conftest import TOKEN
from tests.receiver import running_receiver
from tests.server import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2.625, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
CHUNK = 256 * 1024  # small upload requests, so an upload spans several

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Overrides pytest-playwright's session-wide browser: its event loop would stay
    running in the main thread for the rest of the session and break later tests that
    call asyncio.run(). Playwright's own browser download is not available here; the
    flags keep Chromium from calling Google's hosts on a closed network."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui")
    server = Server(
        root / "data", root / "server.log", VIDPROD_SEGMENT_SECONDS="10", VIDPROD_DISPATCH_SECONDS="1",
        VIDPROD_UPLOAD_CHUNK_MB=str(CHUNK / 1024 / 1024), VIDPROD_GAZE="off",
        VIDPROD_WEBHOOK_ALLOW_PRIVATE="1",  # the test's receiver listens on loopback
    )  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop()


def phone(browser: Browser, server: Server) -> Page:
    context = browser.new_context(base_url=server.url, **PHONE)
    context.set_default_timeout(20_000)
    return context.new_page()


def sign_in(page: Page) -> None:
    page.goto("/videos")
    expect(page).to_have_url(re.compile(r"/signin\?next=/videos$"))
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/videos$"))


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def assert_fits(page: Page) -> None:
    """Nothing wider than the screen (no sideways scrolling on a phone)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} is {overflow} px wider than the screen"


def connect(page: Page, platform: str, label: str) -> None:
    page.goto("/platforms")
    page.locator(f'[data-platform="{platform}"]').get_by_role("button", name=re.compile(f"Connect .*{label}")).click()
    page.get_by_role("button", name=re.compile("Allow|Approve|Authorize", re.IGNORECASE)).click()
    expect(page.get_by_role("status").filter(has_text="is connected")).to_be_visible()


def test_upload_watch_play_and_post_from_a_phone(browser: Browser, server: Server, long_clip: Path) -> None:
    page = phone(browser, server)
    sign_in(page)
    for platform, label in (("tiktok", "TikTok"), ("youtube", "YouTube")):
        connect(page, platform, label)
    expect(page.locator(".account")).to_have_count(2)

    page.goto("/")
    expect(page.get_by_role("heading", name="New video")).to_be_visible()
    page.get_by_label("Longest part, in seconds").fill("10")
    page.locator("#file").set_input_files(long_clip)
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(r"/videos/[0-9a-f]+$"), timeout=60_000)
    job_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.stillTheSamePage = true")
    # Live updates carry the page from processing to done without a reload.
    expect(page.locator("#job-state")).to_have_attribute("data-state", "done", timeout=120_000)
    assert page.evaluate("window.stillTheSamePage === true"), "the page reloaded instead of updating live"
    parts = page.locator("li.part")
    expect(parts).to_have_count(3)
    expect(page.get_by_role("heading", name="Cut plan")).to_be_visible()
    assert_fits(page)

    video = page.get_by_label("Part 1", exact=True)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("v => v.currentTime > 0.5 && v.readyState >= 2", arg=video.element_handle(), timeout=20_000)
    assert video.evaluate("v => v.videoWidth") == 360, "the part decodes in the browser"

    form = page.locator("#publish-form")
    for box in form.get_by_role("checkbox").all():
        box.check()
    form.get_by_label("Caption").fill("{title} — part {part} of {parts}")
    form.get_by_role("button", name="Schedule").click()
    posts = page.locator("li.post")
    expect(posts).to_have_count(6)
    for state in posts.locator(".badge").all():
        expect(state).to_have_text("Published", timeout=120_000)
    expect(page.get_by_role("link", name="View post")).to_have_count(6)
    assert page.evaluate("window.stillTheSamePage === true")
    screenshot(page, "video-published-phone-light")
    published = server.client.get(f"/jobs/{job_id}/publications").json()["publications"]
    assert {p["state"] for p in published} == {"published"} and len(published) == 6
    assert "long — part 1 of 3" in {p["caption"] for p in published}


def test_an_upload_cut_off_resumes_from_its_offset(browser: Browser, server: Server, long_clip: Path) -> None:
    page = phone(browser, server)
    sign_in(page)
    offsets: list[int] = []
    state = {"patches": 0, "hang": False}

    def on_tus(route: Route) -> None:
        request = route.request
        if request.method != "PATCH":
            route.continue_()
            return
        state["patches"] += 1
        offsets.append(int(request.headers["upload-offset"]))
        if state["patches"] == 3:
            route.abort("connectionreset")  # a dropped mobile connection: tus retries
        elif state["patches"] == 6:
            state["hang"] = True  # the phone locks mid-request; the page is then reloaded
        else:
            route.continue_()

    page.route("**/tus/**", on_tus)
    page.goto("/")
    page.get_by_label("Look into the camera (for notes read below the lens)").uncheck()
    page.locator("#file").set_input_files(long_clip)
    page.get_by_role("button", name="Start", exact=True).click()
    deadline = time.monotonic() + 30
    while not state["hang"] and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert state["hang"], f"the upload never got to its sixth request (offsets {offsets})"
    assert offsets[3] == offsets[2] > 0, f"after the cut the upload went on from {offsets[3]}, not {offsets[2]}"

    page.reload()
    before = len(offsets)
    page.locator("#file").set_input_files(long_clip)
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator(".upload-row .status").first).to_have_text(re.compile("Resuming|%|Uploaded"))
    page.wait_for_url(re.compile(r"/videos/[0-9a-f]+$"), timeout=60_000)
    resumed = offsets[before]
    assert resumed >= offsets[4] > 0, f"after the reload the upload restarted at {resumed}"
    assert offsets.count(0) == 1, "no request started over from zero"
    job_id = page.url.rsplit("/", 1)[1]
    job = server.client.get(f"/status/{job_id}").json()
    assert job["source"]["size_bytes"] == long_clip.stat().st_size


def test_webhooks_are_added_rotated_and_replayed_from_settings(
    browser: Browser, server: Server, short_clip: Path
) -> None:
    for job in server.client.get("/jobs").json()["jobs"]:  # earlier tests' jobs, finished first
        server.wait_done(job["id"])
    with running_receiver() as receiver:
        page = phone(browser, server)
        sign_in(page)
        page.goto("/settings")
        page.get_by_label("Endpoint URL").fill(receiver.url)
        page.get_by_label("Description").fill("my automations")
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.locator("#secret-value")
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        first_secret = secret.text_content()
        expect(page.get_by_role("heading", name=receiver.url)).to_be_visible()

        job = server.upload(short_clip).json()
        server.wait_done(job["id"])
        receiver.wait_for(lambda got: any(b'"job.completed"' in x.body for x in got))
        page.reload()
        rows = page.locator("table.deliveries tbody tr")
        expect(rows.filter(has_text="job.completed")).to_have_count(1)
        expect(rows.first.locator(".badge")).to_have_text("Delivered")
        sent = len(receiver.requests)
        completed = rows.filter(has_text="job.completed")
        completed.get_by_role("button", name="Resend").click()
        expect(page.get_by_role("status")).to_have_text("Sent again.")
        receiver.wait_for(lambda got: len(got) > sent)
        again = receiver.requests[-1]
        originals = [x for x in receiver.requests[:sent] if x.headers["webhook-id"] == again.headers["webhook-id"]]
        assert originals and b'"job.completed"' in again.body, "the same delivery, sent again"

        page.get_by_role("button", name="New secret").click()
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        assert secret.text_content() != first_secret
        expect(page.locator(".endpoint .hint").first).to_contain_text("old secret valid until")


PAGES = {"signin": None, "upload": "/", "videos": "/videos", "accounts": "/platforms", "settings": "/settings"}


@pytest.mark.parametrize("width", ["phone", "desktop"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_and_is_labelled(browser: Browser, server: Server, width: str, scheme: str) -> None:
    context = browser.new_context(base_url=server.url, color_scheme=scheme, **(PHONE if width == "phone" else DESKTOP))
    page = context.new_page()
    page.goto("/signin")
    screenshot(page, f"signin-{width}-{scheme}")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    jobs = server.client.get("/jobs").json()["jobs"]
    pages = {**PAGES, **({"video": f"/videos/{jobs[0]['id']}"} if jobs else {})}
    for name, path in pages.items():
        if path is None:
            continue
        page.goto(path)
        page.wait_for_load_state("networkidle") if name != "video" else page.wait_for_timeout(500)
        assert_fits(page)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, progress')]
            .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name || el.id)""")
        assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
        nameless = page.evaluate("""() => [...document.querySelectorAll('button, a[href]')]
            .filter(el => !(el.innerText || el.getAttribute('aria-label') || '').trim()).length""")
        assert nameless == 0, f"{name}: buttons or links without a name"
        screenshot(page, f"{name}-{width}-{scheme}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    context.close()


def test_a_refused_file_says_why_in_its_row_inside_a_phone_screen(browser: Browser, server: Server, tmp_path: Path) -> None:
    context = browser.new_context(base_url=server.url, **{**PHONE, "viewport": {"width": 390, "height": 844}})
    context.set_default_timeout(20_000)
    page = context.new_page()
    sign_in(page)
    page.goto("/")
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as sparse:  # a hole, not 2 GB of disk: the page only reads its size
        sparse.truncate(2_400_000_000)
    page.locator("#file").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"my notes"})
    page.locator("#file").set_input_files(huge)

    notes = page.locator(".upload-row", has_text="notes.txt")
    expect(notes.locator(".status")).to_have_text("Not a video")
    expect(notes.get_by_role("alert")).to_have_text(re.compile(r"^notes\.txt is not a video\. Choose a video file"))
    big = page.locator(".upload-row", has_text="huge.mp4")
    expect(big.locator(".status")).to_have_text("Too big")
    expect(big.get_by_role("alert")).to_have_text(re.compile(r"^huge\.mp4 is 2\.4 GB; this server takes up to 2\.1 GB\. Trim it"))
    for row in (notes, big):
        box = row.get_by_role("alert").bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= 844, f"the error is drawn at {box}, off an 844 px screen"
    assert page.locator("#uploads progress:visible").count() == 0, "nothing was sent"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "upload-refused-phone.png")  # the screen as the creator sees it
    context.close()


def test_a_file_the_server_refuses_says_why_in_its_row(browser: Browser, server: Server) -> None:
    context = browser.new_context(base_url=server.url, **{**PHONE, "viewport": {"width": 390, "height": 844}})
    context.set_default_timeout(20_000)
    page = context.new_page()
    sign_in(page)
    page.goto("/")
    fake = b"these are my notes, not a video\n" * 2000
    page.locator("#file").set_input_files({"name": "talk.mp4", "mimeType": "video/mp4", "buffer": fake})
    page.get_by_role("button", name="Start", exact=True).click()
    row = page.locator(".upload-row", has_text="talk.mp4")
    expect(row.locator(".status")).to_have_text("Refused by the server")
    expect(row.get_by_role("alert")).to_contain_text(re.compile(r"^talk\.mp4: .*video", re.IGNORECASE))
    box = row.get_by_role("alert").bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= 844, f"the error is drawn at {box}, off an 844 px screen"
    assert row.locator(".speed").text_content() == "" and row.locator(".eta").text_content() == "", "no stale speed"
    context.close()


def test_options_set_after_picking_the_file_are_the_jobs(browser: Browser, server: Server, short_clip: Path) -> None:
    """Nothing is sent on picking: the options set afterwards, on a phone a screen or two
    below the picker, are what the job gets once *Start* is tapped."""
    context = browser.new_context(base_url=server.url, **{**PHONE, "viewport": {"width": 390, "height": 844}})
    context.set_default_timeout(20_000)
    page = context.new_page()
    sign_in(page)
    connect(page, "tiktok", "TikTok")
    tiktok_ids = {a["id"] for p in server.client.get("/accounts").json()["platforms"] if p["platform"] == "tiktok"
                  for a in p["accounts"]}  # fmt: skip
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.method) if "/tus/" in request.url else None)
    page.goto("/")
    page.locator("#file").set_input_files(short_clip)
    expect(page.locator(".upload-row .status")).to_have_text("Ready")
    page.get_by_label("Longest part, in seconds").fill("7")
    page.get_by_label("Word-by-word captions", exact=False).check()
    account = page.locator("#upload-form").get_by_role("checkbox", name=re.compile("TikTok")).first
    account.check()
    tiktok = account.get_attribute("value")
    assert tiktok in tiktok_ids
    page.get_by_label("Caption", exact=True).fill("{title} part {part}")
    assert sent == [], f"the upload began before Start: {sent}"
    screenshot(page, "upload-picked-phone")
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(r"/videos/[0-9a-f]+$"), timeout=60_000)
    options = server.client.get(f"/status/{page.url.rsplit('/', 1)[1]}").json()["options"]
    assert options["segment_seconds"] == 7 and options["captions"] is True, options
    assert options["publish"]["accounts"] == [tiktok] and options["publish"]["caption"] == "{title} part {part}", options
    context.close()


def test_try_again_on_a_cancelled_scheduled_post_keeps_its_time(browser: Browser, server: Server, short_clip: Path) -> None:
    context = browser.new_context(base_url=server.url, **{**PHONE, "viewport": {"width": 390, "height": 844}})
    context.set_default_timeout(20_000)
    page = context.new_page()
    sign_in(page)
    connect(page, "tiktok", "TikTok")
    account = next(a["id"] for p in server.client.get("/accounts").json()["platforms"] if p["platform"] == "tiktok"
                   for a in p["accounts"])  # fmt: skip
    upload = server.upload(short_clip)
    assert upload.status_code == 202, upload.text
    job = server.wait_done(upload.json()["id"])
    assert job["state"] == "done", job
    at = time.strftime("%Y-%m-%dT09:00:00Z", time.gmtime(time.time() + 86400))
    answer = server.client.post(f"/jobs/{job['id']}/publications", json={
        "accounts": [account], "parts": [1], "schedule": {"mode": "at", "times": [at]}})  # fmt: skip
    assert answer.status_code == 201, answer.text
    page.goto(f"/videos/{job['id']}")
    post = page.locator("li.post")
    expect(post.locator(".badge")).to_have_text("Scheduled")
    post.get_by_role("button", name="Cancel").click()
    expect(post.locator(".badge")).to_have_text("Cancelled")
    post.get_by_role("button", name="Try again").click()
    expect(post.locator(".badge")).to_have_text("Scheduled")
    expect(post.locator("time")).to_have_attribute("datetime", at)
    page.wait_for_timeout(2500)  # two dispatcher rounds: it must not go out now
    page.reload()
    expect(post.locator(".badge")).to_have_text("Scheduled")
    expect(post.locator("time")).to_have_attribute("datetime", at)
    screenshot(page, "video-retried-scheduled-phone")
    post.get_by_role("button", name="Cancel").click()
    post.get_by_role("button", name="Post now").click()
    expect(post.locator(".badge")).to_have_text("Published", timeout=60_000)
    context.close()


def test_captions_ticked_on_the_upload_page_play_as_a_track(browser: Browser, server: Server, tmp_path: Path) -> None:
    import numpy as np

    from tests.clips import AUDIO_RATE, make_clip, spoken

    voice = spoken("Captions help people follow what the speaker says. Today we cook rice.", tmp_path)
    clip = make_clip(tmp_path / "spoken.mp4", seconds=len(voice) / AUDIO_RATE + 0.5, size=(360, 640),
                     voice=np.asarray(voice))  # fmt: skip
    page = phone(browser, server)
    sign_in(page)
    page.goto("/")
    page.get_by_label("Word-by-word captions", exact=False).check()
    page.locator("#file").set_input_files(clip)
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(r"/videos/[0-9a-f]+$"), timeout=60_000)
    expect(page.locator("#job-state")).to_have_attribute("data-state", "done", timeout=180_000)
    video = page.get_by_label("Part 1", exact=True)
    # The WebVTT track loads and its cues hold the spoken words.
    page.wait_for_function(
        "v => v.textTracks.length && v.textTracks[0].cues && v.textTracks[0].cues.length > 0",
        arg=video.element_handle(), timeout=20_000,
    )  # fmt: skip
    text = video.evaluate("v => Array.from(v.textTracks[0].cues).map(c => c.text).join(' ')")
    assert "rice" in text.lower() and "captions" in text.lower(), text
    expect(page.get_by_role("link", name="subtitles (SRT)")).to_be_visible()


def test_a_word_fixed_in_the_transcript_plays_in_the_parts_captions(browser: Browser, server: Server, tmp_path: Path) -> None:
    import numpy as np

    from tests.clips import AUDIO_RATE, make_clip, spoken

    voice = spoken("Captions help people follow what the speaker says. Today we cook rice.", tmp_path)
    clip = make_clip(tmp_path / "spoken.mp4", seconds=len(voice) / AUDIO_RATE + 0.5, size=(360, 640),
                     voice=np.asarray(voice))  # fmt: skip
    job_id = server.upload(clip, captions="on").json()["id"]
    assert server.wait_done(job_id, timeout=300)["state"] == "done"
    context = browser.new_context(base_url=server.url, **{**PHONE, "viewport": {"width": 390, "height": 844}})
    context.set_default_timeout(20_000)
    page = context.new_page()
    sign_in(page)
    page.goto(f"/videos/{job_id}")
    box = page.get_by_label("Fix any misheard words", exact=False)
    heard = box.input_value()
    assert "rice" in heard.lower(), heard
    box.scroll_into_view_if_needed()
    assert_fits(page)
    screenshot(page, "video-transcript-390")
    box.fill(re.sub(r"\brice\b", "risotto", heard, flags=re.IGNORECASE))
    page.get_by_role("button", name="Save and make the parts again").click()
    expect(page.locator("#job-state")).not_to_have_attribute("data-state", "done", timeout=10_000)
    expect(page.locator("#job-state")).to_have_attribute("data-state", "done", timeout=300_000)
    video = page.get_by_label("Part 1", exact=True)
    page.wait_for_function(
        "v => v.textTracks.length && v.textTracks[0].cues && v.textTracks[0].cues.length > 0",
        arg=video.element_handle(), timeout=20_000,
    )  # fmt: skip
    text = video.evaluate("v => Array.from(v.textTracks[0].cues).map(c => c.text).join(' ')")
    assert "risotto" in text and "rice" not in text.lower(), text
    # a correction the server refuses says why beside the form
    page.route(f"**/jobs/{job_id}/transcript", lambda route: route.fulfill(
        status=409, content_type="application/problem+json",
        body='{"status": 409, "title": "Conflict", "detail": "A part of this video is scheduled or being posted."}'))
    page.get_by_role("button", name="Save and make the parts again").click()
    expect(page.locator("#transcript-error")).to_contain_text("scheduled or being posted")
    context.close()
