"""The node's completion engine: loads the configured one and applies the `fallback` policy.

fallback guided: a neural engine that fails to load or throws at run time is replaced by
`guided` (diagnostics WARN, the engine topic says why). fallback none: a load failure stops
the node with EngineFailedError; a run-time failure marks the engine failed, every later pair
is dropped as `engine_failed` and `on_fatal` is called (the node then shuts down).
Each change is published as one line on the latched `depth_completed/engine` topic.
"""

from __future__ import annotations

from typing import Callable

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ..core.errors import EngineFailedError
from ..core.frame import CompletionResult, RGBDFrame
from ..engines.base import Engine
from ..engines.registry import CLASSICAL_ENGINES, create_engine, load_engine
from .diagnostics import NodeStats
from .params import NodeConfig


class EngineKeeper:
    def __init__(self, node, config: NodeConfig, stats: NodeStats,
                 on_fatal: Callable[[str], None]) -> None:
        self.config, self.stats, self._log, self._on_fatal = config, stats, node.get_logger(), on_fatal
        # Latched (transient local): a subscriber that comes later still reads the engine.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.status_pub = node.create_publisher(String, "depth_completed/engine", latched)
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
        """Publish the engine in use (latched): `<engine>`, `<engine>; fallback: <why>` or
        `failed: <why>`."""
        if self.failure:
            text = f"failed: {self.failure}"
        elif self.stats.fallback_reason:
            text = f"{self.engine.name}; fallback: {self.stats.fallback_reason}"
        else:
            text = self.engine.name
        self.status_pub.publish(String(data=text))

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
