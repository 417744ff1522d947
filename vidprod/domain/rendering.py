"""One job's render, wherever it runs: in the app's own worker threads or in a
`vidprod worker` process on another machine that holds no database.

It reads the job as a plain dict (the row, or the same fields carried by a queued task),
the source from storage, writes each part to storage as it finishes, and tells a
`RenderReport` what happened. In the app the report writes the database directly; in a
worker it queues the same calls for the primary (worker/remote.py), the only writer.

Eye contact's figures travel with each part (the part's row keeps them) and the job's
report is made from its parts' (`gaze_from_parts`), so a part made again replaces its
figures instead of adding to them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from vidprod import metrics
from vidprod.config import Settings
from vidprod.media.burnin import CaptionBurner
from vidprod.media.cuts import CutRules, Plan, plan_file
from vidprod.media.faces import FaceModelError, face_model_bytes
from vidprod.media.gaze import GazeCorrector, GazeSettings, combine_reports
from vidprod.media.render import RenderedPart, RenderOptions, part_filename, render_parts
from vidprod.media.speech import Word, transcribe
from vidprod.media.subtitles import write_subtitles
from vidprod.store.objects import Objects

log = logging.getLogger(__name__)

# Progress is written at most this often; cancellation is noticed within the same time.
PROGRESS_INTERVAL = 0.25
# A job.progress event (webhooks, opt-in) each time progress passes another 10 %.
PROGRESS_EVENT_STEP = 10

# The fields of a job row a render reads; a queued render task carries exactly these.
RENDER_FIELDS = ("id", "source_path", "options", "plan", "transcript", "progress")


class RenderReport(Protocol):
    """What a render tells the one writer of the database, in the order it happens."""

    def stage(self, job_id: str, stage: str) -> None: ...
    def transcript(self, job_id: str, record: dict[str, Any]) -> None: ...
    def plan(self, job_id: str, stored: dict[str, Any]) -> None: ...
    def progress(self, job_id: str, percent: float, announce: int | None) -> None: ...
    # a finished part's row; with eye contact, its "gaze" is the part's own report
    def part(self, job_id: str, segment: dict[str, Any]) -> None: ...
    def frames(self, job_id: str, count: int) -> None: ...
    # the render's before/after pictures: {"stills": [{"label", "before", "after"}]}
    def gaze(self, job_id: str, record: dict[str, Any]) -> None: ...
    def completed(self, job_id: str, parts: int) -> None: ...
    def cancel_requested(self, job_id: str) -> bool: ...


def parts_prefix(job_id: str) -> str:
    return f"{job_id}/parts"


class Renderer:
    """Renders jobs; one per process, shared by its render threads."""

    def __init__(self, settings: Settings, objects: Objects, stopping: threading.Event) -> None:
        self.settings = settings
        self.objects = objects
        self.stopping = stopping
        self._face_model: bytes | None = None

    def render(
        self,
        job: dict[str, Any],
        done: Collection[int],
        report: RenderReport,
        *,
        record_part: Callable[[str, RenderedPart, dict[str, Any] | None], None] | None = None,
        should_stop_too: Callable[[], bool] | None = None,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        """Render the parts of `job` not in `done`; raises RenderStopped /
        TranscriptionStopped when stopped (shutdown, cancel, a lost lease).

        record_part (default: store it and report it) is called as each part finishes,
        with the part's eye-contact report (None without eye contact)."""
        job_id = job["id"]
        prefix = parts_prefix(job_id)
        if record_part is None:
            def record_part(job_id: str, part: RenderedPart, gaze: dict[str, Any] | None) -> None:
                report.part(job_id, self.store_part(prefix, part, gaze))
        watch = _RenderWatch(self, report, job_id, float(job["progress"] or 0), should_stop_too, progress_interval)
        try:
            self._render(job, done, report, record_part, watch)
        finally:
            self.objects.drop_work(job_id)  # scratch space, when storage is remote

    def _render(self, job: dict[str, Any], done: Collection[int], report: RenderReport,
                record_part: Callable[[str, RenderedPart, dict[str, Any] | None], None],
                watch: _RenderWatch) -> None:  # fmt: skip
        job_id = job["id"]
        prefix = parts_prefix(job_id)
        with self.objects.local_copy(job["source_path"]) as source:
            words = self._transcript(job, source, watch, report)
            started = time.monotonic()
            plan = self._plan(job, source, report, words)
            metrics.PROCESSING_SECONDS.labels("planning").observe(time.monotonic() - started)
            out_dir = self.objects.work_dir(prefix)
            if words is not None:
                self._write_subtitles(prefix, out_dir, plan, words)
            report.stage(job_id, "rendering")
            gaze = self._gaze_corrector(job)
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
                # the part's own eye-contact figures go with its row: a restart keeps
                # them with the part, a recut replaces them with the part
                record_part(job_id, part, gaze.part_report(part.index) if gaze is not None else None)
                count = round(part.duration * plan.rate)
                frames += count
                report.frames(job_id, count)

            started = time.monotonic()
            try:
                render_parts(
                    source, plan.parts, out_dir, options, skip=set(done),
                    on_progress=watch.progress, on_part=finished_part, should_stop=watch.should_stop,
                )  # fmt: skip
                if gaze is not None:
                    report.gaze(job_id, {"stills": self._store_stills(prefix, gaze)})
            finally:
                if gaze is not None:
                    gaze.close()
        seconds = time.monotonic() - started
        metrics.PROCESSING_SECONDS.labels("rendering").observe(seconds)
        if frames:
            metrics.RENDER_FPS.observe(frames / seconds)
        report.completed(job_id, len(plan.parts))

    # --- the steps ----------------------------------------------------------------

    def store_part(self, prefix: str, part: RenderedPart, gaze: dict[str, Any] | None = None) -> dict[str, Any]:
        """Hand the part's files to storage (the video last: once its row exists, the
        thumbnail and subtitles beside it do too) and return its segment row, with the
        part's eye-contact report when eye contact was on."""
        thumbnail = None
        if part.thumbnail is not None:
            thumbnail = f"{prefix}/{part.thumbnail.name}"
            self.objects.put(thumbnail, part.thumbnail)
        key = f"{prefix}/{part.path.name}"
        self.objects.put(key, part.path)
        return {
            "idx": part.index,
            "start_seconds": float(part.start),
            "end_seconds": float(part.end),
            "duration_seconds": float(part.duration),
            "path": key,
            "size_bytes": part.size_bytes,
            "width": part.width,
            "height": part.height,
            "has_audio": True,  # every part carries AAC; silence where the source had none
            "thumbnail_path": thumbnail,
            "gaze": gaze,
        }

    def _store_stills(self, prefix: str, gaze: GazeCorrector) -> list[dict[str, str]]:
        folder = self.objects.work_dir(f"{prefix}/gaze")
        try:
            stills = gaze.save_stills(folder)
            for still in stills:
                for name in (still["before"], still["after"]):
                    self.objects.put(f"{prefix}/gaze/{name}", folder / name)
        except OSError:
            log.exception("eye-contact stills could not be written")
            return []
        return stills

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

    def _transcript(self, job: dict[str, Any], source: Path, watch: _RenderWatch,
                    report: RenderReport) -> list[Word] | None:  # fmt: skip
        """The job's words when it wants captions: transcribed once and stored, so a
        retry or a restart mid-render reads them back. None when captions are off."""
        if not job["options"].get("captions"):
            return None
        if job.get("transcript") is not None:
            return [Word.from_json(w) for w in job["transcript"]["words"]]
        job_id = job["id"]
        report.stage(job_id, "transcribing")
        started = time.monotonic()
        result = transcribe(source, should_stop=watch.should_stop)
        metrics.PROCESSING_SECONDS.labels("transcribing").observe(time.monotonic() - started)
        record = {"language": result.language, "words": [w.to_json() for w in result.words]}
        report.transcript(job_id, record)
        log.info("job %s: %d words transcribed in %.1f s", job_id, len(result.words), time.monotonic() - started)
        return result.words

    def _write_subtitles(self, prefix: str, out_dir: Path, plan: Plan, words: list[Word]) -> None:
        """part-NNN.srt and .vtt for every planned part (cheap; written before the parts,
        so a part's subtitles exist by the time its row does)."""
        for part in plan.parts:
            for path in write_subtitles(words, float(part.start), float(part.end), out_dir / part_filename(part.index)):
                self.objects.put(f"{prefix}/{path.name}", path)

    def _plan(self, job: dict[str, Any], source: Path, report: RenderReport, words: list[Word] | None) -> Plan:
        if job["plan"]:
            return Plan.from_json(job["plan"])
        limit = int(job["options"]["segment_seconds"])
        rules = CutRules(limit=Fraction(limit), min_part=Fraction(self.settings.min_part_seconds))
        plan = plan_file(source, rules, words, self.settings.input_limits)
        stored = {"limit_seconds": limit, **plan.to_json()}
        report.plan(job["id"], stored)
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


def gaze_from_parts(record: dict[str, Any] | None, segments: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The job's eye-contact record with its report made from its parts' own reports
    (each part row's "gaze"), so each frame of the video counts once whichever renders
    made its part. Parts recorded before parts kept their own report are covered by
    the record's "earlier" report (migration 0013) while it still describes them;
    otherwise they are left out and the summary says which. None: eye contact was
    never on for this job."""
    figures = [s["gaze"] for s in segments if s.get("gaze")]
    if record is None and not figures:
        return None
    record = {"stills": [], **(record or {})}
    without = [s["idx"] for s in segments if not s.get("gaze")]
    earlier = record.get("earlier") if without else None
    reports = ([earlier] if earlier else []) + figures
    if not reports:
        return record  # nothing rendered yet with figures: what was shown stays
    report = combine_reports(*reports)
    if without and earlier is None:
        report["parts_not_counted"] = without
        numbers = ", ".join(str(i + 1) for i in without)
        report["summary"] += (f" Not counted: part{'s' if len(without) > 1 else ''} {numbers},"
                              " made before eye contact was reported part by part.")  # fmt: skip
    record["report"] = report
    return record


def merge_stills(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    """A render's before/after pictures over the earlier ones, by label: a render that
    made only some parts again (a recut, a resumed render) may have kept fewer, and the
    earlier ones still show this video's eyes before and after."""
    labels = {s["label"] for s in new}
    return [s for s in old if s["label"] not in labels] + new


class _RenderWatch:
    """Throttled progress reports and cancel checks for one render."""

    def __init__(self, renderer: Renderer, report: RenderReport, job_id: str, reached: float = 0.0,
                 should_stop_too: Callable[[], bool] | None = None,
                 interval: float = PROGRESS_INTERVAL) -> None:  # fmt: skip
        self.interval = interval
        self.renderer = renderer
        self.report = report
        self.job_id = job_id
        self.should_stop_too = should_stop_too  # a worker's lost lease
        # A resumed render starts a little before the first part still to do (the seek
        # lands on a keyframe): the progress shown never goes back below what it reached.
        self.reached = reached
        self.last_write = 0.0
        self.last_check = 0.0
        self.cancelled = False
        self.announced_step = int(reached // PROGRESS_EVENT_STEP)  # tenths already sent as job.progress

    def progress(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last_write < self.interval:
            return
        self.last_write = now
        percent = round(min(99.9, max(self.reached, fraction * 100)), 1)
        self.reached = percent
        step = int(percent // PROGRESS_EVENT_STEP)
        announce = step > self.announced_step
        self.announced_step = max(step, self.announced_step)
        self.report.progress(self.job_id, percent, step * PROGRESS_EVENT_STEP if announce else None)

    def should_stop(self) -> bool:
        if self.renderer.stopping.is_set() or self.cancelled:
            return True
        now = time.monotonic()
        if now - self.last_check >= self.interval:
            self.last_check = now
            self.cancelled = self.report.cancel_requested(self.job_id) or bool(
                self.should_stop_too is not None and self.should_stop_too()
            )
        return self.cancelled
