"""The pipeline's completion engine with the `fallback` policy, ROS-free (the node publishes
each change: ros/engine_keeper.py). guided: a failing neural engine is replaced by `guided`.
none: a load failure raises EngineFailedError; a run-time failure drops every later pair as
`engine_failed` and calls `on_fatal`."""

from __future__ import annotations

from typing import Callable

from ..engines.base import Engine
from ..engines.registry import CLASSICAL_ENGINES, create_engine, load_engine
from .errors import EngineFailedError
from .frame import CompletionResult, RGBDFrame


class EngineFallback:
    """`stats` gets engine, model, fallback_reason and failure (the node's NodeStats);
    `log` has info/warning/error(str); `announce(text)` is called with each change."""

    def __init__(self, config, stats, log, announce: Callable[[str], None],
                 on_fatal: Callable[[str], None]) -> None:
        self.config, self.stats, self._log = config, stats, log
        self._announce, self._on_fatal = announce, on_fatal
        #: why the engine stopped for good (fallback none), "" while it runs
        self.failure = ""
        self.engine, self.model_id = self._load()
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
        self.stats.engine, self.stats.fallback_reason, self.stats.model = engine.name, reason, ""
        return engine

    def announce(self) -> None:
        """Say which engine is in use: `<engine>`, `<engine>; fallback: <why>` or `failed: <why>`."""
        if self.failure:
            text = f"failed: {self.failure}"
        elif self.stats.fallback_reason:
            text = f"{self.engine.name}; fallback: {self.stats.fallback_reason}"
        else:
            text = self.engine.name
        self._announce(text)

    # -- running --------------------------------------------------------------------------
    def complete(self, frame: RGBDFrame, input_errors: tuple) -> CompletionResult:
        if self.failure:
            raise EngineFailedError(self.failure)
        try:
            return self.engine.complete(frame)
        except input_errors:
            raise
        except Exception as exc:
            if self.engine.name in CLASSICAL_ENGINES:
                raise
            reason = f"engine '{self.engine.name}' failed at run time: {type(exc).__name__}: {exc}"
            if self.config.fallback == "none":
                self.failure = f"{reason} (fallback: none)"
                self.stats.failure = self.failure
                self._log.error(f"{self.failure}; stopping")
                self.announce()
                self._on_fatal(self.failure)
                raise EngineFailedError(self.failure) from exc
            self.engine, self.model_id = self._fall_back(reason), ""
            self.announce()
            return self.engine.complete(frame)

    def close(self) -> None:
        self.engine.close()
