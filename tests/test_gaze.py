"""Eye contact on animated public-domain stills (a reader looking below the lens, a
lens-looker), the re-render on its own, the gates, degradation, the wiring into jobs
and `vidprod process`, and real clips where ../shared/testmedia is present."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from tests.conftest import shared_media
from tests.gaze_fixtures import (
    SIZE,
    astronaut_fixture,
    find_points,
    grace_hopper,
    hopper_fixture,
    model,
)
from vidprod.media.gaze import GazeCorrector, GazeSettings, combine_reports
from vidprod.media.gaze.corrector import with_look_ahead
from vidprod.media.gaze.evaluate import clip_frames, evaluate_dir, evaluate_frames
from vidprod.media.gaze.geometry import eye_frames
from vidprod.media.gaze.landmarks import VideoLandmarker
from vidprod.media.gaze.metrics import (
    changed_outside,
    eye_region_mask,
    shift_ratio,
    texture_shift,
)
from vidprod.media.gaze.rerender import EyeEdit, edit_eye
from vidprod.media.planes import plane_views


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
    return tuple(p.copy() for p in plane_views(frame))


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """The astronaut reading notes below the lens, corrected at the default strength."""
    fixture = astronaut_fixture()
    sheet = tmp_path_factory.mktemp("gaze") / "astronaut.png"
    with GazeCorrector(model(), GazeSettings()) as corrector:
        summary = evaluate_frames(fixture.video_frames(), corrector, name="astronaut", sheet=sheet)
    return fixture, summary, sheet


def test_reader_irises_move_by_the_requested_amount(reader):
    fixture, summary, _ = reader
    assert fixture.eye_width >= 40
    report = summary["report"]
    assert report["frames_corrected"] >= 30
    # clearly visible: the lens-looker level is ~3.5° above such a reader
    assert report["mean_correction_degrees"] >= 2.5
    for eye in summary["texture_shift"]["eyes_40px_and_wider"]:
        assert eye is not None and eye["n"] >= 30
        assert eye["min"] >= 0.9
        assert eye["mean"] <= 1.1


def test_reader_locality_blinks_and_look_aways(reader):
    fixture, summary, _ = reader
    assert summary["locality"]["changed_outside_eye_regions"] == 0
    untouched = summary["untouched"]
    assert untouched["blink"]["frames"] == untouched["blink"]["identical"] >= sum(fixture.blink)
    assert untouched["look_away"]["frames"] == untouched["look_away"]["identical"] >= 4


def test_reader_is_stable_and_keeps_iris_size(reader):
    _, summary, sheet = reader
    stability = summary["stability"]
    # the iris track's jitter (RMS second difference, open-eye runs): the output adds
    # only the measured texture displacement, whose measurement noise is ~0.01 px
    assert stability["iris_jitter_out_px"] <= stability["iris_jitter_in_px"] * 1.005
    # a smooth shift: apart from the blink cut-off, which happens while the lid closes
    assert stability["applied_shift_px"]["max"] <= 0.06 * 50
    iris = summary["fidelity"]["iris_radius_ratio"]
    assert iris["n"] >= 30 and 0.97 <= iris["p50"] <= 1.03
    assert 0.85 <= iris["min"] and iris["max"] <= 1.15  # single frames: catchlights fool the edge finder
    assert sheet.is_file() and cv2.imread(str(sheet)).shape[0] > 200


def test_blink_and_look_away_frames_are_bit_identical_frame_by_frame():
    fixture = astronaut_fixture()
    frames = fixture.video_frames()
    with GazeCorrector(model(), GazeSettings(strength=1.0)) as corrector:
        for i, frame in enumerate(frames):
            before = _planes(frame)
            out = corrector(frame)
            identical = all(np.array_equal(a, b) for a, b in zip(before, plane_views(out)))
            if fixture.blink[i] or (fixture.look_away[i] and i >= 48):
                assert identical, f"frame {i} changed ({corrector.last_reason})"


def test_strength_zero_returns_the_same_frames_and_never_starts_landmarks():
    frames = astronaut_fixture().video_frames()[:10]
    corrector = GazeCorrector(model(), GazeSettings(strength=0.0))
    for frame in frames:
        before = _planes(frame)
        assert corrector(frame) is frame
        assert all(np.array_equal(a, b) for a, b in zip(before, plane_views(frame)))
    assert corrector._landmarker is None
    assert corrector.report()["skipped"] == {"strength_0": 10}


def test_a_person_looking_into_the_lens_is_left_bit_identical():
    fixture = hopper_fixture()
    with GazeCorrector(model(), GazeSettings(strength=1.0)) as corrector:
        summary = evaluate_frames(fixture.video_frames(), corrector, name="hopper")
    assert summary["frames"] == 60 and summary["frames_changed"] == 0
    assert summary["report"]["skipped"].get("looking_at_lens", 0) >= 40


@pytest.mark.parametrize("amount", [0.02, 0.03])
def test_rerender_moves_grace_hoppers_irises_cleanly(amount):
    """The re-render alone, asked for a move up on a real photo (0.03 eye widths is
    what the default strength asks for a reader ~4° below the lens)."""
    frame = hopper_fixture().video_frames()[0]
    rgb = frame.to_ndarray(format="rgb24")
    points = find_points(rgb)
    before = _planes(frame)
    y, u, v = plane_views(frame)
    edits = []
    for eye in eye_frames(points):
        assert eye.w >= 40
        opening = np.concatenate([eye.to_image(eye.xs, eye.upper), eye.to_image(eye.xs[::-1], eye.lower[::-1])])
        edit = EyeEdit(opening=opening, iris=eye.iris, r=eye.r, ux=eye.ux, shift=-amount * eye.w * eye.uy)
        assert edit_eye(y, u, v, edit) > 0
        edits.append(edit)
    after = plane_views(frame)
    assert changed_outside(before, after, eye_region_mask(points, y.shape)) == 0
    for edit in edits:
        ratio = shift_ratio(texture_shift(before[0], after[0], edit), edit.shift)
        assert 0.9 <= ratio <= 1.1
    # (no iris-radius check here: on her dark, low-contrast irises the edge finder
    # disagrees with itself by 30 % between the two eyes of the untouched input)


def test_small_eyes_pass_through_untouched():
    frames = []
    for i, rgb in enumerate(astronaut_fixture().frames[:20]):
        small = cv2.resize(rgb, (SIZE[0] // 2, SIZE[1] // 2), interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, 30)
        frames.append(frame)
    with GazeCorrector(model(), GazeSettings(strength=1.0)) as corrector:
        summary = evaluate_frames(frames, corrector)
    assert summary["frames_changed"] == 0
    assert summary["report"]["skipped"] == {"small_eyes": 20}


class _SlowLandmarker:
    def __init__(self, delay: float) -> None:
        self.inner = VideoLandmarker(model())
        self.delay = delay
        self.calls = 0

    def detect(self, rgb, timestamp_ms):  # type: ignore[no-untyped-def]
        self.calls += 1
        time.sleep(self.delay)
        return self.inner.detect(rgb, timestamp_ms)

    def close(self) -> None:
        self.inner.close()


def test_slow_landmarks_degrade_to_every_other_frame_then_off():
    frames = astronaut_fixture().video_frames() + astronaut_fixture().video_frames()
    for i, frame in enumerate(frames):  # two passes, one clock
        frame.pts = i
    slow = _SlowLandmarker(0.03)  # ~38 ms a frame: even halved, over twice the 5 ms budget
    corrector = GazeCorrector(model(), GazeSettings(landmark_budget_ms=5.0), landmarker=slow)
    for frame in frames:
        corrector(frame)
    report = corrector.report()
    modes = [d["mode"] for d in report["degradations"]]
    assert modes == ["alternate", "off"] and report["mode"] == "off"
    assert slow.calls < len(frames)  # every other frame after the first step down
    assert report["skipped"]["landmarks_off"] > 0
    assert "ms a frame" in report["degradations"][0]["why"]
    slow.close()


def test_short_memory_turns_landmarks_off_and_leaves_frames_alone():
    frames = astronaut_fixture().video_frames()[:5]
    corrector = GazeCorrector(model(), GazeSettings(), memory_mb=lambda: 50.0)
    for frame in frames:
        before = _planes(frame)
        assert corrector(frame) is frame
        assert all(np.array_equal(a, b) for a, b in zip(before, plane_views(frame)))
    report = corrector.report()
    assert report["mode"] == "off" and "memory" in report["degradations"][0]["why"]
    assert corrector._landmarker is None


def test_only_the_main_speaker_is_corrected():
    """The astronaut (reading, large, central) and Grace Hopper pasted smaller below:
    only the astronaut's eyes change."""
    small = cv2.resize(grace_hopper(), (480, 562), interpolation=cv2.INTER_AREA)
    frames = []
    for i, rgb in enumerate(astronaut_fixture().frames[:30]):
        canvas = rgb.copy()
        canvas[710:1272, 240:720] = small
        frame = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, 30)
        frames.append(frame)
    changed_big = changed_small = 0
    with GazeCorrector(model(), GazeSettings(strength=1.0)) as corrector:
        for frame in frames:
            before = _planes(frame)[0]
            after = plane_views(corrector(frame))[0]
            diff = before != after
            changed_small += int(diff[710:1272, 240:720].sum())
            changed_big += int(diff[:700].sum())
    assert changed_big > 0 and changed_small == 0, corrector.report()["skipped"]


def test_gaze_eval_writes_json_and_a_contact_sheet(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    astronaut_fixture().write(clips / "astronaut.mp4")
    summaries = evaluate_dir(clips, tmp_path / "out", model(), echo=lambda text: None)
    [summary] = summaries
    assert (tmp_path / "out" / "astronaut.json").is_file()
    assert (tmp_path / "out" / "summary.json").is_file()
    sheet = cv2.imread(str(tmp_path / "out" / "astronaut.png"))
    assert sheet is not None and sheet.shape[1] > 400
    assert summary["locality"]["changed_outside_eye_regions"] == 0
    assert summary["report"]["frames_corrected"] > 20


# --- wiring -------------------------------------------------------------------


def test_upload_fields_parse_into_job_options():
    from litestar.exceptions import HTTPException

    from vidprod.web.intake import job_options

    assert job_options({"gaze": "on", "gaze_strength": "0.5"}) == {"gaze": True, "gaze_strength": 0.5}
    assert job_options({"gaze": "off"}) == {"gaze": False}
    assert job_options({"gaze_notes_below": "5"}) == {"gaze_notes_below_degrees": 5.0}
    for bad in ({"gaze": "maybe"}, {"gaze_strength": "1.5"}, {"gaze_strength": "nan"}, {"gaze_strength": "x"},
                {"gaze_notes_below": "45"}, {"gaze_notes_below": "below"}):  # fmt: skip
        with pytest.raises(HTTPException) as caught:
            job_options(bad)
        assert caught.value.status_code == 422


def _wait(client, auth, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/status/{job_id}", headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["state"] in ("done", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {body['state']}")


def _frame(path, index=15):
    """A frame after the correction has faded in."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="gray").astype(np.int16)
    raise AssertionError(f"{path} has no frame {index}")


@pytest.mark.slow
def test_a_job_with_gaze_changes_the_eyes_and_shows_its_report(client, auth, settings, tmp_path):
    source = astronaut_fixture().write(tmp_path / "talk.mp4")
    parts = {}
    for flag in ("on", "off"):
        with open(source, "rb") as f:
            job = client.post("/upload", headers=auth, files={"file": ("talk.mp4", f, "video/mp4")},
                              data={"gaze": flag, "gaze_strength": "0.9"}).json()
        done = _wait(client, auth, job["id"])
        assert done["state"] == "done", done
        parts[flag] = (done, settings.media_dir / job["id"] / "parts" / "part-001.mp4")
    done, path_on = parts["on"]
    gaze = done["gaze"]
    assert set(gaze) == {"enabled", "strength", "report", "stills"}
    assert gaze["enabled"] is True and gaze["strength"] == 0.9
    assert gaze["report"]["frames_corrected"] > 20 and gaze["report"]["mode"] in ("full", "alternate")
    assert {s["label"] for s in gaze["stills"]} >= {"strongest"}
    for still in gaze["stills"]:
        for key in ("before_url", "after_url"):
            picture = client.get(still[key], headers=auth)
            assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
            assert picture.content[:4] == b"\x89PNG"
    assert client.get(gaze["stills"][0]["before_url"]).status_code == 401
    assert client.get(f"/jobs/{done['id']}/gaze/source.mp4", headers=auth).status_code == 404
    off, path_off = parts["off"]
    assert off["gaze"] == {"enabled": False, "strength": 0.9, "report": None, "stills": []}
    # the encoded parts differ where the eyes are, hardly anywhere else (frame 15)
    diff = np.abs(_frame(path_on) - _frame(path_off))
    points = find_points(cv2.cvtColor(_frame(path_off).astype(np.uint8), cv2.COLOR_GRAY2RGB))
    eyes = eye_region_mask(points, diff.shape)
    assert diff[eyes].mean() > 4 * max(diff[~eyes].mean(), 0.05)
    # deleting the job removes its stills
    assert client.delete(f"/jobs/{done['id']}", headers=auth).status_code == 204
    assert not (settings.media_dir / done["id"]).exists()


@pytest.mark.slow
def test_vidprod_process_with_gaze(tmp_path, monkeypatch):
    from vidprod.cli import main

    source = astronaut_fixture().write(tmp_path / "talk.mp4")
    monkeypatch.setenv("VIDPROD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIDPROD_OUTPUT_HEIGHT", "640")
    assert main(["process", str(source), "-o", str(tmp_path / "out"), "--gaze", "--gaze-strength", "1"]) == 0
    assert (tmp_path / "out" / "part-001.mp4").is_file()
    report = (tmp_path / "out" / "gaze" / "report.json").read_text()
    assert '"frames_corrected"' in report
    assert list((tmp_path / "out" / "gaze").glob("gaze-*-after.png"))


# --- real clips (../shared/testmedia) ------------------------------------------------


@pytest.mark.parametrize("relative", [
    "intel_cc_by/asl_gestures_again.mkv",
    "carphone_test_sequence/carphone_pristine.mp4",
])  # fmt: skip
def test_real_clips_with_small_faces_are_passed_through(relative):
    """Real webcam faces whose eyes are under the size limit (~18 px; the carphone
    sequence is 176x144): every frame must come back bit-identical."""
    path = shared_media(relative)
    with GazeCorrector(model(), GazeSettings(strength=1.0)) as corrector:
        summary = evaluate_frames(clip_frames(path), corrector, name=path.name)
    assert summary["frames"] > 30
    assert summary["frames_changed"] == 0
    skipped = summary["report"]["skipped"]
    assert set(skipped) <= {"small_eyes", "no_face"} and sum(skipped.values()) == summary["frames"]


def test_real_clip_upscaled_to_phone_size_is_corrected_locally():
    """A real person (Intel ASL clip) upscaled 3x so the eyes pass the size limit: the
    correction, where it happens, changes nothing outside the eye regions, and blinks,
    look-aways and turned heads stay bit-identical."""
    path = shared_media("intel_cc_by/asl_gestures_again.mkv")

    def frames():  # type: ignore[no-untyped-def]
        for frame in clip_frames(path):
            big = frame.reformat(width=1920, height=1440, format="yuv420p", interpolation="BICUBIC")
            big.pts, big.time_base = frame.pts, frame.time_base
            yield big

    with GazeCorrector(model(), GazeSettings(strength=1.0, notes_below_degrees=5)) as corrector:
        summary = evaluate_frames(frames(), corrector, name=path.name)
    assert summary["locality"]["changed_outside_eye_regions"] == 0
    assert summary["report"]["frames_seen"] > 30
    untouched = summary["untouched"]
    for reason in ("blink", "look_away", "head_pose"):
        if reason in untouched:
            assert untouched[reason]["frames"] == untouched[reason]["identical"]


# --- landmarks one frame ahead, every other frame, failures, cuts ---------------------


class _Counting:
    """The in-process landmarker, counting calls."""

    def __init__(self) -> None:
        self.inner = VideoLandmarker(model())
        self.calls = 0

    def detect(self, rgb, timestamp_ms):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.inner.detect(rgb, timestamp_ms)

    def close(self) -> None:
        self.inner.close()


def test_every_other_frame_interpolates_and_never_edits_a_blink():
    fixture = astronaut_fixture()
    counting = _Counting()
    corrector = GazeCorrector(model(), GazeSettings(landmark_budget_ms=1e9), landmarker=counting)
    corrector.mode = "alternate"
    changed = []
    try:
        for frame in with_look_ahead(fixture.video_frames(), corrector):
            before = _planes(frame)
            after = plane_views(corrector(frame))
            changed.append(not all(np.array_equal(a, b) for a, b in zip(before, after)))
    finally:
        counting.close()
    assert counting.calls == len(changed) // 2
    assert sum(changed) >= 30, corrector.report()["skipped"]
    assert not any(c for c, blink in zip(changed, fixture.blink) if blink)
    assert corrector.report()["mode"] == "alternate"


def test_a_dead_landmark_process_turns_eye_contact_off_and_frames_go_on():
    import os
    import signal

    frames = astronaut_fixture().video_frames()
    with GazeCorrector(model(), GazeSettings(landmark_budget_ms=1e9), child=True) as corrector:
        stream = with_look_ahead(frames, corrector)
        for _ in range(20):
            corrector(next(stream))
        os.kill(corrector._landmarker.pid, signal.SIGKILL)
        rest = []
        for frame in stream:
            before = _planes(frame)
            assert corrector(frame) is frame
            rest.append(all(np.array_equal(a, b) for a, b in zip(before, plane_views(frame))))
    report = corrector.report()
    assert all(rest) and len(rest) == len(frames) - 20
    assert report["mode"] == "off" and "failed" in report["degradations"][0]["why"]


def test_a_cut_never_puts_the_edit_beside_the_eyes():
    """At a cut the face jumps 80 px right and 40 px down: smoothing starts over and the
    correction fades in again, so no edit lands where the eyes were; changes stay
    inside the eye regions of the landmarks measured on that very frame."""
    frames = []
    for i, rgb in enumerate(astronaut_fixture().frames):
        if i >= 30:
            rgb = cv2.warpAffine(rgb, np.float32([[1, 0, 80], [0, 1, 40]]), (rgb.shape[1], rgb.shape[0]),
                                 borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, 30)
        frames.append(frame)
    outside = []
    with GazeCorrector(model(), GazeSettings(strength=1.0, landmark_budget_ms=1e9)) as corrector:
        for frame in with_look_ahead(frames, corrector):
            before = _planes(frame)
            after = plane_views(corrector(frame))
            if corrector.last_raw_points is not None:
                region = eye_region_mask(corrector.last_raw_points, before[0].shape)
                outside.append(changed_outside(before, after, region))
    assert len(outside) == 60 and sum(outside) == 0
    assert corrector.report()["frames_corrected"] >= 30


def test_reports_of_a_resumed_render_add_up():
    earlier = {"frames_seen": 100, "frames_corrected": 80, "mean_correction_degrees": 3.0,
               "mean_correction_px": 1.0, "mean_correction_eye_widths": 0.02, "max_correction_degrees": 4.0,
               "skipped": {"blink": 10, "look_away": 10}, "degradations": [], "mode": "full"}  # fmt: skip
    later = {**earlier, "frames_seen": 50, "frames_corrected": 20, "mean_correction_degrees": 2.0,
             "skipped": {"blink": 30}, "mode": "alternate",
             "degradations": [{"frame": 3, "mode": "alternate", "why": "slow"}]}  # fmt: skip
    combined = combine_reports(earlier, later)
    assert combined["frames_seen"] == 150 and combined["frames_corrected"] == 100
    assert combined["mean_correction_degrees"] == pytest.approx(2.8)
    assert combined["skipped"] == {"blink": 40, "look_away": 10}
    assert combined["mode"] == "alternate" and len(combined["degradations"]) == 1
