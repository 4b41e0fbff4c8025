"""The launch file as ROS users expect it: realsense-ros's `config_file` name, `log_level`,
and `output_topic` moving every output together; a real `ros2 launch` beside a driver
stand-in, its topics read from a real listener's graph."""

from __future__ import annotations

import shutil

import pytest

from docs_commands import DocCommand
from docs_runner import PREFIX, command_env, run_beside_driver

pytestmark = pytest.mark.skipif(
    PREFIX is None or shutil.which("ros2") is None,
    reason="needs the package in the ament index and the ros2 command (./run.sh provides both)")


def test_output_topic_moves_every_output_and_config_file_and_log_level_apply(tmp_path):
    from node_harness import domain_id

    preset = PREFIX / "share/lingbot_depth_ros/config/realsense_d435i.yaml"
    topics: dict[str, int] = {}

    def graph(listener) -> None:
        for sub in ("", "/camera_info", "/points", "/source_mask", "/engine"):
            topics[f"/arm/depth{sub}"] = listener.count_publishers(f"/arm/depth{sub}")
            topics[f"/camera/depth_completed{sub}"] = listener.count_publishers(
                f"/camera/depth_completed{sub}")

    command = DocCommand("test", 0, "ros2 launch lingbot_depth_ros lingbot_depth.launch.py "
                                    f"camera:=realsense config_file:={preset} "
                                    "output_topic:=/arm/depth log_level:=debug", "")
    output = run_beside_driver(command, tmp_path, command_env(tmp_path, domain_id(__name__)),
                               "launch with output_topic", while_running=graph,
                               outputs="/arm/depth")
    moved = {t: n for t, n in topics.items() if t.startswith("/arm/depth")}
    left = {t: n for t, n in topics.items() if t.startswith("/camera/depth_completed")}
    assert all(n == 1 for n in moved.values()), topics
    assert not any(left.values()), topics
    assert "[DEBUG]" in output, output[-2000:]
    assert "realsense_d435i.yaml" in output or "completing /camera/camera/" in output, output[-2000:]
