"""Housekeeping as a Huey periodic task on the I/O queue (never behind a render)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey import SqliteHuey, crontab

from vidprod.domain.accounts import AccountService
from vidprod.domain.housekeeping import Housekeeper

log = logging.getLogger(__name__)


def schedule_housekeeping(
    huey: SqliteHuey, housekeeper: Housekeeper, accounts: AccountService
) -> Callable[[], object]:
    """Every 15 minutes; the returned task, called, queues a run now (done at start).
    Besides files, it refreshes account tokens before they lapse and drops old usage counts."""

    def housekeeping() -> None:
        housekeeper.run()
        if refreshed := accounts.refresh_expiring():
            log.info("housekeeping: refreshed the tokens of %d account(s)", refreshed)
        accounts.forget_old_usage()

    return huey.periodic_task(crontab(minute="*/15"), name="housekeeping")(housekeeping)
