"""Keeping each account inside its platform's limits, so we wait instead of hammering.

Request rates (per minute) are counted in memory with the `limits` package's moving
window: a restart forgets at most a minute of calls. Posting caps over a rolling 24 h
are counted from database rows (the caller passes the times), so they survive restarts.
"""

from __future__ import annotations

from collections.abc import Callable

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from vidprod.publish.base import PublishFailure

DAY_SECONDS = 24 * 3600.0
# Wait this long at most inside a run; beyond it the account is blocked and we come back.
MAX_INLINE_WAIT_SECONDS = 20.0

# (platform, call) -> documented rate per access token (shared/PLATFORMS.md).
REQUEST_RATES = {
    ("tiktok", "creator_info"): "20/minute",
    ("tiktok", "init"): "6/minute",
    ("tiktok", "status"): "30/minute",
    ("instagram", "api"): "200/hour",
    ("youtube", "api"): "60/minute",
}


class RequestRates:
    def __init__(self, sleep: Callable[[float], None], now: Callable[[], float]) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._sleep = sleep
        self._now = now  # the limiter's own clock: real time

    def wait(self, platform: str, account_id: str, call: str) -> None:
        """Take one call from the account's allowance, waiting briefly if it is spent;
        raises a 'cap' failure (block the account, come back later) for longer waits."""
        rate = REQUEST_RATES.get((platform, call))
        if rate is None:
            return
        item = parse(rate)
        while not self._limiter.hit(item, platform, account_id, call):
            reset_at, _ = self._limiter.get_window_stats(item, platform, account_id, call)
            delay = max(0.05, reset_at - self._now())
            if delay > MAX_INLINE_WAIT_SECONDS:
                raise PublishFailure(
                    "cap", "local_rate_limit", f"{platform} allows {rate} {call} calls",
                    retry_after=delay,
                )  # fmt: skip
            self._sleep(delay)


def rolling_cap_frees_at(times: list[float], cap: int, now: float, window: float = DAY_SECONDS) -> float | None:
    """None when another post fits the rolling window; else when the oldest one in it
    ages out and a slot frees."""
    recent = sorted(t for t in times if t > now - window)
    if len(recent) < cap:
        return None
    return recent[len(recent) - cap] + window
