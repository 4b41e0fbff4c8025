"""The node's `admission` parameter over real DDS: with `burst` (the default), 30 Hz arriving
in bursts of 3 loses nothing when the engine keeps up on average; `every` publishes every pair
however fast they come; and every image received is published or counted by reason."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from node_harness import Running, accounting
from lingbot_depth_ros.engines.base import Engine
from lingbot_depth_ros.ros import messages

SECOND = 1_000_000_000
#: the outputs' cost kept small, so the node keeps up on average on a loaded machine
LIGHT = {"publish_cloud": False, "publish_rgbd": False, "publish_source_mask": False}


class FillWithZero(Engine):
    """An engine that keeps up with anything: holes become 0 m (what it predicts matters
    not here, only that the node is faster than the camera on average)."""

    name = "fill_with_zero"

    def _predict(self, frame, timings):
        return np.nan_to_num(frame.depth, nan=0.0)


@pytest.fixture(autouse=True)
def short_gil_switch():
    """As the node's entry point sets it (ros/node.py main)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(previous)


def send_bursts(running: Running, captures, start_s: int, bursts: int, size: int = 3,
                period_s: float = 0.1, spacing_s: float = 0.005) -> list[int]:
    """`bursts` bursts of `size` pairs `spacing_s` apart (about what a 640x480 pair takes
    to cross DDS), one burst per `period_s` (30 Hz on average for 3 per 0.1 s), stamped
    1/30 s apart as a camera stamps them."""
    stamps, t0 = [], time.monotonic()
    for burst in range(bursts):
        delay = t0 + burst * period_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for i in range(size):
            stamp = start_s * SECOND + (burst * size + i) * SECOND // 30
            capture = captures[(burst * size + i) % len(captures)]
            running.probe.send(capture.color_msg(stamp), capture.depth_msg(stamp))
            stamps.append(stamp)
            time.sleep(spacing_s)
    return stamps


def published_stamps(running: Running) -> list[int]:
    return [messages.stamp_ns(m.header) for m in running.probe.received["depth_completed"]]


def run_policy(context, captures, policy: str, send) -> tuple[list[int], list[int], dict]:
    running = Running(context, {**LIGHT, "admission": policy}, namespace=f"/admission_{policy}",
                      engine=FillWithZero())
    try:
        running.send_info(captures[0].info_msg(10 * SECOND))
        warm = 15 * SECOND  # one pair first: the first frame's one-off costs come before the bursts
        running.probe.send(captures[0].color_msg(warm), captures[0].depth_msg(warm))
        running.probe.wait_outputs("depth_completed", 1, timeout=30)
        sent = [warm] + send(running)
        running.wait_idle()
        timings = running.node.stats.percentiles()
        running.probe.wait_for(lambda r: len(r["depth_completed"]) >= running.node.stats.published,
                               20, "the published outputs")
        values = running.diagnostics()
        received, accounted = accounting(values)
        assert received == accounted == 2 * len(sent), values
        return sent, published_stamps(running), {**running.node.drops.snapshot(), **{
            k: round(v, 1) for k, v in timings.items() if k.endswith(("p50", "p95"))}}
    finally:
        running.close()


def test_burst_loses_nothing_to_bursts_of_three(context, captures):
    sent, published, drops = run_policy(
        context, captures, "burst", lambda running: send_bursts(running, captures, 20, bursts=15))
    assert drops.get("superseded", 0) == 0, (drops, sorted(set(sent) - set(published)))
    assert published == sent  # every pair, in order


def test_every_publishes_every_pair_of_a_flood(context, captures):
    def flood(running: Running) -> list[int]:  # 30 pairs as fast as they can be sent
        return send_bursts(running, captures, 40, bursts=1, size=30, spacing_s=0.0)

    sent, published, drops = run_policy(context, captures, "every", flood)
    assert "superseded" not in drops and published == sent, drops


def test_latest_counts_what_it_supersedes(context, captures):
    """latest keeps today's behaviour: a flood is mostly superseded, and counted."""
    def flood(running: Running) -> list[int]:
        return send_bursts(running, captures, 60, bursts=1, size=30, spacing_s=0.0)

    sent, published, drops = run_policy(context, captures, "latest", flood)
    assert len(published) + drops.get("superseded", 0) // 2 == len(sent)
    assert published == sorted(published) and published[-1] == sent[-1]
