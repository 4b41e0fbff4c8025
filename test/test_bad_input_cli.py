"""Bad command-line arguments: every one is refused before any work with exit code 2 and one
line naming the option (and, for sizes, what they would cost), never a traceback."""

from __future__ import annotations

import pytest

from bad_input_helpers import EXAMPLES, assert_nothing_at, assert_refused, cli

EXPORT = ["export-onnx", "--checkpoint", "model.pt", "--height", "480", "--width", "640"]


@pytest.mark.parametrize("args, words", [
    (EXPORT + ["--num-tokens", "10000000", "--out", "m.onnx"], ["--num-tokens", "GB per layer"]),
    (["export-onnx", "--checkpoint", "model.pt", "--height", "100000", "--width", "100000",
      "--out", "m.onnx"], ["--height", "150.0 GB"]),
    (EXPORT + ["--opset", "999", "--out", "m.onnx"], ["--opset", "17.."]),
    (EXPORT + ["--num-tokens", "-3", "--out", "m.onnx"], ["--num-tokens"]),
    (EXPORT + ["--out", ""], ["--out", "empty"]),
    (["eval", "--data", EXAMPLES, "--seed", "-1"], ["--seed", "0..4294967295"]),
    (["eval", "--data", EXAMPLES, "--trials", "0"], ["--trials"]),
    (["eval", "--data", EXAMPLES, "--max-depth", "nan"], ["--max-depth"]),
    (["demo", "--repeat", "0"], ["--repeat"]),
    (["demo", "--fps", "-30"], ["--fps", "rate in Hz"]),
    (["demo", "--fps", "inf"], ["--fps"]),
    (["bag", "make-demo", EXAMPLES, "x.mcap", "--fps", "1e300"], ["--fps"]),
    (["bag", "make-demo", EXAMPLES, "x.mcap", "--repeat", "0"], ["--repeat"]),
    (["bag", "eval", "in.mcap", "--json", "r.json", "--seed", "-5"], ["--seed"]),
    (["bag", "process", "in.mcap", "out", "--limit", "0"], ["--limit"]),
    (["complete", "--rgb", "a.png", "--depth", "b.png", "--intrinsics", "k.txt", "--out", ""],
     ["--out", "empty"]),
    (["complete", "--rgb", "a.png", "--depth", "b.png", "--intrinsics", "k.txt", "--out", "o",
      "--depth-scale", "0"], ["--depth-scale"]),
    (["nonsense-command"], ["invalid choice"]),
])
def test_a_bad_number_or_path_is_one_line_and_exit_2(tmp_path, args, words):
    assert_refused(cli(*args, cwd=tmp_path), *words)
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_an_output_that_is_a_folder_where_a_file_is_wanted(tmp_path):
    (tmp_path / "dir").mkdir()
    assert_refused(cli(*EXPORT, "--out", tmp_path / "dir", cwd=tmp_path), "--out", "is a folder")
    assert_refused(cli("eval", "--data", EXAMPLES, "--json", tmp_path / "dir"), "--json", "is a folder")
    assert list((tmp_path / "dir").iterdir()) == []


def test_an_output_that_is_a_file_where_a_folder_is_wanted(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_refused(cli("demo", "--out", blocker), "--out", "is a file")
    assert_refused(cli("complete", "--rgb", "a", "--depth", "b", "--intrinsics", "k",
                       "--out", blocker), "--out", "is a file")
    assert_refused(cli("bag", "process", "in.mcap", blocker / "out.mcap"), "is a file, not a folder")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("option, words", [
    ("telea.radiuss=3", ["does not take radiuss", "did you mean 'radius'"]),
    ("telea.radius=abc", ["radius='abc'", "must be a number"]),
    ("telea.radius=-5", ["telea radius must be positive"]),
    ("telea.refine_measured=maybe", ["true or false"]),
    ("nearest.radius=3", ["does not take radius"]),
    ("device=gpu", ["no evaluated engine: device"]),
])
def test_engine_options_are_checked_before_any_work(tmp_path, option, words):
    proc = cli("eval", "--data", EXAMPLES / "3", "--engines", "telea,nearest",
               "--engine-options", option, "--json", tmp_path / "r.json")
    assert_refused(proc, *words, nothing_at=tmp_path / "r.json")


def test_an_unknown_engine_name_gets_a_hint(tmp_path):
    assert_refused(cli("eval", "--data", EXAMPLES, "--engines", "nearset"), "--engines", "nearset")


def test_bag_params_without_a_node_section_is_refused(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("engine: nearest\nslop: 0.03\n")
    proc = cli("bag", "process", "in.mcap", tmp_path / "out.mcap", "--params", flat)
    assert_refused(proc, "no section for lingbot_depth_node", nothing_at=tmp_path / "out.mcap")


def test_bad_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: }\n")
    proc = cli("bag", "process", "in.mcap", tmp_path / "out.mcap", "--params", bad)
    assert_refused(proc, "cannot read parameter file", "line 2", nothing_at=tmp_path / "out.mcap")


def test_make_demo_refuses_a_bag_bigger_than_the_disk_before_writing(tmp_path):
    proc = cli("bag", "make-demo", EXAMPLES, tmp_path / "huge.mcap", "--repeat", "100000")
    assert_refused(proc, "GB", "free", nothing_at=tmp_path / "huge.mcap")


def test_complete_writes_nothing_when_an_input_is_missing(tmp_path):
    proc = cli("complete", "--rgb", EXAMPLES / "3" / "rgb.jpg", "--depth", tmp_path / "none.png",
               "--intrinsics", EXAMPLES / "3" / "intrinsics.txt", "--out", tmp_path / "o")
    assert_refused(proc, "cannot read depth image")
    assert_nothing_at(tmp_path / "o")


def test_demo_checks_its_engine_and_params_before_writing(tmp_path):
    assert_refused(cli("demo", "--engine", "bogus", "--out", tmp_path / "d1"), "--engine")
    flat = tmp_path / "flat.yaml"
    flat.write_text("engine: nearest\n")
    bad_rig = tmp_path / "rig.yaml"
    bad_rig.write_text("/**/lingbot_depth_node:\n  ros__parameters:\n    cameras: [wrist]\n"
                       "    wrist:\n      preset: realsense_d999\n")
    for params, words in ((tmp_path / "none.yaml", "cannot read parameter file"),
                          (flat, "no section for lingbot_depth_node"),
                          (bad_rig, "camera 'wrist': unknown camera preset 'realsense_d999'")):
        proc = cli("demo", "--params", params, "--out", tmp_path / "d2")
        assert_refused(proc, "node parameters", words, nothing_at=tmp_path / "d2")
    assert_nothing_at(tmp_path / "d1")


def test_an_existing_output_bag_is_refused_before_any_work(tmp_path):
    existing = tmp_path / "out.mcap"
    existing.write_bytes(b"keep me")
    for args in (["bag", "process", tmp_path / "in.mcap", existing],
                 ["bag", "make-demo", EXAMPLES, existing]):
        assert_refused(cli(*args), "exists already")
    assert existing.read_bytes() == b"keep me"
