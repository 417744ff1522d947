"""A job's life: created from an upload, processed into parts, cancelled, retried, deleted.

This is where the rules live (which transitions are allowed, what a failure leaves
behind). It calls the store for rows and the media package for pixels; it knows
nothing of HTTP. Every method is synchronous: worker threads call it directly, the web
layer on a thread.

The database row is the truth and the queue only carries work, so `process` is safe to
run twice: finished parts are kept and skipped, a finished job is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vidprod import metrics
from vidprod.config import Settings
from vidprod.domain.webhooks import NewEndpoint, store_endpoint
from vidprod.domain.rendering import RENDER_FIELDS, Renderer, gaze_from_parts, merge_stills, parts_prefix
from vidprod.media.cuts import CutError, Plan, recut
from vidprod.media.probe import SourceInfo, probe
from vidprod.media.render import RenderedPart, RenderStopped, part_filename, thumbnail_filename
from vidprod.media.retime import retime
from vidprod.media.speech import TranscriptionStopped, Word
from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.store import publications as pq
from vidprod.store.objects import LocalObjects, Objects

log = logging.getLogger(__name__)

# Progress is written at most this often; cancellation is noticed within the same time.
PROGRESS_INTERVAL = 0.25
# A job under which the process died this many times fails instead of being run again:
# an input that needs more memory than the machine has would otherwise kill every start.
MAX_CRASHES = 3
CRASHED = (
    "This video stopped the server {crashes} times while it was being processed (it may need"
    " more memory than this server has), so it was not tried again. Try a shorter or"
    " lower-resolution video, or eye contact off; whoever runs the server can give it more memory."
)


class JobNotFound(LookupError):
    pass


class JobConflict(Exception):
    """The job is not in a state that allows the request; the message says why."""


class JobService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        enqueue: Callable[[str], None],
        stopping: threading.Event | None = None,
        objects: Objects | None = None,
    ) -> None:
        self.db = db
        self.objects = objects or LocalObjects(settings.media_dir)
        self.settings = settings
        self.enqueue = enqueue
        # Set when the process shuts down: a render stops at the next frame and the job
        # stays `processing`, to be resumed on the next start.
        self.stopping = stopping or threading.Event()
        # Called with the job id once a job is done (publishing what was chosen at upload).
        self.on_completed: Callable[[str], None] = lambda job_id: None
        # Called with the job id when a cancel is asked for (remote workers hear it in Redis).
        self.on_cancel: Callable[[str], None] = lambda job_id: None
        self.renderer = Renderer(settings, self.objects, self.stopping)
        self.report = DatabaseReport(self)
        self._requeueing: Counter[str] = Counter()
        self._requeueing_lock = threading.Lock()

    @contextlib.contextmanager
    def _queueing(self, job_id: str) -> Iterator[None]:
        """From the row saying `queued` until this process has queued the render itself.
        Its files move in between (a recut renames parts in storage), so the primary's
        lease watch (worker/remote.py), which queues again any unfinished job no worker
        holds, must leave the job alone meanwhile: a worker would start on parts still
        moving. In-process on purpose: if the process dies in between, the watch of the
        next start queues the job, as it should."""
        with self._requeueing_lock:
            self._requeueing[job_id] += 1
        try:
            yield
        finally:
            with self._requeueing_lock:
                self._requeueing[job_id] -= 1
                if self._requeueing[job_id] <= 0:
                    del self._requeueing[job_id]

    def being_queued(self, job_id: str) -> bool:
        """True while this process is putting the job back in the queue (`_queueing`)."""
        with self._requeueing_lock:
            return job_id in self._requeueing

    # --- paths -------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.settings.media_dir / job_id

    def parts_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "parts"

    def media_path(self, relative: str) -> Path:
        return self.settings.media_dir / relative

    # --- creating ----------------------------------------------------------------

    def check_source(self, staged: Path) -> SourceInfo:
        """Probe an uploaded file; raises InvalidMedia with words for the uploader."""
        return probe(staged, self.settings.input_limits)

    def create_job(
        self,
        staged: Path,
        source_name: str,
        info: SourceInfo,
        options: dict[str, Any] | None = None,
        webhook: NewEndpoint | None = None,
    ) -> dict[str, Any]:
        """Adopt a probed upload: move it into the job's folder, add the row, queue it.

        `webhook` is the job's own endpoint (seed API), stored with the job so that it
        hears job.created and everything after."""
        job_id = uuid.uuid4().hex[:16]
        suffix = Path(source_name).suffix.lower()
        if not suffix[1:].isalnum() or len(suffix) > 6:
            suffix = ".bin"
        source_key = f"{job_id}/source{suffix}"
        source_size = staged.stat().st_size
        self.objects.put(source_key, staged)  # local: a rename (the staging dir is in the data dir)
        options = {
            "segment_seconds": self.settings.segment_seconds,
            "landscape": self.settings.landscape,
            "gaze": self.settings.gaze,
            "gaze_strength": self.settings.gaze_strength,
            **(options or {}),
        }

        def insert(conn: Any) -> None:
            q.insert_job(
                conn,
                job_id=job_id,
                source_name=source_name,
                source_path=source_key,
                source_size=source_size,
                source_info=info.to_json(),
                options=options,
            )
            if webhook is not None:
                store_endpoint(conn, webhook, job_id=job_id)
            ev.add_event(conn, job_id, "job.created", {"source_name": source_name})

        with self._queueing(job_id):
            try:
                self.db.write(insert)
            except BaseException:
                self.objects.delete_prefix(f"{job_id}/")
                raise
            self.enqueue(job_id)
        return self.get(job_id)

    # --- reading -----------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.find(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def segments(self, job_id: str) -> list[dict[str, Any]]:
        return self.db.read(lambda conn: q.list_segments(conn, job_id))

    def segment_key(self, job_id: str, index: int, *, thumbnail: bool = False) -> str | None:
        """The storage key of the part's MP4 (or of its thumbnail JPEG, None when it has none)."""
        segment = self.db.read(lambda conn: q.get_segment(conn, job_id, index))
        if segment is None:
            raise JobNotFound(f"{job_id}/{index}")
        return segment["thumbnail_path"] if thumbnail else segment["path"]

    def list(self, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        return self.db.read(
            lambda conn: (q.list_jobs(conn, limit=limit, offset=offset), q.count_jobs(conn))
        )

    def part_summaries(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per job: the parts made so far and the first one with a thumbnail."""
        return self.db.read(lambda conn: q.segment_summaries(conn, job_ids))

    def events(self, job_id: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        return self.db.read(lambda conn: ev.list_events(conn, job_id, after_id=after_id))

    def find(self, job_id: str) -> dict[str, Any] | None:
        return self.db.read(lambda conn: q.get_job(conn, job_id))

    def counts_by_state(self) -> dict[str, int]:
        return self.db.read(q.count_jobs_by_state)

    def unfinished(self) -> list[str]:
        return self.db.read(q.unfinished_job_ids)

    def recover(self) -> list[str]:
        """At start: count a crash for every job the last process died under, fail those
        that reached MAX_CRASHES, and return the unfinished jobs to run again."""

        def count(conn: Any) -> list[str]:
            given_up = []
            for job_id in q.in_flight_job_ids(conn):
                crashes = q.get_job(conn, job_id)["crashes"] + 1
                q.update_job(conn, job_id, in_flight=0, crashes=crashes)
                if crashes >= MAX_CRASHES:
                    given_up.append(job_id)
            return given_up

        for job_id in self.db.write(count):
            log.warning("job %s: the process died under it %d times; failing it", job_id, MAX_CRASHES)
            self._fail_with(job_id, CRASHED.format(crashes=MAX_CRASHES))
        return self.unfinished()

    # --- control -----------------------------------------------------------------

    def cancel(self, job_id: str) -> dict[str, Any]:
        def change(conn: Any) -> str:
            job = q.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job["state"] == "queued":
                q.update_job(conn, job_id, state="cancelled", stage=None, finished_at=q.now_iso())
                ev.add_event(conn, job_id, "job.cancelled", {"while": "queued"})
                return "cancelled"
            if job["state"] == "processing":
                q.update_job(conn, job_id, cancel_requested=1)
                return "requested"
            raise JobConflict(f"The job is {job['state']}; only a queued or running job can be cancelled.")

        outcome = self.db.write(change)
        self.on_cancel(job_id)
        if outcome == "cancelled":
            self._remove_outputs(job_id)
        return self.get(job_id)

    def retry(self, job_id: str) -> dict[str, Any]:
        def change(conn: Any) -> None:
            job = q.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job["state"] not in ("failed", "cancelled"):
                raise JobConflict(f"The job is {job['state']}; only a failed or cancelled job can be retried.")
            if job["files_removed_at"]:
                raise JobConflict(
                    "This job's video was removed by housekeeping after "
                    f"{self.settings.keep_hours} hours; upload it again to make new parts."
                )
            q.delete_segments(conn, job_id)
            q.update_job(
                conn, job_id, state="queued", stage=None, progress=0, error=None,
                cancel_requested=0, finished_at=None, plan=None, gaze=None, crashes=0,
            )  # fmt: skip
            ev.add_event(conn, job_id, "job.retried", {"attempts_so_far": job["attempts"]})

        with self._queueing(job_id):
            self._remove_outputs(job_id)
            self.db.write(change)
            self.enqueue(job_id)
        return self.get(job_id)

    def edit_transcript(self, job_id: str, text: str) -> dict[str, Any]:
        """Put the creator's corrected text on the transcript's times (media/retime.py)
        and make the parts again with it: same cuts, new burned-in captions and subtitle
        files. Only a finished job with no post on its way, so no post goes out with a
        part half made."""

        def change(conn: Any) -> None:
            job = q.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if not job["options"].get("captions") or job["transcript"] is None:
                raise JobConflict("This video has no transcript: upload it with captions on to get one.")
            if job["state"] != "done":
                raise JobConflict(f"The job is {job['state']}; its transcript can be edited once its parts are made.")
            if job["files_removed_at"]:
                raise JobConflict(
                    "This job's video was removed by housekeeping after "
                    f"{self.settings.keep_hours} hours; upload it again to make new parts."
                )
            if pq.unsent_for_job(conn, job_id):
                raise JobConflict(
                    "A part of this video is scheduled or being posted; cancel those posts (or let"
                    " them go out) first, then edit the transcript."
                )
            words = retime([Word.from_json(w) for w in job["transcript"]["words"]], text)
            record = {**job["transcript"], "words": [w.to_json() for w in words], "edited_at": q.now_iso()}
            # The rows go in the same transaction: the render redoes every part even if
            # the process dies before the old files are removed.
            q.delete_segments(conn, job_id)
            q.update_job(
                conn, job_id, transcript=record, state="queued", stage=None, progress=0, error=None,
                cancel_requested=0, finished_at=None, gaze=None, crashes=0,
            )  # fmt: skip
            ev.add_event(conn, job_id, "job.transcript_edited", {"words": len(words)})

        with self._queueing(job_id):
            self.db.write(change)
            self._remove_outputs(job_id)
            self.enqueue(job_id)
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        def change(conn: Any) -> None:
            job = q.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if job["state"] == "processing":
                raise JobConflict("The job is being processed; cancel it first, then delete it.")
            if pq.publishing_for_job(conn, job_id):
                raise JobConflict("A part is being uploaded to a platform right now; delete the job once that has finished.")
            q.delete_job(conn, job_id)
            ev.add_event(conn, job_id, "job.deleted", {})

        self.db.write(change)
        self.objects.delete_prefix(f"{job_id}/")

    def recut(self, job_id: str, cuts_seconds: list[float]) -> dict[str, Any]:
        """Cut a finished video where the creator chose: move a cut to another pause,
        drop one (two parts become one) or add one (a part splits). Only the parts whose
        start or end changed are rendered again; the others keep their files (renumbered
        when a part before them was joined or split). Raises CutError with the problems."""
        job = self.get(job_id)
        if job["state"] != "done":
            raise JobConflict(f"The job is {job['state']}; cuts can be moved once its parts are made.")
        if job["files_removed_at"]:
            raise JobConflict("The job's files were removed by housekeeping; upload the video again.")
        plan = Plan.from_json(job["plan"])
        allowed = sorted(set(plan.pauses) | set(plan.cuts()))
        cuts = []
        for seconds in cuts_seconds:
            # The page and API speak seconds; the plan keeps exact frame times.
            nearest = min(allowed, key=lambda t: abs(float(t) - seconds), default=None)
            if nearest is None or abs(float(nearest) - seconds) > 0.001:
                raise CutError([f"{seconds:.2f} s is not one of this video's pauses"])
            cuts.append(nearest)
        fresh = recut(plan, cuts)
        old = {(p.start, p.end): p.index for p in plan.parts}
        kept = {p.index: old[(p.start, p.end)] for p in fresh.parts if (p.start, p.end) in old}  # new -> old index
        if len(kept) == len(fresh.parts) == len(plan.parts):
            return job  # nothing moved
        segments = {s["idx"]: s for s in self.segments(job_id)}

        def change(conn: Any) -> None:
            if pq.live_for_job(conn, job_id):
                raise JobConflict("Parts of this video are scheduled or posted; cancel those posts before moving its cuts.")
            q.delete_segments(conn, job_id)
            for new, was in kept.items():
                if was in segments:
                    # the row goes along with its own eye-contact figures
                    row = dict(segments[was], idx=new, path=self._part_path(job_id, part_filename(new)))
                    if row.get("thumbnail_path"):
                        row["thumbnail_path"] = self._part_path(job_id, thumbnail_filename(new))
                    q.upsert_segment(conn, job_id, row)
            stored = {"limit_seconds": job["plan"].get("limit_seconds"), **fresh.to_json()}
            q.update_job(conn, job_id, state="queued", stage=None, progress=0, plan=stored, finished_at=None)
            gaze = job["gaze"]
            if gaze is not None and gaze.get("earlier") is not None:
                # a report from before parts kept their own covers the parts without
                # figures as they were: once one of them is made again, it cannot be split
                without = {i for i, s in segments.items() if not s.get("gaze")}
                if not without <= set(kept.values()):
                    gaze = {**gaze, "earlier": None}
            gaze = gaze_from_parts(gaze, q.list_segments(conn, job_id))
            if gaze is not None:
                q.update_job(conn, job_id, gaze=gaze)
            ev.add_event(conn, job_id, "job.recut", {
                "cuts": [round(float(t), 3) for t in fresh.cuts()],
                "kept": sorted(kept), "rendered_again": sorted(set(range(len(fresh.parts))) - set(kept)),
            })  # fmt: skip

        with self._queueing(job_id):
            self.db.write(change)
            # Files follow the rows (in storage, local or S3): through temporary names, so a
            # part moving down never overwrites one still to move. A crash in between leaves
            # a row whose file is missing or of another size, which the render makes again
            # (see `done_parts`). Subtitles go along too: the render writes them again for
            # every part, but until then a renumbered part serves its own, and a number
            # gone after a join keeps none.
            prefix = parts_prefix(job_id)
            staged = {}
            for was in range(len(plan.parts)):
                for name in _part_files(was):
                    if self.objects.size(f"{prefix}/{name}") is not None:
                        self.objects.move(f"{prefix}/{name}", f"{prefix}/.recut-{name}")
                        staged[name] = f"{prefix}/.recut-{name}"
            for new, was in kept.items():
                for old_name, new_name in zip(_part_files(was), _part_files(new)):
                    if old_name in staged:
                        self.objects.move(staged.pop(old_name), f"{prefix}/{new_name}")
            for leftover in staged.values():
                self.objects.delete_prefix(leftover)
            self.objects.delete_prefix(f"{job_id}/covers/")  # pictures of the parts as they were
            self.enqueue(job_id)
        return self.get(job_id)

    def _part_path(self, job_id: str, name: str) -> str:
        return f"{parts_prefix(job_id)}/{name}"

    def _remove_outputs(self, job_id: str) -> None:
        self.objects.delete_prefix(parts_prefix(job_id) + "/")
        self.objects.delete_prefix(f"{job_id}/covers/")

    # --- processing --------------------------------------------------------------

    def process(self, job_id: str) -> None:
        """Turn the job's source into parts. Safe to call twice or after a crash."""
        job = self.db.write(lambda conn: self._claim(conn, job_id))
        if job is None:
            return
        if job["cancel_requested"]:
            self._finish_cancel(job_id)
            return
        try:
            self._render(job)
        except (RenderStopped, TranscriptionStopped):
            if self.stopping.is_set():
                log.info("job %s paused by shutdown; it resumes on the next start", job_id)
                return
            self._finish_cancel(job_id)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._fail(job_id, exc)
        finally:  # still set at the next start only if the process died in between
            self.db.write(lambda conn: q.update_job(conn, job_id, in_flight=0))

    @staticmethod
    def _claim(conn: Any, job_id: str) -> dict[str, Any] | None:
        """Mark the job processing in the same transaction that reads it, so a cancel
        landing in between cannot be overwritten."""
        job = q.get_job(conn, job_id)
        if job is None or job["state"] not in ("queued", "processing"):
            return None
        if not job["cancel_requested"]:
            attempt = job["attempts"] + 1
            q.update_job(conn, job_id, state="processing", stage="planning", attempts=attempt, in_flight=1)
            ev.add_event(conn, job_id, "job.processing", {"attempt": attempt})
        return job

    def _render(self, job: dict[str, Any]) -> None:
        self.renderer.render(
            job, self.done_parts(job["id"]), self.report,
            record_part=lambda job_id, part, gaze: self._record_part(job_id, part, gaze),
            progress_interval=PROGRESS_INTERVAL,
        )  # fmt: skip

    def _record_part(self, job_id: str, part: RenderedPart, gaze: dict[str, Any] | None = None) -> None:
        self.report.part(job_id, self.renderer.store_part(parts_prefix(job_id), part, gaze))

    def done_parts(self, job_id: str) -> list[int]:
        """Parts a resumed render skips: recorded, and their file still stored with the
        row's size (kept when cuts were moved; a re-cut cut short could leave another
        part's file under the name)."""
        return [s["idx"] for s in self.segments(job_id) if self.objects.size(s["path"]) == s["size_bytes"]]

    def render_task(self, job: dict[str, Any]) -> dict[str, Any]:
        """What a remote worker needs to render the job: the row's render fields and the
        parts already done."""
        return {**{k: job.get(k) for k in RENDER_FIELDS}, "done": self.done_parts(job["id"])}

    def gaze_still(self, job_id: str, name: str) -> str | None:
        """The storage key of a still named in the job's gaze record, or None."""
        job = self.get(job_id)
        record = job.get("gaze") or {}
        names = {n for still in record.get("stills", []) for n in (still["before"], still["after"])}
        return f"{parts_prefix(job_id)}/gaze/{name}" if name in names else None

    def subtitle_file(self, job_id: str, index: int, kind: str) -> Path | None:
        """The local file of subtitle_key (None on remote storage)."""
        key = self.subtitle_key(job_id, index, kind)
        return None if key is None else self.objects.path(key)

    def subtitle_key(self, job_id: str, index: int, kind: str) -> str | None:
        """The storage key of a finished part's subtitles ("srt" or "vtt"); None when
        the job has none."""
        job = self.get(job_id)
        segment = self.db.read(lambda conn: q.get_segment(conn, job_id, index))
        if segment is None:
            raise JobNotFound(f"{job_id}/{index}")
        if not job["options"].get("captions") or kind not in ("srt", "vtt"):
            return None
        key = str(Path(segment["path"]).with_suffix(f".{kind}"))
        return key if self.objects.size(key) is not None else None

    def _finish_cancel(self, job_id: str) -> None:
        self._remove_outputs(job_id)
        self.db.write(
            lambda conn: (
                q.delete_segments(conn, job_id),
                q.update_job(
                    conn, job_id, state="cancelled", stage=None, cancel_requested=0,
                    finished_at=q.now_iso(),
                ),
                ev.add_event(conn, job_id, "job.cancelled", {"while": "processing"}),
            )
        )  # fmt: skip

    def _fail(self, job_id: str, exc: Exception) -> None:
        reason = f"Processing failed: {exc}" if str(exc) else f"Processing failed ({type(exc).__name__})."
        self._fail_with(job_id, reason)

    def _fail_with(self, job_id: str, reason: str) -> None:
        self._remove_outputs(job_id)
        self.db.write(
            lambda conn: (
                q.delete_segments(conn, job_id),
                q.update_job(
                    conn, job_id, state="failed", stage=None, error=reason,
                    finished_at=q.now_iso(),
                ),
                ev.add_event(conn, job_id, "job.failed", {"error": reason}),
            )
        )  # fmt: skip


def _part_files(index: int) -> tuple[str, ...]:
    """The files of one part in storage: the video, its thumbnail, its subtitles."""
    video = part_filename(index)
    return video, thumbnail_filename(index), str(Path(video).with_suffix(".srt")), str(Path(video).with_suffix(".vtt"))


class DatabaseReport:
    """A render's reports written straight into the database: the app's own renders,
    and the primary applying what remote workers sent (worker/remote.py)."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.db = service.db

    def stage(self, job_id: str, stage: str) -> None:
        self.db.write(lambda conn: q.update_job(conn, job_id, stage=stage))

    def transcript(self, job_id: str, record: dict[str, Any]) -> None:
        self.db.write(lambda conn: q.update_job(conn, job_id, transcript=record, stage="planning"))

    def plan(self, job_id: str, stored: dict[str, Any]) -> None:
        self.db.write(lambda conn: q.update_job(conn, job_id, plan=stored))

    def progress(self, job_id: str, percent: float, announce: int | None) -> None:
        def write(conn: Any) -> None:
            q.update_job(conn, job_id, progress=percent)
            if announce is not None:
                ev.add_event(conn, job_id, "job.progress", {"percent": announce})

        self.db.write(write)

    def part(self, job_id: str, segment: dict[str, Any]) -> None:
        """Record a finished part; one already recorded (a resumed render reporting it
        again) keeps its row and its one segment.ready event."""

        def write(conn: Any) -> None:
            known = q.get_segment(conn, job_id, segment["idx"]) is not None
            q.upsert_segment(conn, job_id, segment)
            if not known:
                ev.add_event(conn, job_id, "segment.ready",
                             {"index": segment["idx"], "file": part_filename(segment["idx"])})  # fmt: skip
            if segment.get("gaze") is not None:  # the job's report, made again from its parts'
                self._update_gaze(conn, job_id)

        self.db.write(write)

    def frames(self, job_id: str, count: int) -> None:
        self.db.write(lambda conn: metrics.count(conn, metrics.FRAMES_RENDERED, amount=count))

    def gaze(self, job_id: str, record: dict[str, Any]) -> None:
        """The render's before/after pictures, over those of earlier renders."""
        self.db.write(lambda conn: self._update_gaze(conn, job_id, record))

    @staticmethod
    def _update_gaze(conn: Any, job_id: str, render: dict[str, Any] | None = None) -> None:
        job = q.get_job(conn, job_id)
        if job is None:
            return
        record = job["gaze"]
        if render is not None:
            if "report" in render:  # a worker from before parts kept their own report
                record = {**render, "earlier": None}
            else:
                stills = merge_stills((record or {}).get("stills", []), render.get("stills", []))
                record = {**(record or {}), "stills": stills}
        record = gaze_from_parts(record, q.list_segments(conn, job_id))
        if record is not None:
            q.update_job(conn, job_id, gaze=record)

    def completed(self, job_id: str, parts: int) -> None:
        self.db.write(
            lambda conn: (
                q.update_job(conn, job_id, state="done", stage=None, progress=100, finished_at=q.now_iso()),
                ev.add_event(conn, job_id, "job.completed", {"segments": parts}),
            )
        )
        self.service.on_completed(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        job = self.db.read(lambda conn: q.get_job(conn, job_id))
        return job is None or bool(job["cancel_requested"])
