"""One parameter file for the node and the bag tools: ROS's own parameters (use_sim_time,
qos_overrides.*) are accepted by both, other unknown names warned about by both, and
qos_overrides change the QoS of the node's outputs (seen in a real subscriber's endpoint info)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from bag_helpers import make_demo, read_bag, run_cli
from docs_commands import DocCommand
from docs_runner import PREFIX, command_env, run_beside_driver
from log_capture import listening
from lingbot_depth_ros.core.config import load_params_file, node_values

ROOT = Path(__file__).resolve().parents[1]


def replay_params(folder: Path) -> Path:
    """The D435i preset as a replay user writes it: sim time, QoS overrides, one typo."""
    document = yaml.safe_load((ROOT / "config/realsense_d435i.yaml").read_text())
    section = document["/**/lingbot_depth_node"]["ros__parameters"]
    section.update({
        "use_sim_time": True,
        "start_type_description_service": False,
        "colour_topic": "typo/image_raw",  # not a parameter: warned about, ignored
        "qos_overrides": {
            "/camera/depth_completed/points": {"publisher": {"reliability": "best_effort",
                                                             "depth": 2}},
            # an input: the node's qos parameter sets it; warned about, ignored
            "/camera/camera/color/image_raw": {"subscription": {"reliability": "best_effort"}},
        },
    })
    path = folder / "replay.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_params_file_reads_nested_keys_as_rcl_does(tmp_path):
    values = load_params_file(replay_params(tmp_path))
    assert values["qos_overrides./camera/depth_completed/points.publisher.reliability"] == "best_effort"
    ours, unknown = node_values(values)
    assert unknown == ["colour_topic"]
    assert "use_sim_time" not in ours and ours["max_depth"] == 6.0


def test_bag_process_takes_the_nodes_replay_params(tmp_path, capsys, caplog):
    bag = make_demo(tmp_path, "in.mcap", repeat=1)
    params = replay_params(tmp_path)
    with listening(caplog, "lingbot_depth_ros.commands.bag", logging.WARNING):
        rc, out, err = run_cli(["bag", "process", str(bag), str(tmp_path / "out.mcap"),
                                "--params", str(params), "--no-progress"], capsys)
    assert rc == 0, err
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("'colour_topic' is not a parameter" in w for w in warned), warned
    assert not any("use_sim_time" in w or "qos_overrides" in w for w in warned), warned
    assert len(read_bag(tmp_path / "out.mcap")["/depth_completed"]) == 4


def test_bag_tools_still_refuse_a_mistyped_value(tmp_path, capsys):
    bag = make_demo(tmp_path, "in.mcap", repeat=1)
    rc, _, err = run_cli(["bag", "process", str(bag), str(tmp_path / "out.mcap"),
                          "-p", "slop:=1", "-p", "use_sim_time:=true"], capsys)
    assert rc == 2 and "'slop' must be float" in err, err


@pytest.mark.skipif(PREFIX is None, reason="lingbot_depth_ros is not in the ament index "
                                           "(colcon build: ./run.sh does it)")
def test_node_takes_the_replay_params_and_applies_qos_overrides(tmp_path):
    """The node with use_sim_time true (no /clock: frames still complete, stamps are the
    camera's) and a best-effort cloud output; its other outputs stay reliable."""
    from node_harness import domain_id
    from rclpy.qos import ReliabilityPolicy

    params = replay_params(tmp_path)
    seen = {}

    def endpoints(listener) -> None:
        for topic in ("/camera/depth_completed/points", "/camera/depth_completed"):
            infos = listener.get_publishers_info_by_topic(topic)
            # (discovery does not carry the history depth, only the matching policies)
            seen[topic] = [i.qos_profile.reliability for i in infos]

    command = DocCommand("test", 0, f"lingbot_depth_node --ros-args -r __ns:=/camera "
                                    f"--params-file {params}", "")
    output = run_beside_driver(command, tmp_path, command_env(tmp_path, domain_id(__name__)),
                               "node with replay params", while_running=endpoints,
                               preset="realsense_d435i")
    assert seen["/camera/depth_completed/points"] == [ReliabilityPolicy.BEST_EFFORT], seen
    assert seen["/camera/depth_completed"] == [ReliabilityPolicy.RELIABLE], seen
    assert "parameter 'colour_topic' is not a parameter" in output, output
    assert ("parameter 'qos_overrides./camera/camera/color/image_raw.subscription.reliability' "
            "matches no output publisher") in output, output
    assert "use_sim_time" not in output, output
