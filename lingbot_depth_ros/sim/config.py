"""The simulator's YAML config: scene distributions, IR sensor noise and render quality."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..core.errors import LingbotDepthError
from ..paths import data_path

DEFAULT_CONFIG = "config/sim_scenes.yaml"
REQUIRED = ("scene_kinds", "objects_per_scene", "object_size_m", "shapes", "object_materials",
            "tabletop", "room", "lights", "projector", "ir", "quality")


class SimConfigError(LingbotDepthError):
    """The simulator's config is missing, unreadable or lacks a section."""


def load_sim_config(path: str | Path | None = None) -> dict:
    path = Path(path) if path is not None else data_path(DEFAULT_CONFIG)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SimConfigError(f"cannot read simulator config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise SimConfigError(f"{path} must hold a mapping, got {type(config).__name__}")
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise SimConfigError(f"{path} lacks {', '.join(missing)} (see {DEFAULT_CONFIG})")
    share = config["quality"].get("projector_share", 0.5) if isinstance(config["quality"], dict) else None
    if not isinstance(share, (int, float)) or not 0.0 < share < 1.0:
        raise SimConfigError(f"{path}: quality.projector_share must be a number in (0, 1), got {share!r}")
    return config
