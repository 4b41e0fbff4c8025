"""The node's configuration, ROS-free: the parameter table and `NodeConfig`, its typed values,
so the bag tools and the CLI read the node's YAML files (ros/params.py declares the table)."""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

import yaml

from .depth import DepthRange
from .outputs import DEPTH_OUTPUT_ENCODINGS, MODES, OutputOptions
from .runner import ADMISSIONS

#: rclpy executors the node can spin on (ros/node_process.py)
EXECUTORS = ("events", "single_threaded")

NODE_NAME = "lingbot_depth_node"
QOS_CHOICES = ("auto", "sensor_data", "reliable")
FALLBACK_CHOICES = ("guided", "none")
SOURCE_CHOICES = ("ros", "realsense")
ENGINE_CHOICES = ("guided", "nearest", "telea", "torch", "onnxruntime", "tensorrt", "auto")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any  # its Python type (str, bool, int, float) is the parameter type
    description: str
    range: tuple[float, float] | None = None  # inclusive, for int and float
    choices: tuple[str, ...] | None = None  # for strings


PARAMS: tuple[Param, ...] = (
    # a rig of several cameras (docs/rig.md); empty: one camera, configured by the inputs below
    Param("cameras", [],
          "Cameras of a rig, each a namespace under the node's: its inputs and outputs are "
          "there and its settings are <name>.preset (a config/ camera preset) and "
          "<name>.<input parameter>; empty: one camera, the parameters below."),
    Param("batch_window_ms", 10.0,
          "Longest a ready pair waits for other cameras' pairs to share its engine call, "
          "milliseconds (rigs; a camera alone never waits).", range=(0.0, 1000.0)),
    Param("max_batch", 4, "Most frames in one engine call (rigs).", range=(1, 16)),
    # inputs
    Param("source", "ros", "Where frames come from: ros (subscribe to the topics below) or "
          "realsense (open the camera with pyrealsense2; see the realsense.* parameters).",
          choices=SOURCE_CHOICES),
    Param("color_topic", "color/image_raw", "Colour image topic (rgb8, bgr8, rgba8, bgra8, mono8)."),
    Param("depth_topic", "depth/image_raw",
          "Depth image topic, registered to the colour image (16UC1, mono16 or 32FC1)."),
    Param("camera_info_topic", "color/camera_info", "Camera info of the colour image."),
    Param("qos", "auto",
          "Input reliability: auto (follow the publisher: best effort if it is, else reliable), "
          "sensor_data (best effort) or reliable.",
          choices=QOS_CHOICES),
    Param("queue_depth", 30,
          "Input subscription history depth: images the reader keeps while the executor is "
          "busy; a full history overwrites its oldest image before the node sees it.",
          range=(1, 100)),
    Param("slop", 0.02, "Largest colour/depth stamp difference that still pairs, seconds.",
          range=(0.0, 1.0)),
    Param("pair_queue_size", 30,
          "Unpaired images kept per stream while waiting for a partner (30: a second of a "
          "30 Hz stream, as long as pair_timeout lets one wait).",
          range=(1, 100)),
    Param("admission", "burst",
          "What a pair that arrives while the engine is busy does: latest (waits alone, a "
          "newer pair replaces it), burst (while the engine keeps up on average, as many "
          "wait as it finishes within burst_budget, else two; the oldest is replaced) or "
          "every (all wait in order, none is dropped; latency and memory grow while the "
          "engine is slower than the camera).",
          choices=ADMISSIONS),
    Param("burst_budget", 0.5,
          "With admission burst: longest the waiting pairs may take to finish, seconds (a "
          "burst released by a reliable transport after a repair is worked off, not dropped).",
          range=(0.0, 10.0)),
    Param("pair_timeout", 1.0,
          "Seconds an image waits for its partner before it is dropped as unpaired.",
          range=(0.01, 60.0)),
    Param("assume_registered", False,
          "Pair colour and depth even when their frame ids differ (else dropped as unregistered)."),
    Param("depth_scale", 0.001, "Metres per unit of integer depth (16UC1/mono16); 0.001 = mm.",
          range=(1e-6, 1.0)),
    Param("min_depth", 0.1, "Smallest valid input depth, metres; nearer readings are no data.",
          range=(0.0, 100.0)),
    Param("max_depth", 10.0, "Largest valid input depth, metres; farther readings are no data.",
          range=(0.01, 1000.0)),
    # engine
    Param("engine", "guided", "Completion engine; see fallback for when it fails.",
          choices=ENGINE_CHOICES),
    Param("fallback", "guided",
          "When the engine fails to load or at run time: guided (switch to it, WARN) or none "
          "(stop with an error).", choices=FALLBACK_CHOICES),
    Param("checkpoint", "", "LingBot-Depth checkpoint (model.pt) for torch/auto."),
    Param("onnx", "", "ONNX file for onnxruntime/tensorrt/auto."),
    Param("engine_file", "", "TensorRT engine file for tensorrt/auto."),
    Param("mode", "completion",
          "completion (use measured depth) or monocular (colour only; neural engines).",
          choices=MODES),
    Param("resolution_level", 9, "Neural token-grid level: 0 fastest, 9 most detail.",
          range=(0, 9)),
    Param("refine_measured", False, "Let the engine replace measured pixels too."),
    # outputs
    Param("publish_depth", True, "Publish depth_completed and depth_completed/camera_info."),
    Param("depth_encoding", "32FC1", "depth_completed encoding: 32FC1 (m, NaN) or 16UC1 (mm, 0).",
          choices=DEPTH_OUTPUT_ENCODINGS),
    Param("publish_source_mask", True, "Publish depth_completed/source_mask (mono8)."),
    Param("publish_cloud", True, "Publish depth_completed/points (PointCloud2 XYZRGB)."),
    Param("publish_rgbd", True, "Publish depth_completed/rgbd (CompletedRGBD)."),
    Param("cloud_decimation", 1, "Keep every n-th row and column in the cloud.", range=(1, 16)),
    Param("cloud_max_range", 0.0, "Leave points farther than this out of the cloud, metres; 0 = no cap.",
          range=(0.0, 1000.0)),
    Param("cloud_organized", True, "Organised HxW cloud with NaN points; false = valid points only."),
    Param("output_queue_depth", 5,
          "History depth of every output publisher (reliable): messages kept for a slow "
          "subscriber; each costs one message of memory once used (1 = latest only).",
          range=(1, 100)),
    Param("math_threads", 1,
          "Worker threads of OpenCV and OpenBLAS in this process; 1 = none (the pipeline's "
          "own threads use the cores; idle pool workers spin); 0 = the libraries' defaults.",
          range=(0, 256)),
    Param("heap_trim_period", 5.0,
          "Seconds between handing the allocator's free pages back to the kernel (glibc "
          "malloc_trim), which keeps resident memory from creeping; 0 = never.",
          range=(0.0, 3600.0)),
    Param("executor", "events",
          "rclpy executor of the node's callbacks: events (rclpy.experimental.EventsExecutor: "
          "no wait set rebuilt per callback) or single_threaded (rclpy's SingleThreadedExecutor; "
          "also what runs where events is not available).", choices=EXECUTORS),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0)),
    Param("health_timeout", 3.0,
          "Seconds without input (STALE) or without output while input arrives (ERROR) before "
          "/diagnostics says so.", range=(0.5, 600.0)),
)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}
#: parameters every rclpy node takes besides its own (the node accepts them silently)
ROS_NODE_PARAMS = ("use_sim_time", "start_type_description_service")
#: prefix of rclpy's QoS override parameters (qos_overrides./topic.publisher.reliability)
QOS_OVERRIDES_PREFIX = "qos_overrides."


def is_ros_parameter(name: str) -> bool:
    """A parameter rclpy itself reads (not one of the node's): no warning, no effect offline."""
    return name in ROS_NODE_PARAMS or name.startswith(QOS_OVERRIDES_PREFIX)


def node_values(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the node's own parameters of `values`, the names the node would warn about and
    ignore); ROS's own parameters are dropped silently, as the node takes them."""
    cameras = values.get("cameras") if isinstance(values.get("cameras"), (list, tuple)) else ()
    # a rig's per-camera keys (<camera>.<parameter>: core/rig.py checks them)
    ours = {k: v for k, v in values.items() if k in PARAMS_BY_NAME or k.split(".", 1)[0] in cameras}
    unknown = sorted(k for k in values if k not in ours and not is_ros_parameter(k))
    return ours, unknown


class _NodeConfigMethods:
    """What NodeConfig does with its values; NodeConfig's fields come from PARAMS below."""

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeConfig:
        """Defaults overridden by `values`; raises ValueError on unknown, mistyped or out of range."""
        unknown = sorted(set(values) - set(PARAMS_BY_NAME))
        if unknown:
            raise ValueError(f"unknown parameter(s) for {NODE_NAME}: {', '.join(unknown)}")
        merged = {p.name: check_value(p, values.get(p.name, p.default)) for p in PARAMS}
        config = cls(**merged)  # type: ignore[call-arg]
        config.valid_range  # noqa: B018 - raises on min_depth >= max_depth
        return config

    @property
    def valid_range(self) -> DepthRange:
        return DepthRange(min_m=self.min_depth, max_m=self.max_depth)

    @property
    def output_options(self) -> OutputOptions:
        return OutputOptions(depth_encoding=self.depth_encoding, cloud=self.publish_cloud,
                             cloud_decimation=self.cloud_decimation,
                             cloud_max_range_m=self.cloud_max_range,
                             cloud_organized=self.cloud_organized, rgbd=self.publish_rgbd)

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for engines.create_engine (classical engines ignore model files)."""
        options: dict[str, Any] = {"refine_measured": self.refine_measured, "mode": self.mode,
                                   "resolution_level": self.resolution_level}
        for key in ("checkpoint", "onnx", "engine_file"):
            if getattr(self, key):
                options[key] = getattr(self, key)
        return options


#: typed parameter values; field names and types are the parameter table's
NodeConfig = make_dataclass("NodeConfig", [(p.name, type(p.default)) for p in PARAMS],
                            bases=(_NodeConfigMethods,), frozen=True)
NodeConfig.__module__ = __name__


def check_value(param: Param, value: Any) -> Any:
    """Return `value` if it has the parameter's type, range and choices; else raise ValueError."""
    kind = type(param.default)
    if kind is list:  # a string array; kept as a tuple (the config is frozen)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"parameter '{param.name}' must be a list of strings, got {value!r}")
        return tuple(value)
    # bool is an int in Python; YAML 1 for a float parameter is what rclpy rejects too.
    if type(value) is not kind:
        raise ValueError(f"parameter '{param.name}' must be {kind.__name__}, got "
                         f"{type(value).__name__} {value!r}")
    if param.range is not None and not param.range[0] <= value <= param.range[1]:
        raise ValueError(f"parameter '{param.name}' = {value} is outside [{param.range[0]}, "
                         f"{param.range[1]}]")
    if param.choices is not None and value not in param.choices:
        raise ValueError(f"parameter '{param.name}' = '{value}' is not one of "
                         f"{', '.join(param.choices)}")
    return value


def load_params_file(path: str | Path, require_section: bool = False) -> dict[str, Any]:
    """The `ros__parameters` a ROS 2 params YAML gives this node, keys matched as rcl does
    without namespace (`/**`, `/**/<name>`, `<name>`, `/<name>`; later ones override).
    require_section: a file with no section for the node (e.g. flat `name: value` lines) would
    set nothing; that is an error, as in the node, not a run on defaults."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a ROS 2 parameter file (top level must be a mapping)")
    wanted = {"/**", f"/**/{NODE_NAME}", NODE_NAME, f"/{NODE_NAME}"}
    if require_section and document and not wanted & set(document):
        raise ValueError(f"{path} has no section for {NODE_NAME} (top-level keys: "
                         f"{', '.join(map(str, list(document)[:4]))}); put the parameters under "
                         f"'{NODE_NAME}:' or '/**:', then 'ros__parameters:'")
    values: dict[str, Any] = {}
    for key, section in document.items():
        if key in wanted and isinstance(section, dict):
            values.update(_flattened(section.get("ros__parameters") or {}))
    return values


def _flattened(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as rcl reads them: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flattened(value, f"{name}."))
        else:
            flat[name] = value
    return flat
