"""The deploy files parse, agree with each other and with the app's settings, and the
Dockerfile's install steps work on this host (no Docker engine here)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import httpx
import pytest
import yaml
from litestar.testing import TestClient
from packaging.requirements import Requirement

from tests.conftest import APP_UID
from tests.server import free_port
from vidprod.config import Settings
from vidprod.store import Database
from vidprod.store import jobs as q
from vidprod.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fly() -> dict:
    return tomllib.loads((ROOT / "fly.toml").read_text())


@pytest.fixture(scope="module")
def litefs(fly) -> dict:
    return litefs_config(fly["env"])


def litefs_config(env: dict[str, str], **more: str) -> dict:
    """litefs.yml as LiteFS reads it: `${NAME}` and `${A == B}` replaced from the
    environment before the YAML is parsed."""
    values = {"FLY_REGION": "ams", "PRIMARY_REGION": "ams", **env, **more}

    def expand(match: re.Match) -> str:
        left, op, right = match.group(1), match.group(2), match.group(3)
        if op is None:
            return values.get(left, "")
        equal = values.get(left, "") == values.get(right.strip(), right.strip().strip("'\""))
        return str(equal == (op == "==")).lower()

    text = re.sub(r"\$\{\s*(\w+)\s*(?:(==|!=)\s*([^}]+?))?\s*\}", expand, (ROOT / "litefs.yml").read_text())
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_fly_toml_scales_to_zero_without_the_proxy_stopping_work(fly):
    service = fly["http_service"]
    assert service["auto_stop_machines"] == "off"
    assert service["auto_start_machines"] is True
    assert service["min_machines_running"] == 0
    assert fly["kill_signal"] == "SIGTERM" and 10 <= fly["kill_timeout"] <= 300
    assert any(check["path"] == "/health" for check in service["checks"])
    [vm] = [vm for vm in fly["vm"] if vm["processes"] == ["app"]]
    assert vm["size"] == "performance-1x" and vm["memory"] == "2gb", "sized in docs/deploy.md from measurements"
    assert int(fly["env"]["VIDPROD_IDLE_EXIT_SECONDS"]) == 300


def test_fly_s_worker_group_has_no_litefs_volume_service_or_restarts(fly):
    """A worker Machine renders from the Redis queue into S3 storage: it must not mount
    LiteFS (in the primary region it would stand for primary), get the volume, or take
    web traffic; flyd never restarts it, the primary starts it when renders wait."""
    processes = fly["processes"]
    assert set(processes) == {"app", "worker"}
    assert processes["app"] == "litefs mount", "the primary: LiteFS runs litefs.yml's exec steps"
    worker = shlex.split(processes["worker"])
    assert worker[:4] == ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups"]
    assert worker[-2:] == ["vidprod", "worker"] and "litefs" not in worker
    overrides = dict(arg.split("=", 1) for arg in worker if "=" in arg and not arg.startswith("--"))
    assert not overrides["VIDPROD_DATA_DIR"].startswith(fly["mounts"]["destination"]), "no volume on a worker"
    assert overrides["HOME"] == overrides["TMPDIR"] == "/tmp"
    for section in (fly["mounts"], fly["http_service"], fly["metrics"]):
        assert section["processes"] == ["app"]
    [worker_vm] = [vm for vm in fly["vm"] if vm["processes"] == ["worker"]]
    assert worker_vm["cpus"] >= 2, "the encoder and the landmark process each want a core"
    assert fly["restart"] == [{"policy": "never", "processes": ["worker"]}]


def test_fly_env_is_a_valid_configuration_the_app_honours(fly):
    env = fly["env"]
    unknown = {name for name in env if name.startswith("VIDPROD_")} - {
        name for name, _, _ in Settings.describe()
    }
    assert not unknown, f"fly.toml sets variables the app does not read: {unknown}"
    settings = Settings.from_env(env)  # raises ConfigError on any bad value
    assert str(settings.data_dir) == fly["mounts"]["destination"]
    assert settings.host == "0.0.0.0"
    assert settings.idle_exit_seconds == 300 and settings.behind_fly
    assert env["TMPDIR"].startswith(fly["mounts"]["destination"] + "/"), "uploads spool on the volume"


def test_fly_scrapes_metrics_on_the_internal_port_only(fly):
    settings = Settings.from_env(fly["env"])
    assert fly["metrics"] == {"port": settings.metrics_port, "path": "/metrics", "processes": ["app"]}
    assert settings.metrics_port not in (settings.port, fly["http_service"]["internal_port"]), (
        "the token-free port is not the one Fly's proxy routes to"
    )
    assert settings.metrics == "token", "the public /metrics keeps its token"


def test_litefs_proxy_sits_between_fly_and_the_app(fly, litefs):
    settings = Settings.from_env(fly["env"])
    proxy = litefs["proxy"]
    assert proxy["addr"] == f":{fly['http_service']['internal_port']}"
    assert proxy["target"] == f"localhost:{settings.port}"
    assert proxy["db"] == settings.database_path.name
    assert "/health" in proxy["passthrough"]
    assert litefs["fuse"]["dir"] == str(settings.database_path.parent), "the database is on LiteFS"
    assert litefs["data"]["dir"].startswith(fly["mounts"]["destination"] + "/"), "LiteFS data on the volume"
    assert any(re.search(p, "/accounts/youtube/callback") for p in proxy["always-forward"]), (
        "the OAuth callback is a GET that writes: replicas must forward it to the primary"
    )
    assert litefs["exit-on-error"] is True, "a failed migrate must not leave LiteFS waiting"


def test_litefs_lease_has_one_primary_region_per_fly_guide(fly):
    """A static lease with `candidate: true` on every machine makes each one the primary
    of its own database; Consul elects one, among machines of the primary region."""
    in_primary = litefs_config(fly["env"], FLY_REGION=fly["primary_region"], PRIMARY_REGION=fly["primary_region"])
    elsewhere = litefs_config(fly["env"], FLY_REGION="syd", PRIMARY_REGION=fly["primary_region"])
    assert in_primary["lease"]["type"] == "consul" and in_primary["lease"]["promote"] is True
    assert in_primary["lease"]["candidate"] is True and elsewhere["lease"]["candidate"] is False


def test_litefs_prepares_the_volume_as_root_then_runs_the_app_unprivileged(fly):
    config = litefs_config(fly["env"])
    prepare, migrate, serve = config["exec"]
    assert prepare["cmd"].startswith("vidprod-prepare-volume 10001 /data /data/litefs")
    assert prepare["cmd"].split()[3] == config["data"]["dir"], "LiteFS's own files stay root's"
    assert migrate["cmd"].endswith("vidprod migrate") and migrate["if-candidate"] is True
    assert serve["cmd"].endswith("vidprod serve")
    for step in (migrate, serve):
        assert step["cmd"].startswith("setpriv --reuid=10001 --regid=10001"), "the app never runs as root"
        assert "HOME=/data " in step["cmd"], "not root's HOME"
    assert config["fuse"]["allow-other"] is True, "so the app user can open the mount"


def test_dockerfile_is_multistage_slim_and_runs_litefs(dockerfile, fly):
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert len(stages) == 2 and all(s.startswith("python:3.11-slim") for s in stages)
    assert "deploy/install.sh" in dockerfile and "--no-dev" in (ROOT / "deploy/install.sh").read_text()
    assert "useradd" in dockerfile and "HEALTHCHECK" in dockerfile
    assert re.search(r"^ENV .*TMPDIR=/data/tmp", dockerfile, re.M | re.S)
    assert 'CMD ["litefs", "mount"]' in dockerfile
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.M), "Fly hands a process group's command to the ENTRYPOINT"
    assert f"EXPOSE {Settings.from_env(fly['env']).port}" in dockerfile


@pytest.mark.slow
def test_the_dockerfile_install_steps_work_from_its_build_context(tmp_path, dockerfile):
    """Copy exactly what the build stage COPYs, then run its install script: a missing
    file or a dependency that needs a dev tool fails here, not on Fly."""
    build_stage = dockerfile.split("\nFROM ")[1]
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", build_stage, re.M):
        for name in sources.split():
            source = ROOT / name
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    result = subprocess.run(
        [str(tmp_path / "deploy/install.sh"), str(tmp_path)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    installed = subprocess.run(
        [str(tmp_path / ".venv/bin/python"), "-c", "import vidprod, pytest"], capture_output=True, text=True
    )
    assert "No module named 'pytest'" in installed.stderr, "no dev dependencies in the image"


@pytest.mark.slow
def test_the_image_entry_sequence_serves_as_the_app_user_on_a_root_owned_volume(fly, image_layout):
    """litefs.yml's exec steps run in order, as `litefs mount` runs them (as root, each
    but the last to completion), on a volume as Fly mounts it; the app must answer
    /health as uid 10001, keep its files to itself and log only JSON, never a secret."""
    port = free_port()
    env = {
        "PATH": f"{image_layout['bin']}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        **fly["env"],
        "VIDPROD_DATA_DIR": str(image_layout["volume"]),
        "VIDPROD_DATABASE_DIR": str(image_layout["fuse"]),
        "TMPDIR": str(image_layout["volume"] / "tmp"),
        "VIDPROD_HOST": "127.0.0.1",
        "VIDPROD_PORT": str(port),
        "VIDPROD_METRICS_PORT": str(free_port()),
        "HOME": "/root",  # LiteFS runs as root
    }
    *steps, last = litefs_config(env)["exec"]
    log = image_layout["volume"].parent / "app.log"
    with open(log, "wb") as out:
        for step in steps:
            done = subprocess.run(shlex.split(step["cmd"]), env=env, stdout=out, stderr=out, timeout=120)
            assert done.returncode == 0, f"{step['cmd']} failed:\n{log.read_text()}"
        server = subprocess.Popen(shlex.split(last["cmd"]), env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while not healthy and server.poll() is None and time.monotonic() < deadline:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
        assert healthy, f"no healthy answer (exit status {server.poll()}):\n{log.read_text()}"
        status = Path(f"/proc/{server.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{APP_UID}\s", status, re.M), "the server runs as the app user"
        environ = dict(
            item.split("=", 1) for item in Path(f"/proc/{server.pid}/environ").read_text().split("\0") if "=" in item
        )
        assert environ["HOME"] == str(image_layout["volume"])
    finally:
        server.terminate()
        server.wait(timeout=30)

    volume = image_layout["volume"]
    assert volume.stat().st_uid == APP_UID and stat.S_IMODE(volume.stat().st_mode) == 0o700
    token_file = volume / "admin_token"
    database = image_layout["fuse"] / "vidprod.db"
    for path in (token_file, database, *volume.glob("*.db")):
        assert path.stat().st_uid == APP_UID and stat.S_IMODE(path.stat().st_mode) == 0o600, path
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    for line in lines:
        assert line.startswith("{"), f"not a JSON log line: {line}"
    records = [json.loads(line) for line in lines]
    assert any("admin_token" in r["message"] for r in records), "the log says where the token is"
    assert token_file.read_text().strip() not in log.read_text(), "a secret in the log"


def base_image_packages() -> list[str]:
    """python:3.11-slim-bookworm's Debian packages (deploy/base-image-packages.txt)."""
    lines = (ROOT / "deploy/base-image-packages.txt").read_text().splitlines()
    return " ".join(line for line in lines if not line.startswith("#")).split()


def runtime_distributions() -> set[str]:
    """The installed distributions vidprod needs at run time (no dev tools)."""
    found: set[str] = set()
    todo = ["vidprod"]
    while todo:
        name = todo.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:  # excluded by a marker or an override
            continue
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found.add(key)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def needed_system_libraries() -> dict[str, set[str]]:
    """soname -> the distributions whose shared objects need it (NEEDED entries that no
    file inside the installed wheels provides)."""
    objects: dict[Path, str] = {}
    for name in runtime_distributions():
        dist = distribution(name)
        for file in dist.files or []:
            if ".so" in file.name:
                objects[Path(dist.locate_file(file))] = name
    bundled = {path.name for path in objects}
    needed: dict[str, set[str]] = {}
    for path, name in objects.items():
        if not path.is_file():
            continue
        dynamic = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
        for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic):
            if soname not in bundled:
                needed.setdefault(soname, set()).add(name)
    return needed


def package_closure(packages: list[str]) -> set[str]:
    """The packages and everything they depend on, from apt's package lists."""
    listing = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {line for line in listing.splitlines() if line and not line.startswith((" ", "<"))}


def providing_package(soname: str) -> str | None:
    """The Debian package whose file this host's dynamic loader would use for soname."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    match = re.search(rf"^\s+{re.escape(soname)} \(libc6,x86-64[^)]*\) => (\S+)$", cache, re.M)
    if match is None:
        return None
    path = match.group(1)
    for candidate in (path, path.removeprefix("/usr"), "/usr" + path):
        owner = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if owner.returncode == 0:
            return owner.stdout.split(":")[0]
    return None


def test_every_library_the_wheels_load_is_in_the_runtime_image(dockerfile):
    """A wheel's native library that needs a system library the slim image lacks only
    fails when it first loads (MediaPipe without libEGL: eye contact silently off)."""
    if not all(shutil.which(tool) for tool in ("readelf", "apt-cache", "dpkg-query", "ldconfig")):
        pytest.skip("needs a Debian host (readelf, apt-cache, dpkg-query)")
    if "bookworm" not in Path("/etc/os-release").read_text() or os.uname().machine != "x86_64":
        pytest.skip("package names are checked against Debian 12 (bookworm) on x86-64, as the image")
    [installed] = re.findall(r'^ARG RUNTIME_PACKAGES="([^"]+)"', dockerfile, re.M)
    assert dockerfile.count("$RUNTIME_PACKAGES") == 2, "both stages install the runtime packages"
    image = package_closure(base_image_packages() + installed.split())
    assert "util-linux" in image, "setpriv, which the entry sequence drops privileges with"
    needed = needed_system_libraries()
    assert "libEGL.so.1" in needed and "libGLESv2.so.2" in needed, "the check sees MediaPipe's needs"
    missing = {}
    for soname, users in sorted(needed.items()):
        package = providing_package(soname)
        if package is None or package not in image:
            missing[soname] = (package or "not on this host either", sorted(users))
    assert not missing, f"needed by the wheels, not in the image's packages: {missing}"


@pytest.mark.slow
def test_image_size_report_prints_a_figure():
    if not shutil.which("apt-cache"):
        pytest.skip("needs apt-cache for the Debian packages' sizes")
    report = subprocess.run(
        ["sh", str(ROOT / "deploy/image-size.sh")], capture_output=True, text=True, timeout=900
    )
    assert report.returncode == 0, report.stderr[-3000:]
    size = re.match(r"image: ~(\d+) MB = /app \(venv with bytecode\) (\d+) MB", report.stdout)
    assert size and int(size.group(1)) > int(size.group(2)) > 100, report.stdout


def test_dockerignore_sends_only_what_the_dockerfile_copies(dockerfile):
    """No .venv (1 GB), data/ (tokens, videos), .git or test artifacts in the build
    context: everything is left out, then what the Dockerfile COPYs is let in."""
    rules = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {
        name.rstrip("/")
        for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M)
        for name in sources.split()
    }
    assert copied == allowed, f"copied but left out: {copied - allowed}; let in for nothing: {allowed - copied}"


def test_on_a_litefs_replica_the_app_reads_and_leaves_writing_to_the_primary(settings, auth):
    """LiteFS puts `.primary` next to the database on replicas only: there the database
    is read-only, so neither `vidprod migrate` nor the workers touch it."""
    marker = settings.database_path.parent / ".primary"
    marker.parent.mkdir(parents=True)
    marker.write_text("primary-machine")
    migrate = subprocess.run(
        [sys.executable, "-m", "vidprod", "migrate"], capture_output=True, text=True,
        env={**os.environ, "VIDPROD_DATA_DIR": str(settings.data_dir)},
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    assert not settings.database_path.exists(), "a replica's migrate writes nothing"

    marker.unlink()  # as the primary had written it, before this machine became a replica
    db = Database(settings.database_path)
    db.migrate()
    db.write(lambda c: q.insert_job(c, job_id="j1", source_name="a.mp4", source_path="j1/a.mp4",
                                    source_size=1, source_info={}, options={}))  # fmt: skip
    db.close()
    marker.write_text("primary-machine")
    with TestClient(create_app(settings)) as client:
        assert client.get("/jobs", headers=auth).json()["total"] == 1
        assert client.app.state.worker.state()["state"] == "stopped", "renders run on the primary"
        assert client.get("/status/j1", headers=auth).json()["state"] == "queued"


def test_the_volume_step_gives_the_app_its_files_but_not_litefs_nor_symlink_targets(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to change owners")
    volume, outside = tmp_path / "data", tmp_path / "root-only"
    (volume / "litefs").mkdir(parents=True)
    (volume / "litefs" / "ltx").write_text("LiteFS's")
    (volume / "media").mkdir()
    outside.write_text("root's")
    (volume / "media" / "link").symlink_to(outside)
    step = [str(ROOT / "deploy/prepare-volume.sh"), str(APP_UID), str(volume), str(volume / "litefs")]
    subprocess.run(step, check=True)
    assert volume.stat().st_uid == APP_UID and stat.S_IMODE(volume.stat().st_mode) == 0o700
    assert (volume / "media").stat().st_uid == APP_UID
    assert (volume / "media" / "link").lstat().st_uid == APP_UID
    assert outside.stat().st_uid == 0, "root followed the app user's symlink"
    assert (volume / "litefs").stat().st_uid == 0 and (volume / "litefs" / "ltx").stat().st_uid == 0
