"""The render pass on generated clips and real phone files: timing, sync, geometry,
colour and the platforms' rules."""

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from tests.clips import (
    encode_pictures,
    grace_hopper,
    make_clip,
    make_hdr_clip,
    make_sparse_clip,
    media_facts,
    read_barcode,
)
from tests.conftest import shared_media
from tests.platform import platform_problems
from vidprod.media.cuts import CutRules, PlannedPart, plan_file
from vidprod.media.faces import FaceFinder, face_model_bytes, main_face
from vidprod.media.planes import plane_views
from vidprod.media.ratecap import keep_to_cap, vbv_excess
from vidprod.media.render import (
    LOOK_AHEAD,
    MUXER_OPTIONS,
    VIDEO_OPTIONS,
    RenderOptions,
    RenderStopped,
    part_filename,
    render_parts,
)

SMALL = (360, 640)


def _render(source, out_dir, limit=60, min_part=3, **options):
    plan = plan_file(source, CutRules(limit=Fraction(limit), min_part=Fraction(min_part)))
    opts = RenderOptions(rate=plan.rate, size=options.pop("size", SMALL), **options)
    return plan, render_parts(source, plan.parts, out_dir, opts)


@pytest.fixture(scope="module")
def face_model():
    return face_model_bytes()


@pytest.fixture(scope="module")
def finder_factory(face_model):
    return lambda: FaceFinder(face_model)


def test_parts_tile_the_source_start_on_the_cut_frame_and_pass_the_platform_rules(long_clip, tmp_path):
    plan, parts = _render(long_clip, tmp_path, limit=10)
    assert len(parts) == 3
    total = 0.0
    for planned, part in zip(plan.parts, parts):
        assert platform_problems(part.path) == []
        facts = media_facts(part.path)
        assert facts["video_duration"] <= 10
        assert facts["video_duration"] == pytest.approx(float(part.duration), abs=1e-3)
        assert facts["audio_duration"] == pytest.approx(float(part.duration), abs=0.022)
        # the first frame of each part is the source frame at the cut, not a keyframe before
        assert read_barcode(facts["first_frame"]) == round(planned.start * 30)
        total += facts["video_duration"]
    assert total == pytest.approx(25.0, abs=1 / 30)


def test_default_output_is_1080x1920_and_platform_ready(tmp_path):
    source = make_clip(tmp_path / "phone.mp4", seconds=1, size=(720, 1280))
    plan = plan_file(source, CutRules())
    [part] = render_parts(source, plan.parts, tmp_path / "out", RenderOptions(rate=plan.rate))
    assert (part.width, part.height) == (1080, 1920)
    assert platform_problems(part.path) == []
    assert read_barcode(media_facts(part.path)["first_frame"], source_height=1280) == 0


def test_sound_and_picture_stay_in_sync_across_cuts(tmp_path):
    beeps = (1.0, 4.5, 7.0, 11.5)
    source = make_clip(tmp_path / "sync.mp4", seconds=13, size=SMALL, beeps=beeps)
    _, parts = _render(source, tmp_path / "out", limit=6)
    assert len(parts) >= 2
    checked = 0
    for part in parts:
        with av.open(str(part.path)) as c:
            flashes = [float(f.time) for f in c.decode(video=0) if plane_views(f)[0][24:56, 4:40].mean() > 200]
        with av.open(str(part.path)) as c:
            audio = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
        loud = np.flatnonzero(np.abs(audio) > 0.1)
        onsets = [loud[0]] + [b for a, b in zip(loud, loud[1:]) if b - a > 4800]
        assert len(onsets) == len(flashes)
        for flash, onset in zip(flashes, onsets):
            assert abs(onset / 48000 - flash) < 0.005  # within 5 ms (a frame is 33 ms)
            checked += 1
    assert checked == len(beeps)


def test_source_without_audio_gets_a_silent_track(tmp_path):
    source = make_clip(tmp_path / "mute.mp4", seconds=3, size=SMALL, audio=False)
    _, [part] = _render(source, tmp_path / "out")
    assert platform_problems(part.path) == []
    assert media_facts(part.path)["audio_duration"] == pytest.approx(3.0, abs=0.03)


@pytest.mark.parametrize(("mode", "size"), [("blur", (360, 640)), ("crop", (360, 640)), ("keep", (640, 360))])
def test_landscape_modes(tmp_path, mode, size):
    source = make_clip(tmp_path / "wide.mp4", seconds=2, size=(640, 360))
    _, [part] = _render(source, tmp_path / "out", landscape=mode)
    assert platform_problems(part.path, vertical=mode != "keep") == []
    frame = media_facts(part.path)["first_frame"]
    assert (frame.width, frame.height) == size
    if mode == "blur":  # the whole picture, full width, centred over the blurred fill
        rgb = frame.to_ndarray(format="rgb24")
        with av.open(str(source)) as c:
            src = next(c.decode(video=0)).to_ndarray(format="rgb24")
        expected = cv2.resize(src, (360, 202), interpolation=cv2.INTER_AREA)
        middle = rgb[219 : 219 + 202]
        assert np.abs(middle.astype(int) - expected).mean() < 12
        assert rgb[:150].std() < rgb[219:421].std()  # the fill is blurred


def test_crop_follows_the_face_smoothly(tmp_path, face_model, finder_factory):
    """A landscape shot where the speaker walks from left to right: the 9:16 window
    keeps the face near its middle and never jumps."""
    face = cv2.resize(grace_hopper(), (150, 176))

    def walking():
        for i in range(150):
            canvas = np.full((360, 640, 3), 90, np.uint8)
            x = int(60 + (640 - 270) * i / 149)
            canvas[90:266, x : x + 150] = face
            yield canvas

    path = encode_pictures(tmp_path / "walk.mp4", walking(), gop=15)
    _, [part] = _render(path, tmp_path / "out", landscape="crop", face_model=face_model)
    centres = []
    with av.open(str(part.path)) as c, finder_factory() as finder:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 10 == 0:
                rgb = frame.to_ndarray(format="rgb24")
                found = main_face(finder.find(rgb), rgb.shape[1], rgb.shape[0])
                centres.append(found.center[0] / rgb.shape[1] if found else None)
    seen = [c for c in centres if c is not None]
    assert len(seen) >= 0.8 * len(centres)  # the face stays in the window
    assert all(0.2 < c < 0.8 for c in seen)


def test_full_range_input_comes_out_limited_range(tmp_path):
    # frame 0: a black bar code row and a white box (from the beep at 0 s)
    source = make_clip(tmp_path / "jpeg-range.mp4", seconds=1, size=SMALL,
                       pixel_format="yuvj420p", beeps=(0.0,))
    _, [part] = _render(source, tmp_path / "out")
    assert platform_problems(part.path) == []
    with av.open(str(source)) as c:
        src = next(c.decode(video=0))
    out = media_facts(part.path)["first_frame"]
    src_y, out_y = plane_views(src)[0], plane_views(out)[0]
    assert src_y[2:6].mean() < 4 and src_y[24:56, 4:40].mean() > 250  # full range in
    assert abs(out_y[2:6].mean() - 16) < 4 and abs(out_y[24:56, 4:40].mean() - 235) < 4
    rgb = out.to_ndarray(format="rgb24").astype(int)
    assert rgb[2:6].max() < 12 and rgb[24:56, 4:40].min() > 240  # black stays black, white white
    assert np.abs(rgb[64:] - src.to_ndarray(format="rgb24")[64:].astype(int)).mean() < 8


def test_odd_size_and_anamorphic_pixels(tmp_path):
    odd = make_clip(tmp_path / "odd.mp4", seconds=1, size=(361, 641), codec="libx264rgb", pixel_format="rgb24")
    _, [part] = _render(odd, tmp_path / "a")
    assert platform_problems(part.path) == []
    anamorphic = make_clip(tmp_path / "sar.mp4", seconds=1, size=(270, 640), sar=Fraction(4, 3))
    _, [part] = _render(anamorphic, tmp_path / "b")  # shows as 360x640: fills 9:16 exactly
    frame = media_facts(part.path)["first_frame"]
    assert (frame.width, frame.height) == SMALL
    assert read_barcode(frame) == 0  # stretched to the full width, not letterboxed


@pytest.mark.parametrize("transfer", ["hlg", "pq"])
def test_hdr_becomes_sdr_without_washing_out(tmp_path, transfer):
    photo = grace_hopper()[:600, :512]
    source = make_hdr_clip(tmp_path / f"{transfer}.mp4", transfer, photo, seconds=0.5)
    _, [part] = _render(source, tmp_path / "out", landscape="keep", size=(512, 912))
    assert platform_problems(part.path, vertical=False) == []
    frame = media_facts(part.path)["first_frame"]
    out = frame.reformat(width=512, height=600).to_ndarray(format="rgb24").astype(float)
    # blur mode (portrait but not 9:16) scales the picture into the middle; compare there
    out_full = frame.to_ndarray(format="rgb24").astype(float)
    h = round(600 * min(512 / 512, 912 / 600))
    top = (912 - h) // 2
    middle = cv2.resize(out_full[top : top + h], (512, 600), interpolation=cv2.INTER_AREA)

    def saturation(rgb):
        return float(((rgb.max(axis=2) - rgb.min(axis=2)) / np.maximum(rgb.max(axis=2), 1)).mean())

    assert np.abs(middle - photo).mean() < 10
    assert abs(middle.mean() - photo.mean()) < 6
    assert saturation(middle) == pytest.approx(saturation(photo.astype(float)), rel=0.12)
    del out


def test_thumbnails_are_sharp_frames_with_open_eyes(tmp_path, face_model, finder_factory):
    face = cv2.resize(grace_hopper(), (300, 352))

    def talking():
        for i in range(90):
            canvas = np.full((640, 360, 3), 60, np.uint8)
            canvas[140:492, 30:330] = face
            yield cv2.GaussianBlur(canvas, (0, 0), 6) if i < 45 else canvas  # blurry first half

    path = encode_pictures(tmp_path / "talk.mp4", talking())
    _, [part] = _render(path, tmp_path / "out", face_model=face_model)
    assert part.thumbnail is not None and part.thumbnail.name == "part-001.jpg"
    picture = cv2.imread(str(part.thumbnail))
    assert picture.shape[:2] == (320, 180)  # half size: for browsing, not for platforms
    sharp = cv2.Laplacian(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()
    assert sharp > 50
    with finder_factory() as finder:
        found = main_face(finder.find(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)), 360, 640)
    assert found is not None and found.eyes_open


def test_skipped_parts_are_not_rendered_again(long_clip, tmp_path):
    plan = plan_file(long_clip, CutRules(limit=Fraction(10)))
    options = RenderOptions(rate=plan.rate, size=SMALL, thumbnails=False)
    done = render_parts(long_clip, plan.parts, tmp_path, options, skip={0, 1})
    assert [p.index for p in done] == [2]
    assert sorted(f.name for f in tmp_path.iterdir()) == [part_filename(2)]
    assert read_barcode(media_facts(done[0].path)["first_frame"]) == round(plan.parts[2].start * 30)


def test_stopping_keeps_finished_parts_and_removes_the_open_one(long_clip, tmp_path):
    finished = []
    frames = {"n": 0}

    def stop_after_first_part():
        frames["n"] += 1
        return bool(finished) and frames["n"] > 300

    plan = plan_file(long_clip, CutRules(limit=Fraction(10)))
    options = RenderOptions(rate=plan.rate, size=SMALL, thumbnails=False)
    with pytest.raises(RenderStopped):
        render_parts(long_clip, plan.parts, tmp_path, options, on_part=finished.append,
                     should_stop=stop_after_first_part)
    assert [p.index for p in finished] == [0]
    assert sorted(f.name for f in tmp_path.iterdir()) == [part_filename(0)]  # no temp files


def test_progress_moves_from_start_to_end(short_clip, tmp_path):
    seen = []
    plan = plan_file(short_clip, CutRules())
    render_parts(short_clip, plan.parts, tmp_path, RenderOptions(rate=plan.rate, size=SMALL),
                 on_progress=seen.append)
    assert seen[0] < 0.05 and seen[-1] > 0.95
    assert seen == sorted(seen)


@pytest.mark.parametrize(("suffix", "codec", "audio_codec"), [
    (".mov", "libx264", "aac"), (".mkv", "libx264", "aac"), (".webm", "libvpx-vp9", "libopus"),
])  # fmt: skip
def test_containers_phones_and_browsers_make(tmp_path, suffix, codec, audio_codec):
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=30)
        video.width, video.height, video.pix_fmt = 360, 640, "yuv420p"
        sound = out.add_stream(audio_codec, rate=48000)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((640, 360, 3), i * 8, np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        for k in range(0, 48000, 960):
            chunk = av.AudioFrame.from_ndarray(np.zeros((2, 960), np.float32), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, k
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    _, [part] = _render(path, tmp_path / "out")
    assert platform_problems(part.path) == []
    assert media_facts(part.path)["video_duration"] == pytest.approx(1.0, abs=1 / 30)


# --- real phone files (skip where ../shared/testmedia is absent) ---------------------


@pytest.mark.parametrize("name", ["video_90.mov", "video_180.mov", "video_270.mov"])
def test_iphone_rotation_is_applied(name, tmp_path):
    source = shared_media(f"phone_rotation_vfr/{name}")
    _, [part] = _render(source, tmp_path)
    assert platform_problems(part.path, vertical=name != "video_180.mov") == [] or name == "video_180.mov"
    got = media_facts(part.path)["first_frame"].to_ndarray(format="gray").astype(float)
    with av.open(str(source)) as c:
        raw = next(c.decode(video=0)).to_ndarray(format="gray")
    turns = {"video_90.mov": -1, "video_180.mov": 2, "video_270.mov": 1}[name]
    upright = np.rot90(raw, turns)
    if name == "video_180.mov":  # landscape: it sits in the middle of the blurred fill
        h = round(upright.shape[0] * got.shape[1] / upright.shape[1])
        top = (got.shape[0] - h) // 2
        got = got[top : top + h]
    expected = cv2.resize(upright, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(got - expected).mean() < 8  # scaling and re-encoding noise only
    assert np.abs(got - expected[::-1, ::-1]).mean() > 20  # and not upside down


def test_android_clip_with_variable_frame_rate_becomes_constant(tmp_path):
    source = shared_media("phone_rotation_vfr/media_fire2.mp4")  # rotated 180, VFR, AAC
    plan, [part] = _render(source, tmp_path)
    assert plan.rate == 30
    assert platform_problems(part.path) == []
    facts = media_facts(part.path)
    assert facts["video_duration"] == pytest.approx(2.38, abs=1 / 30)
    assert facts["audio_duration"] == pytest.approx(facts["video_duration"], abs=0.022)


def test_a_very_short_part_still_gets_a_thumbnail(tmp_path):
    source = make_clip(tmp_path / "blink.mp4", seconds=0.5, size=SMALL)
    _, [part] = _render(source, tmp_path / "out")
    assert part.thumbnail is not None and part.thumbnail.stat().st_size > 0


def test_a_failing_face_check_keeps_the_job_and_the_sharpest_thumbnail(short_clip, tmp_path):
    # A model file that is not a model: MediaPipe fails inside the child process.
    _, [part] = _render(short_clip, tmp_path, face_model=b"not a model")
    assert platform_problems(part.path) == []
    assert part.thumbnail is not None and part.thumbnail.read_bytes()[:2] == b"\xff\xd8"


class _LookingAhead:
    """A frame hook with look_ahead, as gaze has: records what was announced and when."""

    def __init__(self) -> None:
        self.announced: list[tuple[float, tuple[int, int]]] = []
        self.called: list[tuple[float, float | None]] = []  # (time, newest announced then)

    def look_ahead(self, frame: av.VideoFrame) -> None:
        self.announced.append((float(frame.time), (frame.width, frame.height)))

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        self.called.append((float(frame.time), self.announced[-1][0] if self.announced else None))
        return frame


@pytest.mark.parametrize("fps", [30, 60])
def test_a_hook_hears_of_each_shown_frame_before_it_goes_through(tmp_path, fps):
    """Each frame that will be shown is announced upright as soon as it is decoded. At
    the output rate that is LOOK_AHEAD frames before it goes through the hook; from
    60 fps only the frames to be shown are announced, not all 120 decoded."""
    source = make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=fps, size=(320, 568))
    hook = _LookingAhead()
    plan = plan_file(source, CutRules())
    options = RenderOptions(rate=Fraction(30), size=SMALL, frame_hook=hook, thumbnails=False)
    render_parts(source, plan.parts, tmp_path / "out", options)
    called = [t for t, _ in hook.called]
    assert len(called) == 60
    assert all(size == (320, 568) for _, size in hook.announced)
    assert len(hook.announced) <= len(called) + 2
    assert set(called) <= {t for t, _ in hook.announced}
    if fps == 30:
        ahead = [newest - t > (LOOK_AHEAD - 0.5) / fps for t, newest in hook.called[: -LOOK_AHEAD]]
        assert all(ahead), f"{ahead.count(False)} frames went through less than {LOOK_AHEAD} frames ahead"


def test_a_stop_is_heard_while_one_picture_fills_a_long_gap(tmp_path):
    # Two frames a minute apart (under relaxed limits): 1800 output frames all show the
    # first picture, and the render must still stop within a frame of being asked.
    sparse = make_sparse_clip(tmp_path / "sparse.mp4", [0, 60, 60 + 1 / 30])
    parts = [PlannedPart(0, Fraction(0), Fraction(1801, 30), "end")]
    asked = []

    def stop_on_the_tenth_question():
        asked.append(1)
        return len(asked) >= 10

    options = RenderOptions(size=SMALL, thumbnails=False)
    with pytest.raises(RenderStopped):
        render_parts(sparse, parts, tmp_path / "out", options, should_stop=stop_on_the_tenth_question)
    assert len(asked) == 10  # stopped when first told, not at the next source frame
    assert list((tmp_path / "out").iterdir()) == []


def test_cover_frames_are_the_parts_own_frames_at_their_times(short_clip, tmp_path):
    from vidprod.media.covers import CoverError, candidate_times, frame_jpeg

    times = candidate_times(4.0)
    assert times == [300, 1150, 2000, 2850, 3700]
    assert candidate_times(0.1) == [25, 37, 50, 62, 75], "a tiny part still has frames inside it"
    with av.open(str(short_clip)) as container:
        frames = [(f.time, f.to_ndarray(format="bgr24").astype(int)) for f in container.decode(video=0)]

    def shown_at(ms: int) -> np.ndarray:
        return next(picture for t, picture in frames if t + 1e-3 >= ms / 1000)

    for ms in (0, 1150, 3700):
        cover = cv2.imdecode(np.frombuffer(frame_jpeg(short_clip, ms), np.uint8), cv2.IMREAD_COLOR).astype(int)
        assert np.abs(cover - shown_at(ms)).mean() < 4, f"the frame at {ms} ms (JPEG aside)"
        assert np.abs(cover - shown_at((ms + 2000) % 4000)).mean() > 4 * np.abs(cover - shown_at(ms)).mean() + 1
    with pytest.raises(CoverError):
        frame_jpeg(short_clip, -1)



def _render_on_cores(source, out_dir, cores) -> None:  # type: ignore[no-untyped-def]
    import os

    os.sched_setaffinity(0, cores)
    _render(source, out_dir)


def _decoded(path) -> list[bytes]:  # type: ignore[no-untyped-def]
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="yuv420p").tobytes() for frame in container.decode(video=0)]


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs two cores to compare with one")
def test_a_render_on_one_core_gives_the_same_frames_as_on_every_core(tmp_path):
    """x264 sizes its frame threads by the cores it may use, and each count encodes to
    different pixels: the parts must not depend on the machine. Both render in fresh
    processes, as on two machines: an x265 encode earlier in the same process (the HDR
    tests make their clips so) changes what x264 makes next."""
    import multiprocessing
    import os

    photo = grace_hopper()
    rng = np.random.default_rng(3)
    # a slow pan over a photo with sensor-like noise: real detail for the rate control
    pictures = [np.clip(np.roll(photo, 4 * i, axis=1) + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
                for i in range(60)]  # fmt: skip
    source = encode_pictures(tmp_path / "pan.mp4", pictures)
    every = os.sched_getaffinity(0)
    for name, cores in (("all", every), ("one", {min(every)})):
        child = multiprocessing.get_context("spawn").Process(target=_render_on_cores, args=(source, tmp_path / name, cores))
        child.start()
        child.join(300)
        assert child.exitcode == 0
    names = sorted(p.name for p in (tmp_path / "all").glob("part-*.mp4"))
    assert names and names == sorted(p.name for p in (tmp_path / "one").glob("part-*.mp4"))
    for name in names:
        assert _decoded(tmp_path / "one" / name) == _decoded(tmp_path / "all" / name), name


def _noisy_pictures(count: int = 60) -> list[np.ndarray]:
    """A slow pan over a photo under heavy sensor-like noise: many bits a frame."""
    photo = grace_hopper()
    rng = np.random.default_rng(5)
    return [np.clip(np.roll(photo, 4 * i, axis=1) + rng.normal(0, 24, photo.shape), 0, 255).astype(np.uint8)
            for i in range(count)]  # fmt: skip


def _encoded_with_part_settings(path, pictures) -> list[bytes]:  # type: ignore[no-untyped-def]
    """`pictures` (yuv420p arrays) through the parts' encoder settings, back as pixels."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30, options=dict(VIDEO_OPTIONS))
        stream.height, stream.width = pictures[0].shape[0] * 2 // 3, pictures[0].shape[1]
        stream.pix_fmt = "yuv420p"
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return _decoded(path)


def test_the_part_encoder_settings_give_the_same_pixels_every_time(tmp_path):
    """Frames handed to the encoder as fast as it takes them, three times in one process
    (the settings before gave different pixels: x264's VBV on frame threads depends on
    their timing, and its MB-tree reads memory it never wrote)."""
    # as the render hands them over: 360x640 yuv420p, ready to encode
    pictures = [av.VideoFrame.from_ndarray(p, format="rgb24").reformat(360, 640, "yuv420p").to_ndarray()
                for p in _noisy_pictures(60)]  # fmt: skip
    first = _encoded_with_part_settings(tmp_path / "a.mp4", pictures)
    for name in ("b.mp4", "c.mp4"):
        assert _encoded_with_part_settings(tmp_path / name, pictures) == first


def test_a_part_over_the_bit_rate_cap_is_encoded_again_under_it(tmp_path):
    source = encode_pictures(tmp_path / "noise.mp4", _noisy_pictures())
    _, [part] = _render(source, tmp_path / "out", size=(360, 640))
    crf_only = vbv_excess(part.path, 1_000_000, 2_000_000)
    assert crf_only > 0, "the noisy clip must break a 1 Mbps cap for this test to mean anything"
    before = media_facts(part.path)
    assert keep_to_cap(part.path, VIDEO_OPTIONS, MUXER_OPTIONS, 1_000_000, 2_000_000)
    assert vbv_excess(part.path, 1_000_000, 2_000_000) <= 0
    after = media_facts(part.path)
    assert platform_problems(part.path) == []
    assert after["video_duration"] == pytest.approx(before["video_duration"], abs=1e-3)
    assert after["audio_duration"] == pytest.approx(before["audio_duration"], abs=1e-3)
    assert [p.name for p in part.path.parent.iterdir() if "capped" in p.name] == []
    # within the cap already: left as it is
    assert not keep_to_cap(part.path, VIDEO_OPTIONS, MUXER_OPTIONS, 1_000_000, 2_000_000)
