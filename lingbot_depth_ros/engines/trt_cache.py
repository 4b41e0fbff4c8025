"""What a TensorRT plan was built from, recorded in a JSON sidecar next to the ``.engine``, so
a stale cached plan is rebuilt and a foreign one refused clearly (docs/internals.md). Pure
Python (plus ``onnx``): no TensorRT or GPU needed here."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelFileError

PRECISIONS = ("fp16", "bf16", "fp32")

#: ONNX metadata props written by model.export (lingbot.<name>)
_METADATA_FIELDS = ("height", "width", "rows", "cols", "mode", "checkpoint_sha256")
#: written only by a batched export (--max-batch); without it a graph takes one frame
MAX_BATCH_FIELD = "max_batch"
#: key fields a sidecar may lack: it was written before they existed, for what they default to
_KEY_DEFAULTS = {MAX_BATCH_FIELD: 1}


@dataclass(frozen=True)
class OnnxModelInfo:
    """The facts about an exported graph that decide which plan it needs."""

    path: Path
    sha256: str
    checkpoint_sha256: str
    height: int
    width: int
    rows: int
    cols: int
    mode: str
    max_batch: int = 1  # > 1: a dynamic batch axis, built with a profile over 1..max_batch


@dataclass(frozen=True)
class RuntimeIdentity:
    """The TensorRT build and GPU a plan is tied to."""

    tensorrt_version: str
    gpu_name: str


@dataclass(frozen=True)
class PlanKey:
    """Everything a serialized plan depends on; any difference means a rebuild."""

    onnx_sha256: str
    checkpoint_sha256: str
    height: int
    width: int
    rows: int
    cols: int
    mode: str
    precision: str
    tensorrt_version: str
    gpu_name: str
    max_batch: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "sidecar") -> PlanKey:
        data = {**_KEY_DEFAULTS, **data}
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ModelFileError(f"{source} lacks {', '.join(missing)}")
        values = {}
        for f in dataclasses.fields(cls):
            raw = data[f.name]
            try:  # field types are strings here (postponed annotations)
                values[f.name] = int(raw) if f.type == "int" else str(raw)
            except (TypeError, ValueError):
                raise ModelFileError(f"{source}: {f.name}={raw!r} is not a {f.type}") from None
        return cls(**values)

    def differences(self, other: PlanKey) -> list[str]:
        """'field: ours != theirs' for every field that differs (empty when equal)."""
        out = []
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                out.append(f"{f.name}: {theirs!r} (built) != {mine!r} (wanted)")
        return out


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_onnx_info(path: str | Path) -> OnnxModelInfo:
    """Hash an exported graph and read its ``lingbot.*`` metadata; ModelFileError when it is
    missing, not ONNX, or not from our exporter (nothing to key a plan on)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"ONNX file {path} does not exist")
    try:
        # The weights are not needed for the metadata; external data stays on disk.
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends, not one type
        raise ModelFileError(f"{path} is not a readable ONNX model: {exc}") from exc
    props = {p.key: p.value for p in model.metadata_props if p.key.startswith("lingbot.")}
    missing = [f"lingbot.{n}" for n in _METADATA_FIELDS if f"lingbot.{n}" not in props]
    if missing:
        raise ModelFileError(
            f"{path} lacks metadata {', '.join(missing)}: export it with "
            "`lingbot-depth export-onnx` so its input size and token grid are recorded")
    props.setdefault(f"lingbot.{MAX_BATCH_FIELD}", "1")
    try:
        ints = {n: int(props[f"lingbot.{n}"])
                for n in ("height", "width", "rows", "cols", MAX_BATCH_FIELD)}
    except ValueError as exc:
        raise ModelFileError(f"{path} has non-integer size metadata: {exc}") from None
    if ints[MAX_BATCH_FIELD] < 1:
        raise ModelFileError(f"{path}: lingbot.{MAX_BATCH_FIELD} is {ints[MAX_BATCH_FIELD]}, "
                             "not positive")
    return OnnxModelInfo(path=path, sha256=file_sha256(path),
                         checkpoint_sha256=props["lingbot.checkpoint_sha256"],
                         mode=props["lingbot.mode"], **ints)


def plan_key(info: OnnxModelInfo, precision: str, runtime: RuntimeIdentity) -> PlanKey:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    graph = {k: v for k, v in dataclasses.asdict(info).items() if k not in ("path", "sha256")}
    return PlanKey(onnx_sha256=info.sha256, precision=precision, **graph, **dataclasses.asdict(runtime))


def sidecar_path(plan_path: str | Path) -> Path:
    """``x.engine`` -> ``x.engine.json``."""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.name + ".json")


def write_sidecar(plan_path: str | Path, key: PlanKey, **extra) -> Path:
    """Write the sidecar atomically (a half-written one would look like a stale key)."""
    path = sidecar_path(plan_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**key.to_dict(), **extra}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_sidecar(plan_path: str | Path) -> PlanKey | None:
    """The key a plan was built with; None when it has no sidecar."""
    path = sidecar_path(plan_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"engine sidecar {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"engine sidecar {path} does not hold a JSON object")
    return PlanKey.from_dict(data, source=f"engine sidecar {path}")


def stale_reasons(plan_path: str | Path, wanted: PlanKey) -> list[str]:
    """Why the plan at `plan_path` cannot serve `wanted` (empty: reuse it)."""
    plan_path = Path(plan_path)
    if not plan_path.is_file():
        return [f"no engine at {plan_path}"]
    try:
        built = read_sidecar(plan_path)
    except ModelFileError as exc:
        return [str(exc)]
    if built is None:
        return [f"{plan_path} has no sidecar {sidecar_path(plan_path).name}"]
    return wanted.differences(built)


def check_given_plan(plan_path: str | Path, runtime: RuntimeIdentity) -> PlanKey | None:
    """Vet a plan named by the user: its key, or None without a sidecar; ModelFileError when
    it is missing or another TensorRT version or GPU built it."""
    plan_path = Path(plan_path)
    if not plan_path.is_file():
        raise ModelFileError(f"TensorRT engine {plan_path} does not exist")
    built = read_sidecar(plan_path)
    if built is None:
        return None
    problems = []
    if built.tensorrt_version != runtime.tensorrt_version:
        problems.append(f"TensorRT {built.tensorrt_version} (this machine has "
                        f"{runtime.tensorrt_version})")
    if built.gpu_name != runtime.gpu_name:
        problems.append(f"GPU {built.gpu_name!r} (this machine has {runtime.gpu_name!r})")
    if problems:
        raise ModelFileError(
            f"TensorRT engine {plan_path} was built for {' and '.join(problems)}; rebuild it "
            "here with `lingbot-depth build-engine --onnx MODEL.onnx --out "
            f"{plan_path.name}` or pass the ONNX file so it is rebuilt automatically")
    return built


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lingbot_depth" / "tensorrt"


def cached_plan_path(cache_dir: str | Path, info: OnnxModelInfo, precision: str) -> Path:
    """One cache slot per graph name, input size, max batch and precision (the rest of the key
    is in the sidecar, so an upgrade rebuilds in place)."""
    stem = info.path.stem
    batch = f"_b{info.max_batch}" if info.max_batch > 1 else ""
    return Path(cache_dir) / f"{stem}_{info.width}x{info.height}{batch}_{precision}.engine"
