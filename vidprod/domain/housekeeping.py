"""Keeping the data volume from filling: expiring old files (refusing uploads with no
room is domain/disk.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vidprod.config import Settings
from vidprod.domain.uploads import TusUploads
from vidprod.store import Database
from vidprod.store import jobs as q
from vidprod.store.objects import LocalObjects, Objects

if TYPE_CHECKING:
    from vidprod.sandbox import FakePlatforms

log = logging.getLogger(__name__)

ABANDONED_UPLOAD_HOURS = 24  # a staged upload nobody wrote to for this long is dead
# The sandbox's fakes keep no upload session longer than a week (YouTube's); the bytes of
# one untouched for longer are abandoned.
SANDBOX_PART_MAX_AGE = 8 * 24 * 3600.0


class Housekeeper:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        uploads: TusUploads | None = None,
        sandbox: FakePlatforms | None = None,
        objects: Objects | None = None,
    ) -> None:
        self.objects = objects or LocalObjects(settings.media_dir)
        self.db = db
        self.settings = settings
        self.clock = clock
        self.uploads = uploads  # resumable uploads expire by their own clock and setting
        self.sandbox = sandbox  # the built-in fakes' .part files

    def run(self) -> dict[str, int]:
        removed_jobs = self.remove_expired_job_files()
        removed_uploads = self.remove_abandoned_uploads()
        if self.uploads is not None:
            removed_uploads += self.uploads.remove_expired()
        if self.sandbox is not None:
            removed_uploads += self.sandbox.remove_stale_parts(SANDBOX_PART_MAX_AGE)
        if removed_jobs or removed_uploads:
            log.info(
                "housekeeping: removed files of %d job(s), %d abandoned upload(s)",
                len(removed_jobs), removed_uploads,
            )  # fmt: skip
        return {"jobs": len(removed_jobs), "uploads": removed_uploads}

    def remove_expired_job_files(self) -> list[str]:
        """Source and parts of jobs that ended more than VIDPROD_KEEP_HOURS ago.
        The job rows, plan and events stay; downloads then answer 410."""
        cutoff = datetime.fromtimestamp(self.clock() - self.settings.keep_hours * 3600, UTC).isoformat(
            timespec="milliseconds"
        )
        expired = self.db.read(lambda conn: q.jobs_with_files_ended_before(conn, cutoff))
        for job_id in expired:
            self.objects.delete_prefix(f"{job_id}/")
            self.db.write(lambda conn, job_id=job_id: q.update_job(conn, job_id, files_removed_at=q.now_iso()))
        return expired

    def remove_abandoned_uploads(self) -> int:
        cutoff = self.clock() - ABANDONED_UPLOAD_HOURS * 3600
        removed = 0
        for path in (self.settings.tmp_dir / "uploads").glob("upload-*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # finished or discarded meanwhile
        return removed
