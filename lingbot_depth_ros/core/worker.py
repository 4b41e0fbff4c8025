"""The pipeline's two worker threads, ROS-free, off the executor: completion, then outputs.

Stage 1 takes the newest pair from the LatestSlot and runs decode + engine; stage 2 builds
the outputs and publishes. The hand-over holds one item: while stage 2 publishes frame N,
stage 1 already completes frame N+1 (numpy, OpenCV and DDS release the GIL for their heavy
parts), so throughput is set by the slower stage rather than by their sum. When stage 2
falls behind, stage 1 waits and newer pairs supersede older ones in the slot (latest wins).

A stage that raises costs the frame, counted under the error's reason, never the thread.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from ..core.errors import LingbotDepthError
from ..core.pairing import DropCounter, LatestSlot, Pair

_POLL_S = 0.2


class CompletionWorkers:
    def __init__(self, slot: LatestSlot, drops: DropCounter, complete: Callable[[Pair], Any],
                 publish: Callable[[Any], None], warn: Callable[[str], None]) -> None:
        self._slot, self._drops = slot, drops
        self._complete, self._publish, self._warn = complete, publish, warn
        self._handover: queue.Queue = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closing = False
        self._threads = [threading.Thread(target=self._run_completion, name="lingbot_complete", daemon=True),
                         threading.Thread(target=self._run_outputs, name="lingbot_outputs", daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def in_flight(self) -> int:
        """Pairs taken from the slot and not yet published or dropped."""
        with self._lock:
            return self._in_flight

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def close(self, timeout: float = 10.0) -> None:
        self._closing = True
        self._slot.close()
        for thread in self._threads:
            thread.join(timeout)

    def _run_completion(self) -> None:
        while not self._closing:
            pair = self._slot.take(timeout=_POLL_S)
            if pair is None:
                continue
            with self._lock:
                self._in_flight += 1
            done, item = self._guarded(self._complete, pair)
            if not (done and self._hand_over(item)):
                self._finish()

    def _hand_over(self, item) -> bool:
        while not self._closing:
            try:
                self._handover.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run_outputs(self) -> None:
        while not self._closing:
            try:
                item = self._handover.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            self._guarded(self._publish, item)
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _guarded(self, stage: Callable, arg) -> tuple[bool, Any]:
        """Run one stage for one frame: (True, its result), or count the pair (2 images)
        under the error's reason and return (False, None)."""
        try:
            return True, stage(arg)
        except LingbotDepthError as exc:
            self._drops.add(exc.reason, 2)
            self._warn(f"dropped a frame pair ({exc.reason}): {exc}")
        except Exception as exc:  # a bug must cost one frame, never the node
            self._drops.add("internal_error", 2)
            self._warn(f"dropped a frame pair (internal_error): {type(exc).__name__}: {exc}")
        return False, None


class StageClock:
    """Wall time and this thread's CPU time of consecutive stages, milliseconds.

    CPU time shows the node's own cost even on a loaded machine, where wall time also
    counts waiting for the CPU and the GIL."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.cpu_ms: dict[str, float] = {}
        self.resume()

    def resume(self) -> None:
        """Start the next stage now (time spent waiting between threads is no stage's)."""
        self._wall, self._cpu = time.perf_counter(), time.thread_time()

    def add(self, stage: str, ms: float, cpu_ms: float) -> None:
        """A stage measured elsewhere (the receive callbacks)."""
        self.ms[stage], self.cpu_ms[stage] = ms, cpu_ms

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.ms[stage] = (wall - self._wall) * 1e3
        self.cpu_ms[stage] = (cpu - self._cpu) * 1e3
        self._wall, self._cpu = wall, cpu
