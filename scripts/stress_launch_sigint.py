#!/usr/bin/env python3
"""Ctrl-C under `ros2 launch`, N times: launch the node, wait until it is up, send SIGINT to
the process group (as a terminal does), and count the clean stops.

    ./run.sh setup && python scripts/stress_launch_sigint.py --cycles 20 [--camera realsense]

Clean: exit code 0, the engine's "closed" line, "process has finished cleanly", and no
traceback, KeyboardInterrupt, "process has died" or failed /rosout line. Prints one line per
cycle and `clean K of N`; exits 1 unless every cycle was clean. The test suite runs 3 cycles
(test/test_upstream_launch.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

READY = "Fast DDS:"
UNCLEAN = ("Traceback", "KeyboardInterrupt", "process has died", "Failed to publish log message")


def one_cycle(camera: str, env: dict, timeout: float) -> tuple[bool, str, float]:
    """(clean, why not, seconds from SIGINT to exit)."""
    process = subprocess.Popen(["ros2", "launch", "lingbot_depth_ros", "lingbot_depth.launch.py",
                                f"camera:={camera}"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if READY in line or time.monotonic() > deadline:
            break
    if not any(READY in line for line in lines):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False, "the node did not start: " + "".join(lines[-5:]).strip(), 0.0
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    try:
        rest, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        rest, _ = process.communicate()
        return False, "no exit within the timeout", time.monotonic() - sent
    stop_s = time.monotonic() - sent
    output = "".join(lines) + rest
    out_lines = output.splitlines()
    # with the line before each: rcl's "Failed to publish" follows the log line it concerns
    bad = [" <- ".join(x.strip() for x in (line, out_lines[i - 1] if i else ""))
           for i, line in enumerate(out_lines) if any(u in line for u in UNCLEAN)]
    if process.returncode != 0:
        return False, f"exit code {process.returncode}; " + "; ".join(bad[:2]), stop_s
    if bad:
        return False, "; ".join(bad[:2]), stop_s
    if " closed" not in output or "process has finished cleanly" not in output:
        return False, "no 'engine ... closed' / 'finished cleanly' line", stop_s
    return True, "", stop_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--camera", default="realsense")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per start and per stop")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    clean = 0
    for cycle in range(1, args.cycles + 1):
        ok, why, stop_s = one_cycle(args.camera, env, args.timeout)
        clean += ok
        print(f"cycle {cycle:3d}: {'clean' if ok else 'UNCLEAN'}  stop {stop_s:5.2f} s  {why}",
              flush=True)
    print(f"clean {clean} of {args.cycles}")
    return 0 if clean == args.cycles else 1


if __name__ == "__main__":
    sys.exit(main())
