"""`lingbot-depth download`: argument parsing, the missing-package message, and the check
it runs on the fetched file (exercised on a local checkpoint; CI has no internet)."""

from __future__ import annotations

import hashlib
import sys

import pytest
import torch

from lingbot_depth_ros.cli import build_parser, main
from lingbot_depth_ros.commands.model_cmds import OFFICIAL_MODELS, describe_checkpoint
from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.model import build_model, save_checkpoint, tiny_config


@pytest.mark.parametrize("model_id", OFFICIAL_MODELS)
def test_official_ids_are_accepted(model_id, tmp_path):
    args = build_parser().parse_args(["download", "--model", model_id, "--out", str(tmp_path)])
    assert args.model == model_id and args.out == tmp_path


def test_other_ids_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["download", "--model", "robbyant/lingbot-depth-vitg",
                                   "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_huggingface_hub_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    code = main(["download", "--model", OFFICIAL_MODELS[1], "--out", str(tmp_path / "w")])
    assert code == 2
    err = capsys.readouterr().err
    assert "huggingface_hub" in err and "pip install" in err
    assert not (tmp_path / "w").exists()  # nothing created before the check


def test_describe_checkpoint_loads_and_summarises(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(build_model(tiny_config()), tmp_path / "model.pt")
    lines = describe_checkpoint(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() in lines[0]
    assert "dinov2_vits14 (64 wide, 3 blocks, 4 heads)" in lines[1]
    assert "heads depth, mask" in lines[2] and "log -> exp" in lines[2]


def test_describe_checkpoint_refuses_a_truncated_file(tmp_path):
    path = save_checkpoint(build_model(tiny_config()), tmp_path / "model.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        describe_checkpoint(path)
