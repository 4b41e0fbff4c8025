"""The colcon-built CompletedRGBD message imports and round-trips through rclpy's CDR."""

import numpy as np
import pytest

rclpy_serialization = pytest.importorskip("rclpy.serialization", reason="rclpy not installed")


def test_completed_rgbd_roundtrip():
    from lingbot_depth_ros.msg import CompletedRGBD

    msg = CompletedRGBD()
    msg.header.frame_id = "camera_color_optical_frame"
    msg.engine = "guided"
    msg.filled_fraction = 0.25
    msg.depth.encoding = "32FC1"
    msg.depth.data = np.arange(4, dtype=np.float32).tobytes()
    back = rclpy_serialization.deserialize_message(
        rclpy_serialization.serialize_message(msg), CompletedRGBD)
    assert back.header.frame_id == "camera_color_optical_frame"
    assert back.engine == "guided"
    assert back.filled_fraction == pytest.approx(0.25)
    assert np.frombuffer(bytes(back.depth.data), np.float32).tolist() == [0, 1, 2, 3]
    assert (CompletedRGBD.SOURCE_INVALID, CompletedRGBD.SOURCE_MEASURED,
            CompletedRGBD.SOURCE_FILLED) == (0, 1, 2)
