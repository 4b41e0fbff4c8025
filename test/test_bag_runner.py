"""`bag process` through the node's frame runner and EngineFallback, on real bags: a neural
engine failing mid-bag is replaced by `guided` for the remaining frames (or, with
`fallback: none`, they are dropped as engine_failed), results stay in input order, every pair
is accounted for, and SIGTERM finishes like Ctrl-C and exits 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bag_helpers import EXAMPLES, image_array, make_demo, read_bag, run_cli, stamp

from lingbot_depth_ros.bag.demo import DEMO_START_NS
from lingbot_depth_ros.bag.process import process_bag
from lingbot_depth_ros.core.captures import find_captures
from lingbot_depth_ros.core.errors import InvalidDepthError
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros.params import NodeConfig

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 4 * len(find_captures(EXAMPLES))  # the example captures, four times


class BreaksMidBag:
    """A neural engine (as the node sees it: not a classical name) whose runtime breaks
    after `good` frames, as a lost GPU would."""

    name = "torch"

    def __init__(self, good: int) -> None:
        self.inner, self.good, self.calls = create_engine("nearest"), good, 0

    def complete(self, frame: RGBDFrame):
        self.calls += 1
        if self.calls > self.good:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.complete(frame)

    def describe(self) -> str:
        return "torch (breaks mid-bag)"

    def close(self) -> None:
        pass


def depths_by_stamp(path: Path) -> dict[int, np.ndarray]:
    return {stamp(m.header): image_array(m) for _, m in read_bag(path)["/depth_completed"]}


def test_engine_failing_mid_bag_falls_back_to_guided_for_the_rest(tmp_path):
    bag = make_demo(tmp_path, "in.mcap", repeat=4)
    engine = BreaksMidBag(good=5)
    summary = process_bag(bag, tmp_path / "out.mcap", engine, NodeConfig.from_values({}),
                          show_progress=False)
    assert summary.pairs == FRAMES and summary.processed == FRAMES
    assert summary.drops == {}
    assert "failed at run time" in summary.fallback_reason
    assert "CUDA error" in summary.fallback_reason
    assert summary.engine.endswith("guided; fallback: " + summary.fallback_reason)
    assert any("fallback" in line and "guided" in line for line in summary.lines())
    # in input order; the first five by the engine, the rest (from the failing one) by guided
    out = read_bag(tmp_path / "out.mcap")
    stamps = [stamp(m.header) for _, m in out["/depth_completed"]]
    assert stamps == sorted(stamps) and len(stamps) == FRAMES
    assert [m.engine for _, m in out["/depth_completed/rgbd"]] == ["nearest"] * 5 + ["guided"] * (FRAMES - 5)
    reference = tmp_path / "guided.mcap"
    process_bag(bag, reference, create_engine("guided"), NodeConfig.from_values({}),
                show_progress=False)
    completed, by_guided = depths_by_stamp(tmp_path / "out.mcap"), depths_by_stamp(reference)
    for t in stamps[5:]:  # the same computation: exactly equal
        np.testing.assert_array_equal(completed[t], by_guided[t])
    assert not np.array_equal(completed[stamps[0]], by_guided[stamps[0]])  # nearest's own


def test_engine_failing_mid_bag_with_fallback_none_drops_the_rest(tmp_path, capsys):
    bag = make_demo(tmp_path, "in.mcap", repeat=4)
    summary = process_bag(bag, tmp_path / "out.mcap", BreaksMidBag(good=5),
                          NodeConfig.from_values({"fallback": "none"}), show_progress=False)
    assert summary.processed == 5
    assert summary.drops == {"engine_failed": 2 * (FRAMES - 5)}  # each pair counts 2 images
    assert "fallback: none" in summary.engine_failure
    assert len(read_bag(tmp_path / "out.mcap")["/depth_completed"]) == 5


class RejectsEveryThird:
    """Completes frames, but finds every third one's depth unusable (an input error: the
    frame is dropped under its reason, the engine is not replaced)."""

    name = "nearest"

    def __init__(self) -> None:
        self.inner, self.calls = create_engine("nearest"), 0

    def complete(self, frame: RGBDFrame):
        self.calls += 1
        if self.calls % 3 == 0:
            raise InvalidDepthError("no usable depth in this frame")
        return self.inner.complete(frame)

    def describe(self) -> str:
        return "nearest (rejects every third frame)"


def test_every_pair_is_processed_or_dropped_with_a_reason(tmp_path):
    """Frames dropped in the middle of a bag are counted where they are; the rest, and every
    input message, still go out in order."""
    bag = make_demo(tmp_path, "in.mcap", repeat=4)
    summary = process_bag(bag, tmp_path / "out.mcap", RejectsEveryThird(),
                          NodeConfig.from_values({}), show_progress=False)
    rejected = FRAMES // 3
    assert summary.pairs == FRAMES and summary.processed == FRAMES - rejected
    assert summary.drops == {"all_invalid_depth": 2 * rejected}
    assert summary.fallback_reason == ""  # bad input never blames the engine
    out, given = read_bag(tmp_path / "out.mcap"), read_bag(bag)
    stamps = [stamp(m.header) for _, m in out["/depth_completed"]]
    assert stamps == sorted(stamps) and len(stamps) == FRAMES - rejected
    for topic, messages in given.items():  # copied whole, in log-time order
        assert [t for t, _ in out[topic]] == [t for t, _ in messages], topic


def _cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_sigterm_finishes_like_ctrl_c_and_exits_143(tmp_path):
    bag = make_demo(tmp_path, "in.mcap", repeat=40)  # 120 frames: seconds of work
    out = tmp_path / "out.mcap"
    process = subprocess.Popen(
        [sys.executable, "-m", "lingbot_depth_ros.cli", "bag", "process", str(bag), str(out),
         "--engine", "guided", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_cli_env())
    staging = tmp_path / "out.mcap.partial"
    deadline = time.monotonic() + 60
    while not staging.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # some frames written
    process.send_signal(signal.SIGTERM)
    text, _ = process.communicate(timeout=60)
    assert process.returncode == 143, text
    assert "Traceback" not in text
    assert "INTERRUPTED" in text and "interrupted" in text  # the summary says so
    written = read_bag(out)["/depth_completed"]  # closed readable
    assert 0 < len(written) < 120
    assert [stamp(m.header) for _, m in written] == sorted(stamp(m.header) for _, m in written)
    assert stamp(written[0][1].header) == DEMO_START_NS


def test_sigterm_into_another_long_command_exits_143(tmp_path):
    """`bag eval` has no handler of its own: SIGTERM stops it as Ctrl-C does (the CLI's
    KeyboardInterrupt path), with SIGTERM's code and no traceback."""
    bag = make_demo(tmp_path, "in.mcap", repeat=40)
    process = subprocess.Popen(
        [sys.executable, "-m", "lingbot_depth_ros.cli", "bag", "eval", str(bag), "--engines",
         "telea", "--no-progress", "--json", str(tmp_path / "eval.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_cli_env())
    time.sleep(4.0)  # past the imports, scoring frames
    process.send_signal(signal.SIGTERM)
    text, _ = process.communicate(timeout=60)
    assert process.returncode == 143, text
    assert "Traceback" not in text and "interrupted" in text
    assert not (tmp_path / "eval.json").exists()  # nothing half-written at the output path


def test_ctrl_c_still_exits_130(tmp_path, capsys):
    """The in-process CLI path: Ctrl-C (SIGINT) keeps its own code."""
    bag = make_demo(tmp_path, "in.mcap", repeat=40)
    os_kill_after = 0.5

    import threading

    timer = threading.Timer(os_kill_after, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        rc, out, _ = run_cli(["bag", "process", bag, tmp_path / "out.mcap", "--engine", "guided",
                              "--no-progress"], capsys)
    finally:
        timer.cancel()
    assert rc == 130, out
