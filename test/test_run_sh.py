"""After set-up, the command line and the node are reachable through run.sh, as the README says."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_sh_env() -> dict:
    """The venv and colcon workspace this test run already uses, so run.sh's set-up is a no-op."""
    install = next((p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(":")
                    if p.endswith("install/lingbot_depth_ros")), None)
    if install is None or not (Path(sys.prefix) / "bin" / "python").exists():
        pytest.skip("not run through ./run.sh (no colcon install of lingbot_depth_ros in AMENT_PREFIX_PATH)")
    return dict(os.environ, LINGBOT_VENV=sys.prefix, LINGBOT_WS=str(Path(install).parents[1]))


def test_run_sh_passes_arguments_to_the_command_line():
    out = subprocess.run(["bash", str(ROOT / "run.sh"), "lingbot-depth", "complete", "--help"],
                         env=_run_sh_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "usage: lingbot-depth complete" in out.stdout


def test_run_sh_starts_the_node_and_passes_its_ros_arguments():
    out = subprocess.run(["bash", str(ROOT / "run.sh"), "lingbot_depth_node", "--ros-args",
                          "-p", "engine:=no_such_engine"],
                         env=_run_sh_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "no_such_engine" in out.stderr + out.stdout
