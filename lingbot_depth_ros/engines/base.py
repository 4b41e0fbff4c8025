"""The engine interface: every completion method, classical or neural, looks like this."""

from __future__ import annotations

import abc
import time
from collections.abc import Hashable, Sequence
from contextlib import contextmanager

import numpy as np

from ..core.frame import CompletionResult, RGBDFrame, SourceMask


class Engine(abc.ABC):
    """Completes the depth of an RGBDFrame: subclasses implement `_predict` (float32 metres,
    NaN allowed); `complete` keeps measured pixels unless ``refine_measured=True``."""

    #: registry name ("guided", "torch", ...)
    name: str = "engine"

    def __init__(self, refine_measured: bool = False) -> None:
        self.refine_measured = bool(refine_measured)

    @abc.abstractmethod
    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        """Return a dense float32 (H, W) metric prediction; add stage times to `timings`."""

    def complete(self, frame: RGBDFrame) -> CompletionResult:
        timings: dict[str, float] = {}
        predicted = self._predict(frame, timings)
        with stage(timings, "merge"):
            depth, source = merge_prediction(frame.depth, predicted, self.refine_measured)
        return CompletionResult(depth=depth, source=source, engine=self.name, timings_ms=timings)

    def batch_key(self, frame: RGBDFrame) -> Hashable:
        """Frames with equal keys may share one `complete_batch` call (same network input)."""
        return frame.depth.shape

    def complete_batch(self, frames: Sequence[RGBDFrame]) -> list[CompletionResult]:
        """Complete several frames of one `batch_key` in one call; each result equals what
        `complete` gives that frame (within the engine's stated tolerance). Engines whose
        `_predict_batch` gives None run them one by one; a frame's timings are its share of
        the batch's stage times (so the frames' totals add up to the batch's)."""
        frames = list(frames)
        timings: dict[str, float] = {}
        predictions = self._predict_batch(frames, timings) if len(frames) > 1 else None
        if predictions is None:
            return [self.complete(frame) for frame in frames]
        if len(predictions) != len(frames):
            raise ValueError(f"engine returned {len(predictions)} predictions for "
                             f"{len(frames)} frames")
        share = {name: ms / len(frames) for name, ms in timings.items()}
        results = []
        for frame, predicted in zip(frames, predictions):
            frame_timings = dict(share)
            with stage(frame_timings, "merge"):
                depth, source = merge_prediction(frame.depth, predicted, self.refine_measured)
            results.append(CompletionResult(depth=depth, source=source, engine=self.name,
                                            timings_ms=frame_timings))
        return results

    def _predict_batch(self, frames: list[RGBDFrame], timings: dict[str, float]
                       ) -> list[np.ndarray] | None:
        """`_predict` of each frame in one network call, or None: this engine runs a batch
        frame by frame (the default: classical engines and `guided`)."""
        return None

    def prepare_batch(self, size: int) -> None:
        """Make now what a batch of `size` frames needs (a session, staging buffers), so the
        first such batch is not slowed by it; nothing for engines that need nothing."""

    def describe(self) -> str:
        """One line for logs and diagnostics."""
        return self.name

    def close(self) -> None:
        """Release runtime resources (GPU memory, sessions)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_prediction(measured: np.ndarray, predicted: np.ndarray,
                     refine_measured: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Combine measured and predicted depth into (depth, source mask)."""
    if predicted.shape != measured.shape:
        raise ValueError(f"engine returned {predicted.shape}, expected {measured.shape}")
    predicted = predicted.astype(np.float32, copy=False)
    have_measured = np.isfinite(measured)
    have_predicted = np.isfinite(predicted) & (predicted > 0)
    source = np.full(measured.shape, SourceMask.INVALID, dtype=np.uint8)
    if refine_measured:
        depth = np.where(have_predicted, predicted, np.float32(np.nan)).astype(np.float32)
        source[have_predicted] = SourceMask.FILLED
        return depth, source
    depth = np.where(have_measured, measured, np.where(have_predicted, predicted, np.float32(np.nan)))
    depth = depth.astype(np.float32, copy=False)
    source[have_measured] = SourceMask.MEASURED
    source[~have_measured & have_predicted] = SourceMask.FILLED
    return depth, source


@contextmanager
def stage(timings: dict[str, float], name: str):
    """Time a block into timings[name] (milliseconds, accumulated)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t0) * 1e3
