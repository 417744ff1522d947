"""A job's life: created from an upload, processed into parts, cancelled, retried, deleted.

This is where the rules live (which transitions are allowed, what a failure leaves
behind). It calls the store for rows and the media package for pixels; it knows
nothing of HTTP. Every method is synchronous: worker threads call it directly, the web
layer on a thread.

The database row is the truth and the queue only carries work, so `process` is safe to
run twice: finished parts are kept and skipped, a finished job is left alone.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidprod import metrics
from vidprod.config import Settings
from vidprod.domain.webhooks import NewEndpoint, store_endpoint
from vidprod.media.burnin import CaptionBurner
from vidprod.media.cuts import CutError, CutRules, Plan, plan_file, recut
from vidprod.media.faces import FaceModelError, face_model_bytes
from vidprod.media.gaze import GazeCorrector, GazeSettings, combine_reports
from vidprod.media.probe import SourceInfo, probe
from vidprod.media.render import (
    RenderedPart,
    RenderOptions,
    RenderStopped,
    part_filename,
    render_parts,
    thumbnail_filename,
)
from vidprod.media.retime import retime
from vidprod.media.speech import TranscriptionStopped, Word, transcribe
from vidprod.media.subtitles import write_subtitles
from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.store import publications as pq

log = logging.getLogger(__name__)

# Progress is written at most this often; cancellation is noticed within the same time.
PROGRESS_INTERVAL = 0.25
# A job.progress event (webhooks, opt-in) each time progress passes another 10 %.
PROGRESS_EVENT_STEP = 10
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
    ) -> None:
        self.db = db
        self.settings = settings
        self.enqueue = enqueue
        # Set when the process shuts down: a render stops at the next frame and the job
        # stays `processing`, to be resumed on the next start.
        self.stopping = stopping or threading.Event()
        # Called with the job id once a job is done (publishing what was chosen at upload).
        self.on_completed: Callable[[str], None] = lambda job_id: None
        self._face_model: bytes | None = None

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
        job_dir = self.job_dir(job_id)
        job_dir.mkdir(parents=True)
        source = job_dir / f"source{suffix}"
        staged.replace(source)  # same filesystem: the staging dir lives in the data dir
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
                source_path=str(source.relative_to(self.settings.media_dir)),
                source_size=source.stat().st_size,
                source_info=info.to_json(),
                options=options,
            )
            if webhook is not None:
                store_endpoint(conn, webhook, job_id=job_id)
            ev.add_event(conn, job_id, "job.created", {"source_name": source_name})

        try:
            self.db.write(insert)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
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

    def segment_file(self, job_id: str, index: int, *, thumbnail: bool = False) -> Path | None:
        """The part's MP4 (or its thumbnail JPEG, None when it has none)."""
        segment = self.db.read(lambda conn: q.get_segment(conn, job_id, index))
        if segment is None:
            raise JobNotFound(f"{job_id}/{index}")
        relative = segment["thumbnail_path"] if thumbnail else segment["path"]
        return self.media_path(relative) if relative else None

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

        if self.db.write(change) == "cancelled":
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
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

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
        parts_dir = self.parts_dir(job_id)

        def change(conn: Any) -> None:
            if pq.live_for_job(conn, job_id):
                raise JobConflict("Parts of this video are scheduled or posted; cancel those posts before moving its cuts.")
            q.delete_segments(conn, job_id)
            for new, was in kept.items():
                if was in segments:
                    row = dict(segments[was], idx=new, path=self._part_path(job_id, part_filename(new)))
                    if row.get("thumbnail_path"):
                        row["thumbnail_path"] = self._part_path(job_id, thumbnail_filename(new))
                    q.upsert_segment(conn, job_id, row)
            stored = {"limit_seconds": job["plan"].get("limit_seconds"), **fresh.to_json()}
            q.update_job(conn, job_id, state="queued", stage=None, progress=0, plan=stored, finished_at=None)
            ev.add_event(conn, job_id, "job.recut", {
                "cuts": [round(float(t), 3) for t in fresh.cuts()],
                "kept": sorted(kept), "rendered_again": sorted(set(range(len(fresh.parts))) - set(kept)),
            })  # fmt: skip

        self.db.write(change)
        # Files follow the rows: through temporary names, so a part moving down never
        # overwrites one still to move. A crash in between leaves a row whose file is
        # missing or of another size, which the render makes again (see `_render`).
        staged = {}
        for was in range(len(plan.parts)):
            for name in (part_filename(was), thumbnail_filename(was)):
                if (parts_dir / name).exists():
                    (parts_dir / name).replace(parts_dir / f".recut-{name}")
                    staged[name] = parts_dir / f".recut-{name}"
        for new, was in kept.items():
            for old_name, new_name in ((part_filename(was), part_filename(new)),
                                       (thumbnail_filename(was), thumbnail_filename(new))):  # fmt: skip
                if old_name in staged:
                    staged.pop(old_name).replace(parts_dir / new_name)
        for leftover in staged.values():
            leftover.unlink(missing_ok=True)
        self.enqueue(job_id)
        return self.get(job_id)

    def _part_path(self, job_id: str, name: str) -> str:
        return str((self.parts_dir(job_id) / name).relative_to(self.settings.media_dir))

    def _remove_outputs(self, job_id: str) -> None:
        shutil.rmtree(self.parts_dir(job_id), ignore_errors=True)

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
        job_id = job["id"]
        source = self.media_path(job["source_path"])
        watch = _RenderWatch(self, job_id, float(job["progress"] or 0))
        words = self._transcript(job, source, watch)
        started = time.monotonic()
        plan = self._plan(job, source, words)
        metrics.PROCESSING_SECONDS.labels("planning").observe(time.monotonic() - started)
        if words is not None:
            self._write_subtitles(job_id, plan, words)
        # Parts already made (before a restart, or kept when cuts were moved): the row's
        # file, of the row's size (a re-cut cut short could leave another part's file).
        done = {
            s["idx"]
            for s in self.segments(job_id)
            if self.media_path(s["path"]).is_file() and self.media_path(s["path"]).stat().st_size == s["size_bytes"]
        }
        self.db.write(lambda conn: q.update_job(conn, job_id, stage="rendering"))
        gaze = self._gaze_corrector(job)
        earlier_gaze = (job.get("gaze") or {}).get("report") if done else None
        options = RenderOptions(
            rate=plan.rate,
            landscape=job["options"].get("landscape", self.settings.landscape),
            size=self.settings.output_size,
            face_model=self._face_model_bytes(),
            frame_hook=gaze,
            overlay=CaptionBurner(words) if words is not None else None,
        )
        frames = 0

        def finished_part(part: RenderedPart) -> None:
            nonlocal frames
            self._record_part(job_id, part)
            if gaze is not None:  # so a restart mid-render keeps the finished parts' figures
                self._save_gaze_report(job_id, gaze, earlier_gaze)
            count = round(part.duration * plan.rate)
            frames += count
            self.db.write(lambda conn: metrics.count(conn, metrics.FRAMES_RENDERED, amount=count))

        started = time.monotonic()
        try:
            render_parts(
                source,
                plan.parts,
                self.parts_dir(job_id),
                options,
                skip=done,
                on_progress=watch.progress,
                on_part=finished_part,
                should_stop=watch.should_stop,
            )
        finally:
            if gaze is not None:
                gaze.close()
        if gaze is not None:
            self._record_gaze(job_id, gaze, earlier_gaze)
        seconds = time.monotonic() - started
        metrics.PROCESSING_SECONDS.labels("rendering").observe(seconds)
        if frames:
            metrics.RENDER_FPS.observe(frames / seconds)
        self.db.write(
            lambda conn: (
                q.update_job(
                    conn, job_id, state="done", stage=None, progress=100, finished_at=q.now_iso()
                ),
                ev.add_event(conn, job_id, "job.completed", {"segments": len(plan.parts)}),
            )
        )
        self.on_completed(job_id)

    def gaze_dir(self, job_id: str) -> Path:
        """Before/after eye stills; inside the parts folder, so they go with the parts
        on cancel, retry, failure, housekeeping and deletion."""
        return self.parts_dir(job_id) / "gaze"

    def gaze_still(self, job_id: str, name: str) -> Path | None:
        """A still named in the job's gaze record, or None."""
        job = self.get(job_id)
        record = job.get("gaze") or {}
        names = {n for still in record.get("stills", []) for n in (still["before"], still["after"])}
        return self.gaze_dir(job_id) / name if name in names else None

    def _gaze_corrector(self, job: dict[str, Any]) -> GazeCorrector | None:
        options = job["options"]
        strength = float(options.get("gaze_strength", self.settings.gaze_strength))
        if not options.get("gaze", self.settings.gaze) or strength <= 0:
            return None
        model = self._face_model_bytes()
        if model is None:
            log.warning("job %s: eye contact needs the face model; rendering without it", job["id"])
            return None
        notes_below = options.get("gaze_notes_below_degrees")
        # MediaPipe in a child process: its memory leaves with the render
        return GazeCorrector(model, GazeSettings(strength=strength, notes_below_degrees=notes_below,
                                                   landmark_interval=self.settings.gaze_landmark_interval),
                             child=True)  # fmt: skip

    def _record_gaze(self, job_id: str, gaze: GazeCorrector, earlier: dict[str, Any] | None) -> None:
        try:
            stills = gaze.save_stills(self.gaze_dir(job_id))
        except OSError:
            log.exception("job %s: eye-contact stills could not be written", job_id)
            stills = []
        self._save_gaze_report(job_id, gaze, earlier, stills)

    def _save_gaze_report(self, job_id: str, gaze: GazeCorrector, earlier: dict[str, Any] | None,
                          stills: list[dict[str, str]] | None = None) -> None:  # fmt: skip
        """The report so far, added to `earlier` (what a render stopped by a restart had
        recorded for the parts it finished, which this render skips)."""
        report = gaze.report()
        if earlier is not None:
            report = combine_reports(earlier, report)
        record = {"report": report, "stills": stills or []}
        self.db.write(lambda conn: q.update_job(conn, job_id, gaze=record))

    def _transcript(self, job: dict[str, Any], source: Path, watch: _RenderWatch) -> list[Word] | None:
        """The job's words when it wants captions: transcribed once and stored, so a
        retry or a restart mid-render reads them back. None when captions are off."""
        if not job["options"].get("captions"):
            return None
        if job.get("transcript") is not None:
            return [Word.from_json(w) for w in job["transcript"]["words"]]
        job_id = job["id"]
        self.db.write(lambda conn: q.update_job(conn, job_id, stage="transcribing"))
        started = time.monotonic()
        result = transcribe(source, should_stop=watch.should_stop)
        metrics.PROCESSING_SECONDS.labels("transcribing").observe(time.monotonic() - started)
        record = {"language": result.language, "words": [w.to_json() for w in result.words]}
        self.db.write(lambda conn: q.update_job(conn, job_id, transcript=record, stage="planning"))
        log.info("job %s: %d words transcribed in %.1f s", job_id, len(result.words), time.monotonic() - started)
        return result.words

    def _write_subtitles(self, job_id: str, plan: Plan, words: list[Word]) -> None:
        """part-NNN.srt and .vtt for every planned part (cheap; written before the parts,
        so a part's subtitles exist by the time its row does)."""
        for part in plan.parts:
            mp4 = self.parts_dir(job_id) / part_filename(part.index)
            write_subtitles(words, float(part.start), float(part.end), mp4)

    def subtitle_file(self, job_id: str, index: int, kind: str) -> Path | None:
        """A finished part's subtitles ("srt" or "vtt"); None when the job has none."""
        job = self.get(job_id)
        segment = self.db.read(lambda conn: q.get_segment(conn, job_id, index))
        if segment is None:
            raise JobNotFound(f"{job_id}/{index}")
        if not job["options"].get("captions") or kind not in ("srt", "vtt"):
            return None
        path = self.media_path(segment["path"]).with_suffix(f".{kind}")
        return path if path.is_file() else None

    def _plan(self, job: dict[str, Any], source: Path, words: list[Word] | None = None) -> Plan:
        if job["plan"]:
            return Plan.from_json(job["plan"])
        limit = int(job["options"]["segment_seconds"])
        rules = CutRules(limit=Fraction(limit), min_part=Fraction(self.settings.min_part_seconds))
        plan = plan_file(source, rules, words, self.settings.input_limits)
        stored = {"limit_seconds": limit, **plan.to_json()}
        self.db.write(lambda conn: q.update_job(conn, job["id"], plan=stored))
        return plan

    def _face_model_bytes(self) -> bytes | None:
        """The verified face model for thumbnails and the face-following crop; None
        (sharpest frame, centred crop) when it cannot be had."""
        if self._face_model is None:
            try:
                self._face_model = face_model_bytes(self.settings.face_model)
            except (FaceModelError, OSError) as exc:
                log.warning("face model unavailable, thumbnails without face checks: %s", exc)
        return self._face_model

    def _record_part(self, job_id: str, part: RenderedPart) -> None:
        segment = {
            "idx": part.index,
            "start_seconds": float(part.start),
            "end_seconds": float(part.end),
            "duration_seconds": float(part.duration),
            "path": str(part.path.relative_to(self.settings.media_dir)),
            "size_bytes": part.size_bytes,
            "width": part.width,
            "height": part.height,
            "has_audio": True,  # every part carries AAC; silence where the source had none
            "thumbnail_path": (
                str(part.thumbnail.relative_to(self.settings.media_dir)) if part.thumbnail else None
            ),
        }
        self.db.write(
            lambda conn: (
                q.upsert_segment(conn, job_id, segment),
                ev.add_event(
                    conn, job_id, "segment.ready",
                    {"index": part.index, "file": part_filename(part.index)},
                ),
            )
        )  # fmt: skip

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


class _RenderWatch:
    """Throttled progress writes and cancel checks for one render."""

    def __init__(self, service: JobService, job_id: str, reached: float = 0.0) -> None:
        self.service = service
        self.job_id = job_id
        # A resumed render starts a little before the first part still to do (the seek
        # lands on a keyframe): the progress shown never goes back below what it reached.
        self.reached = reached
        self.last_write = 0.0
        self.last_check = 0.0
        self.cancelled = False
        self.announced_step = int(reached // PROGRESS_EVENT_STEP)  # tenths already sent as job.progress

    def progress(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last_write < PROGRESS_INTERVAL:
            return
        self.last_write = now
        percent = round(min(99.9, max(self.reached, fraction * 100)), 1)
        self.reached = percent
        step = int(percent // PROGRESS_EVENT_STEP)
        announce = step > self.announced_step
        self.announced_step = max(step, self.announced_step)

        def write(conn: Any) -> None:
            q.update_job(conn, self.job_id, progress=percent)
            if announce:
                ev.add_event(conn, self.job_id, "job.progress", {"percent": step * PROGRESS_EVENT_STEP})

        self.service.db.write(write)

    def should_stop(self) -> bool:
        if self.service.stopping.is_set() or self.cancelled:
            return True
        now = time.monotonic()
        if now - self.last_check >= PROGRESS_INTERVAL:
            self.last_check = now
            job = self.service.db.read(lambda conn: q.get_job(conn, self.job_id))
            self.cancelled = job is None or job["cancel_requested"]
        return self.cancelled
