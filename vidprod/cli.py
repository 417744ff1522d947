"""Command line: `vidprod serve`, `vidprod process FILE -o DIR`, `vidprod gaze-eval DIR -o OUT`,
`vidprod migrate`, `vidprod check`."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vidprod import logs
from vidprod.config import ConfigError, Settings

log = logging.getLogger("vidprod")


def _settings_epilog() -> str:
    lines = ["settings (environment variables):"]
    for name, default, doc in Settings.describe():
        lines.append(f"  {name:<26} {doc} (default: {default})")
    return "\n".join(lines)


def _number_from(low: float, high: float, unit: str = "a number") -> Callable[[str], float]:
    """An argparse type: a number from low to high (nan refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {unit} from {low:g} to {high:g}")
        return value

    return parse


_strength = _number_from(0, 1)
_notes_below = _number_from(0, 30, "a number of degrees")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidprod",
        description="Turn one talking-head phone video into ready-to-post short videos.",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web app, API and worker in one process")
    serve.add_argument("--host", help="bind address (default: VIDPROD_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: VIDPROD_PORT or 8000)")

    process = commands.add_parser("process", help="cut one video into parts, without the server")
    process.add_argument("file", type=Path, help="the video to process")
    process.add_argument("-o", "--output", type=Path, required=True, help="folder for the parts")
    process.add_argument("--segment-seconds", type=int, help="longest part in seconds")
    process.add_argument("--landscape", choices=["blur", "crop", "keep"],
                         help="how landscape video fills 9:16 (default: VIDPROD_LANDSCAPE or blur)")
    process.add_argument("--gaze", action=argparse.BooleanOptionalAction, default=None,
                         help="eye-contact correction (default: VIDPROD_GAZE)")
    process.add_argument("--gaze-strength", type=_strength, metavar="X",
                         help="eye-contact strength 0-1 (default: VIDPROD_GAZE_STRENGTH)")
    process.add_argument("--notes-below-degrees", type=_notes_below, metavar="DEG",
                         help="how far below the lens the notes sat, 0-30 degrees (default: measured)")
    process.add_argument("--captions", action="store_true",
                         help="transcribe the speech and write part-NNN.srt and part-NNN.vtt beside each part")

    gaze_eval = commands.add_parser(
        "gaze-eval", help="measure eye-contact correction on every clip in a folder")
    gaze_eval.add_argument("folder", type=Path, help="folder of video clips")
    gaze_eval.add_argument("-o", "--output", type=Path, required=True,
                           help="folder for the JSON results and contact sheets")
    gaze_eval.add_argument("--strength", type=_strength, help="strength 0-1 (default: VIDPROD_GAZE_STRENGTH)")
    gaze_eval.add_argument("--notes-below-degrees", type=_notes_below, metavar="DEG",
                           help="how far below the lens the notes sat, 0-30 degrees (default: measured)")

    commands.add_parser(
        "worker", help="render jobs from the Redis queue (VIDPROD_QUEUE_URL) with media in"
        " S3-compatible storage (VIDPROD_STORAGE_URL); holds no database")
    commands.add_parser("migrate", help="create or upgrade the database, then exit")
    commands.add_parser("check", help="prove the native libraries load (video codecs, MediaPipe), then exit")
    return parser


def return_freed_memory_to_the_system() -> None:
    """Keep glibc from hoarding freed frame buffers.

    glibc raises its mmap threshold each time a large block is freed, after which video
    frames and encoder buffers come from a heap that fragments and never shrinks: a
    long-running server then grows by 20-30 MB a job (measured: peaks of 340, 362, 374 MB
    over three 1080p jobs, 170 MB when idle). A fixed threshold keeps large blocks mapped
    on their own and unmapped when freed: 340 MB every job, 98 MB idle."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return_freed_memory_to_the_system()
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"vidprod: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command in ("serve", "migrate"):
        # The data dir holds the admin token, the key sealing accounts' tokens and the
        # database: files 0600, folders 0700, whatever the volume's defaults.
        os.umask(0o077)
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "process":
        return _process(settings, args)
    if args.command == "gaze-eval":
        return _gaze_eval(settings, args)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "worker":
        return _worker(settings)
    if args.command == "check":
        return _check(settings)
    return 2


def _check(settings: Settings) -> int:
    from vidprod.media.faces import face_model_bytes
    from vidprod.media.selfcheck import check_native_libraries

    try:
        print(check_native_libraries(face_model_bytes(settings.face_model)))
    except Exception as exc:  # any failure to load is the answer, said plainly
        print(f"vidprod: native libraries do not load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _worker(settings: Settings) -> int:
    import shutil
    import signal
    import threading

    from vidprod.store.objects import open_objects
    from vidprod.worker.remote import RenderWorker

    if not (settings.queue_url and settings.storage_url):
        print("vidprod: a worker needs VIDPROD_QUEUE_URL (redis://...) and VIDPROD_STORAGE_URL"
              " (s3://...): it shares the queue and the media with the primary", file=sys.stderr)
        return 2
    # Everything in scratch belonged to renders of a previous run of this worker, which
    # are resumed elsewhere from their last stored part.
    shutil.rmtree(settings.scratch_dir, ignore_errors=True)
    objects = open_objects(settings.storage_url, settings.media_dir, settings.scratch_dir)
    worker = RenderWorker(settings, objects)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    worker.start()
    while not done.wait(1.0):
        if settings.idle_exit_seconds and worker.idle_for() >= settings.idle_exit_seconds:
            log.info("nothing to render for %d s: stopping", settings.idle_exit_seconds)
            break
    worker.stop()  # a render in progress stops at the next frame and lets go of its lease
    shutil.rmtree(settings.scratch_dir, ignore_errors=True)
    return 0


def _migrate(settings: Settings) -> int:
    from vidprod.store import Database

    if settings.is_replica:  # a LiteFS replica's database is read-only: the primary migrates
        log.info("database %s: a LiteFS replica, nothing to migrate here", settings.database_path)
        return 0
    db = Database(settings.database_path)
    applied = db.migrate()
    log.info("database %s: schema version %d (%d migration(s) applied)",
             settings.database_path, db.schema_version(), len(applied))
    db.close()
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from vidprod.web.app import create_app
    from vidprod.web.auth import load_or_create_admin_token

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = Settings(**{**settings.__dict__, **overrides})
    _token, created = load_or_create_admin_token(settings)
    app = create_app(settings)
    log.info("vidprod is running on http://%s:%d; data in %s", settings.host, settings.port,
             settings.data_dir.resolve())
    if created:  # never the token itself: logs are shipped and kept elsewhere
        log.info("generated an admin token: it is in %s (readable by this user only)",
                 (settings.data_dir / "admin_token").resolve())
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,  # one process: the worker threads live in it
        lifespan="on",
        timeout_graceful_shutdown=5,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's records go through our handler (JSON on Fly)
        access_log=False,
    )
    def end_live_streams() -> None:
        live = getattr(app.state, "live", None)
        if live is not None:
            live.close()

    _graceful_server_class()(config, on_exit=end_live_streams).run()
    return 0


def _graceful_server_class():  # uvicorn is imported lazily: `process` does not need it
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Exit with status 0 once a SIGTERM/SIGINT shutdown has completed, and end the
        live event streams as soon as it starts.

        uvicorn re-raises the signal after its graceful shutdown, so the process would
        report death by signal although every job reached a checkpoint; a second
        SIGINT still forces an immediate exit."""

        def __init__(self, config, on_exit):  # type: ignore[no-untyped-def]
            super().__init__(config)
            self.on_exit = on_exit

        def handle_exit(self, sig, frame):  # type: ignore[no-untyped-def]
            super().handle_exit(sig, frame)
            self._captured_signals.clear()
            self.on_exit()  # open event streams would hold the shutdown otherwise

    return GracefulServer


class _Speed:
    """A rich progress column: seconds of video handled per second, as a multiple of real time."""

    def __new__(cls):  # type: ignore[no-untyped-def]
        from rich.progress import ProgressColumn
        from rich.text import Text

        class Speed(ProgressColumn):
            def render(self, task):  # type: ignore[no-untyped-def]
                speed = task.finished_speed or task.speed
                return Text("" if task.total is None or not speed else f"{speed:.2g}× real time")

        return Speed()


class StageProgress:
    """`vidprod process`'s progress on stderr: in a terminal a rich bar with the stage,
    percent, speed (as a multiple of real time) and time left; elsewhere (a pipe, a log)
    one plain line as each stage starts and each time another tenth of it is done.
    rich keeps the speed and time-left estimates in both cases."""

    def __init__(self, stream=None) -> None:  # type: ignore[no-untyped-def]
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.console = Console(file=stream or sys.stderr)
        self.live = self.console.is_terminal
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), _Speed(),
                            TimeRemainingColumn(), console=self.console, disable=not self.live)  # fmt: skip
        self.task: TaskID | None = None
        self.tenths = 0

    def __enter__(self) -> StageProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
        self.bar.stop()

    def stage(self, name: str, seconds: float | None = None) -> None:
        """A new stage; with `seconds` (of video to go through) it has a bar, else a pulse."""
        self.finish()
        self.task = self.bar.add_task(name, total=seconds)
        self.tenths = 0
        if not self.live:
            self._say(f"{name}…")

    def reached(self, seconds: float) -> None:
        if self.task is None:
            return
        self.bar.update(self.task, completed=seconds)
        task = self.bar.tasks[self.task]
        if self.live or not task.total:
            return
        tenths = int(10 * min(seconds / task.total, 1.0))
        if tenths > self.tenths and tenths < 10:
            self.tenths = tenths
            speed, left = task.speed, task.time_remaining
            self._say(f"{task.description}: {tenths * 10} %"
                      + (f", {speed:.2g}× real time" if speed else "")
                      + (f", {left:.0f} s left" if left is not None else ""))

    def finish(self) -> None:
        if self.task is None:
            return
        task = self.bar.tasks[self.task]
        self.bar.update(self.task, total=task.total or 1, completed=task.total or 1)
        if not self.live:
            self._say(f"{task.description}: done in {task.finished_time or task.elapsed or 0:.1f} s")
        self.task = None

    def _say(self, line: str) -> None:
        print(line, file=self.console.file, flush=True)


def _process(settings: Settings, args: argparse.Namespace) -> int:
    with StageProgress() as progress:
        return _process_with(settings, args, progress)


def _process_with(settings: Settings, args: argparse.Namespace, progress: StageProgress) -> int:
    from fractions import Fraction

    from vidprod.media.cuts import CutRules, plan_file
    from vidprod.media.faces import FaceModelError, face_model_bytes
    from vidprod.media.probe import InvalidMedia, probe
    from vidprod.media.burnin import CaptionBurner
    from vidprod.media.render import RenderOptions, render_parts

    words = None
    try:
        info = probe(args.file, settings.input_limits)
        if args.captions:
            from vidprod.media.speech import TranscriptionError, transcribe

            progress.stage("Transcribing the speech")
            try:
                words = transcribe(args.file).words
            except TranscriptionError as exc:
                progress.finish()
                print(f"vidprod: {args.file}: {exc}", file=sys.stderr)
                return 1
            print(f"{args.file}: {len(words)} words transcribed")
        limit = args.segment_seconds or settings.segment_seconds
        rules = CutRules(limit=Fraction(limit), min_part=Fraction(settings.min_part_seconds))
        progress.stage("Finding the natural pauses")
        plan = plan_file(args.file, rules, words, settings.input_limits)
    except (InvalidMedia, FileNotFoundError) as exc:
        progress.finish()
        print(f"vidprod: {args.file}: {exc}", file=sys.stderr)
        return 1
    progress.finish()
    print(f"{args.file}: {info.width}x{info.height}, {info.duration:.2f} s"
          f" -> {len(plan.parts)} part(s) at {float(plan.rate):.3g} fps")
    try:
        model: bytes | None = face_model_bytes(settings.face_model)
    except (FaceModelError, OSError) as exc:
        print(f"vidprod: face model unavailable ({exc}); thumbnails without face checks",
              file=sys.stderr)
        model = None
    gaze = None
    strength = settings.gaze_strength if args.gaze_strength is None else args.gaze_strength
    if (settings.gaze if args.gaze is None else args.gaze) and strength > 0:
        if model is None:
            print("vidprod: eye contact needs the face model", file=sys.stderr)
            return 1
        from vidprod.media.gaze import GazeCorrector, GazeSettings

        # MediaPipe in a child process, as in the server: its landmarks run beside the
        # encoder, and its native log lines stay out of the terminal.
        gaze = GazeCorrector(model, GazeSettings(strength=strength, notes_below_degrees=args.notes_below_degrees,
                                                 landmark_interval=settings.gaze_landmark_interval),
                             child=True)  # fmt: skip
    options = RenderOptions(
        rate=plan.rate,
        landscape=args.landscape or settings.landscape,
        size=settings.output_size,
        face_model=model,
        frame_hook=gaze,
        overlay=None if words is None else CaptionBurner(words),
    )
    count = len(plan.parts)
    progress.stage(f"Rendering {count} part{'s' if count != 1 else ''}"
                   + (" with eye contact" if gaze is not None else ""), info.duration)
    try:
        rendered = render_parts(args.file, plan.parts, args.output, options,
                                on_progress=lambda fraction: progress.reached(fraction * info.duration))
    finally:
        if gaze is not None:
            gaze.close()
    progress.finish()
    if gaze is not None:
        import json

        report = gaze.report()
        stills = gaze.save_stills(args.output / "gaze")
        print(f"eye contact: {report['summary']} (gaze read {report['gaze_degrees']}° from the lens;"
              + (f" stopped: {report['failure']};" if report["failure"] else "")
              + f" {len(stills)} before/after stills in {args.output / 'gaze'})")
        (args.output / "gaze" / "report.json").parent.mkdir(parents=True, exist_ok=True)
        (args.output / "gaze" / "report.json").write_text(json.dumps(report, indent=2))
    if words is not None:
        from vidprod.media.subtitles import write_subtitles

        for part in rendered:
            write_subtitles(words, float(part.start), float(part.end), part.path)
    for planned, part in zip(plan.parts, rendered):
        why = f"{planned.reason}" + (f" ({planned.detail})" if planned.detail else "")
        print(f"  {part.path}  {float(part.start):8.3f}-{float(part.end):8.3f} s"
              f"  {part.width}x{part.height}  {part.size_bytes / 1e6:6.1f} MB  ends at: {why}")
    return 0


def _gaze_eval(settings: Settings, args: argparse.Namespace) -> int:
    from vidprod.media.faces import FaceModelError, face_model_bytes
    from vidprod.media.gaze import GazeSettings
    from vidprod.media.gaze.evaluate import evaluate_dir, misses

    if not args.folder.is_dir():
        print(f"vidprod: {args.folder} is not a folder", file=sys.stderr)
        return 1
    try:
        model = face_model_bytes(settings.face_model)
    except (FaceModelError, OSError) as exc:
        print(f"vidprod: face model unavailable: {exc}", file=sys.stderr)
        return 1
    strength = settings.gaze_strength if args.strength is None else args.strength
    gaze = GazeSettings(strength=strength, notes_below_degrees=args.notes_below_degrees,
                        landmark_interval=settings.gaze_landmark_interval)
    summaries = evaluate_dir(args.folder, args.output, model, gaze)
    missed = [s["clip"] for s in summaries if misses(s)]
    print(f"{len(summaries)} clip(s), {len(missed)} missing a bar{': ' + ', '.join(missed) if missed else ''};"
          f" results in {args.output}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
