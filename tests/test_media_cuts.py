from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.clips import make_clip, make_sparse_clip
from vidprod.media.cuts import CutRules, Plan, PlannedPart, find_pauses, plan_cuts, plan_file
from vidprod.media.probe import InputLimits, InvalidMedia
from vidprod.media.scan import Loudness, SourceScan, Timeline
from vidprod.media.speech import Word


def _timeline(seconds, fps=30):
    n = int(seconds * fps)
    return Timeline([Fraction(i, fps) for i in range(n)], Fraction(n, fps))


def _loudness(seconds, pauses=(), level=-20.0, floor=-60.0):
    """Speech at `level` dB with silent (start, length) pauses, in 10 ms hops."""
    db = np.full(int(seconds * 100), level, np.float32)
    db += np.random.default_rng(1).normal(0, 2, len(db)).astype(np.float32)
    for start, length in pauses:
        db[int(start * 100) : int((start + length) * 100)] = floor
    return Loudness(db, 0.0)


def _scan(seconds, pauses=()):
    return SourceScan(_timeline(seconds), _loudness(seconds, pauses))


def _limits_hold(parts, rules, end):
    assert parts[0].start == 0 and parts[-1].end == end
    for a, b in zip(parts, parts[1:]):
        assert a.end == b.start
    assert all(p.duration <= rules.limit for p in parts)
    assert all(p.duration >= rules.min_part for p in parts)


def test_pauses_are_found_with_their_length():
    pauses = find_pauses(_loudness(20, [(5.0, 0.4), (12.0, 0.8)]))
    assert [(round(p.start, 2), round(p.length, 2)) for p in pauses] == [(5.0, 0.4), (12.0, 0.8)]
    assert all(p.depth_db > 10 for p in pauses)


def test_no_pauses_in_steady_sound():
    flat = Loudness(np.full(2000, -30.0, np.float32), 0.0)
    assert find_pauses(flat) == []


def test_cut_lands_in_the_longest_pause_before_the_limit():
    rules = CutRules(limit=Fraction(60))
    scan = _scan(100, [(40.0, 0.3), (53.0, 0.9), (56.0, 0.3), (58.5, 0.2)])
    parts = plan_cuts(scan, rules)
    assert len(parts) == 2
    assert parts[0].reason == "pause" and 53.0 <= parts[0].end <= 53.9
    assert "900 ms pause" in parts[0].detail
    _limits_hold(parts, rules, 100)


def test_pause_outside_the_window_is_not_used():
    rules = CutRules(limit=Fraction(60), window=Fraction(8))
    parts = plan_cuts(_scan(100, [(30.0, 1.0)]), rules)
    assert parts[0].reason == "limit"
    assert parts[0].end == Fraction(1797, 30)  # the last frame before limit less the margin


def test_a_talk_without_pauses_near_the_limit_is_cut_further_back_in_a_pause():
    # Issue 24: pauses at 50 s and 100 s only; cut at 59.7 s and 119.4 s (mid-word) before.
    rules = CutRules(limit=Fraction(60))
    parts = plan_cuts(_scan(130, [(50.0, 0.5), (100.0, 0.5)]), rules)
    assert [p.reason for p in parts] == ["pause", "pause", "end"]
    assert 50.0 <= parts[0].end <= 50.5 and 100.0 <= parts[1].end <= 100.5
    _limits_hold(parts, rules, 130)


def _talking(seconds, every=0.4, length=0.35, sentence_every=None):
    """A word every `every` seconds, each `length` long (touching gaps of 50 ms)."""
    words = []
    for i in range(int(seconds / every)):
        text = "word." if sentence_every and (i + 1) % sentence_every == 0 else "word"
        words.append(Word(text, i * every, i * every + length, 0.9))
    return words


def test_with_no_pause_in_reach_the_cut_is_in_the_quietest_gap_between_words():
    words = _talking(100)
    loudness = _loudness(100)
    quiet = next(w for w in words if w.start > 55)  # the gap after the first word past 55 s
    loudness.db[int(quiet.end * 100) : int(quiet.end * 100) + 5] -= 10  # quieter, no pause
    rules = CutRules(limit=Fraction(60))
    parts = plan_cuts(SourceScan(_timeline(100), loudness), rules, words=words)
    cut = float(parts[0].end)
    assert parts[0].reason == "word_gap"
    assert quiet.end <= cut <= quiet.end + 0.05 + 1 / 30
    assert not any(w.start + 1 / 30 < cut < w.end - 1 / 30 for w in words), "no word is cut"
    _limits_hold(parts, rules, 100)


def test_without_a_transcript_the_cut_is_in_the_deepest_dip_of_the_sound():
    loudness = _loudness(100)
    loudness.db[5600:5608] = -32  # 80 ms, 12 dB down: a gap between words, not a pause
    parts = plan_cuts(SourceScan(_timeline(100), loudness), CutRules(limit=Fraction(60)))
    assert parts[0].reason == "word_gap" and 56.0 <= parts[0].end <= 56.1


def test_a_pause_that_ends_a_sentence_beats_a_longer_one_inside_a_sentence():
    scan = _scan(100, [(54.0, 0.3), (57.0, 0.9)])
    silent = [(54.0, 54.3), (57.0, 57.9)]  # no words in the pauses
    words = [w for w in _talking(100) if not any(w.end > a and w.start < b for a, b in silent)]
    ended = max((i for i, w in enumerate(words) if w.end <= 54.0), key=lambda i: words[i].end)
    words[ended] = Word("rice.", words[ended].start, words[ended].end, 0.9)
    rules = CutRules(limit=Fraction(60))
    assert 57.0 <= plan_cuts(scan, rules)[0].end <= 57.9, "without a transcript: the longer pause"
    part = plan_cuts(scan, rules, words=words)[0]
    assert 54.0 <= part.end <= 54.3 and part.detail.endswith("after a sentence")


def test_a_scene_change_inside_a_word_is_not_used_when_the_words_are_known():
    words = [Word("long", 54.0, 56.0, 0.9), Word("words", 56.1, 58.0, 0.9), Word("here", 58.05, 60.0, 0.9)]
    rules = CutRules(limit=Fraction(60))
    scan = _scan(100)
    scan.loudness.db[5600:5610] -= 8  # the quieter of the two gaps
    parts = plan_cuts(scan, rules, lambda lo, hi: Fraction(55), words=words)
    assert parts[0].reason == "word_gap" and 56.0 <= parts[0].end <= 56.1 + 1 / 30
    assert plan_cuts(_scan(100), rules, lambda lo, hi: Fraction(55))[0].reason == "scene"


def test_scene_change_is_the_fallback():
    rules = CutRules(limit=Fraction(60))
    seen = []

    def finder(lo, hi):
        seen.append((lo, hi))
        return Fraction(1650, 30)

    parts = plan_cuts(_scan(100), rules, finder)
    assert parts[0].reason == "scene" and parts[0].end == 55
    lo, hi = seen[0]
    assert hi - lo == rules.window and hi <= 60


def test_no_short_tail():
    rules = CutRules(limit=Fraction(60), min_part=Fraction(5))
    for seconds in (61, 62, 119, 121, 181):
        parts = plan_cuts(_scan(seconds), rules)
        _limits_hold(parts, rules, seconds)


def test_a_short_video_is_one_part():
    parts = plan_cuts(_scan(12, [(5, 1)]), CutRules())
    assert [(p.start, p.end, p.reason) for p in parts] == [(0, 12, "end")]


def test_video_without_audio_is_cut_at_the_limit():
    parts = plan_cuts(SourceScan(_timeline(130), None), CutRules())
    assert [p.reason for p in parts] == ["limit", "limit", "end"]


def test_cuts_land_on_frame_times_of_a_vfr_timeline():
    times = [Fraction(0)]
    for i in range(1, 3000):  # alternating 30 and 40 ms frames
        times.append(times[-1] + Fraction(30 if i % 2 else 40, 1000))
    timeline = Timeline(times, times[-1] + Fraction(40, 1000))
    rules = CutRules(limit=Fraction(30))
    parts = plan_cuts(SourceScan(timeline, None), rules)
    assert all(p.start in set(times) for p in parts)
    _limits_hold(parts, rules, timeline.end)


def test_plan_round_trips_through_json():
    part = PlannedPart(1, Fraction(1001, 30), Fraction(2002, 30), "pause", "400 ms pause at 33 s")
    plan = Plan([part], Fraction(30000, 1001))
    assert Plan.from_json(plan.to_json()) == plan


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """Speech-like audio (words with short gaps) and three real pauses at known times."""
    pauses = [(7.2, 0.45), (15.6, 0.6), (24.1, 0.5)]
    path = tmp_path_factory.mktemp("talk") / "talk.mp4"
    make_clip(path, seconds=32, size=(180, 320), audio="speech", pauses=tuple(pauses))
    return path, pauses


def test_cuts_land_in_the_pauses_of_speech(talk):
    path, pauses = talk
    plan = plan_file(path, CutRules(limit=Fraction(10), min_part=Fraction(3), window=Fraction(4)))
    cuts = [float(p.end) for p in plan.parts[:-1]]
    assert [p.reason for p in plan.parts[:-1]] == ["pause"] * len(cuts)
    for cut in cuts:
        assert any(start + 0.05 <= cut <= start + length - 0.05 for start, length in pauses), cuts
    assert plan.rate == 30


def test_a_frame_gap_longer_than_a_part_is_refused_not_planned_as_a_long_part():
    # three frames ten hours apart: the plan once held 10 h parts under a 60 s limit
    hours = [Fraction(0), Fraction(36000), Fraction(72000)]
    scan = SourceScan(Timeline(hours, Fraction(72001)), None)
    with pytest.raises(InvalidMedia, match="no picture from 0.0 s to 36000.0 s, longer than a part may last"):
        plan_cuts(scan, CutRules())


def test_the_frame_gap_limit_holds_at_planning_too(tmp_path):
    gappy = make_sparse_clip(tmp_path / "gap.mp4", [i / 30 for i in range(30)] + [5 + i / 30 for i in range(30)])
    with pytest.raises(InvalidMedia, match="no picture for 4.0 s"):
        plan_file(gappy, CutRules())
    parts = plan_file(gappy, CutRules(limit=Fraction(5), min_part=Fraction(1)), limits=InputLimits(max_frame_gap=4.5)).parts
    assert all(p.duration <= 5 for p in parts)
