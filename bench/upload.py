"""Upload-to-202 latency and server memory while receiving a 1 GB upload.

Starts the real `vidprod serve` process, streams a valid MP4 padded with a ~1 GB `free`
box (players and our probe skip it) as multipart/form-data, samples the server's RSS
every 10 ms, and prints the figures. The target: RSS growth under 50 MB, and the 202
within 100 ms of the last byte.

    uv run python bench/upload.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import struct
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.clips import make_clip  # noqa: E402
from tests.server import server_in_temp_dir  # noqa: E402

CHUNK = 1 << 20


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)


def multipart_body(clip: bytes, padding: int, boundary: str, marks: dict[str, float]):
    yield (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"big.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    ).encode()
    yield clip
    yield struct.pack(">I4s", padding + 8, b"free")
    zeros = bytes(CHUNK)
    left = padding
    while left > 0:
        n = min(CHUNK, left)
        yield zeros if n == CHUNK else zeros[:n]
        left -= n
    yield f"\r\n--{boundary}--\r\n".encode()
    marks["last_byte"] = time.perf_counter()  # runs once the last chunk went to the socket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with server_in_temp_dir(VIDPROD_MAX_UPLOAD_MB=str(args.size_mb + 16)) as (server, work):
        clip = make_clip(work / "clip.mp4", seconds=2).read_bytes()
        total = args.size_mb << 20
        padding = total - len(clip) - 8
        server.start()
        boundary = "vidprodbenchboundary"
        for run in range(1, args.runs + 1):
            time.sleep(1)  # let the previous job's render settle
            baseline = psutil.Process(server.process.pid).memory_info().rss
            sampler = RssSampler(server.process.pid)
            sampler.start()
            marks: dict[str, float] = {}
            body_length = sum(len(c) for c in multipart_body(clip, 0, boundary, {})) + padding
            started = time.perf_counter()
            response = server.client.post(
                "/upload",
                content=multipart_body(clip, padding, boundary, marks),
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(body_length),
                },
                timeout=httpx.Timeout(600),
            )
            answered = time.perf_counter()
            sampler.running = False
            sampler.join()
            assert response.status_code == 202, response.text
            seconds = marks["last_byte"] - started
            print(
                f"run {run}: {body_length / 1e6:.0f} MB in {seconds:.1f} s "
                f"({body_length / 1e6 / seconds:.0f} MB/s); "
                f"last byte -> 202: {(answered - marks['last_byte']) * 1000:.1f} ms; "
                f"server RSS {baseline / 1e6:.0f} MB before, peak {sampler.peak / 1e6:.0f} MB, "
                f"growth {(sampler.peak - baseline) / 1e6:.1f} MB"
            )


if __name__ == "__main__":
    main()
