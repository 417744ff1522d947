"""Status endpoint latency while a 1080x1920 video renders in the same process.

The render runs on a worker thread next to the web server; this prints the latency of
GET /status/{id} (polled every 50 ms) while the job renders, against the same requests
with the server idle.

    uv run python bench/responsiveness.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.clips import make_clip  # noqa: E402
from tests.server import Server, server_in_temp_dir  # noqa: E402


def timed_get(server: Server, url: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = server.client.get(url)
    return (time.perf_counter() - started) * 1000, response.json()


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"{name}: n={len(samples)} p50 {statistics.median(samples):.1f} ms, "
        f"p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with server_in_temp_dir() as (server, work):
        clip = make_clip(work / "portrait.mp4", seconds=args.seconds, size=(1080, 1920))
        server.start()
        job_id = server.upload(clip).json()["id"]
        url = f"/status/{job_id}"
        busy: list[float] = []
        render_started = None
        while True:
            ms, body = timed_get(server, url)
            if body["state"] == "processing" and body["stage"] == "rendering":
                render_started = render_started or time.perf_counter()
                busy.append(ms)
            if body["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        render_seconds = time.perf_counter() - (render_started or time.perf_counter())
        idle = []
        for _ in range(len(busy) or 50):
            idle.append(timed_get(server, url)[0])
            time.sleep(0.05)
        print(f"render of {args.seconds} s at 1080x1920: {body['state']} in ~{render_seconds:.1f} s"
              f" ({args.seconds * 30 / max(render_seconds, 1e-9):.0f} fps)")
        print(summary("status while rendering", busy))
        print(summary("status while idle     ", idle))


if __name__ == "__main__":
    main()
