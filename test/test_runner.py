"""The frame runner (core/runner.py) with real threads: what each admission policy keeps
and drops, that results come out in input order, and that every item is accounted for."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from lingbot_depth_ros.core.errors import EncodingError
from lingbot_depth_ros.core.pairing import DropCounter
from lingbot_depth_ros.core.runner import ADMISSIONS, Admission, FrameRunner


class Recorder:
    """The runner's two stages: stage 1 takes `engine_s` per item (sleeping, as an engine
    that releases the GIL does), stage 2 records what was published, in order."""

    def __init__(self, engine_s: float = 0.0, fail: set | None = None) -> None:
        self.engine_s, self.fail = engine_s, fail or set()
        self.published: list[int] = []
        self.admitted_at: dict[int, float] = {}
        self.latency_s: list[float] = []
        self._lock = threading.Lock()

    def complete(self, item: int) -> int:
        if item in self.fail:
            raise EncodingError(f"item {item} is bad")
        time.sleep(self.engine_s)
        return item

    def publish(self, item: int) -> None:
        with self._lock:
            self.published.append(item)
            self.latency_s.append(time.perf_counter() - self.admitted_at[item])


def make_runner(policy: str, recorder: Recorder, depth: int | None = None):
    drops = DropCounter()
    runner = FrameRunner(Admission(policy, drops, depth=depth, cost=1), drops, recorder.complete,
                         recorder.publish, warn=lambda text: None, name="test", cost=1)
    return runner, drops


def play_bursts(runner: FrameRunner, recorder: Recorder, bursts: int, size: int = 3,
                period_s: float = 0.1, spacing_s: float = 0.002) -> int:
    """`bursts` bursts of `size` items, `spacing_s` apart within a burst, one burst every
    `period_s` (30 Hz on average for 3 per 0.1 s); returns how many were admitted."""
    item = 0
    time.sleep(0.05)  # the runner's threads wait in their queue, as a running node's do
    start = time.perf_counter()
    for burst in range(bursts):
        delay = start + burst * period_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for _ in range(size):
            recorder.admitted_at[item] = time.perf_counter()
            assert runner.admission.put(item)
            item += 1
            time.sleep(spacing_s)
    return item


def test_policies_are_named():
    assert ADMISSIONS == ("latest", "burst", "every")
    with pytest.raises(ValueError, match="admission must be one of"):
        Admission("newest", DropCounter())


@pytest.mark.parametrize("policy, superseded", [("burst", False), ("latest", True)])
def test_bursts_of_three_from_a_camera_the_engine_keeps_up_with(policy, superseded):
    """30 Hz arriving in bursts of 3 every 100 ms, an engine of 10 ms (keeps up on
    average: 30 of every 100 ms, with room for a loaded machine's stalls): burst loses
    nothing; latest supersedes the middle pair of each burst."""
    recorder = Recorder(engine_s=0.010)
    runner, drops = make_runner(policy, recorder)
    try:
        sent = play_bursts(runner, recorder, bursts=20)
        assert runner.drain(timeout=10.0)
    finally:
        runner.close()
    lost = drops.snapshot().get("superseded", 0)
    assert len(recorder.published) + lost == sent
    if superseded:
        assert lost >= 10, f"latest kept {len(recorder.published)} of {sent}"
    else:
        assert lost == 0 and recorder.published == list(range(sent))


def play_stalled_stream(runner: FrameRunner, recorder: Recorder, rate_hz: float, seconds: float,
                        stall_every_s: float, stall_s: float) -> int:
    """A camera at `rate_hz` whose transport holds every frame of a `stall_s` window back
    (a reliable writer waiting for a repair), at the end of every `stall_every_s`, then releases them
    at once; returns how many items were admitted."""
    held: list[int] = []
    start = time.perf_counter()
    frames = int(seconds * rate_hz)
    for item in range(frames):
        delay = start + item / rate_hz - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        recorder.admitted_at[item] = time.perf_counter()
        held.append(item)
        if (item / rate_hz) % stall_every_s >= stall_every_s - stall_s:
            continue  # held back by the transport (the last `stall_s` of each period)
        for waiting in held:
            assert runner.admission.put(waiting)
        held.clear()
    for waiting in held:
        assert runner.admission.put(waiting)
    return frames


@pytest.mark.parametrize("rate_hz", [15.0, 30.0])
def test_burst_works_off_what_a_stalled_transport_releases(rate_hz):
    """An engine of 10 ms keeps up with 15 and 30 Hz on average; a 0.4 s transport stall
    every 1.5 s releases 6 or 12 pairs at once: burst waits for them (its budget, 0.5 s of
    engine time, holds them), latest supersedes most of each release."""
    results = {}
    for policy in ("burst", "latest"):
        recorder = Recorder(engine_s=0.010)
        runner, drops = make_runner(policy, recorder)
        try:
            sent = play_stalled_stream(runner, recorder, rate_hz, 4.5, stall_every_s=1.5, stall_s=0.4)
            assert runner.drain(timeout=10.0)
        finally:
            runner.close()
        results[policy] = (sent, recorder.published, drops.snapshot().get("superseded", 0))
    sent, published, superseded = results["burst"]
    assert superseded == 0 and published == list(range(sent))
    sent, published, superseded = results["latest"]
    assert len(published) + superseded == sent and superseded >= 6


def test_burst_stays_two_deep_when_the_engine_does_not_keep_up():
    """An engine slower than the camera on average: burst keeps two waiting at most, so the
    latency of what it publishes stays near two engine times plus one (no queue builds up)."""
    recorder = Recorder(engine_s=0.030)
    runner, drops = make_runner("burst", recorder)
    try:
        sent = play_bursts(runner, recorder, bursts=30, size=1, period_s=0.02)  # 50 Hz
        assert runner.drain(timeout=10.0)
    finally:
        runner.close()
    superseded = drops.snapshot().get("superseded", 0)
    assert len(recorder.published) + superseded == sent and superseded >= 5
    # each published item waited behind at most two others and the one in the engine
    assert max(recorder.latency_s[5:]) < 4 * 0.030 + 0.1


def test_burst_room_follows_the_load():
    """The burst queue's room: two until the runner has served an item, then the budget over
    the recent service time while arrivals come slower than service, else two again."""
    from lingbot_depth_ros.core.runner import ServiceLoad
    load = ServiceLoad()
    assert load.room(0.5) == 2
    for i in range(10):
        load.arrived(i / 30)  # 30 Hz
        load.served(0.010)
    assert load.room(0.5) == 50
    assert load.room(10.0) == 64  # the cap
    for _ in range(15):
        load.served(0.040)  # slower than 33 ms arrivals: not keeping up
    assert load.room(0.5) == 2


def test_every_loses_nothing_and_keeps_order_under_back_pressure():
    """A bounded `every` queue makes the producer wait (a bag reader) instead of dropping."""
    recorder = Recorder(engine_s=0.005)
    runner, drops = make_runner("every", recorder, depth=2)
    waits = []
    try:
        for item in range(60):
            recorder.admitted_at[item] = time.perf_counter()
            start = time.perf_counter()
            assert runner.admission.put(item)
            waits.append(time.perf_counter() - start)
        assert runner.drain(timeout=20.0)
    finally:
        runner.close()
    assert recorder.published == list(range(60))
    assert drops.total == 0
    assert max(waits) > 0.002, "the producer never waited: no back-pressure"


def test_every_without_bound_never_makes_the_producer_wait():
    recorder = Recorder(engine_s=0.01)
    runner, drops = make_runner("every", recorder, depth=None)
    try:
        start = time.perf_counter()
        for item in range(30):
            recorder.admitted_at[item] = time.perf_counter()
            assert runner.admission.put(item, timeout=0)
        admitted_s = time.perf_counter() - start
        assert runner.pending > 0
        assert runner.drain(timeout=20.0)
    finally:
        runner.close()
    assert admitted_s < 0.1  # 30 items in far less than the 300 ms the stages take
    assert recorder.published == list(range(30)) and drops.total == 0


@pytest.mark.parametrize("policy", ADMISSIONS)
def test_every_item_is_published_or_dropped_with_a_reason(policy):
    """Faster than the engine, with bad items: published + dropped by reason == admitted."""
    recorder = Recorder(engine_s=0.004, fail={5, 17, 33})
    runner, drops = make_runner(policy, recorder)
    try:
        for item in range(50):
            recorder.admitted_at[item] = time.perf_counter()
            runner.admission.put(item)
            time.sleep(0.001)
        assert runner.drain(timeout=20.0)
    finally:
        left = runner.close()
    counts = drops.snapshot()
    assert left == []
    assert len(recorder.published) + sum(counts.values()) == 50, counts
    assert recorder.published == sorted(recorder.published)  # input order
    assert set(counts) <= {"superseded", "bad_encoding"}
    if policy == "every":
        assert counts == {"bad_encoding": 3}


def test_a_stage_that_raises_costs_one_item_not_the_thread():
    recorder = Recorder()

    def publish(item: int) -> None:
        if item == 2:
            raise RuntimeError("a bug")
        recorder.published.append(item)

    drops = DropCounter()
    runner = FrameRunner(Admission("every", drops), drops, recorder.complete, publish,
                         warn=lambda text: None)
    try:
        for item in range(5):
            runner.admission.put(item)
        assert runner.drain(timeout=10.0)
        assert runner.alive()
    finally:
        runner.close()
    assert recorder.published == [0, 1, 3, 4]
    assert drops.snapshot() == {"internal_error": 2}  # a pair counts its 2 images


def test_close_hands_back_what_never_started():
    recorder = Recorder(engine_s=0.2)
    runner, _ = make_runner("every", recorder)
    for item in range(4):
        recorder.admitted_at[item] = time.perf_counter()
        runner.admission.put(item)
    time.sleep(0.05)
    left = runner.close(timeout=5.0)
    assert len(left) >= 2 and left == sorted(left)
    assert not runner.admission.put(99)  # closed: nothing more is admitted


def test_core_imports_nothing_from_engines_ros_or_bag():
    """core sits below engines, ros and bag: importing every core module loads none of them."""
    code = ("import importlib, pkgutil, sys\n"
            "import lingbot_depth_ros.core as core\n"
            "for m in pkgutil.iter_modules(core.__path__):\n"
            "    importlib.import_module('lingbot_depth_ros.core.' + m.name)\n"
            "up = sorted(n for n in sys.modules if n.split('.')[:2] in "
            "(['lingbot_depth_ros', 'engines'], ['lingbot_depth_ros', 'ros'], "
            "['lingbot_depth_ros', 'bag']))\n"
            "print(up)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
