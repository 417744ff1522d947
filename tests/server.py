"""Start the real `vidprod serve` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import TOKEN


@contextmanager
def server_in_temp_dir(**env: str) -> Iterator[tuple[Server, Path]]:
    """A real server on a fresh data dir in a temporary folder, removed afterwards (for
    benchmarks; tests use the start_server fixture)."""
    work = Path(tempfile.mkdtemp(prefix="vidprod-bench-"))
    server = Server(work / "data", work / "server.log", **env)
    try:
        yield server, work
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, log_path: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.env = {
            **os.environ,
            "VIDPROD_DATA_DIR": str(data_dir),
            "VIDPROD_PORT": str(self.port),
            "VIDPROD_ADMIN_TOKEN": TOKEN,
            "VIDPROD_OUTPUT_HEIGHT": "640",  # 360x640 parts: the same pipeline, faster
            **env,
        }
        self.process: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def start(self, timeout: float = 30) -> Server:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vidprod", "serve"], env=self.env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_for_log(self, predicate, timeout: float = 30) -> str:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if predicate(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"not in the log:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def upload(self, path: Path, **fields: str) -> httpx.Response:
        with open(path, "rb") as f:
            return self.client.post("/upload", files={"file": (path.name, f)}, data=fields)

    def status(self, job_id: str) -> dict:
        while True:
            response = self.client.get(f"/status/{job_id}")
            if response.status_code != 429:  # a long render's polling may reach VIDPROD_RATE_LIMIT
                return response.json()
            time.sleep(float(response.headers.get("Retry-After", "1")))

    # 0.1 s: at most 600 polls a minute, the default VIDPROD_RATE_LIMIT, however long a
    # render takes on a busy machine.
    def wait_for(self, job_id: str, predicate, timeout: float = 120, interval: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.status(job_id)
            if predicate(body):
                return body
            time.sleep(interval)
        raise AssertionError(f"timed out; last status: {body}")

    def wait_done(self, job_id: str, timeout: float = 120) -> dict:
        return self.wait_for(
            job_id, lambda b: b["state"] in ("done", "failed", "cancelled"), timeout, 0.1
        )

    def wait_published(self, job_id: str, timeout: float = 90) -> None:
        """Until every post of the job is published (the sandbox posts at once)."""
        deadline = time.monotonic() + timeout
        while {p["state"] for p in self.client.get(f"/jobs/{job_id}/publications").json()["publications"]} != {"published"}:
            assert time.monotonic() < deadline, self.log_path.read_text()[-3000:]
            time.sleep(0.3)


    def connect_instagram(self, page: Page, at_consent: Callable[[Page], None] = lambda page: None) -> str:
        """Connect the sandbox Instagram account from the Platforms page, as a creator
        does (`at_consent` sees the sandbox's consent page first); returns its id."""
        page.goto("/platforms")
        page.locator('[data-platform="instagram"]').get_by_role("button", name=re.compile("Connect")).click()
        allow = page.get_by_role("button", name="Allow")
        expect(allow).to_be_visible()
        at_consent(page)
        allow.click()
        expect(page.get_by_role("status").filter(has_text="is connected")).to_be_visible()
        return next(a["id"] for p in self.client.get("/accounts").json()["platforms"]
                    if p["platform"] == "instagram" for a in p["accounts"])  # fmt: skip


def read_events(response, stop) -> list[dict]:  # type: ignore[no-untyped-def]
    """Parse a text/event-stream response into messages until stop(message) is true or
    the stream ends. A message: {"id", "event", "data", "comment"}."""
    messages: list[dict] = []
    current: dict = {}
    for line in response.iter_lines():
        if line == "":
            if current:
                messages.append(current)
                if stop(current):
                    return messages
            current = {}
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "":
            current["comment"] = value
        elif field == "data":
            current["data"] = current.get("data", "") + value
        else:
            current[field] = value
    return messages
