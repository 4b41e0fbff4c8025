"""Batches of a bag's frames for one engine call, gathered as the live rig gathers them
(core/batcher.py) but in log time, so a run is deterministic: a batch closes when it holds
a frame of every camera (at most `max_batch`), when a camera already in it has its next
frame, or when a frame comes more than the window after the batch's first (log time)."""

from __future__ import annotations

from typing import Any


class BatchGatherer:
    def __init__(self, cameras: int, max_batch: int, window_ns: int) -> None:
        self.size = max(1, min(int(max_batch), int(cameras)))
        self.window_ns = int(window_ns)
        self._batch: list[tuple[Any, Any]] = []
        self._first_ns = 0

    @property
    def pending(self) -> int:
        """Frames gathered and not yet handed out."""
        return len(self._batch)

    def add(self, camera: Any, item: Any, log_time_ns: int) -> list[list[tuple[Any, Any]]]:
        """Gather (camera, item); returns the batches this closes (none, one or two)."""
        closed = []
        if self._batch and (any(c is camera for c, _ in self._batch)
                            or log_time_ns - self._first_ns > self.window_ns):
            closed.append(self.flush())
        if not self._batch:
            self._first_ns = log_time_ns
        self._batch.append((camera, item))
        if len(self._batch) >= self.size:
            closed.append(self.flush())
        return closed

    def flush(self) -> list[tuple[Any, Any]]:
        """The batch gathered so far (possibly empty); gathering starts anew."""
        batch, self._batch = self._batch, []
        return batch
