"""The HTTP API in-process: auth, uploads, status, control, downloads, health, errors."""

import sqlite3
import time

import pytest

from tests.clips import make_huge_frames, make_sparse_clip, truncate, write_still


def _upload(client, auth, path, name="talk.mp4", **fields):
    with open(path, "rb") as f:
        return client.post("/upload", headers=auth, files={"file": (name, f, "video/mp4")},
                           data=fields)


def _wait(client, auth, job_id, states=("done", "failed", "cancelled"), timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/status/{job_id}", headers=auth).json()
        if body["state"] in states:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {body['state']}")


def _leftovers(settings):
    uploads = settings.tmp_dir / "uploads"
    staged = list(uploads.iterdir()) if uploads.exists() else []
    media = list(settings.media_dir.iterdir()) if settings.media_dir.exists() else []
    return staged, media


def _is_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


# --- auth --------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-000000000", "Basic abc", "Bearer "])
def test_every_api_route_needs_the_token(idle_client, header):
    headers = {"Authorization": header} if header else {}
    for method, url in [("GET", "/jobs"), ("GET", "/status/x"), ("POST", "/upload"),
                        ("POST", "/jobs/x/cancel"), ("POST", "/jobs/x/retry"),
                        ("DELETE", "/jobs/x"), ("GET", "/jobs/x/segments/0/file")]:
        response = idle_client.request(method, url, headers=headers)
        body = _is_problem(response, 401)
        assert "Bearer" in body["detail"]
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_health_needs_no_token(idle_client):
    response = idle_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"]["state"] == "ok"
    assert body["queue"]["depth"] == 0
    assert body["disk"]["free_bytes"] > 0


def test_health_is_503_when_the_database_cannot_be_written(idle_client, settings):
    other = sqlite3.connect(settings.database_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        response = idle_client.get("/health")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status_code == 503
    assert response.json()["database"]["state"] == "error"
    assert idle_client.get("/health").status_code == 200  # and recovers


def test_generated_token_is_stored_and_reused(tmp_path):
    from vidprod.config import Settings
    from vidprod.web.auth import load_or_create_admin_token

    settings = Settings(data_dir=tmp_path)
    token, created = load_or_create_admin_token(settings)
    assert created and len(token) >= 32
    assert (tmp_path / "admin_token").stat().st_mode & 0o777 == 0o600
    assert load_or_create_admin_token(settings) == (token, False)
    assert load_or_create_admin_token(Settings(data_dir=tmp_path, admin_token="x" * 20)) == ("x" * 20, False)


# --- the happy path ----------------------------------------------------------------


def test_upload_then_status_lists_the_parts_with_downloads(client, auth, long_clip):
    response = _upload(client, auth, long_clip)
    assert response.status_code == 202
    job = response.json()
    assert job["state"] == "queued" and response.headers["location"].endswith(f"/status/{job['id']}")
    done = _wait(client, auth, job["id"])
    assert done["state"] == "done" and done["progress"] == 100
    reasons = [p["reason"] for p in done["plan"]]
    assert reasons[-1] == "end" and set(reasons[:-1]) <= {"pause", "scene", "limit"}
    segments = done["segments"]
    assert [s["index"] for s in segments] == [0, 1, 2]
    assert sum(s["duration_seconds"] for s in segments) == pytest.approx(25.0, abs=1 / 30)
    for s in segments:
        assert s["duration_seconds"] <= 10 and s["size_bytes"] > 0
        file = client.get(s["download_url"], headers=auth)
        assert file.status_code == 200 and len(file.content) == s["size_bytes"]
        assert file.headers["accept-ranges"] == "bytes"
        assert file.headers["content-type"] == "video/mp4"
        picture = client.get(s["thumbnail_url"], headers=auth)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
        assert picture.content[:2] == b"\xff\xd8"


def test_per_job_segment_length(client, auth, long_clip):
    job = _upload(client, auth, long_clip, segment_seconds="5").json()
    assert job["options"]["segment_seconds"] == 5
    segments = _wait(client, auth, job["id"])["segments"]
    assert len(segments) >= 5 and all(s["duration_seconds"] <= 5 for s in segments)


def test_links_never_come_from_the_host_header(settings, auth, short_clip):
    import dataclasses

    from litestar.testing import TestClient

    from vidprod.web.app import create_app

    forged = {**auth, "Host": "evil.example"}
    with TestClient(create_app(settings, run_worker=False)) as client:
        answer = _upload(client, forged, short_clip)
        assert answer.status_code == 202
        assert answer.headers["location"] == f"/status/{answer.json()['id']}"
        assert answer.json()["status_url"] == answer.headers["location"]
        assert "evil.example" not in client.get("/jobs", headers=forged).text
    public = dataclasses.replace(settings, public_url="https://vidprod.example.org")
    with TestClient(create_app(public, run_worker=False)) as client:
        job = _upload(client, forged, short_clip).json()
        assert job["status_url"] == f"https://vidprod.example.org/status/{job['id']}"


def test_range_requests(client, auth, short_clip):
    job = _wait(client, auth, _upload(client, auth, short_clip).json()["id"])
    url, size = job["segments"][0]["download_url"], job["segments"][0]["size_bytes"]
    full = client.get(url, headers=auth).content
    part = client.get(url, headers={**auth, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == full[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    tail = client.get(url, headers={**auth, "Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == full[-5:]
    open_end = client.get(url, headers={**auth, "Range": f"bytes={size - 3}-"})
    assert open_end.content == full[-3:]
    beyond = client.get(url, headers={**auth, "Range": f"bytes={size}-"})
    _is_problem(beyond, 416)
    assert beyond.headers["content-range"] == f"bytes */{size}"
    multi = client.get(url, headers={**auth, "Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and multi.content == full  # the RFC allows the whole file


def test_text_is_gzipped_but_video_and_its_ranges_are_sent_as_they_are(client, auth, short_clip):
    """Issue 21: no compression at all. JSON and problem+json are gzipped; a video is
    compressed already, and a byte range must stay a range of the file itself."""
    gzip = {**auth, "Accept-Encoding": "gzip"}
    job = _wait(client, auth, _upload(client, auth, short_clip).json()["id"])
    listing = client.get("/jobs", headers=gzip)
    assert listing.headers["content-encoding"] == "gzip" and listing.json()["jobs"][0]["id"] == job["id"]
    assert "accept-encoding" in listing.headers["vary"].lower()
    url, size = job["segments"][0]["download_url"], job["segments"][0]["size_bytes"]
    whole = client.get(url, headers=gzip)
    assert "content-encoding" not in whole.headers and int(whole.headers["content-length"]) == size
    part = client.get(url, headers={**gzip, "Range": "bytes=10-19"})
    assert part.status_code == 206 and "content-encoding" not in part.headers
    assert part.content == whole.content[10:20]


def test_jobs_are_listed_newest_first_with_paging(idle_client, auth, short_clip):
    ids = [_upload(idle_client, auth, short_clip).json()["id"] for _ in range(3)]
    page = idle_client.get("/jobs?limit=2", headers=auth).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["total"] == 3 and page["next"] == "/jobs?limit=2&offset=2"
    rest = idle_client.get(page["next"], headers=auth).json()
    assert [j["id"] for j in rest["jobs"]] == ids[:1] and "next" not in rest
    _is_problem(idle_client.get("/jobs?limit=1000", headers=auth), 400)


# --- bad input ---------------------------------------------------------------------


def test_not_a_video_is_422_and_leaves_nothing(idle_client, auth, settings, tmp_path):
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"\x00\x01 this is not a video " * 100)
    body = _is_problem(_upload(idle_client, auth, junk), 422)
    assert "not a video" in body["detail"]
    assert _leftovers(settings) == ([], [])
    assert idle_client.get("/jobs", headers=auth).json()["total"] == 0


def test_truncated_video_is_422_and_leaves_nothing(idle_client, auth, settings, long_clip, tmp_path):
    cut = truncate(long_clip, tmp_path / "cut.mp4", 0.7)
    body = _is_problem(_upload(idle_client, auth, cut), 422)
    assert "cut short" in body["detail"]
    assert _leftovers(settings) == ([], [])


def test_inputs_over_the_limits_are_422_with_the_reason_and_leave_nothing(idle_client, auth, settings, tmp_path):
    day = make_sparse_clip(tmp_path / "day.mp4", [0, 10 * 3600, 20 * 3600])  # 20 KB, "20 hours"
    assert "longer than this server accepts (60 minutes)" in _is_problem(_upload(idle_client, auth, day), 422)["detail"]
    huge = make_huge_frames(tmp_path / "huge.mov")
    assert "16000x16000, larger than this server accepts" in _is_problem(_upload(idle_client, auth, huge), 422)["detail"]
    photo = write_still(tmp_path / "photo.mp4", "PNG")
    assert "still picture, not a video" in _is_problem(_upload(idle_client, auth, photo), 422)["detail"]
    assert _leftovers(settings) == ([], [])
    assert idle_client.get("/jobs", headers=auth).json()["total"] == 0


def test_empty_file_is_422(idle_client, auth, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in _is_problem(_upload(idle_client, auth, empty), 422)["detail"]


def test_over_the_limit_by_content_length_is_413_before_storing(tmp_path, auth, short_clip):
    from litestar.testing import TestClient

    from tests.conftest import TOKEN
    from vidprod.config import Settings
    from vidprod.web.app import create_app

    settings = Settings(data_dir=tmp_path / "d", admin_token=TOKEN, max_upload_mb=1)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 << 20))
    with TestClient(create_app(settings, run_worker=False)) as client:
        body = _is_problem(_upload(client, auth, big), 413)
        assert "1 MB" in body["detail"]

        def chunks():  # no Content-Length: the limit is enforced while streaming
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n"
            for _ in range(40):
                yield b"\0" * (64 << 10)
            yield b"\r\n--b--\r\n"

        streamed = client.post("/upload", headers={**auth, "Content-Type": "multipart/form-data; boundary=b"},
                               content=chunks())
        _is_problem(streamed, 413)
    assert _leftovers(settings) == ([], [])


def test_upload_format_errors(idle_client, auth):
    body = _is_problem(idle_client.post("/upload", headers=auth, json={"file": "x"}), 415)
    assert "multipart/form-data" in body["detail"]
    no_file = idle_client.post("/upload", headers=auth, files={"other": ("a.txt", b"x")})
    assert "field named 'file'" in _is_problem(no_file, 400)["detail"]
    broken = idle_client.post(
        "/upload", headers={**auth, "Content-Type": "multipart/form-data; boundary=zz"},
        content=b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc",
    )
    _is_problem(broken, 400)


def test_a_line_break_in_the_file_name_gets_a_plain_reason(idle_client, auth, short_clip, settings):
    video = short_clip.read_bytes()

    def send(name: bytes):
        body = (b'--zz\r\nContent-Disposition: form-data; name="file"; filename="' + name
                + b'"\r\nContent-Type: video/mp4\r\n\r\n' + video + b"\r\n--zz--\r\n")
        return idle_client.post("/upload", headers={**auth, "Content-Type": "multipart/form-data; boundary=zz"},
                                content=body)

    body = _is_problem(send(b"talk\r\n\r\n.mp4"), 400)  # was "The form field 'file' is too long."
    assert "came without a file name" in body["detail"] and "line break" in body["detail"]
    assert _leftovers(settings) == ([], [])
    accepted = send(b"my\rtalk.mp4")
    assert accepted.status_code == 202 and accepted.json()["source"]["name"] == "my talk.mp4"


def test_bad_segment_length_or_framing_is_422(idle_client, auth, short_clip, settings):
    body = _is_problem(_upload(idle_client, auth, short_clip, segment_seconds="1"), 422)
    assert "segment_seconds" in body["detail"]
    body = _is_problem(_upload(idle_client, auth, short_clip, landscape="stretch"), 422)
    assert "blur, crop, keep" in body["detail"]
    assert _leftovers(settings) == ([], [])


def test_numbers_past_what_the_database_holds_are_400_not_500(idle_client, auth, short_clip):
    huge = 2**63  # one past SQLite's largest integer: sqlite3 raised OverflowError
    for url in [f"/jobs?offset={huge}", f"/jobs/x/segments/{huge}/file", f"/jobs/x/segments/{huge}/thumbnail",
                f"/videos?page={huge}", f"/publications?offset={huge}"]:
        body = _is_problem(idle_client.get(url, headers=auth), 400)
        assert "parameter" in body["detail"] and "is wrong" in body["detail"], url
    assert idle_client.get(f"/jobs?offset={huge - 1}", headers=auth).json()["jobs"] == []
    job_id = _upload(idle_client, auth, short_clip).json()["id"]
    for resume in (str(huge), "²".encode("latin-1")):  # "²".isdigit() is true, int("²") fails
        answer = idle_client.get(f"/jobs/{job_id}/events", headers={**auth, "Last-Event-ID": resume})
        assert "Last-Event-ID" in _is_problem(answer, 400)["detail"]


def test_bad_publish_and_segment_fields_get_plain_reasons(idle_client, auth, short_clip, settings):
    deep = "[" * 20000 + "]" * 20000  # json.loads raised RecursionError
    body = _is_problem(_upload(idle_client, auth, short_clip, publish=deep), 400)
    assert "publish is nested too deeply" in body["detail"]
    body = _is_problem(_upload(idle_client, auth, short_clip, publish="[]"), 422)
    assert 'publish must be a JSON object' in body["detail"] and '{"accounts": [' in body["detail"]
    body = _is_problem(_upload(idle_client, auth, short_clip, segment_seconds="²"), 422)
    assert "segment_seconds must be a whole number" in body["detail"]
    assert _leftovers(settings) == ([], [])


def test_unknown_job_is_404_everywhere(idle_client, auth):
    for method, url in [("GET", "/status/nope"), ("POST", "/jobs/nope/cancel"),
                        ("POST", "/jobs/nope/retry"), ("DELETE", "/jobs/nope"),
                        ("GET", "/jobs/nope/segments/0/file")]:
        _is_problem(idle_client.request(method, url, headers=auth), 404)
    _is_problem(idle_client.get("/no/such/route", headers=auth), 404)


# --- control -----------------------------------------------------------------------


def test_cancel_retry_delete_of_a_queued_job(idle_client, auth, short_clip, settings):
    job_id = _upload(idle_client, auth, short_clip).json()["id"]
    cancelled = idle_client.post(f"/jobs/{job_id}/cancel", headers=auth)
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert "only a queued or running job" in _is_problem(
        idle_client.post(f"/jobs/{job_id}/cancel", headers=auth), 409)["detail"]
    retried = idle_client.post(f"/jobs/{job_id}/retry", headers=auth)
    assert retried.status_code == 202 and retried.json()["state"] == "queued"
    _is_problem(idle_client.post(f"/jobs/{job_id}/retry", headers=auth), 409)
    assert idle_client.delete(f"/jobs/{job_id}", headers=auth).status_code == 204
    _is_problem(idle_client.get(f"/status/{job_id}", headers=auth), 404)
    assert _leftovers(settings) == ([], [])


def test_uploads_left_by_a_dead_process_are_removed_at_start(settings):
    from litestar.testing import TestClient

    from vidprod.web.app import create_app

    staging = settings.tmp_dir / "uploads"
    staging.mkdir(parents=True)
    (staging / "upload-abc.part").write_bytes(b"half a video")
    with TestClient(create_app(settings, run_worker=False)):
        assert list(staging.iterdir()) == []
