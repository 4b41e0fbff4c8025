"""Faults around bags and output files: a full disk (a real 2 MiB tmpfs), SIGTERM, --limit,
a bag with nothing to score. Failed runs exit 2 with one line and leave nothing at the final
path; a stopped run exits 130 (Ctrl-C) or 143 (SIGTERM) with its summary and a readable
bag; every image read is accounted for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bad_input_helpers import EXAMPLES, ROOT, assert_refused, cli, error_lines
from bag_helpers import make_demo, read_bag


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: smaller than one output bag, so writes fail with ENOSPC for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill `folder`'s file system up to `leave` bytes."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave))


@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("bags"), "in.mcap", repeat=2)


def accounted(summary: dict) -> bool:
    """Every colour and depth image read was completed (2 per frame) or dropped by reason."""
    images = summary["received"].get("color", 0) + summary["received"].get("depth", 0)
    return images == 2 * summary["processed"] + sum(summary["drops"].values())


@pytest.mark.parametrize("out_name", ["out.mcap", "out.db3", "outdir"])
def test_disk_full_during_bag_process(demo_bag, small_disk, out_name):
    out = small_disk / out_name
    proc = cli("bag", "process", demo_bag, out, "--engine", "nearest", "--no-progress",
               *(["--storage", "sqlite3"] if out_name == "outdir" else []))
    assert_refused(proc, "no space left on the device", nothing_at=out)
    assert list(small_disk.iterdir()) == []  # the staged bag is gone too: the space is back


@pytest.mark.parametrize("out_name", ["clip.mp4", "frames"])
def test_disk_full_during_bag_viz(demo_bag, small_disk, out_name):
    # VideoWriter only warns when a frame cannot be written: the video is read back
    fill(small_disk, leave=200_000)  # room for a frame or two, not for the clip
    proc = cli("bag", "viz", demo_bag, small_disk / out_name, "--engine", "nearest",
               "--no-progress")
    assert_refused(proc, "no space left on the device", nothing_at=small_disk / out_name)
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_disk_full_for_complete_eval_json_and_make_demo(small_disk):
    ex = EXAMPLES / "3"
    proc = cli("complete", "--rgb", ex / "rgb.jpg", "--depth", ex / "raw_depth.png",
               "--intrinsics", ex / "intrinsics.txt", "--engine", "nearest", "--out",
               small_disk / "o")
    assert_refused(proc, "no space left on the device", nothing_at=small_disk / "o")
    fill(small_disk)
    proc = cli("eval", "--data", ex, "--engines", "nearest", "--json", small_disk / "r.json")
    assert_refused(proc, "no space left on the device", nothing_at=small_disk / "r.json")
    proc = cli("bag", "make-demo", EXAMPLES, small_disk / "d.mcap")
    assert_refused(proc, "GB free", nothing_at=small_disk / "d.mcap")
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_disk_full_for_export_onnx(tmp_path, small_disk):
    from tiny_models import tiny_model
    from lingbot_depth_ros.model import save_checkpoint

    checkpoint = save_checkpoint(tiny_model(), tmp_path / "model.pt")
    fill(small_disk, leave=64 * 1024)
    proc = cli("export-onnx", "--checkpoint", checkpoint, "--height", "48", "--width", "64",
               "--num-tokens", "12", "--out", small_disk / "m.onnx")
    assert_refused(proc, "no space left on the device", nothing_at=small_disk / "m.onnx")
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_sigterm_during_bag_process_stops_like_ctrl_c(tmp_path):
    bag = make_demo(tmp_path, "long.mcap", repeat=15)  # 60 frames: seconds of guided work
    out, summary_json = tmp_path / "out.mcap", tmp_path / "summary.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "lingbot_depth_ros.cli", "bag", "process",
                             str(bag), str(out), "--engine", "guided", "--no-progress",
                             "--summary-json", str(summary_json)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    staged = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + 120
    while not staged.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # some frames done, most still to come
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-3000:]  # 128 + SIGTERM, after the same clean stop
    assert "Traceback" not in stderr and "INTERRUPTED" in stdout, (stdout, stderr[-3000:])
    summary = json.loads(summary_json.read_text())
    assert summary["interrupted"] and 0 < summary["processed"] < 60
    assert accounted(summary), summary
    written = read_bag(out)  # closed cleanly: index and metadata are there
    assert len(written["/depth_completed"]) == summary["processed"]
    assert not staged.exists()


def test_limit_reads_exactly_n_pairs(demo_bag, tmp_path):
    proc = cli("bag", "process", demo_bag, tmp_path / "out.mcap", "--engine", "nearest",
               "--limit", "3", "--no-progress", "--summary-json", tmp_path / "s.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["pairs"] == 3 and summary["processed"] == 3
    assert summary["received"]["color"] == 3 and summary["received"]["depth"] == 3
    assert accounted(summary), summary


def test_bag_eval_without_a_pair_is_an_error(tmp_path):
    bag = make_demo(tmp_path, "apart.mcap", depth_offset_ns=400_000_000)  # beyond any slop
    proc = cli("bag", "eval", bag, "--engines", "nearest", "--json", tmp_path / "r.json",
               "--no-progress")
    line = assert_refused(proc, "no frame of", "could be scored", nothing_at=tmp_path / "r.json")
    assert "nan" not in line.lower() and "nan" not in proc.stdout.lower()


def test_a_bag_that_does_not_exist(tmp_path):
    proc = cli("bag", "process", tmp_path / "none.mcap", tmp_path / "out.mcap")
    assert_refused(proc, "none.mcap", nothing_at=tmp_path / "out.mcap")
    assert len(error_lines(proc.stderr)) == 1
