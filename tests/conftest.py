from __future__ import annotations

import os
from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.clips import make_clip
from vidprod.config import Settings
from vidprod.web.app import create_app

TOKEN = "test-token-0123456789abcdef"
SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "testmedia"


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
