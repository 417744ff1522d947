import av
import numpy as np
import pytest

from tests.clips import make_clip, make_huge_frames, make_song_with_cover, make_sparse_clip, truncate, write_still
from tests.conftest import shared_media
from vidprod.media.probe import InputLimits, InvalidMedia, clockwise_rotation, probe
from vidprod.media.scan import scan_source


def test_probe_reads_a_clip(short_clip):
    info = probe(short_clip)
    assert (info.width, info.height, info.rotation) == (360, 640, 0)
    assert info.duration == pytest.approx(4.0, abs=0.05)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.frame_count == 120


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video")
    with pytest.raises(InvalidMedia, match="not a video file we can read"):
        probe(path)


def test_audio_only_file_has_no_video_track(tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(InvalidMedia, match="no video track"):
        probe(path)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.995])
def test_cut_short_upload_is_refused(short_clip, tmp_path, fraction):
    # moov first (as phones and our uploads write it): the index promises more than arrived
    cut = truncate(short_clip, tmp_path / "cut.mp4", fraction)
    with pytest.raises(InvalidMedia, match="cut short"):
        probe(cut)


def test_cut_short_with_index_at_the_end_is_refused(tmp_path):
    clip = make_clip(tmp_path / "late-moov.mp4", seconds=2, faststart=False)
    with pytest.raises(InvalidMedia, match="not a video file we can read"):
        probe(truncate(clip, tmp_path / "cut.mp4", 0.8))


def test_matroska_from_a_webcam_is_accepted():
    info = probe(shared_media("intel_cc_by/asl_gestures_book.mkv"))
    assert (info.width, info.height) == (640, 480)
    assert info.pixel_format == "yuvj420p"


@pytest.mark.parametrize(("name", "rotation", "size"), [
    ("video_0.mov", 0, (568, 320)),
    ("video_90.mov", 90, (320, 568)),
    ("video_180.mov", 180, (568, 320)),
    ("video_270.mov", 270, (320, 568)),
])  # fmt: skip
def test_iphone_rotation_is_read(name, rotation, size):
    info = probe(shared_media(f"phone_rotation_vfr/{name}"))
    assert info.rotation == rotation
    assert (info.width, info.height) == size


def test_display_matrix_angles():
    assert [clockwise_rotation(a) for a in (None, 0, -90, 90, 180, -180, 270)] == [
        0, 0, 90, 270, 180, 180, 90,
    ]  # fmt: skip


# --- input limits (issue 20) -----------------------------------------------------


def test_three_frames_hours_apart_are_refused_before_anything_is_decoded(tmp_path):
    sparse = make_sparse_clip(tmp_path / "day.mp4", [0, 10 * 3600, 20 * 3600])
    assert sparse.stat().st_size < 30_000
    with pytest.raises(InvalidMedia, match=r"lasts 20\.0 hours, longer than this server accepts \(60 minutes\)"):
        probe(sparse)


def test_a_gap_between_frames_over_the_limit_is_refused(tmp_path):
    times = [i / 30 for i in range(30)] + [4 + i / 30 for i in range(30)]  # 3 s without a picture
    gappy = make_sparse_clip(tmp_path / "gap.mp4", times)
    with pytest.raises(InvalidMedia, match=r"no picture for 3\.0 s \(from 1\.0 s to 4\.0 s\).*at most 2 s"):
        probe(gappy)
    assert probe(gappy, InputLimits(max_frame_gap=5)).duration == pytest.approx(5, abs=0.05)


def test_a_16000_pixel_square_frame_is_refused_by_the_pixel_limit(tmp_path):
    huge = make_huge_frames(tmp_path / "huge.mov")
    with pytest.raises(InvalidMedia, match=r"16000x16000, larger than this server accepts \(8\.8 megapixels"):
        probe(huge)
    with pytest.raises(InvalidMedia, match="16000x16000"):
        scan_source(huge)  # and again at planning, for a file that got past the upload


@pytest.mark.parametrize(("name", "format", "words"), [
    ("photo.jpg", "JPEG", "This is a still picture, not a video"),
    ("photo.png", "PNG", "This is a still picture, not a video"),
    ("photo.mp4", "PNG", "This is a still picture, not a video"),
    ("photo.mp4", "JPEG", "This is not a video file we can read"),  # FFmpeg reads it as a broken MP4
])  # fmt: skip
def test_still_pictures_are_refused_whatever_their_name(tmp_path, name, format, words):
    with pytest.raises(InvalidMedia, match=words):
        probe(write_still(tmp_path / name, format))


def test_a_single_frame_video_is_refused(tmp_path):
    one = make_sparse_clip(tmp_path / "one.mp4", [0])
    with pytest.raises(InvalidMedia, match="single picture, not a video"):
        probe(one)


def test_audio_with_cover_art_says_it_has_no_video(tmp_path):
    song = make_song_with_cover(tmp_path / "song.mp3")
    with pytest.raises(InvalidMedia, match=r"^The file holds sound only: it has no video track \(its picture is cover art"):
        probe(song)  # was "cut short ... (Operation not permitted)"
