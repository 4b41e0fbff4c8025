"""The node process's Fast DDS settings (ros/dds_profile.py) and config/fastdds_large_data.xml."""

import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from node_harness import FRAME_ID, Probe, load_captures, make_context, rclpy
from lingbot_depth_ros.ros.dds_profile import (PROFILES_FILE, PUBLICATION_MODE, USE_QOS_FROM_XML,
                                               configure_fastdds)
from rclpy.executors import SingleThreadedExecutor

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "fastdds_large_data.xml"
NS = "{http://www.eprosima.com}"


def test_shipped_profile_sets_dynamic_history_memory_and_asynchronous_publishing():
    profiles = ET.parse(SHIPPED).getroot().find(f"{NS}profiles")
    writers = [w for w in profiles.findall(f"{NS}data_writer") if w.get("is_default_profile") == "true"]
    readers = [r for r in profiles.findall(f"{NS}data_reader") if r.get("is_default_profile") == "true"]
    assert len(writers) == 1 and len(readers) == 1
    assert writers[0].findtext(f"{NS}historyMemoryPolicy") == "DYNAMIC"
    assert writers[0].findtext(f"{NS}qos/{NS}publishMode/{NS}kind") == "ASYNCHRONOUS"
    assert readers[0].findtext(f"{NS}historyMemoryPolicy") == "DYNAMIC"


def test_the_shipped_profile_makes_the_node_take_endpoint_settings_from_it():
    env = {PROFILES_FILE: str(SHIPPED)}
    note = configure_fastdds(env)
    assert env[USE_QOS_FROM_XML] == "1" and env[PUBLICATION_MODE] == "ASYNCHRONOUS"
    assert "DYNAMIC" in note and str(SHIPPED) in note


def test_other_profile_files_and_explicit_settings_are_left_alone(tmp_path):
    other = tmp_path / "site.xml"
    other.write_text('<dds xmlns="http://www.eprosima.com"><profiles/></dds>')
    for env in ({}, {PROFILES_FILE: str(other)}, {PROFILES_FILE: str(tmp_path / "missing.xml")}):
        note = configure_fastdds(env)
        assert USE_QOS_FROM_XML not in env, env  # their writers would lose the rmw's settings
        assert env[PUBLICATION_MODE] == "ASYNCHRONOUS" and "PREALLOCATED_WITH_REALLOC" in note
    env = {PROFILES_FILE: str(SHIPPED), USE_QOS_FROM_XML: "0", PUBLICATION_MODE: "SYNCHRONOUS"}
    note = configure_fastdds(env)
    assert env == {PROFILES_FILE: str(SHIPPED), USE_QOS_FROM_XML: "0", PUBLICATION_MODE: "SYNCHRONOUS"}
    assert "as set in the environment" in note


def _drain(stream, lines: list, seen, marker: str = "Fast DDS:") -> None:
    for line in stream:
        lines.append(line)
        if marker in line:
            seen.set()
    seen.set()  # the node exited: let the waiter look at what it said


def test_node_process_with_the_shipped_profile_publishes_full_outputs():
    """The node as `ros2 launch` starts it (profile file set): its log says the XML's DYNAMIC
    memory policy is in use, and depth and 640x480 clouds (4.9 MB, beyond one shared-memory
    segment's default) reach a subscriber whole, with heap figures on /diagnostics."""
    context = make_context(__name__)
    env = dict(os.environ, ROS_DOMAIN_ID=str(context.get_domain_id()), PYTHONPATH=str(ROOT),
               **{PROFILES_FILE: str(SHIPPED)})
    for name in (USE_QOS_FROM_XML, PUBLICATION_MODE):
        env.pop(name, None)
    # Reliable input: the probe (this process, without the large-data profile) sends 0.6-0.9 MB
    # images as UDP fragments; to a best-effort reader 4 of 40 pairs arrived on this machine,
    # and under a loaded full run none within 60 s (0.00 Hz). The outputs under test are the
    # node's own, sent with the profile.
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "lingbot_depth_node"), "--ros-args",
                             "-r", "__ns:=/dds", "-p", "heap_trim_period:=0.5", "-p", "qos:=reliable"],
                            env=env, stderr=subprocess.PIPE, text=True)
    probe = Probe(context, namespace="/dds")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe.node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        log = []
        dds_line = threading.Event()
        # Read the node's log to the end, not only to the DDS line: a pipe nobody reads
        # would block the node in a log call once 64 KiB were written.
        threading.Thread(target=_drain, args=(proc.stderr, log, dds_line), daemon=True).start()
        assert dds_line.wait(60), "".join(log)
        assert "history memory DYNAMIC" in "".join(log), "".join(log)
        deadline = time.monotonic() + 30
        while any(p.get_subscription_count() == 0 for p in (probe.color_pub, probe.depth_pub)):
            assert time.monotonic() < deadline and proc.poll() is None, "node did not subscribe"
            time.sleep(0.05)
        capture = load_captures()[0]
        deadline, i = time.monotonic() + 60, 0
        while len(probe.received["depth_completed/points"]) < 5:  # until both ends matched
            assert time.monotonic() < deadline, probe.diagnostics("/dds/lingbot_depth_node")
            stamp = 1_700_000_000 * 10**9 + i * 33_000_000
            probe.send(capture.color_msg(stamp), capture.depth_msg(stamp), capture.info_msg(stamp))
            i += 1
            time.sleep(0.3)
        clouds = probe.wait_outputs("depth_completed/points", 5)
        depths = probe.wait_outputs("depth_completed", 5)
        assert all(len(c.data) == 480 * 640 * c.point_step for c in clouds)
        assert all(d.encoding == "32FC1" and d.header.frame_id == FRAME_ID for d in depths)
        values = probe.diagnostics("/dds/lingbot_depth_node", timeout=15)
        assert int(values["heap_trims"]) >= 1 and float(values["heap_in_use_mb"]) > 0, values
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        executor.shutdown(timeout_sec=2)
        rclpy.shutdown(context=context)
