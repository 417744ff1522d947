"""Starting stopped render-worker Machines on Fly.io when renders wait.

Workers stop themselves when the queue stays empty (VIDPROD_IDLE_EXIT_SECONDS); the
primary starts them again through the Machines REST API (list the app's Machines, start
the stopped ones of the worker process group). Two calls of a documented REST API: a
client library would add more than it saves.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)

RUNNING = ("started", "starting", "created", "replacing")
STARTABLE = ("stopped", "suspended")


class WorkerMachines:
    def __init__(self, api_url: str, app: str, token: str, group: str = "worker",
                 client: httpx.Client | None = None) -> None:  # fmt: skip
        self.app = app
        self.group = group
        self.client = client or httpx.Client(
            base_url=api_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=15
        )

    def _workers(self) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/apps/{self.app}/machines")
        response.raise_for_status()
        return [
            m for m in response.json()
            if ((m.get("config") or {}).get("metadata") or {}).get("fly_process_group") == self.group
        ]  # fmt: skip

    def start_for(self, waiting: int) -> list[str]:
        """Start as many stopped worker Machines as renders wait beyond those already
        running; returns the ids started."""
        if waiting <= 0:
            return []
        workers = self._workers()
        running = sum(1 for m in workers if m.get("state") in RUNNING)
        stopped = [m for m in workers if m.get("state") in STARTABLE]
        started = []
        for machine in stopped[: max(0, waiting - running)]:
            response = self.client.post(f"/v1/apps/{self.app}/machines/{machine['id']}/start")
            if response.is_success:
                started.append(machine["id"])
            else:  # e.g. 412 when it is starting already: the next round sees it
                log.warning("worker machine %s did not start: %d %s", machine["id"], response.status_code,
                            response.text[:200])  # fmt: skip
        if started:
            log.info("started %d worker machine(s) for %d waiting render(s): %s",
                     len(started), waiting, ", ".join(started))  # fmt: skip
        return started
