"""rig.launch.py under a real `ros2 launch`: one node completes a rig file's cameras (driver
stand-ins in each camera's namespace), its per-camera parameters read back through the
node's parameter service, the large-data DDS profile applied, a clean Ctrl-C; a rig name
that does not exist is one clear error."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from launch_harness import Launch, ParameterReader, unclean_shutdown_lines

from node_harness import RELIABLE, domain_id, make_context, rclpy

HERE = Path(__file__).resolve().parent
#: rig_d435i_zed2i.yaml's cameras and the driver stand-in each one gets
CAMERAS = {"wrist": "realsense_d435i", "scene": "zed2i"}


def test_rig_launch_completes_every_camera_and_stops_cleanly():
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    domain = str(domain_id(__name__))
    drivers = [subprocess.Popen([sys.executable, str(HERE / "driver_standin.py"), domain, preset,
                                 camera, "10"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for camera, preset in CAMERAS.items()]
    launch = reader = None
    context = make_context(__name__)
    listener = rclpy.create_node("rig_listener", context=context)
    counts: Counter = Counter()
    for camera in CAMERAS:
        listener.create_subscription(Image, f"/{camera}/depth_completed",
                                     lambda msg, c=camera: counts.update([c]), RELIABLE)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    try:
        launch = Launch(__name__, "rig:=d435i_zed2i", launch_file="rig.launch.py")
        deadline = time.monotonic() + 90
        while min(counts[c] for c in CAMERAS) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert min(counts[c] for c in CAMERAS) >= 3, (counts, launch.output[-3000:])
        reader = ParameterReader(__name__)  # the launch's domain
        values = reader.get("/lingbot_depth_node", ["cameras", "wrist.preset", "scene.max_depth",
                                                     "wrist.color_topic", "batch_window_ms"])
        assert values == {"cameras": ["wrist", "scene"], "wrist.preset": "realsense_d435i",
                          "scene.max_depth": 20.0, "wrist.color_topic": "camera/color/image_raw",
                          "batch_window_ms": 10.0}
        assert "fastdds_large_data.xml" in launch.output, launch.output[-3000:]
        code = launch.interrupt()
        assert code == 0, launch.output[-3000:]
        assert not unclean_shutdown_lines(launch.output), launch.output[-3000:]
        assert "engine guided closed" in launch.output
    finally:
        if launch is not None:
            launch.kill()
        if reader is not None:
            reader.close()
        executor.shutdown()
        listener.destroy_node()
        rclpy.try_shutdown(context=context)
        for driver in drivers:
            driver.send_signal(signal.SIGINT)
            try:
                driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait()


def test_an_unknown_rig_is_one_clear_error():
    run = subprocess.run(["ros2", "launch", "lingbot_depth_ros", "rig.launch.py", "rig:=no_such_rig"],
                         capture_output=True, text=True, timeout=60)
    text = run.stdout + run.stderr
    assert run.returncode != 0
    assert "rig:=no_such_rig" in text and "d435i_zed2i" in text, text
    assert "Traceback" not in text


def test_each_camera_driver_is_included_in_its_namespace():
    """Without the drivers installed, the launch says how to start each one in its camera's
    namespace (with them, it includes their launch files with those arguments)."""
    launch = Launch(__name__, "rig:=d435i_gemini335_zed2i", "include_camera_drivers:=true",
                    launch_file="rig.launch.py")
    try:
        output = launch.output
        assert "camera_namespace:=wrist" in output and "align_depth.enable:=true" in output, output
        assert "camera_name:=scene_left" in output and "depth_registration:=true" in output, output
        assert "camera_name:=scene_right" in output and "camera_model:=zed2i" in output, output
        assert launch.interrupt() == 0
        assert not unclean_shutdown_lines(launch.output), launch.output[-3000:]
    finally:
        launch.kill()
