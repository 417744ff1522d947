from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.clips import make_clip
from vidprod.config import Settings
from vidprod.web.app import create_app

TOKEN = "test-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = ROOT.parent / "shared" / "testmedia"


def shared_media(relative: str) -> Path:
    """A real clip from ../shared/testmedia, or skip the test where it is absent."""
    path = SHARED_MEDIA / relative
    if not path.is_file():
        pytest.skip(f"../shared/testmedia/{relative} is not here")
    return path


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def short_clip(clip_dir: Path) -> Path:
    """4 s, 360x640 (9:16), 30 fps, with a tone."""
    return make_clip(clip_dir / "short.mp4", seconds=4)


@pytest.fixture(scope="session")
def long_clip(clip_dir: Path) -> Path:
    """25 s, 9:16, with a tone: three parts at a 10 s limit."""
    return make_clip(clip_dir / "long.mp4", seconds=25)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", admin_token=TOKEN, segment_seconds=10, output_height=640
    )


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(settings: Settings):
    """The app in-process, worker running."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def idle_client(settings: Settings):
    """The app in-process with no worker: jobs stay queued."""
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VIDPROD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def start_server(tmp_path: Path):
    """Start the real server process (again, after a kill) on one data dir; every
    server started is stopped at the end."""
    from tests.server import Server  # tests.server imports this module

    servers: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(tmp_path / "data", tmp_path / "server.log", **env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


APP_UID = 10001  # the Dockerfile's `vidprod` user; it need not exist on this host


def python_for(uid: int) -> str | None:
    """An interpreter of this venv's Python version that `uid` may run (this venv's own
    may live under root's 0700 home)."""
    for candidate in (sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        probe = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env", candidate, "-c", "pass"]
        if Path(candidate).exists() and subprocess.run(probe, capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.fixture
def image_layout(tmp_path):
    """The image's commands on PATH (`vidprod` as this checkout, `vidprod-prepare-volume`
    as the Dockerfile installs it) and a volume mounted the way Fly mounts it: owned by
    root, 0755, under a folder anyone may enter."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv (util-linux) to run the entry sequence")
    python = python_for(APP_UID)
    if python is None:
        pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that uid {APP_UID} may run")
    top = Path(tempfile.mkdtemp(prefix="vidprod-image-"))
    top.chmod(0o755)
    bin_dir, volume, fuse = top / "bin", top / "data", top / "litefs"
    for folder in (bin_dir, volume, fuse):
        folder.mkdir(mode=0o755)
    fuse.chmod(0o777)  # LiteFS's FUSE mount with allow-other: anyone may create files
    site = sysconfig.get_paths()["purelib"]
    launcher = bin_dir / "vidprod"
    launcher.write_text(
        f"#!{python}\nimport site, sys\nsite.addsitedir({site!r})\n"
        # as pip's console scripts: a spawned child (the landmark process) imports this
        # file again as __mp_main__, and must not start a second app
        "from vidprod.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    launcher.chmod(0o755)
    (bin_dir / "vidprod-prepare-volume").symlink_to(ROOT / "deploy/prepare-volume.sh")
    yield {"bin": bin_dir, "volume": volume, "fuse": fuse}
    shutil.rmtree(top, ignore_errors=True)
