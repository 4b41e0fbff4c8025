"""Self-supervised masked-depth fine-tuning (``lingbot-depth train``; docs/training.md)."""

from .config import TrainConfig, TrainConfigError, load_config

__all__ = ["TrainConfig", "TrainConfigError", "load_config", "train"]


def train(cfg: TrainConfig, resume: bool = False):
    """Run training (imports torch lazily); see loop.train."""
    from .loop import train as _train

    return _train(cfg, resume)
