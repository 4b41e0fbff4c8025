"""`lingbot-depth simulate`: capture folders the package's own loader reads, resume, local
processes, a Dask cluster (where Dask is installed), and a driver-topic bag that `bag process`
replays. Frames are 80x60 or 160x120: the command's paths, not the images, are under test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lingbot_depth_ros.cli import main
from lingbot_depth_ros.core.captures import find_captures, load_capture, read_raw_depth

try:
    from lingbot_depth_ros.sim.render import mitsuba
    mitsuba()
    RENDER_SKIP = ""
except Exception as exc:  # noqa: BLE001 - any failure to start the renderer is a skip reason
    RENDER_SKIP = f"Mitsuba 3 does not start here ({exc}); pip install mitsuba"
pytestmark = pytest.mark.skipif(bool(RENDER_SKIP), reason=RENDER_SKIP or "n/a")

SMALL = ["--width", "80", "--height", "60", "--spp", "2", "--no-progress"]


def simulate(capsys, *args) -> dict:
    assert main(["simulate", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_capture_folders_resume_and_workers(tmp_path, capsys):
    out = tmp_path / "sim"
    first = simulate(capsys, "--out", str(out), "--frames", "2", "--workers", "2", *SMALL)
    assert first["written"] == 2 and first["skipped"] == 0
    folders = find_captures(out)
    assert [f.name for f in folders] == ["000000", "000001"]
    frame = load_capture(folders[0])
    assert frame.rgb.shape == (60, 80, 3) and frame.depth.shape == (60, 80)
    for name in ("gt_depth.png", "labels.png", "ir_left.png", "ir_right.png", "meta.json"):
        assert (folders[0] / name).is_file()
    meta = json.loads((folders[0] / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["camera"] == "d435" and meta["labels"]["glass"] == 3
    gt = read_raw_depth(folders[0] / "gt_depth.png")
    assert (gt > 0).mean() > 0.9  # closed scenes: nearly every ray hits something

    # resume: the two frames are kept; frame 0 rendered again in this process is identical
    before = (out / "000000" / "raw_depth.png").read_bytes()
    second = simulate(capsys, "--out", str(out), "--frames", "3", *SMALL)
    assert second["written"] == 1 and second["skipped"] == 2
    (out / "000000" / "meta.json").unlink()  # an unfinished frame is rendered again
    third = simulate(capsys, "--out", str(out), "--frames", "3", *SMALL)
    assert third["written"] == 1 and third["skipped"] == 2
    assert (out / "000000" / "raw_depth.png").read_bytes() == before
    assert not list(out.glob("*.partial"))


def test_bag_replays_through_bag_process(tmp_path, capsys):
    """A ZED 2i rig (bgra8 colour, 32FC1 depth) replayed with the driver's preset."""
    out, bag, done = tmp_path / "sim", tmp_path / "zed.mcap", tmp_path / "done.mcap"
    summary = simulate(capsys, "--out", str(out), "--frames", "2", "--camera", "zed2i",
                       "--width", "160", "--height", "120", "--spp", "2", "--no-progress",
                       "--bag", str(bag))
    assert summary["bag"]["frames"] == 2
    assert "/zed/zed_node/depth/depth_registered" in summary["bag"]["topics"]
    code = main(["bag", "process", str(bag), str(done), "--params", "config/zed2i.yaml",
                 "--engine", "guided", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "processed 2" in printed, printed


def test_missing_cluster_library_is_one_clear_error(tmp_path, capsys):
    try:
        import ray  # noqa: F401
        pytest.skip("Ray is installed here: the missing-library message cannot be shown")
    except ImportError:
        pass
    code = main(["simulate", "--out", str(tmp_path / "s"), "--frames", "1", "--cluster",
                 "ray://127.0.0.1:1", *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and "needs Ray (pip install ray)" in err


def test_dask_cluster_renders_the_same_frames(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed", reason="Dask (pip install distributed) "
                                      "is not installed: the --cluster tcp:// path is not run")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        summary = simulate(capsys, "--out", str(tmp_path / "dask"), "--frames", "1",
                           "--cluster", cluster.scheduler_address, *SMALL)
    assert summary["written"] == 1
    simulate(capsys, "--out", str(tmp_path / "local"), "--frames", "1", *SMALL)
    a = read_raw_depth(tmp_path / "dask" / "000000" / "raw_depth.png")
    b = read_raw_depth(tmp_path / "local" / "000000" / "raw_depth.png")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args,message", [
    (["--config", "nope.yaml"], "cannot read simulator config nope.yaml"),
    (["--frames", "0"], "--frames"),
    (["--camera", "d999"], "invalid choice: 'd999'"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    code = main(["simulate", "--out", str(tmp_path / "s"), *args, *SMALL]) if args[0] == "--config" \
        else _parse_error(["simulate", "--out", str(tmp_path / "s"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def _parse_error(argv) -> int:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code
