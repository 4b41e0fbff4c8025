"""The colcon install as a sourced workspace uses it, away from any clone: `lingbot-depth` and
`lingbot_depth_node` on PATH from the install's bin/, and the docs' `examples/...` and
`config/...` arguments found in the package's share folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from docs_runner import PREFIX

pytestmark = pytest.mark.skipif(PREFIX is None, reason="lingbot_depth_ros is not in the ament "
                                                       "index (colcon build: ./run.sh does it)")


def installed_env() -> dict:
    """Only the install space provides the package (not this checkout)."""
    site = PREFIX / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    env = dict(os.environ, PATH=f"{PREFIX / 'bin'}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(site))
    return env


def test_commands_are_on_path_from_the_install(tmp_path):
    env = installed_env()
    for name in ("lingbot-depth", "lingbot_depth_node"):
        assert shutil.which(name, path=env["PATH"]) == str(PREFIX / "bin" / name)
    where = subprocess.run(["lingbot-depth", "--help"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert where.returncode == 0, where.stderr


def test_documented_data_arguments_resolve_from_the_share_folder(tmp_path):
    """The README's `complete` and bag lines, run outside a clone."""
    env = installed_env()
    steps = [
        ["lingbot-depth", "complete", "--rgb", "examples/3/rgb.jpg", "--depth",
         "examples/3/raw_depth.png", "--intrinsics", "examples/3/intrinsics.txt", "--out", "out/3"],
        ["lingbot-depth", "bag", "make-demo", "examples", "demo.mcap"],
        ["lingbot-depth", "bag", "process", "demo.mcap", "completed.mcap", "--params",
         "config/realsense_d435i.yaml", "--no-progress"],
    ]
    for argv in steps:
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-2000:])
    assert (tmp_path / "out/3/completed_depth.png").is_file()
    assert (tmp_path / "completed.mcap").is_file()
    assert not (tmp_path / "examples").exists() and not (tmp_path / "config").exists()


def test_a_missing_local_file_is_not_replaced_by_the_shipped_one(tmp_path):
    """Only the shipped folders fall back: another missing path stays an error naming it."""
    done = subprocess.run(["lingbot-depth", "complete", "--rgb", "mine/rgb.jpg", "--depth",
                           "examples/3/raw_depth.png", "--intrinsics", "examples/3/intrinsics.txt",
                           "--out", "out"], cwd=tmp_path, env=installed_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "mine/rgb.jpg" in done.stderr, done.stderr
