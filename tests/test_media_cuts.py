from fractions import Fraction

from vidprod.media.cuts import PlannedPart, Timeline, plan_even_cuts, read_timeline


def _timeline(seconds, fps=30):
    n = seconds * fps
    return Timeline([Fraction(i, fps) for i in range(n)], Fraction(n, fps))


def test_short_video_is_one_part():
    parts = plan_even_cuts(_timeline(12), 60)
    assert [(p.start, p.end, p.reason) for p in parts] == [(0, 12, "end")]


def test_parts_are_even_and_within_the_limit():
    parts = plan_even_cuts(_timeline(130), 60)
    assert len(parts) == 3
    assert all(p.duration <= 60 for p in parts)
    assert max(p.duration for p in parts) - min(p.duration for p in parts) <= Fraction(1, 15)
    assert parts[0].start == 0 and parts[-1].end == 130
    for a, b in zip(parts, parts[1:]):
        assert a.end == b.start  # no gap, no overlap


def test_cuts_land_on_frame_times_of_a_vfr_timeline():
    times = [Fraction(0)]
    for i in range(1, 3000):  # alternating 30 and 40 ms frames
        times.append(times[-1] + Fraction(30 if i % 2 else 40, 1000))
    timeline = Timeline(times, times[-1] + Fraction(40, 1000))
    parts = plan_even_cuts(timeline, 30)
    frame_times = set(times)
    assert all(p.start in frame_times for p in parts)
    assert all(p.duration <= 30 for p in parts)


def test_exactly_at_the_limit_stays_one_part():
    assert len(plan_even_cuts(_timeline(60), 60)) == 1


def test_plan_round_trips_through_json():
    part = PlannedPart(1, Fraction(1001, 30), Fraction(2002, 30), "limit")
    assert PlannedPart.from_json(part.to_json()) == part


def test_read_timeline_of_a_clip(short_clip):
    timeline = read_timeline(short_clip)
    assert len(timeline.frame_times) == 120
    assert timeline.end == 4
