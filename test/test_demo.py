"""The README's main job: the demo bag played through the real node over DDS."""

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from rosbags.rosbag2 import Reader  # noqa: E402

from lingbot_depth_ros.cli import main  # noqa: E402


def test_demo_accounts_for_every_frame_and_records_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--repeat", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "input frames (colour+depth pairs)     8" in text
    with Reader(out / "output") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    published = counts["/lingbot/depth_completed"]
    assert published >= 1
    # every completed frame reached each output topic, stamped like its input
    for topic in ("source_mask", "camera_info", "points", "rgbd"):
        assert counts[f"/lingbot/depth_completed/{topic}"] == published
    assert (out / "preview.png").stat().st_size > 10_000
