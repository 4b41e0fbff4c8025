"""The completion engine with the `fallback` policy, for the live node and `bag process` alike
(the node publishes each change: ros/engine_keeper.py). guided: a failing neural engine is
replaced by `guided`. none: a load failure raises EngineFailedError; a run-time failure
drops every later pair as `engine_failed` and calls `on_fatal`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import EngineFailedError
from ..core.frame import CompletionResult, RGBDFrame
from ..core.pipeline import CLASSICAL_ENGINES
from .base import Engine
from .registry import create_engine, load_engine


@dataclass
class EngineStatus:
    """What EngineFallback reports (the node's NodeStats has the same fields)."""

    engine: str = ""
    model: str = ""
    #: why the configured engine was replaced by guided, "" while it runs
    fallback_reason: str = ""
    #: why the engine stopped for good (fallback none), "" while it runs
    failure: str = ""


class EngineFallback:
    """`stats` gets engine, model, fallback_reason and failure (EngineStatus or the node's
    NodeStats); `log` has info/warning/error(str); `announce(text)` is called with each
    change. `engine` (with its `model_id`): one already made, else loaded from `config`."""

    def __init__(self, config, stats=None, log=None, announce: Callable[[str], None] | None = None,
                 on_fatal: Callable[[str], None] | None = None, engine: Engine | None = None,
                 model_id: str = "") -> None:
        self.config = config
        self.stats = stats if stats is not None else EngineStatus()
        self._log = log or logging.getLogger(__name__)
        self._announce = announce or (lambda text: None)
        self._on_fatal = on_fatal or (lambda reason: None)
        #: why the engine stopped for good (fallback none), "" while it runs
        self.failure = ""
        #: engines this object made (the fallback), closed by `close`; a given one is the giver's
        self._owned: list[Engine] = []
        if engine is not None:
            self.engine, self.model_id = engine, model_id
            self.stats.engine, self.stats.model = engine.name, model_id
        else:
            self.engine, self.model_id = self._load()
            self._owned.append(self.engine)
        self.announce()

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> tuple[Engine, str]:
        name = self.config.engine
        try:
            engine, model = load_engine(self.config)
        except Exception as exc:  # any load failure: the fallback policy decides
            reason = f"engine '{name}' failed to load: {type(exc).__name__}: {exc}"
            if self.config.fallback == "none":
                raise EngineFailedError(f"{reason} (fallback: none)") from exc
            engine, model = self._fall_back(reason), ""
        else:
            self.stats.engine = engine.name
            for line in getattr(engine, "selection_log", ()):
                self._log.info(f"engine auto: {line}")
        if self.config.mode == "monocular" and engine.name in CLASSICAL_ENGINES:
            self._log.warning(
                f"mode 'monocular' needs a neural engine; {engine.name} completes measured depth")
        self.stats.model = model
        return engine, model

    def _fall_back(self, reason: str) -> Engine:
        self._log.error(f"{reason}; falling back to the guided engine")
        engine = create_engine("guided", refine_measured=self.config.refine_measured)
        self._owned.append(engine)
        self.stats.engine, self.stats.fallback_reason, self.stats.model = engine.name, reason, ""
        return engine

    def announce(self) -> None:
        """Say which engine is in use: `<engine>`, `<engine>; fallback: <why>` or `failed: <why>`."""
        self._announce(self.describe())

    def describe(self) -> str:
        if self.failure:
            return f"failed: {self.failure}"
        if self.stats.fallback_reason:
            return f"{self.engine.name}; fallback: {self.stats.fallback_reason}"
        return self.engine.name

    # -- running --------------------------------------------------------------------------
    def complete(self, frame: RGBDFrame, input_errors: tuple) -> CompletionResult:
        return self._call(lambda: self.engine.complete(frame), input_errors)

    def _call(self, call: Callable[[], Any], input_errors: tuple) -> Any:
        """`call()` (which reads `self.engine` when it runs), under the fallback policy: a
        neural engine failing on other than bad input is replaced (or stops us) and `call`
        runs again on its replacement."""
        if self.failure:
            raise EngineFailedError(self.failure)
        try:
            return call()
        except input_errors:
            raise
        except Exception as exc:
            if self.engine.name in CLASSICAL_ENGINES:
                raise
            self._failed(f"engine '{self.engine.name}' failed at run time: {type(exc).__name__}: {exc}", exc)
            return call()

    def _failed(self, reason: str, exc: Exception) -> None:
        """The engine failed at run time: fall back to guided, or stop (fallback none:
        raises EngineFailedError)."""
        if self.config.fallback == "none":
            self.failure = f"{reason} (fallback: none)"
            self.stats.failure = self.failure
            self._log.error(f"{self.failure}; stopping")
            self.announce()
            self._on_fatal(self.failure)
            raise EngineFailedError(self.failure) from exc
        self.engine, self.model_id = self._fall_back(reason), ""
        self.announce()

    def batch_key(self, frame: RGBDFrame):
        """The engine's batch key of `frame` (its input shape for an engine without one)."""
        key = getattr(self.engine, "batch_key", None)
        return key(frame) if key is not None else frame.depth.shape

    def complete_batch(self, frames: list[RGBDFrame], input_errors: tuple) -> list[CompletionResult]:
        """Several frames of one `engine.batch_key` in one engine call, under the same policy
        as `complete` (a failing neural engine is replaced for this batch and the rest)."""
        if len(frames) == 1:
            return [self.complete(frames[0], input_errors)]
        return self._call(lambda: _batched(self.engine, frames), input_errors)

    def close(self) -> None:
        """Close the engines this object made (a given engine is closed by its giver)."""
        for engine in self._owned:
            engine.close()
        self._owned.clear()


def _batched(engine, frames: list[RGBDFrame]) -> list[CompletionResult]:
    """`engine.complete_batch`, or one by one for an engine object without it."""
    batch = getattr(engine, "complete_batch", None)
    return batch(frames) if batch is not None else [engine.complete(frame) for frame in frames]
