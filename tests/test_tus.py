"""tus resumable uploads against the real server, driven by the independent tuspy client
(create, resume, terminate, expiry) and by raw httpx for what a client must not send."""

from __future__ import annotations

import base64
import hashlib
import signal
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import tusclient.request as tus_request
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests.conftest import TOKEN
from tests.server import Server
from vidprod.domain.uploads import UploadError, parse_metadata

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}
MB = 1 << 20


def noisy_clip(path: Path, frames: int) -> Path:
    """Random pixels barely compress: ~70 KB a frame, so a few seconds make many MB."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    path = noisy_clip(tmp_path_factory.mktemp("tus") / "big.mp4", frames=130)
    assert path.stat().st_size > 8 * MB
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("tus-server")
    server = Server(work / "data", work / "server.log", VIDPROD_MAX_UPLOAD_MB="20", VIDPROD_SEGMENT_SECONDS="10")
    server.start()
    yield server
    server.stop()


def _client(server: Server) -> tus.TusClient:
    return tus.TusClient(f"{server.url}/tus/", headers=dict(AUTH))


def _create(server: Server, length: int, **metadata: str) -> str:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    answer = server.client.post("/tus/", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta})
    assert answer.status_code == 201, answer.text
    return server.url + answer.headers["location"]


def _on(server: Server, url: str) -> str:
    """The same upload address on a restarted server (which listens on a new port)."""
    return server.url + httpx.URL(url).path


def _head(server: Server, url: str) -> httpx.Response:
    return server.client.head(url, headers=TUS)


def _problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == status and body["detail"]
    return body


def _part_files(server: Server) -> list[Path]:
    folder = server.data_dir / "uploads" / "tus"
    return sorted(folder.iterdir()) if folder.exists() else []


def _job_source(server: Server, job_id: str) -> bytes:
    return next((server.data_dir / "media" / job_id).glob("source.*")).read_bytes()


def _count_patch_bytes(monkeypatch) -> list[int]:
    """Bytes tuspy sends in PATCH bodies, request by request."""
    sent: list[int] = []
    real_patch = tus_request.requests.patch

    def counting(url, data=b"", **kwargs):
        sent.append(len(data))
        return real_patch(url, data=data, **kwargs)

    monkeypatch.setattr("tusclient.request.requests.patch", counting)
    return sent


# --- the happy paths, with tuspy -----------------------------------------------------


def test_options_tell_what_the_server_speaks(server):
    answer = httpx.options(f"{server.url}/tus/")  # discovery needs no token
    assert answer.status_code == 204
    assert answer.headers["tus-version"] == "1.0.0"
    assert set(answer.headers["tus-extension"].split(",")) == {"creation", "termination", "expiration", "checksum"}
    assert answer.headers["tus-max-size"] == str(20 * MB)
    assert "sha1" in answer.headers["tus-checksum-algorithm"].split(",")


def test_tuspy_upload_becomes_a_job_with_the_options_from_metadata(server, long_clip):
    uploader = _client(server).uploader(
        str(long_clip), chunk_size=256 * 1024, upload_checksum=True,
        metadata={"filename": "talk.mp4", "filetype": "video/mp4", "segment_seconds": "5", "landscape": "crop"},
    )  # fmt: skip
    uploader.upload()
    final = uploader.request.response_headers
    job_id = final["vidprod-job-id"]
    assert final["vidprod-job-url"] == f"/status/{job_id}"
    assert int(final["upload-offset"]) == long_clip.stat().st_size
    job = server.wait_done(job_id)
    assert job["state"] == "done", job["error"]
    assert job["source"]["name"] == "talk.mp4"
    assert job["options"]["segment_seconds"] == 5 and job["options"]["landscape"] == "crop"
    assert len(job["segments"]) >= 5 and all(p["duration_seconds"] <= 5.01 for p in job["segments"])
    assert _job_source(server, job_id) == long_clip.read_bytes()
    # A browser that lost the final answer finds the job with HEAD.
    again = _head(server, uploader.url)
    assert again.status_code == 200
    assert again.headers["vidprod-job-id"] == job_id
    assert again.headers["upload-offset"] == again.headers["upload-length"]
    assert again.headers["cache-control"] == "no-store"
    assert _part_files(server) == [], "the file moved into the job"


def test_a_new_uploader_resumes_from_the_server_offset_and_sends_only_the_rest(server, long_clip, monkeypatch):
    size = long_clip.stat().st_size
    first = _client(server).uploader(str(long_clip), chunk_size=64 * 1024, metadata={"filename": "a.mp4"})
    first.upload(stop_at=size // 2)  # interrupted halfway
    done = first.offset
    assert 0 < done < size
    sent = _count_patch_bytes(monkeypatch)
    second = _client(server).uploader(str(long_clip), url=first.url, chunk_size=10 * MB)
    assert second.offset == done, "the new uploader asked the server (HEAD)"
    second.upload()
    assert sum(sent) == size - done, "only the rest was sent again"
    job_id = second.request.response_headers["vidprod-job-id"]
    assert _job_source(server, job_id) == long_clip.read_bytes()


def test_terminate_removes_the_upload_and_its_bytes(server, long_clip):
    uploader = _client(server).uploader(str(long_clip), chunk_size=64 * 1024, metadata={"filename": "t.mp4"})
    uploader.upload(stop_at=128 * 1024)
    assert len(_part_files(server)) == 1
    assert server.client.delete(uploader.url, headers=TUS).status_code == 204
    assert _head(server, uploader.url).status_code == 404
    _problem(server.client.patch(uploader.url, headers={**TUS, **OCTET, "Upload-Offset": "131072"}, content=b"x"), 404)
    assert _part_files(server) == []
    with pytest.raises(TusCommunicationError):
        _client(server).uploader(str(long_clip), url=uploader.url)  # tuspy's HEAD finds nothing


def test_not_a_video_is_refused_with_words_and_leaves_nothing(server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"these are my notes, not a video\n" * 2000)
    uploader = _client(server).uploader(str(notes), chunk_size=32 * 1024, metadata={"filename": "notes.txt"})
    with pytest.raises(TusUploadFailed) as refused:
        uploader.upload()
    assert refused.value.status_code == 422
    assert "video" in refused.value.response_content.decode().lower()
    head = _head(server, uploader.url)
    assert head.status_code == 422 and "video" in head.headers["vidprod-upload-error"].lower()
    assert _part_files(server) == []
    assert server.client.get("/jobs").json()["total"] == len(list((server.data_dir / "media").iterdir()))


def test_bad_options_are_refused_before_any_byte_is_sent(server, short_clip):
    uploader = _client(server).uploader(str(short_clip), metadata={"filename": "s.mp4", "segment_seconds": "1"})
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 422
    assert "segment_seconds" in refused.value.response_content.decode()
    publish = '{"accounts": ["no-such-account"]}'
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in {"publish": publish}.items())
    answer = server.client.post("/tus/", headers={**TUS, "Upload-Length": "100", "Upload-Metadata": meta})
    body = _problem(answer, 422)
    assert "no-such-account" in body["detail"]
    deep = base64.b64encode(("[" * 5000 + "]" * 5000).encode()).decode()  # json.loads: RecursionError
    answer = server.client.post("/tus/", headers={**TUS, "Upload-Length": "100", "Upload-Metadata": f"publish {deep}"})
    assert "publish is nested too deeply" in _problem(answer, 400)["detail"]
    assert _part_files(server) == []


# --- durability and expiry -------------------------------------------------------------


def test_offset_survives_sigkill_mid_patch_and_the_file_ends_byte_identical(start_server, big_clip):
    server = start_server()
    data = big_clip.read_bytes()
    url = _create(server, len(data), filename="big.mp4")
    release = threading.Event()

    def body():
        for start in range(0, 6 * MB, 256 * 1024):
            yield data[start : start + 256 * 1024]
        release.wait(30)  # the connection stays open, mid-body, until the kill

    def send():
        try:
            httpx.patch(url, headers={**AUTH, **TUS, **OCTET, "Upload-Offset": "0"}, content=body(), timeout=30)
        except httpx.HTTPError:
            pass  # the server died under it

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 20
    while int(_head(server, url).headers["upload-offset"]) < 4 * MB:
        assert time.monotonic() < deadline, "no checkpoint was recorded"
        time.sleep(0.05)
    server.signal(signal.SIGKILL)
    server.wait_exit(10)
    release.set()
    sender.join(10)

    server = start_server()
    url = _on(server, url)
    offset = int(_head(server, url).headers["upload-offset"])
    assert 4 * MB <= offset <= 6 * MB
    part = _part_files(server)[0].read_bytes()
    assert part[:offset] == data[:offset], "every byte below the offset is on disk"
    uploader = _client(server).uploader(str(big_clip), url=url, chunk_size=3 * MB)
    assert uploader.offset == offset
    uploader.upload()
    job_id = uploader.request.response_headers["vidprod-job-id"]
    assert _job_source(server, job_id) == data


def test_abandoned_upload_expires_and_housekeeping_removes_it(start_server, tmp_path, long_clip):
    clock = tmp_path / "clock"
    server = start_server(VIDPROD_TEST_CLOCK_FILE=str(clock), VIDPROD_UPLOAD_EXPIRE_HOURS="2")
    uploader = _client(server).uploader(str(long_clip), chunk_size=64 * 1024, metadata={"filename": "x.mp4"})
    uploader.upload(stop_at=64 * 1024)
    expires = _head(server, uploader.url).headers["upload-expires"]
    hours = (parsedate_to_datetime(expires).timestamp() - time.time()) / 3600
    assert hours == pytest.approx(2, abs=0.01)
    clock.write_text(str(3 * 3600))  # three hours later
    _problem(server.client.patch(uploader.url, headers={**TUS, **OCTET, "Upload-Offset": "65536"}, content=b"x"), 410)
    assert _head(server, uploader.url).status_code == 410
    assert len(_part_files(server)) == 1
    server.stop()
    server = start_server(VIDPROD_TEST_CLOCK_FILE=str(clock), VIDPROD_UPLOAD_EXPIRE_HOURS="2")  # housekeeping runs at start
    deadline = time.monotonic() + 10
    while _head(server, _on(server, uploader.url)).status_code != 404:
        assert time.monotonic() < deadline, "housekeeping did not remove the upload"
        time.sleep(0.05)
    assert _part_files(server) == []


# --- what a client must not send ---------------------------------------------------------


def test_tus_resumable_is_required_and_always_answered(server):
    url = _create(server, 100, filename="a.mp4")
    for answer in (
        server.client.post("/tus/", headers={"Upload-Length": "100"}),
        server.client.head(url, headers={"Tus-Resumable": "0.2.2"}),
        server.client.patch(url, headers={**OCTET, "Upload-Offset": "0"}, content=b"x"),
    ):
        assert answer.status_code == 412
        assert answer.headers["tus-version"] == "1.0.0"
        assert answer.headers["tus-resumable"] == "1.0.0"
    unauthorised = httpx.head(url, headers=TUS)
    assert unauthorised.status_code == 401 and unauthorised.headers["tus-resumable"] == "1.0.0"


def test_creation_refusals(server):
    _problem(server.client.post("/tus/", headers=TUS), 400)  # no Upload-Length
    _problem(server.client.post("/tus/", headers={**TUS, "Upload-Defer-Length": "1"}), 400)
    body = _problem(server.client.post("/tus/", headers={**TUS, "Upload-Length": str(21 * MB)}), 413)
    assert "20 MB" in body["detail"]
    for bad in ("filename !!notbase64", "filename YQ==,filename Yg==", "naïve YQ==".encode()):
        _problem(server.client.post("/tus/", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": bad}), 400)
    ok = server.client.post("/tus/", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": "filename YS5tcDQ=,flag"})
    assert ok.status_code == 201 and ok.headers["upload-expires"].endswith("GMT")
    assert _part_files(server) != []


def test_patch_refusals_leave_the_offset_where_it_was(server):
    url = _create(server, 1000, filename="a.mp4")
    patch = lambda offset, body, **headers: server.client.patch(
        url, headers={**TUS, **OCTET, "Upload-Offset": str(offset), **headers}, content=body
    )
    assert patch(0, b"a" * 100).status_code == 204
    _problem(server.client.patch(url, headers={**TUS, "Content-Type": "application/octet-stream",
                                               "Upload-Offset": "100"}, content=b"b"), 415)  # fmt: skip
    wrong = _problem(patch(50, b"b" * 10), 409)
    assert "100" in wrong["detail"]
    _problem(patch(100, b"b" * 901), 413)  # over the length, by Content-Length
    _problem(patch(100, iter([b"b" * 500, b"b" * 401])), 413)  # over the length, streamed
    _problem(patch(100, b"b" * 10, **{"Upload-Checksum": "sha1 " + base64.b64encode(b"0" * 20).decode()}), 460)
    _problem(patch(100, b"b" * 10, **{"Upload-Checksum": "crc32 AAAA"}), 400)
    assert _head(server, url).headers["upload-offset"] == "100"
    digest = base64.b64encode(hashlib.sha1(b"b" * 10).digest()).decode()
    good = patch(100, b"b" * 10, **{"Upload-Checksum": f"sha1 {digest}"})
    assert good.status_code == 204 and good.headers["upload-offset"] == "110"
    assert _part_files(server) and max(p.stat().st_size for p in _part_files(server)) <= 1000


def test_unknown_upload_is_404(server):
    url = f"{server.url}/tus/0123456789abcdef"
    assert _head(server, url).status_code == 404
    _problem(server.client.patch(url, headers={**TUS, **OCTET, "Upload-Offset": "0"}, content=b"x"), 404)
    _problem(server.client.delete(url, headers=TUS), 404)


def test_a_second_patch_gets_423_and_a_silent_one_is_taken_over(server):
    url = _create(server, 4 * MB, filename="a.mp4")
    results: dict[str, int] = {}
    stop = threading.Event()

    def slow(chunks: int, then_silent: bool):
        for _ in range(chunks):
            yield b"s" * 1024
            time.sleep(0.1)
        if then_silent:
            stop.wait(20)

    def send(name: str, chunks: int, then_silent: bool) -> None:
        try:
            answer = httpx.patch(url, headers={**AUTH, **TUS, **OCTET, "Upload-Offset": "0"},
                                 content=slow(chunks, then_silent), timeout=30)  # fmt: skip
            results[name] = answer.status_code
        except httpx.HTTPError:
            results[name] = -1

    first = threading.Thread(target=send, args=("first", 20, True))
    first.start()
    time.sleep(0.5)
    _problem(server.client.patch(url, headers={**TUS, **OCTET, "Upload-Offset": "0"}, content=b"x"), 423)
    time.sleep(5)  # the first has been silent for longer than the takeover delay
    taken = server.client.patch(url, headers={**TUS, **OCTET, "Upload-Offset": "0"}, content=b"n" * 1000)
    assert taken.status_code == 204 and taken.headers["upload-offset"] == "1000"
    stop.set()
    first.join(10)
    assert results["first"] in (409, -1)
    assert _head(server, url).headers["upload-offset"] == "1000"


def test_metadata_parsing():
    assert parse_metadata("filename dGFsay5tcDQ=, is_confidential ,segment_seconds MzA=") == {
        "filename": "talk.mp4", "is_confidential": "", "segment_seconds": "30",
    }  # fmt: skip
    assert parse_metadata("") == {}
    with pytest.raises(UploadError):
        parse_metadata("filename /w==")  # not UTF-8
