"""The pages and the browser session: sign in, the cookie, CSRF, what a signed-out
browser sees, and each page rendering real data (in-process; the browser tests are in
test_ui.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import TOKEN
from tests.test_api import _upload, _wait
from vidprod.config import Settings
from vidprod.web.app import create_app
from vidprod.web.templating import STATIC_DIR


def sign_in(client, next_path: str = "/") -> str:
    """Signs the test client in; returns the page's CSRF token."""
    answer = client.post("/signin", data={"token": TOKEN, "next": next_path}, follow_redirects=False)
    assert answer.status_code == 303
    page = client.get("/")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def test_a_signed_out_browser_is_sent_to_sign_in_and_back(idle_client):
    answer = idle_client.get("/videos?page=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=/videos%3Fpage%3D1"
    form = idle_client.get(answer.headers["location"])
    assert form.status_code == 200 and 'name="next" value="/videos?page=1"' in form.text
    signed = idle_client.post("/signin", data={"token": TOKEN, "next": "/videos?page=1"}, follow_redirects=False)
    assert signed.headers["location"] == "/videos?page=1"
    page = idle_client.get("/videos?page=1", follow_redirects=False)
    assert page.status_code == 200 and "<h1>Videos</h1>" in page.text


def test_the_session_cookie_is_http_only_and_same_site(idle_client):
    answer = idle_client.post("/signin", data={"token": TOKEN}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("vidprod_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert TOKEN not in cookie


def test_the_cookie_is_secure_behind_https(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, public_url="https://vidprod.example.com")
    from litestar.testing import TestClient

    with TestClient(create_app(settings, run_worker=False)) as client:
        answer = client.post("/signin", data={"token": TOKEN}, follow_redirects=False)
        assert "Secure" in answer.headers["set-cookie"]


def test_the_cookie_is_secure_when_flys_proxy_says_https_without_a_public_url(tmp_path: Path):
    """Issue 20 finding 10: no Secure flag behind Fly's https unless VIDPROD_PUBLIC_URL was set."""
    from litestar.testing import TestClient

    fly = Settings(data_dir=tmp_path / "fly", admin_token=TOKEN, behind_fly=True)
    with TestClient(create_app(fly, run_worker=False)) as client:
        over_https = client.post(
            "/signin", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}, follow_redirects=False
        )
        assert "Secure" in over_https.headers["set-cookie"]
        plain = client.post("/signin", data={"token": TOKEN}, follow_redirects=False)
        assert "Secure" not in plain.headers["set-cookie"]
    untrusted = Settings(data_dir=tmp_path / "direct", admin_token=TOKEN)
    with TestClient(create_app(untrusted, run_worker=False)) as client:
        forged = client.post(
            "/signin", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}, follow_redirects=False
        )
        assert "Secure" not in forged.headers["set-cookie"], "only the trusted proxy's header counts"


def test_signing_out_revokes_a_copied_cookie(idle_client):
    """Issue 20 finding 10: a copied cookie still worked after sign-out."""
    from litestar.testing import TestClient

    csrf = sign_in(idle_client)
    copied = idle_client.cookies["vidprod_session"]
    assert idle_client.get("/", follow_redirects=False).status_code == 200
    idle_client.post("/signout", data={"csrf_token": csrf}, follow_redirects=False)
    idle_client.cookies.set("vidprod_session", copied)
    assert idle_client.get("/", follow_redirects=False).status_code == 303
    assert idle_client.get("/accounts").status_code == 401
    assert idle_client.post("/accounts/tiktok/connect", headers={"X-CSRF-Token": csrf}).status_code == 401


def test_a_sign_in_lasts_30_days_from_sign_in_however_often_it_is_used(idle_client):
    sign_in(idle_client)
    db = idle_client.app.state.db
    [(first,)] = db.read(lambda c: c.execute("SELECT expires_at FROM sessions").fetchall())
    for _ in range(3):
        assert idle_client.get("/", follow_redirects=False).status_code == 200
    [(after,)] = db.read(lambda c: c.execute("SELECT expires_at FROM sessions").fetchall())
    assert after == first, "using the cookie does not extend the sign-in"
    db.write(lambda c: c.execute("UPDATE sessions SET expires_at = expires_at - 30 * 86400"))
    assert idle_client.get("/", follow_redirects=False).status_code == 303


def test_a_wrong_token_says_where_the_right_one_is(idle_client):
    answer = idle_client.post("/signin", data={"token": "nope"}, follow_redirects=False)
    assert answer.status_code == 401
    assert "That token is not right" in answer.text and "data/admin_token" in answer.text
    assert "set-cookie" not in answer.headers
    assert idle_client.get("/", follow_redirects=False).status_code == 303


def test_only_local_paths_are_followed_after_sign_in(idle_client):
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = idle_client.post("/signin", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/"


def test_changes_need_the_csrf_header_with_a_cookie_but_not_with_the_token(idle_client, auth):
    csrf = sign_in(idle_client)
    connect = "/accounts/tiktok/connect"
    refused = idle_client.post(connect)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "Reload the page" in refused.json()["detail"]
    assert idle_client.post(connect, headers={"X-CSRF-Token": "forged"}).status_code == 403
    foreign = idle_client.post(connect, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert idle_client.post(connect, headers={"X-CSRF-Token": csrf}).json()["authorize_url"]
    assert idle_client.get("/accounts").status_code == 200, "reading needs no CSRF token"
    idle_client.cookies.clear()
    assert idle_client.post(connect, headers=auth).status_code == 200, "API clients need no CSRF token"
    assert idle_client.post(connect).status_code == 401


def test_sign_out_needs_the_form_token_and_ends_the_session(idle_client):
    csrf = sign_in(idle_client)
    assert idle_client.post("/signout", data={"csrf_token": "wrong"}, follow_redirects=False).status_code == 403
    out = idle_client.post("/signout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert idle_client.get("/", follow_redirects=False).status_code == 303


def test_a_new_admin_token_signs_every_browser_out(tmp_path: Path):
    from litestar.testing import TestClient

    first = Settings(data_dir=tmp_path / "data", admin_token=TOKEN)
    with TestClient(create_app(first, run_worker=False)) as client:
        client.post("/signin", data={"token": TOKEN})
        cookies = dict(client.cookies)
    second = Settings(data_dir=tmp_path / "data", admin_token="another-token-entirely")
    with TestClient(create_app(second, run_worker=False), cookies=cookies) as client:
        assert client.get("/", follow_redirects=False).status_code == 303


def test_pages_render_with_nothing_in_them(idle_client):
    sign_in(idle_client)
    expected = {
        "/": ["Choose a video", 'accept="video/*"', "No accounts are connected yet", "Eye contact"],
        "/videos": ["Upload your first video"],
        "/platforms": ["TikTok", "Instagram Reels", "YouTube Shorts", "sandbox"],
        "/settings": ["Add endpoint", "job.completed"],
        "/queue": ["Nothing is scheduled", "Nothing has gone out yet", "Times are in UTC."],
    }
    for path, words in expected.items():
        page = idle_client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        for word in words:
            assert word in page.text, (path, word)
        assert "Sandbox: posts go to built-in test platforms" in page.text
        assert "<script>" not in page.text and " style=" not in page.text, "the CSP forbids inline code"


def test_an_unknown_video_is_a_plain_page(idle_client):
    sign_in(idle_client)
    page = idle_client.get("/videos/nope")
    assert page.status_code == 404 and "That video is not here" in page.text
    part = idle_client.get("/videos/nope/parts/1")
    assert part.status_code == 404 and "That part is not here" in part.text


def test_the_queue_says_the_browsers_time_zone_and_ignores_a_made_up_one(idle_client):
    sign_in(idle_client)
    idle_client.cookies.set("tz", "Europe/Berlin")
    assert "Times are in Europe/Berlin, your browser's time zone." in idle_client.get("/queue").text
    idle_client.cookies.set("tz", "../../etc/passwd")
    assert "Times are in UTC." in idle_client.get("/queue").text


def test_a_video_page_shows_its_parts_plan_and_posts(client, auth, short_clip):
    job = _upload(client, auth, short_clip).json()
    assert _wait(client, auth, job["id"])["state"] == "done"
    sign_in(client)
    page = client.get(f"/videos/{job['id']}")
    assert page.status_code == 200
    assert "Cut plan" in page.text and "Part 1" in page.text
    assert f'/jobs/{job["id"]}/segments/0/file"' in page.text
    assert "Download part 1" in page.text and "Delete this video" in page.text
    assert f'href="/videos/{job["id"]}/parts/1">Caption, cover and phone preview' in page.text
    part = client.get(f"/videos/{job['id']}/parts/1")
    assert part.status_code == 200 and "not scheduled anywhere yet" in part.text
    assert client.get(f"/videos/{job['id']}/parts/99").status_code == 404
    live = client.get(f"/videos/{job['id']}/live")
    assert live.status_code == 200 and "<html" not in live.text and "Part 1" in live.text
    listing = client.get("/videos")
    assert "talk.mp4" in listing.text and "Ready" in listing.text


def test_a_stopped_video_that_made_no_parts_does_not_count_its_planned_ones(idle_client, auth, short_clip):
    """Issue 21: a cancelled job that made no parts said "2 parts" (its plan's count)."""
    from vidprod.store import jobs as q

    job_id = _upload(idle_client, auth, short_clip).json()["id"]
    plan = {"rate": "30", "parts": [
        {"index": i, "start_seconds": 2.0 * i, "end_seconds": 2.0 * i + 2, "reason": "pause"} for i in range(2)
    ]}  # fmt: skip
    idle_client.app.state.db.write(lambda conn: q.update_job(conn, job_id, state="cancelled", plan=plan))
    sign_in(idle_client)
    row = idle_client.get("/videos").text.split('class="job-item"')[1]
    assert "Cancelled" in row and "part" not in row.split('class="job-meta"')[1]


def test_a_part_too_short_for_a_platform_says_so_on_its_card(client, auth, clip_dir):
    """Issue 21: a 0.1 s part was shown "Ready" to post like any other."""
    from tests.clips import make_clip

    blink = make_clip(clip_dir / "blink.mp4", seconds=0.5)
    with blink.open("rb") as f:
        job = client.post("/upload", files={"file": ("blink.mp4", f, "video/mp4")}, headers=auth).json()
    done = _wait(client, auth, job["id"])
    assert done["state"] == "done" and done["segments"][0]["duration_seconds"] < 1
    sign_in(client)
    card = client.get(f"/videos/{job['id']}").text.split('id="part-1"')[1]
    assert "Too short for TikTok or Instagram Reels, which take 3 s or more." in card
    assert "Download it or post it elsewhere instead." in card
    long_enough = _wait(client, auth, _upload(client, auth, make_clip(clip_dir / "four.mp4", seconds=4)).json()["id"])
    assert "Too short" not in client.get(f"/videos/{long_enough['id']}").text


def test_a_part_longer_than_a_platform_takes_says_so_on_its_card(idle_client, auth, short_clip):
    """Per-platform length targets (issue 21): Shorts up to 3 min, Reels 15 min, TikTok 10 min."""
    from vidprod.store import jobs as q

    job_id = _upload(idle_client, auth, short_clip).json()["id"]
    plan = {"rate": "30", "parts": [{"index": 0, "start_seconds": 0.0, "end_seconds": 200.0, "reason": "end"}]}
    part = {"idx": 0, "start_seconds": 0.0, "end_seconds": 200.0, "duration_seconds": 200.0,
            "path": f"{job_id}/parts/part-001.mp4", "size_bytes": 1, "width": 360, "height": 640, "has_audio": True}
    idle_client.app.state.db.write(lambda conn: (q.update_job(conn, job_id, state="done", plan=plan),
                                                 q.upsert_segment(conn, job_id, part)))  # fmt: skip
    sign_in(idle_client)
    card = idle_client.get(f"/videos/{job_id}").text.split('id="part-1"')[1]
    assert "Too long for YouTube Shorts, which takes 3 min at most." in card
    assert "Too short" not in card and "TikTok" not in card.split("Too long")[1].split("</p>")[0]


def test_static_files_are_versioned_and_cached(idle_client):
    sign_in(idle_client)
    page = idle_client.get("/").text
    url = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{10})"', page).group(1)
    answer = idle_client.get(url)
    assert answer.status_code == 200 and "max-age=31536000" in answer.headers["cache-control"]
    assert "tus-js-client-4.3.1/tus.min.js?v=" in page


def test_pages_css_and_scripts_are_gzipped(idle_client):
    """Issue 21: no compression of HTML, CSS or JS."""
    sign_in(idle_client)
    page = idle_client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.headers["content-encoding"] == "gzip" and "<h1>New video</h1>" in page.text
    for name in ("app.css", "js/common.js", "vendor/tus-js-client-4.3.1/tus.min.js"):
        url = re.search(rf'"(/static/{re.escape(name)}\?v=[0-9a-f]{{10}})"', page.text).group(1)
        answer = idle_client.get(url, headers={"Accept-Encoding": "gzip"})
        assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip", name
        assert answer.content == (STATIC_DIR / name).read_bytes()  # httpx undid the gzip
    plain = idle_client.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


def test_every_page_has_a_favicon(idle_client):
    """Issue 21: no favicon, so a console error (a 404 for /favicon.ico) on every page."""
    signin = idle_client.get("/signin").text
    sign_in(idle_client)
    for html in (signin, idle_client.get("/").text, idle_client.get("/videos").text):
        url = re.search(r'<link rel="icon" href="(/static/favicon\.svg\?v=[0-9a-f]{10})" type="image/svg\+xml">', html).group(1)
        icon = idle_client.get(url)
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.text.startswith("<svg")
    fallback = idle_client.get("/favicon.ico", follow_redirects=False)  # asked for by pages without the link
    assert fallback.status_code == 302 and fallback.headers["location"].startswith("/static/favicon.svg")


def test_the_vendored_tus_client_is_the_released_file():
    import hashlib

    folder = STATIC_DIR / "vendor" / "tus-js-client-4.3.1"
    expected, name = (folder / "SHA256SUMS").read_text().split()
    assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == expected
    assert "MIT License" in (folder / "LICENSE").read_text()


@pytest.mark.parametrize("field", ['{"accounts": ["nope"]}', "not json", '{"accounts": [], "colour": 1}'])
def test_publish_choices_at_upload_are_checked_before_the_file_is_kept(idle_client, auth, short_clip, field, settings):
    with short_clip.open("rb") as f:
        answer = idle_client.post(
            "/upload", files={"file": ("talk.mp4", f, "video/mp4")}, data={"publish": field}, headers=auth
        )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert not list((settings.data_dir / "media").glob("*/source.*")), "nothing kept"


def test_posts_chosen_at_upload_show_on_the_video_page_before_the_parts_exist(idle_client, auth, short_clip):
    """Issue 21: the posts chosen at upload were invisible until parts existed."""
    import json

    from vidprod.store import accounts as aq
    from vidprod.store import events as ev
    from vidprod.store import jobs as q

    db = idle_client.app.state.db
    account = db.write(lambda c: aq.upsert_account(c, account_id="acc_tt", platform="tiktok", remote_id="tt1",
                                                   name="sandbox_creator", sandbox=True, tokens="x", expires_at=None))  # fmt: skip
    choice = {"accounts": [account], "title": "Morning routine", "hashtags": ["#tips", "howto"],
              "schedule": {"mode": "spread", "start": "2030-01-05T09:00", "timezone": "Europe/Berlin", "every_hours": 24}}  # fmt: skip
    job_id = _upload(idle_client, auth, short_clip, publish=json.dumps(choice)).json()["id"]
    sign_in(idle_client)
    for state in ("queued", "processing"):
        db.write(lambda conn: q.update_job(conn, job_id, state=state))
        page = idle_client.get(f"/videos/{job_id}").text
        planned = page.split('id="planned"')[1].split("</section>")[0]
        assert "TikTok · sandbox_creator" in planned
        assert 'the first at <time datetime="2030-01-05T08:00:00Z">2030-01-05 08:00 UTC</time>, then every 24 hours' in planned
        assert "Morning routine" in planned and "#tips #howto" in planned
        assert 'id="planned"' in idle_client.get(f"/videos/{job_id}/live").text
    db.write(lambda conn: ev.add_event(conn, job_id, "publication.refused", {"problems": ["nope"]}))
    assert 'id="planned"' not in idle_client.get(f"/videos/{job_id}").text  # handled: the posts or why not show instead


def test_a_video_without_posts_chosen_at_upload_plans_none(idle_client, auth, short_clip):
    job_id = _upload(idle_client, auth, short_clip).json()["id"]
    sign_in(idle_client)
    assert "Planned posts" not in idle_client.get(f"/videos/{job_id}").text


def test_eye_contact_that_did_nothing_says_why_on_the_video_page(idle_client, auth, short_clip):
    """Issue 21: "0 of 73 frames corrected" with no reason."""
    from vidprod.media.gaze.corrector import describe_report
    from vidprod.store import jobs as q

    job_id = _upload(idle_client, auth, short_clip, gaze="on").json()["id"]
    report = {"frames_seen": 73, "frames_corrected": 0, "skipped": {"looking_at_lens": 73}, "failure": None}
    report["summary"] = describe_report(report)
    idle_client.app.state.db.write(lambda conn: q.update_job(conn, job_id, gaze={"report": report}))
    sign_in(idle_client)
    section = idle_client.get(f"/videos/{job_id}").text.split('id="gaze"')[1].split("</section>")[0]
    assert "Already looking into the lens: nothing to correct." in section
    assert "0 of 73" not in section
