"""One spelling per idea across the command line: `--engines` takes spaces and commas in `eval`
and `bag eval` alike, and the bag tools' camera info flag has the node parameter's name."""

from __future__ import annotations

import pytest

from lingbot_depth_ros.cli import build_parser

EXAMPLES = "examples"


@pytest.mark.parametrize("prefix", [["eval", "--data", EXAMPLES], ["bag", "eval", "in.mcap", "--json", "r.json"]])
@pytest.mark.parametrize("given, wanted", [
    (["guided,nearest"], ["guided", "nearest"]),
    (["guided", "nearest"], ["guided", "nearest"]),
    (["guided,nearest", "telea", "guided"], ["guided", "nearest", "telea"]),
])
def test_engines_take_both_forms(prefix, given, wanted):
    args = build_parser().parse_args([*prefix, "--engines", *given])
    assert args.engines == wanted


@pytest.mark.parametrize("prefix", [["eval", "--data", EXAMPLES], ["bag", "eval", "in.mcap", "--json", "r.json"]])
def test_an_unknown_engine_is_one_line_exit_2(prefix, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*prefix, "--engines", "guided", "nearset"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "nearset" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flag", ["--camera-info-topic", "--info-topic"])
def test_camera_info_topic_flag_has_the_parameters_name(flag):
    args = build_parser().parse_args(["bag", "process", "in.mcap", "out.mcap", flag, "/cam/info"])
    assert args.info_topic == "/cam/info"
