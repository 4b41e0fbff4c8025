"""Camera matrices: one check (core.frame.validate_intrinsics) serves intrinsics files,
camera info and every frame, and refuses what would give a wrong or infinite cloud."""

from __future__ import annotations

import numpy as np
import pytest

from bad_input_helpers import EXAMPLES, assert_refused, cli
from lingbot_depth_ros.core.errors import IntrinsicsError
from lingbot_depth_ros.core.frame import validate_intrinsics
from lingbot_depth_ros.core.outputs import CameraInfoFields

GOOD = [[615.0, 0, 320], [0, 615.0, 240], [0, 0, 1]]


def with_values(**cells) -> np.ndarray:
    K = np.array(GOOD, dtype=np.float64)
    for name, value in cells.items():
        K[int(name[1]), int(name[2])] = value
    return K


@pytest.mark.parametrize("K, words", [
    (with_values(k20=0.1), "last row must be 0 0 1"),
    (with_values(k22=2.0), "last row must be 0 0 1"),
    (with_values(k10=5.0), r"K\[1\]\[0\] 0"),
    (with_values(k00=1e-300), "focal lengths"),
    (with_values(k11=1e300), "focal lengths"),
    (with_values(k00=-615.0), "focal lengths"),
    (with_values(k02=np.inf), "NaN or inf"),
    (with_values(k12=1e12), "principal point"),
    (np.eye(2), "3x3"),
    (None, "no camera intrinsics"),
    ([["a", 0, 0], [0, 1, 0], [0, 0, 1]], "not numeric"),
])
def test_validate_intrinsics_refuses(K, words):
    with pytest.raises(IntrinsicsError, match=words):
        validate_intrinsics(K)


def test_a_real_camera_matrix_passes():
    assert np.array_equal(validate_intrinsics(GOOD), np.array(GOOD))


def test_camera_info_with_a_bad_matrix_is_unusable():
    info = CameraInfoFields.from_K(np.array(GOOD), 480, 640)
    bad = CameraInfoFields(**{**info.__dict__, "k": tuple(with_values(k21=1.0).ravel())})
    assert "last row must be 0 0 1" in bad.usability_problem(480, 640)
    tiny = CameraInfoFields(**{**info.__dict__, "k": tuple(with_values(k00=1e-300).ravel())})
    assert "focal lengths" in tiny.usability_problem(480, 640)


@pytest.mark.parametrize("text, words", [
    ("615 0 320 0 615 240 0.5 0 1", "last row must be 0 0 1"),
    ("1e-300 0 320 0 615 240 0 0 1", "focal lengths"),
    ("615 0 320 0 615 240 0 0", "holds 8 numbers"),
    ("615 0 320 0 615 240 0 0 one", "not a number"),
])
def test_complete_refuses_a_bad_intrinsics_file(tmp_path, text, words):
    k = tmp_path / "k.txt"
    k.write_text(text)
    ex = EXAMPLES / "3"
    proc = cli("complete", "--rgb", ex / "rgb.jpg", "--depth", ex / "raw_depth.png",
               "--intrinsics", k, "--engine", "nearest", "--out", tmp_path / "o")
    assert_refused(proc, words, nothing_at=tmp_path / "o")


@pytest.mark.parametrize("cell, value", [((2, 0), 0.5), ((0, 0), 1e-300)])
def test_node_publishes_depth_without_a_cloud_for_an_unusable_camera_matrix(cell, value):
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from node_harness import Running, accounting, load_captures, make_context

    context = make_context(f"{__name__}_{cell[0]}{cell[1]}")
    capture = load_captures()[0]
    running = Running(context, {"engine": "nearest"}, namespace="/badk")
    try:
        stamp = 600 * 10**9
        info = capture.info_msg(stamp)
        k = list(info.k)
        k[3 * cell[0] + cell[1]] = value
        info.k = k
        running.send_info(info)
        running.probe.send(capture.color_msg(stamp), capture.depth_msg(stamp))
        running.probe.wait_outputs("depth_completed", 1)
        running.wait_idle()
        values = running.diagnostics()
        received, accounted = accounting(values)
        assert received == accounted and values["published"] == "1"
        assert values["frames_without_camera_info"] == "1", values
        assert not running.probe.received["depth_completed/points"]
    finally:
        running.close()
        rclpy.shutdown(context=context)
