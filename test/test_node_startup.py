"""The node process's start-up and shutdown path (ros/node_process.py): every start-up error
is one line on stderr and exit code 2, never a traceback; SIGINT (exit code 0) and SIGTERM
(143) stop it with the engine closed; a node whose constructor raised is torn down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_harness import domain_id, make_context, rclpy
from lingbot_depth_ros.ros.node import LingbotDepthNode
from lingbot_depth_ros.ros.node_process import one_line

ROOT = Path(__file__).resolve().parents[1]
NODE_SCRIPT = ROOT / "scripts" / "lingbot_depth_node"
READY = "Fast DDS"  # the node's last start-up log line (ros/node_process.py started_note)


def node_env() -> dict:
    return dict(os.environ, ROS_DOMAIN_ID=str(domain_id(__name__)),
                ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")


def run_node(*ros_args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(NODE_SCRIPT), "--ros-args", *ros_args],
                          capture_output=True, text=True, timeout=60, env=node_env())


def params_file(tmp_path, text: str, name: str = "params.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_one_line_error(run: subprocess.CompletedProcess, *expected: str) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    lines = [line for line in run.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1, run.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert ", at /" not in lines[0]  # rcl's C source locations are left out
    return lines[0]


@pytest.mark.parametrize("topic, reason", [
    ("''", "must not be empty"),
    ("a//b", "repeated '/'"),
    ("'a b'", "characters other than"),
])
def test_invalid_topic_name_is_one_line(tmp_path, topic, reason):
    path = params_file(tmp_path, f"/**/lingbot_depth_node:\n  ros__parameters:\n"
                                 f"    depth_topic: {topic}\n")
    assert_one_line_error(run_node("--params-file", path), "'depth_topic'", reason)


def test_missing_params_file_is_one_line(tmp_path):
    missing = str(tmp_path / "nowhere.yaml")
    assert_one_line_error(run_node("--params-file", missing), missing, "cannot be read")


@pytest.mark.parametrize("text, expected", [
    ("\x00\x01\x02 not yaml", "Couldn't parse params file"),
    ("a: [1,\n b: {\n", "Couldn't parse params file"),            # a YAML syntax error
    ("engine: guided\nslop: 0.05\n", "names the node first"),      # flat: no node key
])
def test_unreadable_or_flat_params_file_is_one_line(tmp_path, text, expected):
    assert_one_line_error(run_node("--params-file", params_file(tmp_path, text)), expected)


def test_parameter_out_of_range_is_one_line():
    assert_one_line_error(run_node("-p", "slop:=5.0"), "slop")


def test_one_line_joins_lines_and_drops_source_locations():
    exc = RuntimeError("Error: bad key at line 3\n, at /project/src/parse.c:835, "
                       "at /project/src/rcl/arguments.c:415")
    assert one_line(exc) == "RuntimeError: Error: bad key at line 3"


def start_process(*args: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(NODE_SCRIPT), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=node_env())
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if READY in line:
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError("node did not start:\n" + "".join(lines))


@pytest.mark.parametrize("executor", ["events", "single_threaded"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_exits_cleanly_with_the_engine_closed(signum, executor):
    process = start_process("--ros-args", "-p", f"executor:={executor}")
    process.send_signal(signum)
    process.send_signal(signum)  # a terminal's Ctrl-C and launch's both reach the node
    out, _ = process.communicate(timeout=30)
    # Ctrl-C (and ros2 launch's shutdown): 0; SIGTERM (a supervisor's stop): 143, as a shell
    # reports a process that SIGTERM ended, after the same clean teardown
    assert process.returncode == (143 if signum == signal.SIGTERM else 0), out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert "engine guided closed" in out
    assert "Failed to publish log message" not in out


def test_stop_signal_during_start_up_exits_cleanly():
    process = subprocess.Popen([sys.executable, str(NODE_SCRIPT)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=node_env())
    time.sleep(1.0)  # importing rclpy and the engines: before rclpy.init and the node exist
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert "cannot start" not in out


class _FailsAfterTheEngine(LingbotDepthNode):
    """A node whose start-up fails after the engine loaded (as a broken subscription would)."""

    built: list = []

    def _make_subscriptions(self) -> None:
        _FailsAfterTheEngine.built.append(self)
        raise RuntimeError("subscriptions could not be made")


def test_half_built_node_is_torn_down_by_the_context():
    context = make_context(__name__)
    try:
        with pytest.raises(RuntimeError, match="could not be made"):
            _FailsAfterTheEngine(context=context, namespace="/half")
        half = _FailsAfterTheEngine.built[-1]
        assert not hasattr(half, "workers") and half.engine.name == "guided"
        assert half._destroyed and not list(half.publishers)  # the constructor undid itself
        half.destroy_node()  # again, as a context shutdown may: no AttributeError
    finally:
        rclpy.try_shutdown(context=context)


def test_a_node_that_stops_itself_for_good_exits_non_zero_with_its_reason(capsys):
    """The engine failed at run time with `fallback: none`: the node sets `fatal_error` and
    shuts its context down (ros/node.py _stop); the process must not exit 0."""
    from rclpy.node import Node

    from lingbot_depth_ros.ros.node_process import RUNTIME_FAILURE_EXIT
    from lingbot_depth_ros.ros.node_process import run_node as run_node_process

    class FailingNode(Node):
        def __init__(self):
            super().__init__("failing_node")
            self.fatal_error = ""
            self.create_timer(0.2, self._fail)

        def _fail(self):
            self.fatal_error = "engine 'torch' failed at run time:\nCUDA error (fallback: none)"
            self.context.try_shutdown()

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    code = run_node_process(FailingNode, ["--ros-args", "-r", "__ns:=/startup_test"], "failing_node")
    assert code == RUNTIME_FAILURE_EXIT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["failing_node: stopped: engine 'torch' failed at run time: CUDA error (fallback: none)"]
