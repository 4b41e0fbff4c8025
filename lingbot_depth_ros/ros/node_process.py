"""Start-up and shutdown of the node's process: one error path (one line on stderr, exit 2)
and one stop path (SIGINT/SIGTERM recorded by our own handlers, teardown on a live context);
why rclpy's handlers are not used: docs/internals.md."""

from __future__ import annotations

import re
import signal
import sys
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STARTUP_ERROR_EXIT = 2
#: the node stopped itself for good (the engine failed at run time with `fallback: none`)
RUNTIME_FAILURE_EXIT = 1
#: stopped by SIGTERM (a supervisor's stop: systemd, docker stop, kill), 128 + 15 as a shell
#: reports a process that SIGTERM ended; SIGINT (Ctrl-C, ros2 launch's shutdown) exits 0
SIGTERM_EXIT = 143
#: longest wait between a stop signal and the spin loop seeing it
SPIN_POLL_S = 0.1

#: what to add to rcl's message when the cause is a common one
_HINTS = (
    ("before ros__parameters",
     "a parameter file names the node first, e.g. '/**/lingbot_depth_node:' then "
     "'ros__parameters:' above the values"),
    ("Error opening YAML file", "the file does not exist or cannot be read"),
)
#: rcl appends where in its C sources an error was raised: ", at /project/src/parse.c:835"
_SOURCE_LOCATION = re.compile(r",? at /\S+:\d+")


class StopRequested(BaseException):
    """A stop signal arrived while the node was starting (leaves the start-up at once)."""


class StopSignals:
    """SIGINT/SIGTERM handlers for the node process: interrupt start-up, then only record."""

    def __init__(self) -> None:
        self.received: list[str] = []
        #: importing | preparing | starting | running | teardown; a first signal leaves the
        #: slow parts (imports, the node's constructor: the engine loads there) at once and
        #: is only recorded while rclpy's own objects are made or the node runs
        self.phase = "importing"

    def install(self) -> "StopSignals":
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.received.append(signal.Signals(signum).name)
        # Running: the spin loop polls `received`. Tearing down: a second Ctrl-C must not
        # cut the engine's close short.
        if self.phase in ("importing", "starting") and len(self.received) == 1:
            raise StopRequested(self.received[0])


_installed: StopSignals | None = None


def install_stop_signals() -> StopSignals:
    """The process's StopSignals, installed on first call (node_main.py calls this before
    its slow imports, so a Ctrl-C while importing is a clean stop too)."""
    global _installed
    if _installed is None:
        _installed = StopSignals().install()
    return _installed


def plain_message(exc: BaseException) -> str:
    """The message of `exc` on one line, without rcl's source locations."""
    return " ".join(_SOURCE_LOCATION.sub("", str(exc)).split())


def one_line(exc: BaseException) -> str:
    """`exc` as one readable line: its type, its plain message, a hint for common causes."""
    text = plain_message(exc) or "(no message)"
    hints = [hint for marker, hint in _HINTS if marker in str(exc)]
    return f"{type(exc).__name__}: {text}" + "".join(f" ({hint})" for hint in hints)


def run_node(start: Callable[[], object], args: list[str] | None, name: str,
             started_note: str = "") -> int:
    """rclpy.init(args), `start()` the node (which must leave nothing behind when it raises),
    spin until a stop signal, tear down. Returns 0 after SIGINT, SIGTERM_EXIT after SIGTERM
    (the same clean teardown), STARTUP_ERROR_EXIT when the node could not start,
    RUNTIME_FAILURE_EXIT when it stopped itself (`fatal_error`)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    signals = install_stop_signals()
    signals.phase = "preparing"
    node = executor = None
    try:
        # Not rclpy's handlers: they shut the context down from another thread at once, so
        # whatever runs then (spin, start-up, the teardown's logging) fails in a race with
        # the signal. Ours only record it; the loop below stops within one poll period.
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        if not signals.received:
            signals.phase = "starting"
            node = start()  # a node lost to a signal right after is destroyed by try_shutdown
            signals.phase = "running"
            executor = make_executor(node)
            executor.add_node(node)
            if started_note:
                node.get_logger().info(started_note)
        while not signals.received and rclpy.ok() and not getattr(node, "fatal_error", ""):
            executor.spin_once(timeout_sec=SPIN_POLL_S)
    except (StopRequested, KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        if signals.received:
            pass  # stopped during start-up: what the stop cut short is no error
        elif node is None:
            print(f"{name}: cannot start: {one_line(exc)}", file=sys.stderr, flush=True)
            return STARTUP_ERROR_EXIT
        else:
            raise  # a fault of the running node's own, whose traceback is worth having
    finally:
        signals.phase = "teardown"
        _tear_down(node, executor, rclpy)
    failure = getattr(node, "fatal_error", "")
    if failure and not signals.received:
        print(f"{name}: stopped: {' '.join(failure.split())}", file=sys.stderr, flush=True)
        return RUNTIME_FAILURE_EXIT
    return SIGTERM_EXIT if signals.received[:1] == ["SIGTERM"] else 0


def make_executor(node):
    """The executor the node's `executor` parameter names. EventsExecutor takes each ready
    entity as an event, where SingleThreadedExecutor rebuilds its wait set from every entity
    of the node (subscriptions, timers, parameter services) for each callback: on a node
    reading three 30 Hz streams that is most of the executor thread's CPU. It has no guard
    conditions, so the node stops through its `fatal_error` flag, which the loop polls."""
    from rclpy.executors import SingleThreadedExecutor

    wanted = getattr(getattr(node, "config", None), "executor", "single_threaded")
    if wanted == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            node.get_logger().warning("executor events: this rclpy has no "
                                      "rclpy.experimental.EventsExecutor; single_threaded instead")
        else:
            return EventsExecutor(context=node.context)
    return SingleThreadedExecutor(context=node.context)


def _tear_down(node, executor, rclpy) -> None:
    """Stop the executor, destroy the node (closes workers and engine), then the context."""
    try:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
