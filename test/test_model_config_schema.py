"""A checkpoint's model_config is checked against its schema before any tensor is built: a
bad size, count, index, string or list is one ModelFileError naming the key, its value and what
is allowed, through `complete` and `export-onnx` (exit 2, one line) and the node (falls back to
guided with that reason); every published backbone's layout still passes."""

from __future__ import annotations

import copy

import pytest
import torch

from bad_input_helpers import EXAMPLES, assert_refused, cli
from lingbot_depth_ros.cli import main
from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.model import (build_model, load_checkpoint, load_weights, save_checkpoint,
                                     tiny_config)
from lingbot_depth_ros.model import config_schema as schema
from lingbot_depth_ros.model.config_schema import validate_model_config
from lingbot_depth_ros.model.convstack import _ACTIVATIONS, RESAMPLERS
from tiny_models import tiny_model

KWARGS = ("encoder", "backbone_kwargs")


def _set(*path):
    """An edit setting model_config[path[0]]...[path[-2]] = path[-1]."""
    *keys, last, value = path

    def edit(config):
        for key in keys:
            config = config[key]
        config[last] = value
    return edit


def _drop(*path):
    def edit(config):
        for key in path[:-1]:
            config = config[key]
        del config[path[-1]]
    return edit


#: (edit of tiny_config(), words the one error line must hold: the key, the value, the rule)
BAD_CONFIGS = {
    "negative width": (_set(*KWARGS, "embed_dim", -64),
                       ["encoder.backbone_kwargs.embed_dim", "-64", "1..8192"]),
    "zero blocks": (_set(*KWARGS, "depth", 0), ["backbone_kwargs.depth", "is 0", "1..64"]),
    "huge heads": (_set(*KWARGS, "num_heads", 10**9), ["num_heads", "1000000000", "1..128"]),
    "float width": (_set(*KWARGS, "embed_dim", 64.0), ["embed_dim", "64.0", "an integer"]),
    "bool blocks": (_set(*KWARGS, "depth", True), ["backbone_kwargs.depth", "True", "an integer"]),
    "heads not dividing": (_set(*KWARGS, "num_heads", 5), ["num_heads", "is 5", "divide the width 64"]),
    "string channels": (_set("neck", "dim_res_blocks", [32, "16", 8, 8, 4]),
                        ["neck.dim_res_blocks[1]", "'16'", "an integer"]),
    "negative channels": (_set("neck", "dim_res_blocks", [32, -16, 8, 8, 4]),
                          ["neck.dim_res_blocks[1]", "-16"]),
    "None channels": (_set("depth_head", "dim_res_blocks", [32, 16, None, 8, 4]),
                      ["depth_head.dim_res_blocks[2]", "None"]),
    "channels not a list": (_set("neck", "dim_res_blocks", 32),
                            ["neck.dim_res_blocks", "is 32", "a list"]),
    "list too short": (_set("neck", "dim_in", [66, 2, 2]),
                       ["neck.dim_in", "[66, 2, 2]", "5 entries"]),
    "neck fed wrong": (_set("neck", "dim_in", [60, 2, 2, 2, 2]),
                       ["neck.dim_in[0]", "is 60", "receives 66 channels"]),
    "head fed wrong": (_set("mask_head", "dim_in", [None, 8, None, None, None]),
                       ["mask_head.dim_in[1]", "is 8", "receives 16 channels"]),
    "head wider than the neck": (_set("depth_head", "dim_res_blocks", [32, 16, 8, 8, 4, 4]),
                                 ["depth_head.dim_res_blocks", "1..5"]),
    "depth head gives 2 channels": (_set("depth_head", "dim_out", [None] * 4 + [2]),
                                    ["depth_head.dim_out", "1 channel"]),
    "negative res blocks": (_set("neck", "num_res_blocks", -1),
                            ["neck.num_res_blocks", "-1", "0..16"]),
    "float hidden factor": (_set("neck", "dim_times_res_block_hidden", 1.5),
                            ["dim_times_res_block_hidden", "1.5"]),
    "unknown resampler": (_set("neck", "resamplers", "pixel_unshuffle"),
                          ["neck.resamplers", "'pixel_unshuffle'", "'conv_transpose'"]),
    "resampler not a string": (_set("neck", "resamplers", 7), ["neck.resamplers", "is 7"]),
    "unknown norm": (_set("neck", "res_block_in_norm", "batch_norm"),
                     ["res_block_in_norm", "'batch_norm'", "'group_norm'"]),
    "group norm on 16 channels": (_set("neck", "res_block_hidden_norm", "group_norm"),
                                  ["res_block_hidden_norm", "at least 32 channels"]),
    "layer count past the backbone": (_set("encoder", "intermediate_layers", 4),
                                      ["encoder.intermediate_layers", "is 4", "1..3"]),
    "layer index past the backbone": (_set("encoder", "intermediate_layers", [0, 7]),
                                      ["intermediate_layers", "[0, 7]", "0..2"]),
    "negative layer index": (_set("encoder", "intermediate_layers", [-1, 2]),
                             ["intermediate_layers", "[-1, 2]"]),
    "repeated layer": (_set("encoder", "intermediate_layers", [1, 1]), ["[1, 1]", "distinct"]),
    "no layers": (_set("encoder", "intermediate_layers", []), ["intermediate_layers", "[]"]),
    "float layer count": (_set("encoder", "intermediate_layers", 2.0), ["intermediate_layers", "2.0"]),
    "dim_out not the width": (_set("encoder", "dim_out", 48), ["encoder.dim_out", "48", "width 64"]),
    "unknown backbone": (_set("encoder", "backbone", "dinov3_vit"),
                         ["encoder.backbone", "'dinov3_vit'", "'dinov2_vitl14'"]),
    "fuse mode": (_set("encoder", "img_depth_fuse_mode", "add"), ["img_depth_fuse_mode", "'add'"]),
    "in_chans": (_set("encoder", "in_chans", 4), ["encoder.in_chans", "is 4", "3"]),
    "missing dim_out": (_drop("encoder", "dim_out"), ["encoder.dim_out", "missing"]),
    "missing neck": (_drop("neck"), ["neck", "missing"]),
    "encoder not a dict": (_set("encoder", [1, 2]), ["encoder", "[1, 2]", "mapping"]),
    "unknown encoder key": (_set("encoder", "patch_size", 16),
                            ["encoder has unknown key 'patch_size'"]),
    "mask head not a mapping": (_set("mask_head", 0), ["mask_head is 0", "mapping"]),
    "unknown top-level key": (_set("decoder", {}), ["unknown key 'decoder'"]),
    "unknown backbone_kwargs key": (_set(*KWARGS, "mlp_ratio", 4),
                                    ["backbone_kwargs has unknown key 'mlp_ratio'"]),
    "bad remap": (_set("remap_depth_in", "sqrt"), ["remap_depth_in", "'sqrt'", "'log'"]),
    "token range decreasing": (_set("num_tokens_range", [3600, 1200]),
                               ["num_tokens_range", "[3600, 1200]", "increasing"]),
    "token range of floats": (_set("num_tokens_range", [1200.0, 3600.0]), ["num_tokens_range"]),
    "token range of three": (_set("num_tokens_range", [1, 2, 3]), ["num_tokens_range"]),
    "token range zero": (_set("num_tokens_range", [0, 3600]), ["num_tokens_range", "1..10000"]),
    "token range huge": (_set("num_tokens_range", [1200, 10**7]), ["num_tokens_range"]),
}
#: the cases the CLI table runs in a subprocess too (the rest in-process through cli.main)
SUBPROCESS_CASES = ("negative width", "string channels")


def bad_config(case: str) -> dict:
    config = tiny_config()
    BAD_CONFIGS[case][0](config)
    return config


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_each_bad_config_is_named_before_anything_is_built(case, monkeypatch):
    built = []
    monkeypatch.setattr(torch.nn.Module, "__init__",
                        lambda self, *a, **k: built.append(self) or None)
    with pytest.raises(ModelFileError) as raised:
        build_model(bad_config(case))
    assert not built  # refused before the first module (and so any tensor) was made
    message = str(raised.value)
    assert message.startswith("model_config: ") and "\n" not in message
    for word in BAD_CONFIGS[case][1]:
        assert word in message, (word, message)


#: what a corrupt file may hold in place of any one value
JUNK = (-1, 0, 10**12, 2.5, 64.0, True, False, "x", "", None, [], [1], {"a": 1}, float("nan"))


def value_paths(node, path=()):
    """Every key path of a config: its sections, values and list entries."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from value_paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from value_paths(value, path + (index,))


def test_any_one_corrupt_value_is_refused_by_name_or_builds_a_network_that_runs():
    """The class, not the cases: each value of the config replaced by each kind of junk."""
    base, accepted, refused = tiny_config(), [], 0
    unused = set(schema.UNUSED_TOP_LEVEL) | set(schema.ENCODER_TRAINING_KEYS)
    for path in value_paths(base):
        for junk in JUNK:
            config = copy.deepcopy(base)
            _set(*path, junk)(config)
            try:
                validate_model_config(config)
            except ModelFileError as exc:
                assert str(exc).startswith("model_config: ") and "\n" not in str(exc), str(exc)
                refused += 1
            else:  # a key of no effect at inference, or a valid variant (a None width that fits)
                if not unused & set(path[:2]) and config != base and config not in accepted:
                    accepted.append(config)
    assert refused > 10 * len(accepted)
    image, depth = torch.rand(1, 3, 42, 56), torch.rand(1, 42, 56) + 0.5
    for config in accepted:  # what the schema lets through must also run
        with torch.no_grad():
            out = build_model(config)(image, depth, num_tokens=12)
        assert out["depth"].shape == (1, 42, 56)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A valid tiny checkpoint and, per bad case, the same weights under the bad config."""
    folder = tmp_path_factory.mktemp("bad_configs")
    good = save_checkpoint(tiny_model(), folder / "good.pt")
    state = torch.load(good, map_location="cpu", weights_only=True)["model"]
    paths = {"good": good}
    for index, case in enumerate(BAD_CONFIGS):
        paths[case] = folder / f"case{index}.pt"
        torch.save({"model_config": bad_config(case), "model": state}, paths[case])
    return paths


def complete_args(checkpoint, out):
    capture = EXAMPLES / "3"
    return ["complete", "--rgb", capture / "rgb.jpg", "--depth", capture / "raw_depth.png",
            "--intrinsics", capture / "intrinsics.txt", "--engine", "torch",
            "--checkpoint", checkpoint, "--out", out]


def export_args(checkpoint, out):
    return ["export-onnx", "--checkpoint", checkpoint, "--height", "48", "--width", "64",
            "--num-tokens", "12", "--out", out]


COMMANDS = {"complete": (complete_args, "o"), "export-onnx": (export_args, "m.onnx")}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_complete_and_export_refuse_a_bad_config_in_one_line(checkpoints, tmp_path, capsys,
                                                             command, case):
    args, out = COMMANDS[command]
    code = main([str(a) for a in args(checkpoints[case], tmp_path / out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"lingbot-depth {command}: error: checkpoint "), lines
    for word in [str(checkpoints[case])] + BAD_CONFIGS[case][1]:
        assert word in lines[0], (word, lines[0])
    assert not (tmp_path / out).exists() and not (tmp_path / f"{out}.partial").exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_the_real_command_exits_2_without_a_traceback(checkpoints, tmp_path, command, case):
    args, out = COMMANDS[command]
    proc = cli(*args(checkpoints[case], tmp_path / out), cwd=tmp_path)
    assert_refused(proc, *BAD_CONFIGS[case][1], nothing_at=tmp_path / out)


def test_the_valid_checkpoint_still_completes_through_the_cli(checkpoints, tmp_path, capsys):
    assert main([str(a) for a in complete_args(checkpoints["good"], tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "completed_depth.npy").exists()


def published_config(backbone: str) -> dict:
    """The published layout (benchmarks/bench_flops.py's ViT-L) around another backbone."""
    spec = schema.BACKBONES[backbone]
    width, blocks = spec["embed_dim"], spec["depth"]
    dims = [width, 256, 128, 64, 32]
    kinds = ["conv_transpose"] * 3 + ["bilinear"]
    plain = {"res_block_in_norm": "none", "res_block_hidden_norm": "none", "resamplers": kinds}
    head = dict(plain, dim_in=dims, dim_out=[None] * 4 + [1], dim_res_blocks=dims,
                num_res_blocks=[0, 1, 1, 1, 0])
    return {
        "encoder": {"backbone": backbone, "dim_out": width, "img_depth_fuse_mode": "cat_token",
                    "depth_emb_mode": "conv_1c",
                    "intermediate_layers": [blocks // 4 * i - 1 for i in (1, 2, 3, 4)],
                    "depth_mask_ratio": 0.6, "img_mask_ratio": 0.0, "strict": False,
                    "ignore_layers": [], "in_chans": 3},
        "neck": dict(plain, dim_in=[width + 2, 2, 2, 2, 2], dim_out=[None] * 5,
                     dim_res_blocks=dims, num_res_blocks=[0, 2, 2, 2, 0]),
        "depth_head": head, "mask_head": copy.deepcopy(head),
        "normal_head": None, "scale_head": None, "remap_output": "exp",
        "remap_depth_in": "log", "remap_depth_out": "exp", "num_tokens_range": [1200, 3600],
    }


@pytest.mark.parametrize("backbone", schema.BACKBONES)
def test_every_published_backbone_layout_passes(backbone):
    config = published_config(backbone)
    validate_model_config(config)
    config["encoder"]["intermediate_layers"] = 4  # the other form: the last four blocks
    validate_model_config(config)


def test_the_schema_agrees_with_the_modules_it_guards():
    assert set(schema.ACTIVATIONS) == set(_ACTIVATIONS)
    assert set(schema.RESAMPLERS) == set(RESAMPLERS)
    config = published_config("dinov2_vits14")  # the smallest: built, on the meta device
    with torch.device("meta"):
        model = build_model(config)
    assert model.encoder.backbone.embed_dim == 384 and len(model.encoder.take) == 4


def test_a_tiny_config_round_trips_and_its_variants_build():
    for options in ({}, {"mask_head": False}, {"intermediate_layers": 3}):
        build_model(tiny_config(**options))
    config = tiny_config()
    config["neck"]["res_block_hidden_norm"] = "group_norm"
    config["neck"]["dim_times_res_block_hidden"] = 8  # 4 * 8 = 32 channels: one group
    build_model(config)


def test_load_refuses_weights_that_are_not_finite_floats(checkpoints, tmp_path):
    saved = torch.load(checkpoints["good"], map_location="cpu", weights_only=True)
    state = saved["model"]
    state["encoder.backbone.norm.weight"][3] = float("nan")
    state["encoder.backbone.norm.bias"] = torch.zeros(64, dtype=torch.int64)
    state["encoder.backbone.blocks.0.ls1.gamma"][0] = float("inf")
    path = tmp_path / "garbage.pt"
    torch.save(saved, path)
    with pytest.raises(ModelFileError) as raised:
        load_checkpoint(path)
    message = str(raised.value)
    assert "1 key not dense floating-point: encoder.backbone.norm.bias (int64)" in message
    assert ("2 keys with NaN, infinite or overflowing values: "
            "encoder.backbone.blocks.0.ls1.gamma, encoder.backbone.norm.weight") in message


def test_load_refuses_a_state_dict_with_keys_that_are_not_names(checkpoints, tmp_path):
    saved = torch.load(checkpoints["good"], map_location="cpu", weights_only=True)
    saved["model"][7] = torch.zeros(1)
    path = tmp_path / "numbered.pt"
    torch.save(saved, path)
    with pytest.raises(ModelFileError, match="not a state dict of named tensors"):
        load_checkpoint(path)


def test_weights_loaded_into_a_training_model_get_the_same_checks(checkpoints, tmp_path):
    """`--resume` copies a step checkpoint into the model its optimizer holds."""
    model = tiny_model(seed=1)
    before = dict(model.named_parameters())
    load_weights(model, checkpoints["good"])
    assert all(p is before[name] for name, p in model.named_parameters())  # copied in place
    assert torch.equal(model.state_dict()["encoder.backbone.norm.weight"],
                       load_checkpoint(checkpoints["good"]).state_dict()["encoder.backbone.norm.weight"])
    truncated = tmp_path / "step.pt"
    truncated.write_bytes(checkpoints["good"].read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated, corrupt"):
        load_weights(model, truncated)
    with pytest.raises(ModelFileError, match="wrong shape"):
        load_weights(tiny_model(embed_dim=32, num_heads=2), checkpoints["good"])


def test_the_node_falls_back_to_guided_and_says_why(checkpoints, context):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from node_harness import Running

    running = Running(context, {"engine": "torch", "checkpoint": str(checkpoints["negative width"])},
                      namespace="/bad_config", connect=False)
    try:
        values = running.diagnostics()
        assert values["engine"] == "guided", values
        for word in ["failed to load", "encoder.backbone_kwargs.embed_dim is -64", "1..8192"]:
            assert word in values["fallback"], (word, values["fallback"])
    finally:
        running.close()


def test_load_refuses_a_zero_normalisation_std(checkpoints, tmp_path):
    """image_std divides the input: a zero would make every output NaN, silently."""
    saved = torch.load(checkpoints["good"], map_location="cpu", weights_only=True)
    saved["model"]["encoder.image_std"] = torch.zeros_like(saved["model"]["encoder.image_std"])
    path = tmp_path / "zero_std.pt"
    torch.save(saved, path)
    with pytest.raises(ModelFileError, match="1 key with zero or negative values .*encoder.image_std"):
        load_checkpoint(path)



def test_the_command_line_token_bound_is_the_schema_s():
    from lingbot_depth_ros.commands import model_cmds
    assert model_cmds.MAX_NUM_TOKENS == schema.MAX_NUM_TOKENS
