"""The rig's batching runner (core/batcher.py): one engine call for the cameras' ready pairs,
round-robin fair, no pair waiting longer than the window for a batch, every item published
or counted as dropped in its own lane. Real threads and real time; time bounds are wide
because the machine may be loaded (a lower bound is exact: the window is waited)."""

import threading
import time

import pytest

from lingbot_depth_ros.core.batcher import BatchRunner, Lane
from lingbot_depth_ros.core.errors import EncodingError


class Recorder:
    """prepare/key/complete/publish of a runner, recording what each stage saw."""

    def __init__(self, bad: set = frozenset(), poison: set = frozenset()) -> None:
        self.bad, self.poison = bad, poison  # items prepare drops / a batch call fails on
        self.calls: list[list] = []
        self.published: list[tuple[str, object, float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def prepare(self, lane, item):
        if item in self.bad:
            raise EncodingError(f"bad item {item}")
        return item

    def key(self, item):
        return item[1] if isinstance(item, tuple) else 0

    def complete(self, items):
        self.gate.wait(10)
        with self.lock:
            self.calls.append(list(items))
        if any(i in self.poison for i in items):
            raise EncodingError("poisoned")
        return [f"done {i}" for i in items]

    def publish(self, lane, result):
        with self.lock:
            self.published.append((lane.name, result, time.monotonic()))


def runner_of(recorder, lanes, window_s=5.0, max_batch=4):
    return BatchRunner(lanes, recorder.prepare, recorder.key, recorder.complete, recorder.publish,
                       warn=lambda text: None, window_s=window_s, max_batch=max_batch)


def lanes_of(*names, policy="every"):
    return [Lane(name, policy) for name in names]


@pytest.fixture
def closing():
    runners = []
    yield runners.append
    for runner in runners:
        runner.close()


def test_a_camera_alone_never_waits_for_the_window(closing):
    rec = Recorder()
    runner = runner_of(rec, lanes_of("only"), window_s=30.0)
    closing(runner)
    start = time.monotonic()
    runner.lanes[0].put("a")
    assert runner.drain(10)
    assert rec.published[0][2] - start < 5.0  # far below the 30 s window
    assert rec.calls == [["a"]]


def test_pairs_of_every_camera_share_one_call_before_the_window_ends(closing):
    rec = Recorder()
    runner = runner_of(rec, lanes_of("a", "b", "c"), window_s=30.0)
    closing(runner)
    start = time.monotonic()
    for lane, item in zip(runner.lanes, ("a1", "b1", "c1")):
        lane.put(item)
    assert runner.drain(10)
    assert time.monotonic() - start < 5.0
    assert [sorted(call) for call in rec.calls] == [["a1", "b1", "c1"]]
    assert runner.calls == {3: 1}


def test_a_silent_camera_delays_the_others_by_the_window_and_no_more(closing):
    rec = Recorder()
    window = 0.6
    runner = runner_of(rec, lanes_of("a", "silent"), window_s=window)
    closing(runner)
    runner.lanes[1].put("s1")  # "silent" is active for ACTIVE_S from now
    runner.lanes[0].put("a1")
    assert runner.drain(10)
    start = time.monotonic()
    runner.lanes[0].put("a2")  # "silent" sends nothing more
    assert runner.drain(10)
    waited = rec.published[-1][2] - start
    assert window <= waited < window + 3.0  # upper bound: slack for a loaded machine
    assert rec.calls[-1] == ["a2"]


def test_a_camera_that_stopped_a_while_ago_delays_no_other(closing, monkeypatch):
    import lingbot_depth_ros.core.batcher as batcher

    monkeypatch.setattr(batcher, "ACTIVE_S", 0.3)
    rec = Recorder()
    runner = runner_of(rec, lanes_of("a", "stopped", "never"), window_s=30.0)
    closing(runner)
    runner.lanes[1].put("s1")
    time.sleep(0.5)  # "stopped" is no longer active; "never" never was
    start = time.monotonic()
    runner.lanes[0].put("a1")
    assert runner.drain(10)
    assert rec.published[-1][2] - start < 5.0  # far below the 30 s window


def test_a_bursting_camera_does_not_starve_the_others(closing):
    rec = Recorder()
    runner = runner_of(rec, lanes_of("burst", "b", "c"), window_s=0.0, max_batch=2)
    closing(runner)
    rec.gate.clear()  # hold the engine so everything below waits at once
    runner.lanes[0].put(("burst", 0))
    time.sleep(0.3)  # the first call is now in the engine
    for i in range(1, 21):
        runner.lanes[0].put(("burst", i))
    runner.lanes[1].put(("b", 0))
    runner.lanes[2].put(("c", 0))
    rec.gate.set()
    assert runner.drain(20)
    order = [item for call in rec.calls[1:] for item in call]
    assert ("b", 0) in order[:4] and ("c", 0) in order[:4], order[:6]
    assert all(len(call) <= 2 for call in rec.calls)
    assert sum(len(call) for call in rec.calls) == 23


def test_round_robin_turns_when_the_batch_is_smaller_than_the_rig(closing):
    rec = Recorder()
    runner = runner_of(rec, lanes_of("a", "b", "c"), window_s=0.0, max_batch=1)
    closing(runner)
    rec.gate.clear()
    runner.lanes[0].put("warm")
    time.sleep(0.3)
    for round_ in range(3):
        for lane in runner.lanes:
            lane.put(f"{lane.name}{round_}")
    rec.gate.set()
    assert runner.drain(20)
    served = [call[0][0] for call in rec.calls[1:]]
    # every window of three consecutive calls serves each camera once
    for i in range(0, 9, 3):
        assert sorted(served[i:i + 3]) == ["a", "b", "c"], served


def test_frames_of_different_shapes_go_to_separate_calls(closing):
    rec = Recorder()
    runner = runner_of(rec, lanes_of("vga", "qvga", "vga2"), window_s=30.0)
    closing(runner)
    for lane, item in zip(runner.lanes, (("v", "640x480"), ("q", "320x240"), ("w", "640x480"))):
        lane.put(item)
    assert runner.drain(10)
    assert sorted(sorted(call) for call in rec.calls) == [
        [("q", "320x240")], [("v", "640x480"), ("w", "640x480")]]


def test_a_bad_pair_costs_only_its_own_camera(closing):
    rec = Recorder(bad={"b-bad"}, poison={"c-poison"})
    runner = runner_of(rec, lanes_of("a", "b", "c"), window_s=30.0)
    closing(runner)
    for lane, item in zip(runner.lanes, ("a1", "b-bad", "c-poison")):
        lane.put(item)
    assert runner.drain(10)
    a, b, c = runner.lanes
    assert {name for name, _, _ in rec.published} == {"a"}
    assert a.drops.snapshot() == {}
    assert b.drops.snapshot() == {"bad_encoding": 2}  # decode: dropped before the engine
    assert c.drops.snapshot() == {"bad_encoding": 2}  # its batch failed; alone, it failed again
    assert ["a1"] in rec.calls  # the batch was retried one by one


def test_every_item_is_published_or_dropped_in_its_own_lane(closing):
    rec = Recorder(bad={"b3", "b7"})
    lanes = [Lane("a", "latest"), Lane("b", "burst"), Lane("c", "every")]
    runner = runner_of(rec, lanes, window_s=0.005, max_batch=2)
    closing(runner)
    sent = {"a": 0, "b": 0, "c": 0}
    for i in range(40):
        for lane in lanes:
            lane.put(f"{lane.name}{i}")
            sent[lane.name] += 1
        time.sleep(0.002)
    assert runner.drain(20)
    for lane in lanes:
        published = sum(1 for name, _, _ in rec.published if name == lane.name)
        assert published + lane.drops.total // 2 == sent[lane.name], lane.name
    assert lanes[1].drops.snapshot().get("bad_encoding") == 4
    assert lanes[2].drops.total == 0  # every: nothing superseded


def test_close_returns_what_never_reached_the_engine():
    rec = Recorder()
    runner = runner_of(rec, lanes_of("a", "b"), window_s=0.0, max_batch=1)
    rec.gate.clear()
    runner.lanes[0].put("a0")
    time.sleep(0.3)
    runner.lanes[0].put("a1")
    runner.lanes[1].put("b1")
    rec.gate.set()
    left = runner.close()
    assert not runner.alive()
    assert sum(len(v) for v in left.values()) <= 2


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        BatchRunner([], None, None, None, None, None, max_batch=0)
