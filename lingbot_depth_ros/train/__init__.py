"""Self-supervised masked-depth fine-tuning (``lingbot-depth train``).

config (YAML -> dataclasses), masking (the paper's MDM rule), augment (RGB-D augmentation
moving K along), data (capture folders and rosbag2 files, weighted, held-out split), optim
(AdamW groups and schedule), loop (the trainer), state (checkpoints and resume), report
(held-out block-protocol metrics before/after), distributed (torchrun / DDP).
"""

from .config import TrainConfig, TrainConfigError, load_config

__all__ = ["TrainConfig", "TrainConfigError", "load_config", "train"]


def train(cfg: TrainConfig, resume: bool = False):
    """Run training (imports torch lazily); see loop.train."""
    from .loop import train as _train

    return _train(cfg, resume)
