"""The wall clock that schedules, retries and token expiry read.

Tests of a running server shift it by writing seconds into VIDPROD_TEST_CLOCK_FILE,
so a publication due tomorrow comes due without anyone sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wall_clock(offset_file: Path | None) -> Callable[[], float]:
    if offset_file is None:
        return time.time

    def shifted() -> float:
        try:
            offset = float(offset_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            offset = 0.0
        return time.time() + offset

    return shifted
