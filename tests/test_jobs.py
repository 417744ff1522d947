"""The job service on its own: state rules, idempotent processing, clean failure."""

import json
import shutil
from pathlib import Path

import pytest

from tests.clips import damage_middle, make_sparse_clip
from vidprod.domain.jobs import JobConflict, JobNotFound, JobService
from vidprod.media.probe import InputLimits, probe
from vidprod.store import Database
from vidprod.store import events as ev
from vidprod.store import jobs as q
from vidprod.store.database import migrations


@pytest.fixture
def service(settings):
    db = Database(settings.database_path)
    db.migrate()
    queued = []
    svc = JobService(db, settings, queued.append)
    svc.queued = queued
    yield svc
    db.close()


def _create(service, clip, tmp_path, name="talk.mp4"):
    staged = tmp_path / f"staged-{name}"
    shutil.copy(clip, staged)
    return service.create_job(staged, name, probe(staged))


def _events(service, job_id):
    return [e["type"] for e in service.db.read(lambda c: ev.list_events(c, job_id))]


def _files(service, job_id):
    parts = service.parts_dir(job_id)
    return sorted(p.name for p in parts.iterdir()) if parts.exists() else []


def test_create_moves_the_upload_and_queues_the_job(service, short_clip, tmp_path):
    job = _create(service, short_clip, tmp_path)
    assert job["state"] == "queued" and service.queued == [job["id"]]
    assert not (tmp_path / "staged-talk.mp4").exists()
    assert service.media_path(job["source_path"]).read_bytes() == short_clip.read_bytes()
    assert _events(service, job["id"]) == ["job.created"]


def test_process_makes_parts_and_running_twice_changes_nothing(service, long_clip, tmp_path):
    job_id = _create(service, long_clip, tmp_path)["id"]
    service.process(job_id)
    first = service.segments(job_id)
    assert [s["idx"] for s in first] == [0, 1, 2]
    assert service.get(job_id)["state"] == "done"
    service.process(job_id)  # a duplicate queue entry after a restart
    assert service.segments(job_id) == first
    assert _files(service, job_id) == [
        "part-001.jpg", "part-001.mp4", "part-002.jpg", "part-002.mp4", "part-003.jpg", "part-003.mp4"
    ]  # fmt: skip
    assert _events(service, job_id).count("segment.ready") == 3


def test_interrupted_job_resumes_without_redoing_finished_parts(service, long_clip, tmp_path):
    job_id = _create(service, long_clip, tmp_path)["id"]
    record = service._record_part

    def record_then_shut_down(job, part, gaze=None):
        record(job, part, gaze)
        service.stopping.set()  # as on SIGTERM: the render stops at the next frame

    service._record_part = record_then_shut_down
    service.process(job_id)
    assert service.get(job_id)["state"] == "processing"  # paused, not failed or cancelled
    assert [s["idx"] for s in service.segments(job_id)] == [0]
    first_part = service.parts_dir(job_id) / "part-001.mp4"
    stamp = first_part.stat().st_mtime_ns

    service.stopping.clear()
    service._record_part = record
    service.process(job_id)
    assert service.get(job_id)["state"] == "done"
    assert [s["idx"] for s in service.segments(job_id)] == [0, 1, 2]
    assert first_part.stat().st_mtime_ns == stamp  # not re-encoded
    assert service.get(job_id)["attempts"] == 2


def test_progress_never_goes_back_after_a_resume(service, long_clip, tmp_path, monkeypatch):
    monkeypatch.setattr("vidprod.domain.jobs.PROGRESS_INTERVAL", 0)  # every frame's progress is written
    job_id = _create(service, long_clip, tmp_path)["id"]
    record = service._record_part

    def record_then_shut_down(job, part, gaze=None):
        record(job, part, gaze)
        service.stopping.set()

    service._record_part = record_then_shut_down
    service.process(job_id)
    reached = service.get(job_id)["progress"]
    assert 30 < reached < 50  # the first of three parts
    written = []
    update = q.update_job
    monkeypatch.setattr(q, "update_job", lambda conn, i, **changes: (
        written.append(changes["progress"]) if "progress" in changes else None, update(conn, i, **changes)))
    service.stopping.clear()
    service._record_part = record
    service.process(job_id)
    assert written and written[-1] == 100
    assert min(written) >= reached, "the resumed render starts before the part it redoes, the bar must not"
    assert written == sorted(written)


def test_cancel_a_queued_job(service, short_clip, tmp_path):
    job_id = _create(service, short_clip, tmp_path)["id"]
    assert service.cancel(job_id)["state"] == "cancelled"
    service.process(job_id)  # the queue entry runs later and must do nothing
    assert service.get(job_id)["state"] == "cancelled"
    assert _files(service, job_id) == []


def test_cancel_requested_while_running_removes_outputs(service, long_clip, tmp_path):
    job_id = _create(service, long_clip, tmp_path)["id"]
    original = service._record_part

    def cancel_after_first(job, part, gaze=None):
        original(job, part, gaze)
        service.cancel(job)

    service._record_part = cancel_after_first
    service.process(job_id)
    job = service.get(job_id)
    assert job["state"] == "cancelled" and not job["cancel_requested"]
    assert service.segments(job_id) == []
    assert _files(service, job_id) == []
    assert _events(service, job_id)[-1] == "job.cancelled"


def test_failure_records_the_reason_and_leaves_no_parts(service, long_clip, tmp_path):
    job = _create(service, long_clip, tmp_path)
    source = service.media_path(job["source_path"])
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 3])  # disk went bad
    service.process(job["id"])
    failed = service.get(job["id"])
    assert failed["state"] == "failed"
    assert "damaged" in failed["error"]
    assert service.segments(job["id"]) == [] and _files(service, job["id"]) == []
    assert _events(service, job["id"])[-1] == "job.failed"


def test_retry_after_failure_runs_again_from_the_source(service, long_clip, tmp_path):
    job = _create(service, long_clip, tmp_path)
    source = service.media_path(job["source_path"])
    good = source.read_bytes()
    source.write_bytes(b"broken")
    service.process(job["id"])
    assert service.get(job["id"])["state"] == "failed"
    source.write_bytes(good)
    retried = service.retry(job["id"])
    assert retried["state"] == "queued" and retried["error"] is None
    assert service.queued[-1] == job["id"]
    service.process(job["id"])
    assert service.get(job["id"])["state"] == "done"
    assert len(service.segments(job["id"])) == 3


@pytest.mark.parametrize(("state", "action"), [
    ("done", "cancel"), ("failed", "cancel"), ("cancelled", "cancel"),
    ("queued", "retry"), ("processing", "retry"), ("done", "retry"),
    ("processing", "delete"),
])  # fmt: skip
def test_invalid_transitions_are_conflicts(service, short_clip, tmp_path, state, action):
    job_id = _create(service, short_clip, tmp_path)["id"]
    service.db.write(lambda c: q.update_job(c, job_id, state=state))
    with pytest.raises(JobConflict):
        getattr(service, action)(job_id)


def test_delete_removes_files_and_rows(service, short_clip, tmp_path):
    job_id = _create(service, short_clip, tmp_path)["id"]
    service.process(job_id)
    service.delete(job_id)
    assert not service.job_dir(job_id).exists()
    with pytest.raises(JobNotFound):
        service.get(job_id)
    assert _events(service, job_id) == ["job.deleted"]


def test_unknown_job(service):
    for action in (service.get, service.cancel, service.retry, service.delete):
        with pytest.raises(JobNotFound):
            action("nope")


def test_a_job_the_process_keeps_dying_under_fails_after_three_starts(service, short_clip, tmp_path):
    job_id = _create(service, short_clip, tmp_path)["id"]
    for start in (1, 2):
        service.db.write(lambda c: JobService._claim(c, job_id))  # running when the process was killed
        assert service.recover() == [job_id], f"start {start}: run again"
        assert service.get(job_id)["crashes"] == start
    # A pause at shutdown is no crash: the render ends and clears the mark itself.
    service.stopping.set()
    service.process(job_id)
    service.stopping.clear()
    assert service.recover() == [job_id] and service.get(job_id)["crashes"] == 2

    service.db.write(lambda c: JobService._claim(c, job_id))
    assert service.recover() == []
    job = service.get(job_id)
    assert job["state"] == "failed" and job["finished_at"]
    assert job["error"].startswith("This video stopped the server 3 times while it was being processed")
    assert "more memory" in job["error"]
    assert _events(service, job_id)[-1] == "job.failed"

    assert service.retry(job_id)["state"] == "queued"
    assert service.get(job_id)["crashes"] == 0, "a retry by the creator starts the count again"


def test_a_source_past_the_limits_fails_at_planning_with_the_reason(service, tmp_path):
    # A file that got past the upload's probe (accepted under other limits): a picture
    # that stays 69 s would once have made a part longer than the 10 s limit.
    staged = make_sparse_clip(tmp_path / "gap.mp4", [0, 1, 70])
    lenient = InputLimits(max_frame_gap=100)
    job_id = service.create_job(staged, "gap.mp4", probe(staged, lenient))["id"]
    service.process(job_id)
    job = service.get(job_id)
    assert job["state"] == "failed", job
    assert "The video has no picture for 69.0 s (from 1.0 s to 70.0 s)" in job["error"]
    assert service.segments(job_id) == [] and _files(service, job_id) == []


def test_a_file_damaged_mid_way_fails_with_a_plain_sentence(service, long_clip, tmp_path):
    job = _create(service, long_clip, tmp_path)
    source = service.media_path(job["source_path"])
    damage_middle(source, source)  # the disk went bad after the upload was checked
    service.process(job["id"])
    failed = service.get(job["id"])
    assert failed["state"] == "failed"
    assert "The file is damaged at about" in failed["error"] and "Export or copy it again" in failed["error"]
    assert "Errno" not in failed["error"] and "avcodec" not in failed["error"]
    assert service.segments(job["id"]) == [] and _files(service, job["id"]) == []


# --- cuts the creator moves (issue 21) ---------------------------------------------


@pytest.fixture(scope="module")
def many_pauses(tmp_path_factory) -> Path:
    """32 s of speech-like sound with seven pauses: more pauses than a 10 s plan cuts at."""
    from tests.clips import make_clip

    pauses = ((4.0, 0.5), (7.2, 0.45), (11.5, 0.5), (15.6, 0.6), (20.0, 0.5), (24.1, 0.5), (28.0, 0.5))
    return make_clip(tmp_path_factory.mktemp("pauses") / "pauses.mp4", seconds=32, audio="speech", pauses=pauses)


def _hashes(service, job_id):
    import hashlib

    return [hashlib.sha256(service.media_path(s["path"]).read_bytes()).hexdigest() for s in service.segments(job_id)]


def test_moving_joining_and_splitting_cuts_makes_again_only_the_parts_that_change(service, many_pauses, tmp_path):
    from vidprod.media.cuts import CutError

    job_id = _create(service, many_pauses, tmp_path)["id"]
    service.process(job_id)
    job = service.get(job_id)
    cuts = [p["end_seconds"] for p in job["plan"]["parts"][:-1]]
    pauses = job["plan"]["pause_seconds"]
    assert len(cuts) >= 3 and len(pauses) >= 6
    before = _hashes(service, job_id)

    # move the second cut to another pause between its neighbours
    other = next(t for t in pauses if cuts[0] + 3 <= t <= cuts[2] - 3 and t != cuts[1])
    moved = service.recut(job_id, [cuts[0], other, *cuts[2:]])
    assert moved["state"] == "queued" and service.queued[-1] == job_id
    service.process(job_id)
    after = _hashes(service, job_id)
    assert service.get(job_id)["state"] == "done" and len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed == [1, 2], "only the two parts either side of the moved cut are made again"
    assert _events(service, job_id).count("job.recut") == 1

    # join parts 1 and 2: the parts after them keep their bytes under their new numbers
    service.recut(job_id, [other, *cuts[2:]])
    service.process(job_id)
    joined = _hashes(service, job_id)
    assert len(joined) == len(after) - 1
    assert joined[0] not in after and joined[1:] == after[2:]
    assert _files(service, job_id)[-1] == f"part-{len(joined):03d}.mp4"  # no stale last file

    # split the first part at a pause inside it
    inside = next(t for t in pauses if 3 <= t <= other - 3)
    service.recut(job_id, [inside, other, *cuts[2:]])
    service.process(job_id)
    split = _hashes(service, job_id)
    assert len(split) == len(joined) + 1 and split[2:] == joined[1:]
    assert [round(s["end_seconds"], 3) for s in service.segments(job_id)][:2] == [round(inside, 3), round(other, 3)]

    # what cannot be: a cut where no pause is, a part under 3 s, a job that is not done
    with pytest.raises(CutError, match="is not one of this video's pauses"):
        service.recut(job_id, [inside + 0.5])
    near = [t for t in pauses if t > inside][:1]
    if near and near[0] - inside < 3:
        with pytest.raises(CutError, match="a part lasts at least 3 s"):
            service.recut(job_id, [inside, near[0]])
    service.recut(job_id, [other, *cuts[2:]])
    with pytest.raises(JobConflict, match="cuts can be moved once its parts are made"):
        service.recut(job_id, [inside, other])


def _gaze_report(service, job_id):
    job = service.get(job_id)
    assert job["state"] == "done", job["error"]
    return job["gaze"]["report"]


def test_moving_a_cut_leaves_the_eye_contact_report_at_the_frames_the_video_has(service, many_pauses, tmp_path):
    """Issue 19: after a cut moved, the frames of the two parts made again were added to
    the report of the whole video ("... of 1340 frames" for a 960-frame video). The
    report is the sum of each part's own figures; a recut replaces those of the parts it
    makes again. (No face in this clip: every frame is counted as left alone.)"""
    staged = tmp_path / "staged.mp4"
    shutil.copy(many_pauses, staged)
    job_id = service.create_job(staged, "talk.mp4", probe(staged), options={"gaze": True, "gaze_strength": 1.0})["id"]
    service.process(job_id)
    frames = 32 * 30
    first = _gaze_report(service, job_id)
    assert first["frames_seen"] == frames
    assert first["frames_corrected"] + sum(first["skipped"].values()) == frames
    job = service.get(job_id)
    cuts = [p["end_seconds"] for p in job["plan"]["parts"][:-1]]
    other = next(t for t in job["plan"]["pause_seconds"] if cuts[0] + 3 <= t <= cuts[2] - 3 and t != cuts[1])

    service.recut(job_id, [cuts[0], other, *cuts[2:]])
    service.process(job_id)
    moved = _gaze_report(service, job_id)
    assert moved["frames_seen"] == frames, "the parts made again are counted once"
    assert moved["frames_corrected"] + sum(moved["skipped"].values()) == frames
    assert moved["summary"] == first["summary"]
    # each part keeps its own figures: the frames of its span
    segments = service.segments(job_id)
    assert [s["gaze"]["frames_seen"] for s in segments] == [round(s["duration_seconds"] * 30) for s in segments]


def _with_gaze(service, clip, tmp_path):
    staged = tmp_path / "staged.mp4"
    shutil.copy(clip, staged)
    return service.create_job(staged, "talk.mp4", probe(staged), options={"gaze": True, "gaze_strength": 1.0})["id"]


def _stop_after_first_part(service):
    record = service._record_part

    def record_then_shut_down(job, part, gaze=None):
        record(job, part, gaze)
        service.stopping.set()

    service._record_part = record_then_shut_down
    return record


def test_a_resumed_render_adds_the_parts_it_finishes_to_the_eye_contact_report(service, long_clip, tmp_path):
    job_id = _with_gaze(service, long_clip, tmp_path)
    record = _stop_after_first_part(service)
    service.process(job_id)
    [part] = service.segments(job_id)
    paused = service.get(job_id)["gaze"]["report"]
    assert paused["frames_seen"] == part["gaze"]["frames_seen"] == round(part["duration_seconds"] * 30)

    service.stopping.clear()
    service._record_part = record
    service.process(job_id)
    assert _gaze_report(service, job_id)["frames_seen"] == 25 * 30
    assert service.segments(job_id)[0]["gaze"] == part["gaze"], "the finished part keeps its figures"


def test_a_job_reported_before_parts_kept_their_figures(service, long_clip, tmp_path):
    """Migration 0013 keeps a job's report from before as "earlier": the report of the
    parts without figures of their own. A resumed render adds its parts to it; a recut
    that makes one of those parts again cannot split it, so the parts kept are named as
    not counted instead of counted twice."""
    job_id = _with_gaze(service, long_clip, tmp_path)
    record = _stop_after_first_part(service)
    service.process(job_id)

    def as_before_0013():
        """The rows as a render before 0013 left them, then that migration's update."""
        job, segments = service.get(job_id), service.segments(job_id)
        old = {"report": job["gaze"]["report"], "stills": job["gaze"]["stills"]}
        sql = dict(migrations())[13]
        service.db.write(lambda conn: (
            [q.upsert_segment(conn, job_id, {**s, "gaze": None}) for s in segments],
            conn.execute("UPDATE jobs SET gaze = ? WHERE id = ?", (json.dumps(old), job_id)),
            conn.execute(sql[sql.index("UPDATE jobs"):]),
        ))  # fmt: skip

    as_before_0013()
    service.stopping.clear()
    service._record_part = record
    service.process(job_id)
    assert _gaze_report(service, job_id)["frames_seen"] == 25 * 30, "the earlier report and the new parts"

    as_before_0013()
    assert _gaze_report(service, job_id)["frames_seen"] == 25 * 30  # shown as it was
    cuts = [p["end_seconds"] for p in service.get(job_id)["plan"]["parts"][:-1]]
    service.recut(job_id, cuts[1:])  # parts 1 and 2 become one, part 3 is kept as part 2
    service.process(job_id)
    report = _gaze_report(service, job_id)
    joined = service.segments(job_id)[0]
    assert report["frames_seen"] == round(joined["duration_seconds"] * 30)
    assert report["parts_not_counted"] == [1]
    assert report["summary"].endswith("Not counted: part 2, made before eye contact was reported part by part.")


def test_a_report_from_a_worker_of_before_parts_kept_their_figures_is_shown_as_sent(service, short_clip, tmp_path):
    """During a deploy a worker of the version before may finish a render: it sends no
    part figures and the job's whole report, which is kept as it came."""
    job_id = _with_gaze(service, short_clip, tmp_path)
    segment = {"idx": 0, "start_seconds": 0.0, "end_seconds": 4.0, "duration_seconds": 4.0, "size_bytes": 10,
               "path": f"{job_id}/parts/part-001.mp4", "width": 360, "height": 640, "has_audio": True}  # fmt: skip
    service.report.part(job_id, segment)
    sent = {"frames_seen": 120, "frames_corrected": 100, "skipped": {"blink": 20},
            "summary": "Eyes raised by about 5° on 100 of 120 frames."}  # fmt: skip
    service.report.gaze(job_id, {"report": sent, "stills": [{"label": "first", "before": "b.png", "after": "a.png"}]})
    record = service.get(job_id)["gaze"]
    assert record["report"] == sent and record["stills"][0]["label"] == "first"
    service.report.gaze(job_id, {"stills": [{"label": "strongest", "before": "c.png", "after": "d.png"}]})
    stills = service.get(job_id)["gaze"]["stills"]
    assert [s["label"] for s in stills] == ["first", "strongest"], "pictures add up by label"


def test_joining_parts_of_a_captioned_video_moves_their_subtitles_and_leaves_none_stale(service, many_pauses, tmp_path):
    """Subtitle files follow their part when cuts move, like the part and its thumbnail:
    a kept part renumbered serves its own words at once, and the last number, gone
    after a join, leaves no .srt or .vtt behind."""
    staged = tmp_path / "staged.mp4"
    shutil.copy(many_pauses, staged)
    job_id = service.create_job(staged, "talk.mp4", probe(staged), options={"captions": True})["id"]
    # the words as a transcription would store them: one a second, none in the pauses
    words = [{"word": f"word{i}", "start": i + 0.05, "end": i + 0.3, "confidence": 0.9} for i in range(32)]
    service.db.write(lambda conn: q.update_job(conn, job_id, transcript={"language": "en", "words": words}))
    service.process(job_id)
    job = service.get(job_id)
    assert job["state"] == "done", job["error"]
    count = len(job["plan"]["parts"])
    assert count >= 4
    subtitles = {name: (service.parts_dir(job_id) / name).read_text() for name in _files(service, job_id)
                 if name.endswith((".srt", ".vtt"))}  # fmt: skip
    assert len(subtitles) == 2 * count

    cuts = [p["end_seconds"] for p in job["plan"]["parts"][:-1]]
    service.recut(job_id, cuts[1:])  # parts 1 and 2 become one; the others move down a number
    for new in range(1, count - 1):
        for kind in ("srt", "vtt"):
            moved = (service.parts_dir(job_id) / f"part-{new + 1:03d}.{kind}").read_text()
            assert moved == subtitles[f"part-{new + 2:03d}.{kind}"], "a renumbered part keeps its own words"
    service.process(job_id)
    assert service.get(job_id)["state"] == "done"
    assert _files(service, job_id) == sorted(
        f"part-{i:03d}.{kind}" for i in range(1, count) for kind in ("mp4", "jpg", "srt", "vtt")
    ), "nothing of the part number that is gone"
    assert (service.parts_dir(job_id) / "part-001.srt").read_text() != subtitles["part-001.srt"]
