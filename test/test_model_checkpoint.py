"""Checkpoint files in the official layout, their errors, and the torch engine that loads them."""

import hashlib

import numpy as np
import pytest
import torch

from lingbot_depth_ros.core.errors import EngineUnavailableError, ModelFileError
from lingbot_depth_ros.core.frame import SourceMask
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.model import load_checkpoint, model_sha256, save_checkpoint
from tiny_models import capture, tiny_model

#: names the official checkpoints use (a sample from every part of the network)
OFFICIAL_NAMES = {
    "encoder.backbone.patch_embed.proj.weight": (64, 3, 14, 14),
    "encoder.backbone.depth_patch_embed.proj.weight": (64, 1, 14, 14),
    "encoder.backbone.cls_token": (1, 1, 64),
    "encoder.backbone.pos_embed": (1, 1 + 37 * 37, 64),
    "encoder.backbone.mask_token": (1, 64),
    "encoder.backbone.blocks.2.attn.qkv.weight": (192, 64),
    "encoder.backbone.blocks.2.ls2.gamma": (64,),
    "encoder.backbone.norm.bias": (64,),
    "encoder.output_projections.1.weight": (64, 64, 1, 1),
    "encoder.image_mean": (1, 3, 1, 1),
    "neck.input_blocks.0.weight": (32, 66, 1, 1),
    "neck.res_blocks.4.0.layers.5.weight": (4, 4, 3, 3),
    "neck.resamplers.0.0.weight": (32, 16, 2, 2),
    "neck.resamplers.3.1.weight": (4, 4, 3, 3),
    "depth_head.output_blocks.4.weight": (1, 4, 1, 1),
    "mask_head.output_blocks.4.bias": (1,),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "model.pt")
    return model, path


def test_layout_uses_the_official_names(saved):
    _, path = saved
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"model_config", "model"}
    shapes = {k: tuple(v.shape) for k, v in checkpoint["model"].items()}
    assert {k: shapes.get(k) for k in OFFICIAL_NAMES} == OFFICIAL_NAMES
    assert checkpoint["model_config"]["encoder"]["backbone"] == "dinov2_vits14"


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = load_checkpoint(path)
    assert not loaded.training
    assert loaded.model_config == model.model_config
    image, depth = torch.rand(1, 3, 84, 112), torch.rand(1, 84, 112) * 4
    depth[:, :30] = 0
    with torch.no_grad():
        a, b = model(image, depth, num_tokens=48), loaded(image, depth, num_tokens=48)
    assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["mask"], b["mask"])
    assert model_sha256(loaded) == hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite(path, tmp_path, edit):
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    edit(checkpoint)
    out = tmp_path / "edited.pt"
    torch.save(checkpoint, out)
    return out


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["model"].update({"encoder.backbone.extra.weight": torch.zeros(1)}),
     r"1 key unexpected: encoder\.backbone\.extra\.weight"),
    (lambda c: c["model"].pop("neck.res_blocks.0.0.layers.2.weight"),
     r"1 key missing: neck\.res_blocks\.0\.0\.layers\.2\.weight"),
    (lambda c: c["model"].update({"encoder.backbone.norm.weight": torch.zeros(32)}),
     r"wrong shape: encoder\.backbone\.norm\.weight \(file \[32\], model \[64\]\)"),
    (lambda c: c["model_config"]["encoder"].update(dim_out=48), "encoder.dim_out is 48"),
    (lambda c: c.pop("model_config"), "official format"),
])
def test_mismatched_checkpoints_name_the_problem(saved, tmp_path, edit, message):
    path = _rewrite(saved[1], tmp_path, edit)
    with pytest.raises(ModelFileError, match=message):
        load_checkpoint(path)


def test_keys_the_reference_ignores_are_tolerated(saved, tmp_path):
    path = _rewrite(saved[1], tmp_path, lambda c: c["model"].update(
        {"normal_head.output_blocks.4.weight": torch.zeros(3, 4, 1, 1),
         "scale_head.0.weight": torch.zeros(2, 2)}))
    loaded = load_checkpoint(path)
    assert "normal_head.output_blocks.4.weight" not in loaded.state_dict()


def test_truncated_and_foreign_files_are_refused(saved, tmp_path):
    data = saved[1].read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated, corrupt"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(ModelFileError, match="truncated, corrupt"):
        load_checkpoint(text)
    with pytest.raises(ModelFileError, match="is not a file"):
        load_checkpoint(tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    plain = tmp_path / "state_dict.pt"
    torch.save(saved[0].state_dict(), plain)
    with pytest.raises(ModelFileError, match="need keys 'model_config' and 'model'"):
        load_checkpoint(plain)


def test_torch_engine_completes_a_frame_and_keeps_measured_pixels(saved):
    frame = capture("3")
    engine = create_engine("torch", checkpoint=saved[1], device="cpu", num_tokens=300)
    result = engine.complete(frame)
    measured = np.isfinite(frame.depth)
    assert np.array_equal(result.depth[measured], frame.depth[measured])
    assert (result.source[measured] == SourceMask.MEASURED).all()
    filled = result.source == SourceMask.FILLED
    assert filled.any() and (result.depth[filled] > 0).all()
    assert (~measured & ~filled).any()  # the mask head declined some holes: left as NaN
    assert np.isnan(result.depth[result.source == SourceMask.INVALID]).all()
    assert {"preprocess", "inference", "postprocess"} <= set(result.timings_ms)


def test_torch_engine_refuses_bad_options(saved):
    with pytest.raises(ModelFileError, match="checkpoint"):
        create_engine("torch")
    with pytest.raises(ValueError, match="mode"):
        create_engine("torch", checkpoint=saved[1], mode="stereo")
    if not torch.cuda.is_available():
        with pytest.raises(EngineUnavailableError, match="no CUDA"):
            create_engine("torch", checkpoint=saved[1], device="cuda")
