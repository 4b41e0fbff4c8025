"""`lingbot-depth complete` end to end on a real capture, and its answers to bad input."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from lingbot_depth_ros.cli import main
from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.frame import SourceMask

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAPTURE = EXAMPLES / "3"
INPUTS = {"rgb": CAPTURE / "rgb.jpg", "depth": CAPTURE / "raw_depth.png",
          "intrinsics": CAPTURE / "intrinsics.txt"}


def run_cli(out: Path, **overrides) -> int:
    """main() as the shell would see it: argparse's own exit becomes its code."""
    files = {**INPUTS, **overrides}
    argv = ["complete", "--rgb", str(files["rgb"]), "--depth", str(files["depth"]),
            "--intrinsics", str(files["intrinsics"]), "--out", str(out),
            *files.get("extra", ())]
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def read_ply(path: Path) -> tuple[int, np.ndarray]:
    """(vertex count from the header, vertex records) of our binary PLY."""
    blob = path.read_bytes()
    end = blob.index(b"end_header\n") + len(b"end_header\n")
    header = blob[:end].decode("ascii").splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    vertex = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    return count, np.frombuffer(blob[end:], dtype=vertex)


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    out = tmp_path_factory.mktemp("complete")
    code = run_cli(out)
    return code, out


def test_complete_writes_every_output(completed):
    code, out = completed
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["completed_depth.png", "completed_depth.npy", "source_mask.png",
                            "source_mask_color.png", "preview.png", "points.ply"])
    depth = np.load(out / "completed_depth.npy")
    assert depth.dtype == np.float32 and depth.shape == (480, 640)
    preview = cv2.imread(str(out / "preview.png"), cv2.IMREAD_UNCHANGED)
    assert preview.shape == (480, 3 * 640, 3)
    colour_mask = cv2.imread(str(out / "source_mask_color.png"), cv2.IMREAD_UNCHANGED)
    assert colour_mask.shape == (480, 640, 3)


def test_png_millimetres_match_npy_metres(completed):
    _, out = completed
    depth = np.load(out / "completed_depth.npy")
    mm = cv2.imread(str(out / "completed_depth.png"), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and mm.shape == depth.shape
    finite = np.isfinite(depth)
    assert finite.mean() > 0.9
    assert np.abs(mm[finite].astype(np.float64) - depth[finite] * 1000.0).max() <= 1.0
    assert (mm[~finite] == 0).all()


def test_source_mask_agrees_with_depth_and_keeps_measurements(completed):
    _, out = completed
    depth = np.load(out / "completed_depth.npy")
    source = cv2.imread(str(out / "source_mask.png"), cv2.IMREAD_UNCHANGED)
    assert source.dtype == np.uint8 and set(np.unique(source)) <= {0, 1, 2}
    np.testing.assert_array_equal(source != SourceMask.INVALID, np.isfinite(depth))
    measured = load_capture(CAPTURE)  # the same validation range as the CLI's defaults
    np.testing.assert_array_equal(source == SourceMask.MEASURED, measured.valid)
    np.testing.assert_array_equal(depth[measured.valid], measured.depth[measured.valid])
    assert (source == SourceMask.FILLED).any()


def test_ply_holds_every_finite_completed_pixel(completed):
    _, out = completed
    depth = np.load(out / "completed_depth.npy")
    count, vertices = read_ply(out / "points.ply")
    assert count == np.isfinite(depth).sum() == len(vertices)
    np.testing.assert_array_equal(vertices["z"], depth[np.isfinite(depth)])  # raster order
    rgb = load_capture(CAPTURE).rgb[np.isfinite(depth)]
    np.testing.assert_array_equal(np.stack([vertices["red"], vertices["green"],
                                            vertices["blue"]], axis=1), rgb)


def test_summary_is_printed(tmp_path, capsys):
    assert run_cli(tmp_path / "out", extra=["--engine", "nearest"]) == 0
    printed = capsys.readouterr().out
    assert "measured" in printed and "filled" in printed
    assert "engine nearest" in printed and " ms" in printed


def bad_intrinsics(tmp_path, text):
    path = tmp_path / "K.txt"
    path.write_text(text)
    return path


def small_rgb(tmp_path):
    path = tmp_path / "small.png"
    image = cv2.imread(str(INPUTS["rgb"]))
    cv2.imwrite(str(path), cv2.resize(image, (320, 240)))
    return path


@pytest.mark.parametrize("case,make_inputs,message", [
    ("missing rgb", lambda t: {"rgb": t / "nope.png"}, "cannot read colour image"),
    ("missing depth", lambda t: {"depth": t / "nope.png"}, "cannot read depth image"),
    ("missing K", lambda t: {"intrinsics": t / "nope.txt"}, "cannot read intrinsics"),
    ("sizes differ", lambda t: {"rgb": small_rgb(t)}, "registered"),
    ("colour as depth", lambda t: {"depth": INPUTS["rgb"]}, "16-bit"),
    ("K of 8 numbers", lambda t: {"intrinsics": bad_intrinsics(t, "1 0 2 0 1 2 0 0")}, "9"),
    ("K not numbers", lambda t: {"intrinsics": bad_intrinsics(t, "fx 0 1\n0 fy 1\n0 0 1")},
     "not a number"),
    ("K zero focal", lambda t: {"intrinsics": bad_intrinsics(t, "0 0 320 0 0 240 0 0 1")},
     "focal"),
    ("range inverted", lambda t: {"extra": ["--min-depth", "5", "--max-depth", "1"]},
     "--min-depth"),
    ("negative scale", lambda t: {"extra": ["--depth-scale", "-1"]}, "--depth-scale"),
    ("unknown engine", lambda t: {"extra": ["--engine", "magic"]}, "--engine"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, case, make_inputs, message):
    code = run_cli(tmp_path / "out", **make_inputs(tmp_path))
    err = capsys.readouterr().err
    assert code == 2, case
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "completed_depth.png").exists()


def test_unwritable_output_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run_cli(blocker / "out", extra=["--engine", "nearest"]) == 2
    assert f"argument --out: {blocker} is a file, not a folder" in capsys.readouterr().err
