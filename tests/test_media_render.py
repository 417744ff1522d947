from fractions import Fraction

import av
import numpy as np
import pytest

from tests.clips import make_clip, media_facts, read_barcode
from tests.conftest import shared_media
from vidprod.media.cuts import plan_even_cuts, read_timeline
from vidprod.media.render import RenderStopped, part_filename, render_parts


def _render(source, out_dir, limit, **kwargs):
    plan = plan_even_cuts(read_timeline(source), limit)
    return plan, render_parts(source, plan, out_dir, **kwargs)


def test_parts_add_up_to_the_source_and_start_on_the_cut_frame(long_clip, tmp_path):
    plan, parts = _render(long_clip, tmp_path, 10)
    assert len(parts) == 3
    fps = 30
    total = 0.0
    for planned, part in zip(plan, parts):
        facts = media_facts(part.path)
        assert facts["codec"] == "h264" and facts["audio_codec"] == "aac"
        assert facts["video_duration"] <= 10
        assert facts["video_duration"] == pytest.approx(float(planned.duration), abs=1 / fps)
        assert facts["audio_duration"] == pytest.approx(float(planned.duration), abs=0.03)
        # the first frame of each part is the source frame at the cut, not a keyframe before
        assert read_barcode(facts["first_frame"]) == round(planned.start * fps)
        total += facts["video_duration"]
    assert total == pytest.approx(25.0, abs=1 / fps)


def test_output_is_web_ready(short_clip, tmp_path):
    _, [part] = _render(short_clip, tmp_path, 60)
    data = part.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # plays before fully downloaded
    with av.open(str(part.path)) as c:
        ctx = c.streams.video[0].codec_context
        assert ctx.profile == "High" and ctx.pix_fmt == "yuv420p"
        assert c.streams.audio[0].codec_context.sample_rate == 48000


def test_source_without_audio_gets_a_silent_track(tmp_path):
    source = make_clip(tmp_path / "mute.mp4", seconds=3, audio=False)
    _, [part] = _render(source, tmp_path / "out", 60)
    facts = media_facts(part.path)
    assert facts["audio_duration"] == pytest.approx(3.0, abs=0.03)


def test_skipped_parts_are_not_rendered_again(long_clip, tmp_path):
    plan = plan_even_cuts(read_timeline(long_clip), 10)
    done = render_parts(long_clip, plan, tmp_path, skip={0, 1})
    assert [p.index for p in done] == [2]
    assert sorted(f.name for f in tmp_path.iterdir()) == [part_filename(2)]
    assert read_barcode(media_facts(done[0].path)["first_frame"]) == round(plan[2].start * 30)


def test_stopping_keeps_finished_parts_and_removes_the_open_one(long_clip, tmp_path):
    finished = []
    frames = {"n": 0}

    def stop_after_first_part():
        frames["n"] += 1
        return bool(finished) and frames["n"] > 300

    with pytest.raises(RenderStopped):
        _render(long_clip, tmp_path, 10, on_part=finished.append, should_stop=stop_after_first_part)
    assert [p.index for p in finished] == [0]
    assert sorted(f.name for f in tmp_path.iterdir()) == [part_filename(0)]  # no temp files


def test_progress_moves_from_start_to_end(short_clip, tmp_path):
    seen = []
    _render(short_clip, tmp_path, 60, on_progress=seen.append)
    assert seen[0] < 0.05 and seen[-1] > 0.95
    assert seen == sorted(seen)


@pytest.mark.parametrize(("name", "size"), [
    ("video_90.mov", (320, 568)),
    ("video_180.mov", (568, 320)),
    ("video_270.mov", (320, 568)),
])  # fmt: skip
def test_phone_rotation_is_applied(name, size, tmp_path):
    source = shared_media(f"phone_rotation_vfr/{name}")
    _, [part] = _render(source, tmp_path, 60)
    facts = media_facts(part.path)
    assert (facts["width"], facts["height"]) == size
    # compare with the source frame turned by numpy: the picture really was rotated
    with av.open(str(source)) as c:
        raw = next(c.decode(video=0)).to_ndarray(format="gray").astype(float)
    turns = {"video_90.mov": -1, "video_180.mov": 2, "video_270.mov": 1}[name]
    expected = np.rot90(raw, turns)
    got = facts["first_frame"].to_ndarray(format="gray").astype(float)
    assert np.abs(got - expected).mean() < 6  # re-encoding noise only
    assert np.abs(got - np.rot90(expected, 2)).mean() > 20  # and not upside down


def test_android_clip_with_audio_and_variable_frame_rate(tmp_path):
    source = shared_media("phone_rotation_vfr/media_fire2.mp4")
    plan, parts = _render(source, tmp_path, 1)
    assert len(parts) == 3
    for planned, part in zip(plan, parts):
        facts = media_facts(part.path)
        assert (facts["width"], facts["height"]) == (1280, 720)
        assert facts["audio_duration"] == pytest.approx(float(planned.duration), abs=0.03)
    assert sum(float(p.duration) for p in parts) == pytest.approx(2.38, abs=0.01)
