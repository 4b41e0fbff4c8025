"""`lingbot-depth eval` end to end on copies of the shared captures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lingbot_depth_ros.cli import main
from lingbot_depth_ros.core.metrics import METRIC_NAMES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("captures")
    for name in ("1", "2"):
        shutil.copytree(EXAMPLES / name, root / f"scene{name}")
    (root / "notes").mkdir()  # not a capture folder: skipped
    return root


def test_eval_writes_the_documented_json_and_prints_a_table(data, tmp_path, capsys):
    out = tmp_path / "report" / "eval.json"
    code = main(["eval", "--data", str(data), "--protocol", "blocks", "--level", "hard",
                 "--engines", "guided,nearest", "--seed", "4", "--trials", "2",
                 "--json", str(out), "--engine-options", "sigma_color=0.2"])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report) == {"engines", "per_capture", "protocol"}
    assert list(report["engines"]) == ["guided", "nearest"]
    for scores in report["engines"].values():
        for part in ("masked", "all"):
            assert set(METRIC_NAMES) <= set(scores[part])
            assert scores[part]["coverage"] == 1.0 and scores[part]["count"] > 0
        assert scores["masked"]["rmse"] > scores["all"]["rmse"] > 0
        assert scores["ms_per_frame"] > 0
    assert report["engines"]["guided"]["description"].startswith("guided(sigma_color=0.2,")
    assert set(report["per_capture"]) == {"scene1", "scene2"}
    per = [report["per_capture"][c]["nearest"]["masked"]["rmse"] for c in ("scene1", "scene2")]
    assert report["engines"]["nearest"]["masked"]["rmse"] == pytest.approx(sum(per) / 2)
    proto = report["protocol"]
    assert proto["level"] == "hard" and proto["seeds"] == [4, 5] and proto["blocks"] == 40
    assert proto["captures"] == ["scene1", "scene2"]
    printed = capsys.readouterr().out
    assert "guided" in printed and "nearest" in printed and "scene2" in printed


def test_engine_specific_options_reach_only_their_engine(data, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(data / "scene2"), "--engines", "telea,nearest",
                 "--engine-options", "telea.radius=2", "--checkpoint", "unused.pt",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["engines"]["telea"]["description"] == "telea(radius=2)"
    assert report["protocol"]["captures"] == ["scene2"]


@pytest.mark.parametrize("option", ["colour_level=2", "guided.colour_level=2"])
def test_old_option_name_on_the_command_line_still_works_with_a_warning(data, tmp_path,
                                                                         option, caplog):
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(data / "scene2"), "--engines", "guided", "--trials", "1",
                 "--engine-options", option, "--json", str(out)]) == 0
    assert "color_level=2" in json.loads(out.read_text())["engines"]["guided"]["description"]
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == [
        "engine option colour_level is deprecated and will be removed in the next release: "
        "use color_level"]


def test_seed_reproduces_the_scores(data, tmp_path):
    runs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        main(["eval", "--data", str(data), "--engines", "nearest", "--seed", "9",
              "--json", str(path)])
        runs.append(json.loads(path.read_text())["engines"]["nearest"]["masked"])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("argv, code", [
    (["--engines", "guided,magic"], 2),          # argparse rejects the name
    (["--level", "brutal"], 2),
    (["--engine-options", "radius"], 2),         # not KEY=VALUE
    (["--engines", "nearest", "--engine-options", "telea.radius=3"], 2),  # no such engine
    (["--engines", "nearest", "--engine-options", "radius=3"], 2),        # nobody takes it
])
def test_bad_arguments_fail_cleanly(data, argv, code, capsys):
    try:
        result = main(["eval", "--data", str(data), *argv])
    except SystemExit as exc:  # argparse errors exit
        result = exc.code
    assert result == code
    assert "error" in capsys.readouterr().err


def test_missing_data_folder_is_an_error(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path / "none")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_console_help_lists_the_options():
    done = subprocess.run([sys.executable, "-m", "lingbot_depth_ros.cli", "eval", "--help"],
                          capture_output=True, text=True, check=True)
    for flag in ("--data", "--level", "--engines", "--seed", "--json", "--engine-options",
                 "--checkpoint", "--onnx", "--engine-file"):
        assert flag in done.stdout
