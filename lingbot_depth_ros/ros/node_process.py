"""Start-up and shutdown of the node's process: one error path, one stop path.

Start-up: anything that stops the node before it spins (rcl's argument and parameter-file
parsing, a parameter or topic name rclpy rejects, an engine that cannot be built) ends in
one line on stderr and exit code 2, never a traceback.

Stop: SIGINT and SIGTERM stop the node cleanly: exit 0, the workers joined and the engine
closed. Under `ros2 launch` a Ctrl-C reaches the node twice (from the terminal and from
launch), and rclpy's own handler both shuts the context down (spin returns) and passes the
signal on to Python (a KeyboardInterrupt at the next bytecode). Left to Python's default
handler that second interrupt lands inside the teardown ("process has died, exit code -2",
engine not closed); here it is recorded and ignored once the teardown has begun.
"""

from __future__ import annotations

import re
import signal
import sys
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STARTUP_ERROR_EXIT = 2

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
    """SIGINT/SIGTERM handlers for the node process: interrupt start-up, then stay quiet.

    Installed before rclpy.init, so rclpy's handler (which wakes and shuts down the
    executor) passes each signal on to this one."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.phase = "startup"  # startup | running | teardown
        self._previous: dict = {}

    def install(self) -> "StopSignals":
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, _frame) -> None:
        self.received.append(signal.Signals(signum).name)
        # Running: rclpy's handler has already shut the context down, spin returns by itself.
        # Tearing down: a second Ctrl-C must not cut the engine's close short.
        if self.phase == "startup" and len(self.received) == 1:
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
    """rclpy.init(args), `start()` the node, spin until a stop signal or shutdown, tear down.

    `start` must leave nothing behind when it raises (the node's constructor destroys what
    it built). Returns the process exit code: 0 after a stop, STARTUP_ERROR_EXIT when the
    node could not start (one line on stderr)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    signals = install_stop_signals()
    node = None
    try:
        rclpy.init(args=args)
        node = start()
        if started_note and not signals.received and node.context.ok():  # /rosout still up
            node.get_logger().info(started_note)
        signals.phase = "running"
        if not signals.received:  # a signal between start() and here shut the context down
            rclpy.spin(node)
    except (StopRequested, KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        if node is not None or signals.received:
            # Running: a fault of the node's own, whose traceback is worth having. Stopped
            # during start-up: whatever the shut-down context made fail is no error.
            if not signals.received:
                raise
        else:
            print(f"{name}: cannot start: {one_line(exc)}", file=sys.stderr, flush=True)
            return STARTUP_ERROR_EXIT
    finally:
        signals.phase = "teardown"
        _tear_down(node, rclpy)
    return 0


def _tear_down(node, rclpy) -> None:
    """Destroy the node (closes workers and engine), then the context."""
    try:
        if node is not None:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
