"""Whether the data volume has room for an upload: asked by both upload routes (the
streamed form and tus) before they store anything."""

from __future__ import annotations

import shutil
from pathlib import Path

# An upload needs room for itself and about as much again for its parts.
ROOM_FACTOR = 2


def disk_room_problem(path: Path, incoming_bytes: int, floor_bytes: int) -> str | None:
    """Words for the uploader when storing `incoming_bytes` (and its parts) would leave
    less than the floor free; None when there is room."""
    free = shutil.disk_usage(path).free
    if free - incoming_bytes * ROOM_FACTOR >= floor_bytes:
        return None
    return (
        f"The server is short of disk space ({free // 2**20} MB free, and it keeps "
        f"{floor_bytes // 2**20} MB spare). Try again after old jobs have been cleaned up, "
        "or delete finished jobs."
    )
