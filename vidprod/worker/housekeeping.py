"""Housekeeping as a Huey periodic task on the I/O queue (never behind a render)."""

from __future__ import annotations

from collections.abc import Callable

from huey import SqliteHuey, crontab

from vidprod.domain.housekeeping import Housekeeper


def schedule_housekeeping(huey: SqliteHuey, housekeeper: Housekeeper) -> Callable[[], object]:
    """Every 15 minutes; the returned task, called, queues a run now (done at start)."""

    def housekeeping() -> None:
        housekeeper.run()

    return huey.periodic_task(crontab(minute="*/15"), name="housekeeping")(housekeeping)
