"""StampGaps: images that never arrived, estimated from one stream's stamp intervals."""

from lingbot_depth_ros.core.stamped import StampGaps

PERIOD = 33_333_333  # 30 Hz


def gaps_of(stamps) -> int:
    gaps = StampGaps()
    for stamp in stamps:
        gaps.add(stamp)
    return gaps.missing


def test_a_steady_stream_misses_nothing_even_with_jitter():
    jitter = [0, 3, -2, 4, -4, 1] * 10
    assert gaps_of(k * PERIOD + j * 1_000_000 for k, j in enumerate(jitter)) == 0


def test_each_skipped_frame_counts_once():
    kept = [k for k in range(60) if k not in (10, 20, 21, 40, 41, 42)]
    assert gaps_of(k * PERIOD for k in kept) == 6


def test_repeats_reordering_and_pauses_are_not_losses():
    stamps = [k * PERIOD for k in range(10)]
    stamps += [5 * PERIOD, 9 * PERIOD]  # an old and a repeated stamp
    stamps += [k * PERIOD for k in range(100, 110)]  # the camera paused 3 s
    assert gaps_of(stamps) == 0


def test_the_period_is_learnt_before_counting_and_follows_the_camera():
    assert gaps_of([0, 3 * PERIOD, 4 * PERIOD]) == 0  # too few intervals to know the period
    slow = [k * 2 * PERIOD for k in range(40)]  # 15 Hz from the start
    assert gaps_of(slow) == 0
