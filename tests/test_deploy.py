"""The deploy files parse, agree with each other and with the app's settings, and the
Dockerfile's install steps work on this host (no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from vidprod.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fly() -> dict:
    return tomllib.loads((ROOT / "fly.toml").read_text())


@pytest.fixture(scope="module")
def litefs() -> dict:
    return yaml.safe_load((ROOT / "litefs.yml").read_text())


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
    [vm] = fly["vm"]
    assert vm["cpus"] == 1 and vm["memory"] == "512mb" and vm["size"].startswith("shared")
    assert int(fly["env"]["VIDPROD_IDLE_EXIT_SECONDS"]) == 300


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


def test_litefs_proxy_sits_between_fly_and_the_app(fly, litefs):
    settings = Settings.from_env(fly["env"])
    proxy = litefs["proxy"]
    assert proxy["addr"] == f":{fly['http_service']['internal_port']}"
    assert proxy["target"] == f"localhost:{settings.port}"
    assert proxy["db"] == settings.database_path.name
    assert "/health" in proxy["passthrough"]
    assert litefs["fuse"]["dir"] == str(settings.database_path.parent), "the database is on LiteFS"
    assert litefs["data"]["dir"].startswith(fly["mounts"]["destination"] + "/"), "LiteFS data on the volume"
    assert litefs["lease"]["type"] == "static" and litefs["lease"]["candidate"] is True


def test_litefs_runs_migrations_on_the_primary_then_the_server_unprivileged(litefs):
    migrate, serve = litefs["exec"]
    assert migrate["cmd"].endswith("vidprod migrate") and migrate["if-candidate"] is True
    assert serve["cmd"].endswith("vidprod serve")
    for step in (migrate, serve):
        assert step["cmd"].startswith("setpriv --reuid=vidprod"), "the app never runs as root"
    assert litefs["fuse"]["allow-other"] is True, "so the vidprod user can open the mount"


def test_dockerfile_is_multistage_slim_and_runs_litefs(dockerfile, fly):
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert len(stages) == 2 and all(s.startswith("python:3.11-slim") for s in stages)
    assert "deploy/install.sh" in dockerfile and "--no-dev" in (ROOT / "deploy/install.sh").read_text()
    assert "useradd" in dockerfile and "HEALTHCHECK" in dockerfile
    assert re.search(r"^ENV .*TMPDIR=/data/tmp", dockerfile, re.M | re.S)
    assert 'ENTRYPOINT ["litefs", "mount"]' in dockerfile
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
