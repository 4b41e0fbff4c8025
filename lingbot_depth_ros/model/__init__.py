"""The LingBot-Depth network (our PyTorch implementation) and its official checkpoint format."""

from .checkpoint import load_checkpoint, load_weights, model_sha256, save_checkpoint, tiny_config
from .network import LingBotDepth, build_model, depth_to_points, token_grid, tokens_for_level

__all__ = ["LingBotDepth", "build_model", "depth_to_points", "load_checkpoint", "load_weights",
           "model_sha256", "save_checkpoint", "tiny_config", "token_grid", "tokens_for_level"]
