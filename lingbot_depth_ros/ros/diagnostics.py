"""Node health: counters and latency statistics, and the /diagnostics message built from them.
Every received image is published, dropped under one reason, or queued:
color_received + depth_received == 2 * published + sum(drops) + queued; levels: docs/node.md."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from ..core.allocator import heap_usage
from ..core.stamped import StampGaps

STATUS_NAME = "lingbot_depth_node: depth completion"
#: worker stages timed per frame
STAGES = ("receive", "decode", "engine", "outputs", "publish")
#: the stages that make up the node's overhead (every stage but the engine)
OVERHEAD_STAGES = tuple(k for k in STAGES if k != "engine")
SERIES = ("latency", "overhead", "overhead_cpu", *STAGES, *(f"{k}_cpu" for k in STAGES))


@dataclass
class NodeStats:
    """Thread-safe counters shared by the subscription callbacks and the worker."""

    window_s: float = 10.0
    received: Counter = field(default_factory=Counter)  # "color" | "depth" | "camera_info"
    published: int = 0
    without_camera_info: int = 0
    engine: str = ""
    model: str = ""
    #: why the configured engine is not in use ("" while it is)
    fallback_reason: str = ""
    distortion_warning: str = ""
    #: why the engine stopped for good (fallback none); "" while it runs
    failure: str = ""
    #: time.monotonic() of the first and the latest colour/depth image, and of the latest
    #: published frame (None before any)
    first_input_at: float | None = None
    last_input_at: float | None = None
    last_published_at: float | None = None
    #: malloc_trim calls (allocator.HeapTrimmer) and the last one's duration
    heap_trims: int = 0
    heap_trim_last_ms: float = 0.0
    #: colour and depth images that never reached the node, estimated from stamp gaps
    missing: dict = field(default_factory=lambda: {"color": StampGaps(), "depth": StampGaps()})
    #: per published frame: latency and the worker's stage times, milliseconds
    _samples: dict = field(default_factory=lambda: {k: deque(maxlen=600) for k in SERIES})
    _publish_times: deque = field(default_factory=lambda: deque(maxlen=2000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_received(self, stream: str, stamp_ns: int | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            self.received[stream] += 1
            if stream in ("color", "depth"):
                if stamp_ns is not None:
                    self.missing[stream].add(stamp_ns)
                self.last_input_at = now
                if self.first_input_at is None:
                    self.first_input_at = now

    def missing_before_node(self) -> dict[str, int]:
        with self._lock:
            return {k: gaps.missing for k, gaps in self.missing.items()}

    def count_without_camera_info(self) -> None:
        with self._lock:
            self.without_camera_info += 1

    def count_heap_trim(self, ms: float) -> None:
        with self._lock:
            self.heap_trims += 1
            self.heap_trim_last_ms = ms

    def count_published(self, latency_ms: float, stage_ms: dict[str, float],
                        stage_cpu_ms: dict[str, float]) -> None:
        """One published frame: its latency and stage times (receive: reading + pairing its
        two images in the callbacks; decode, engine, outputs, publish: the workers), wall and
        CPU; overhead is every stage but the engine."""
        now = time.monotonic()
        with self._lock:
            self.published += 1
            self._samples["latency"].append(latency_ms)
            self._samples["overhead"].append(_without_engine(stage_ms))
            self._samples["overhead_cpu"].append(_without_engine(stage_cpu_ms))
            for key in STAGES:
                self._samples[key].append(stage_ms.get(key, 0.0))
                self._samples[f"{key}_cpu"].append(stage_cpu_ms.get(key, 0.0))
            self._publish_times.append(now)
            self.last_published_at = now

    def rate_hz(self) -> float:
        """Published frames per second over the last `window_s` seconds."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._publish_times if t >= now - self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def percentiles(self) -> dict[str, float]:
        """`<series>_p50` for every series and latency_p95, ms over recent frames; NaN if none."""
        with self._lock:
            arrays = {k: np.array(v, dtype=np.float64) for k, v in self._samples.items()}
        out = {f"{key}_p50": float(np.percentile(values, 50)) if values.size else float("nan")
               for key, values in arrays.items()}
        lat = arrays["latency"]
        out["latency_p95"] = float(np.percentile(lat, 95)) if lat.size else float("nan")
        return out


def _without_engine(stage_ms: dict[str, float]) -> float:
    return sum(stage_ms.get(k, 0.0) for k in OVERHEAD_STAGES)


class RecentDrops:
    """Drops per reason over the last `window_s` seconds, from the snapshots it is given."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._snapshots: deque = deque()

    def update(self, snapshot: dict[str, int], now: float | None = None) -> dict[str, int]:
        """Record `snapshot` (cumulative counts) and return the counts added within the window."""
        now = time.monotonic() if now is None else now
        self._snapshots.append((now, snapshot))
        while len(self._snapshots) > 1 and self._snapshots[1][0] <= now - self.window_s:
            self._snapshots.popleft()
        oldest = self._snapshots[0][1] if self._snapshots[0][0] <= now - self.window_s else {}
        added = {k: n - oldest.get(k, 0) for k, n in snapshot.items()}
        return {k: n for k, n in added.items() if n > 0}


@dataclass(frozen=True)
class Health:
    """What /diagnostics says beyond the counters: the inputs' freshness and the worst problem."""

    level: bytes
    problems: list[str]
    input_age_s: float  # NaN before any input
    output_age_s: float  # NaN before any output


def health(stats: NodeStats, recent_drops: dict[str, int], queued: int, timeout_s: float,
           now: float | None = None) -> Health:
    """The status level and its reasons, worst first."""
    now = time.monotonic() if now is None else now
    with stats._lock:
        first, last_in, last_out = stats.first_input_at, stats.last_input_at, stats.last_published_at
        received = stats.received["color"] + stats.received["depth"]
        without_info = stats.without_camera_info
    nan = float("nan")
    input_age = now - last_in if last_in is not None else nan
    output_age = now - last_out if last_out is not None else nan
    found: list[tuple[bytes, str]] = []
    if stats.failure:
        found.append((DiagnosticStatus.ERROR, f"engine stopped: {stats.failure}"))
    if last_in is not None and input_age > timeout_s:
        found.append((DiagnosticStatus.STALE, f"no input for {input_age:.1f} s"))
    elif first is not None and now - max(first, last_out or first) > timeout_s:
        silent = now - (last_out if last_out is not None else first)
        found.append((DiagnosticStatus.ERROR, f"nothing published for {silent:.1f} s while "
                      f"input arrives; {_dominant(recent_drops, queued)}"))
    if stats.fallback_reason:
        found.append((DiagnosticStatus.WARN, f"fell back to {stats.engine}: {stats.fallback_reason}"))
    if stats.distortion_warning:
        found.append((DiagnosticStatus.WARN, stats.distortion_warning))
    if without_info:
        found.append((DiagnosticStatus.WARN, f"{without_info} frame(s) without camera info (no cloud)"))
    if not received:
        found.append((DiagnosticStatus.WARN, "no input received yet"))
    found.sort(key=lambda item: -ord(item[0]))
    level = found[0][0] if found else DiagnosticStatus.OK
    return Health(level, [text for _, text in found], input_age, output_age)


def _dominant(recent_drops: dict[str, int], queued: int) -> str:
    if not recent_drops:
        return f"no drops, {queued} image(s) queued or in the engine"
    reason, n = max(recent_drops.items(), key=lambda item: item[1])
    return f"most dropped: {reason} ({n} of {sum(recent_drops.values())} images)"


def status_name(camera: str = "") -> str:
    """The status name of a rig of one, or of a rig's camera (each its own row in
    rqt_robot_monitor and the diagnostic aggregator)."""
    return f"{STATUS_NAME} ({camera})" if camera else STATUS_NAME


def diagnostic_array(stats: NodeStats, drops: dict[str, int], queued: int, stamp,
                     hardware_id: str = "", status: Health | None = None,
                     extra: dict[str, str] | None = None) -> DiagnosticArray:
    """The array of one status (diagnostic_status)."""
    return DiagnosticArray(header=Header(stamp=stamp), status=[
        diagnostic_status(stats, drops, queued, hardware_id, status, extra)])


def diagnostic_status(stats: NodeStats, drops: dict[str, int], queued: int,
                      hardware_id: str = "", status: Health | None = None,
                      extra: dict[str, str] | None = None, name: str = STATUS_NAME) -> DiagnosticStatus:
    """One DiagnosticStatus with every counter as a key/value; level and message from `status`
    (by default `health` with a 3 s timeout and no recent drops known)."""
    status = status if status is not None else health(stats, {}, queued, 3.0)
    pct = stats.percentiles()
    with stats._lock:
        received = dict(stats.received)
        published = stats.published
        without_info = stats.without_camera_info
        trims, trim_ms = stats.heap_trims, stats.heap_trim_last_ms
    missing = stats.missing_before_node()
    heap = heap_usage() or (float("nan"), float("nan"))
    values = {
        "rate_hz": f"{stats.rate_hz():.2f}",
        **{f"{k}_ms": f"{pct[k]:.2f}" for k in ("latency_p50", "latency_p95", "engine_p50", "overhead_p50",
                                                 "overhead_cpu_p50", *(f"{s}_p50" for s in OVERHEAD_STAGES),
                                                 *(f"{s}_cpu_p50" for s in OVERHEAD_STAGES))},
        "engine": stats.engine,
        "model": stats.model,
        "fallback": stats.fallback_reason or "none",
        "engine_failure": stats.failure or "none",
        "last_input_age_s": f"{status.input_age_s:.2f}",
        "last_output_age_s": f"{status.output_age_s:.2f}",
        **{f"{k}_received": str(received.get(k, 0)) for k in ("color", "depth", "camera_info")},
        "camera_info_unreadable": str(received.get("camera_info_unreadable", 0)),
        **{f"{k}_missing_before_node": str(n) for k, n in missing.items()},
        "published": str(published),
        "queued": str(queued),
        "frames_without_camera_info": str(without_info),
        "dropped_total": str(sum(drops.values())),
        "distortion": stats.distortion_warning or "none",
        "heap_trims": str(trims),
        "heap_trim_last_ms": f"{trim_ms:.2f}",
        "heap_in_use_mb": f"{heap[0] / 2**20:.1f}",
        "heap_free_mb": f"{heap[1] / 2**20:.1f}",
        **(extra or {}),
    }
    values.update({f"dropped.{reason}": str(n) for reason, n in sorted(drops.items())})
    message = ("; ".join(status.problems) if status.problems
               else f"{values['rate_hz']} Hz with {stats.engine}")
    return DiagnosticStatus(level=status.level, name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def parse_values(array: DiagnosticArray, hardware_id: str | None = None) -> dict[str, str]:
    """Key/values of our status (of the node `hardware_id`, if given); empty if none is ours."""
    for status in array.status:
        ours = status.name == STATUS_NAME or (status.name.startswith(f"{STATUS_NAME} (")
                                              and status.name.endswith(")"))
        if ours and hardware_id in (None, status.hardware_id):
            return {kv.key: kv.value for kv in status.values}
    return {}
