"""A rig: the cameras one node completes with one engine, ROS-free (docs/rig.md).

`cameras` names them; each camera is a namespace under the node's, with the node's
parameters overlaid by its preset (a config/ camera file) and then by its own
`<name>.<parameter>` values, for the per-camera parameters only (inputs: topics, QoS,
pairing, admission, depth units and range). Everything else (engine, outputs, diagnostics)
is the rig's. No `cameras`: a rig of one, the node's own parameters, no namespace."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import PARAMS_BY_NAME, NodeConfig, load_params_file

#: parameters each camera of a rig sets for itself (the rest are the rig's)
CAMERA_PARAMS = ("color_topic", "depth_topic", "camera_info_topic", "qos", "queue_depth", "slop",
                 "pair_queue_size", "admission", "pair_timeout", "assume_registered",
                 "depth_scale", "min_depth", "max_depth")
#: a camera's name: one ROS name token (it becomes a namespace and a parameter prefix)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CameraSpec:
    """One camera of a rig: `name` ("" for the rig of one) and its complete configuration."""

    name: str
    config: NodeConfig
    preset: str = ""

    def topic(self, name: str) -> str:
        """`name` inside this camera's namespace (an absolute name stays as it is)."""
        if not self.name or name.startswith("/"):
            return name
        return f"{self.name}/{name}"


def preset_names() -> list[str]:
    """Camera presets in config/ (every parameter file that sets a colour topic and is no
    rig itself)."""
    from ..paths import data_path

    folder = data_path("config")
    names = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            values = load_params_file(path)
            if "color_topic" in values and not values.get("cameras"):
                names.append(path.stem)
        except ValueError:
            continue
    return names


def preset_values(preset: str) -> dict[str, Any]:
    """The per-camera parameters a preset sets: a config/ name (realsense_d435i) or a path
    to a parameter file. Raises ValueError naming the known presets."""
    from ..paths import data_path

    if not preset:
        return {}
    path = Path(preset) if preset.endswith((".yaml", ".yml")) else data_path(f"config/{preset}.yaml")
    if not path.is_file():
        raise ValueError(f"unknown camera preset '{preset}' (presets: {', '.join(preset_names())}; "
                         "or a path to a parameter file ending in .yaml)")
    values = load_params_file(path, require_section=True)
    return {k: v for k, v in values.items() if k in CAMERA_PARAMS}


def check_names(names: tuple[str, ...] | list[str]) -> None:
    """Raise ValueError for a camera name that cannot be a namespace, or one given twice."""
    seen = set()
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"cameras: '{name}' is not a valid camera name (a letter, then "
                             "letters, digits or _; it becomes the camera's namespace)")
        if name in seen:
            raise ValueError(f"cameras: '{name}' is given twice (each camera needs a namespace of its own)")
        seen.add(name)


def rig_cameras(config: NodeConfig, camera_values: Callable[[str, dict[str, Any]], dict[str, Any]]
                ) -> list[CameraSpec]:
    """The rig's cameras. `camera_values(name, defaults)` returns the camera's own values of
    CAMERA_PARAMS, `defaults` (the node's values overlaid by its preset) where it sets none;
    it is given `preset` among the defaults' keys and returns it too.
    Raises ValueError with the camera's name for a bad value."""
    if not config.cameras:
        return [CameraSpec("", config)]
    if config.source != "ros":
        raise ValueError(f"cameras: a rig subscribes to topics; source '{config.source}' opens "
                         "one camera (leave cameras empty)")
    check_names(config.cameras)
    rig_values = {name: getattr(config, name) for name in PARAMS_BY_NAME}
    specs = []
    for name in config.cameras:
        preset = camera_values(name, {"preset": ""}).get("preset", "")
        try:
            defaults = {k: rig_values[k] for k in CAMERA_PARAMS}
            defaults.update(preset_values(preset))
            own = camera_values(name, defaults)
            own.pop("preset", None)
            camera = NodeConfig.from_values({**rig_values, **defaults, **own, "cameras": []})
        except ValueError as exc:
            raise ValueError(f"camera '{name}': {exc}") from None
        specs.append(CameraSpec(name, camera, preset))
    return specs


def rig_from_values(values: dict[str, Any]) -> list[CameraSpec]:
    """The rig of a flat parameter dict (a parameter file read with load_params_file):
    `<name>.<parameter>` keys set a camera's own values. Raises ValueError."""
    own = {k: v for k, v in values.items() if "." in k and k.split(".", 1)[0] in
           (values.get("cameras") or ())}
    config = NodeConfig.from_values({k: v for k, v in values.items() if k not in own})

    def camera_values(name: str, defaults: dict[str, Any]) -> dict[str, Any]:
        prefix = f"{name}."
        given = {k[len(prefix):]: v for k, v in own.items() if k.startswith(prefix)}
        unknown = sorted(set(given) - set(CAMERA_PARAMS) - {"preset"})
        if unknown:
            raise ValueError(f"camera '{name}': {', '.join(unknown)} cannot be set per camera "
                             f"(per camera: preset, {', '.join(CAMERA_PARAMS)})")
        return {k: given.get(k, v) for k, v in defaults.items()}

    return rig_cameras(config, camera_values)
