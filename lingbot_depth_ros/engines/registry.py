"""The one way to build an engine: name -> class, options checked against the constructor.

An engine's options are its constructor's keyword parameters. Names are checked before
anything loads (with a "did you mean" hint), values converted to the type of the parameter's
default, and a constructor's ValueError becomes an EngineOptionError naming the engine."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import math
import re
from pathlib import Path
from typing import Any

from ..core.pipeline import CLASSICAL_ENGINES
from ..core.errors import EngineOptionError, EngineUnavailableError, LingbotDepthError
from .auto import create_auto_engine
from .base import Engine

log = logging.getLogger(__name__)

#: name -> "module:Class" (relative to this package)
_ENGINES = {
    "guided": "classical:GuidedEngine",
    "nearest": "classical:NearestEngine",
    "telea": "classical:TeleaEngine",
    "torch": "torch_engine:TorchEngine",
    "onnxruntime": "onnx_engine:OnnxRuntimeEngine",
    "tensorrt": "tensorrt_engine:TensorRTEngine",
}
ENGINE_NAMES = (*_ENGINES, "auto")
#: the neural engines' model files; a classical engine ignores them (a config names them
#: once for whichever engine it selects)
MODEL_FILE_OPTIONS = ("checkpoint", "onnx", "engine_file")
#: old option name -> new one; the old names are accepted, with a warning, for one release
#: (public names follow the ROS spelling: color, organized)
RENAMED_OPTIONS = {"colour_level": "color_level"}


def engine_class(name: str) -> type[Engine]:
    try:
        module_name, class_name = _ENGINES[name].split(":")
    except KeyError:
        raise EngineOptionError(f"unknown engine '{name}'{_did_you_mean(name, ENGINE_NAMES)} "
                                f"(choose from {', '.join(ENGINE_NAMES)})") from None
    try:
        module = importlib.import_module(f".{module_name}", __package__)
    except ImportError as exc:
        raise EngineUnavailableError(f"engine '{name}' cannot be imported: {exc}") from exc
    return getattr(module, class_name)


def engine_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The options engine `name` takes: its constructor's keyword parameters."""
    signature = inspect.signature(engine_class(name).__init__)
    return {key: p for key, p in signature.parameters.items()
            if key != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _convert(name: str, key: str, value: Any, default: Any) -> Any:
    """`value` as the type of the parameter's default (text from a command line, YAML ints
    for floats); values of other parameters pass on to the constructor's own checks."""
    def bad(what: str) -> EngineOptionError:
        return EngineOptionError(f"engine '{name}' option {key}={value!r}: must be {what}")

    if key == "device":
        return canonical_device(value)
    if isinstance(default, bool):
        text = str(value).strip().lower()
        if value is True or text in ("true", "1", "yes", "on"):
            return True
        if value is False or text in ("false", "0", "no", "off"):
            return False
        raise bad("true or false")
    if not isinstance(default, (int, float)):
        return value
    if isinstance(value, bool):
        raise bad("a number")
    if isinstance(default, int):
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    try:
        converted = float(value)
    except (TypeError, ValueError):
        raise bad("a number") from None
    if not math.isfinite(converted):
        raise bad("a finite number")
    return converted


def canonical_device(device: Any) -> str:
    """The one reading of a `device` option: 'auto', 'cpu' or 'cuda:N' (from N, 'cuda',
    'cuda:N', 'auto', 'cpu'); whether that device exists is the engine's question."""
    text = str(device).strip().lower()
    if text in ("auto", "cpu"):
        return text
    if text == "cuda":
        return "cuda:0"
    index = text[5:] if text.startswith("cuda:") else text
    if index.isdigit() and not isinstance(device, bool):
        return f"cuda:{int(index)}"
    raise EngineOptionError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or N, got {device!r}")


def renamed_options(options: dict | None) -> dict:
    """`options` with old (renamed) option names replaced by the new ones, warning once per
    use; both names at once is an error, since it is unclear which value is meant."""
    options = dict(options or {})
    for old in [key for key in options if key in RENAMED_OPTIONS]:
        new = RENAMED_OPTIONS[old]
        if new in options:
            raise EngineOptionError(f"engine option {old} is the old name of {new}: give only {new}")
        log.warning("engine option %s is deprecated and will be removed in the next release: "
                    "use %s", old, new)
        options[new] = options.pop(old)
    return options


def engine_options(name: str, options: dict, offered: dict | None = None) -> dict:
    """The checked, converted constructor keywords for engine `name`: every one of `options`
    must be taken; `offered` (a node config's shared options) go only to an engine taking them."""
    params = engine_parameters(name)
    options, offered = renamed_options(options), renamed_options(offered)
    if name in CLASSICAL_ENGINES:
        options = {k: v for k, v in options.items() if k not in MODEL_FILE_OPTIONS}
    unknown = [key for key in options if key not in params]
    if unknown:
        hints = "".join(_did_you_mean(key, params) for key in unknown[:1])
        raise EngineOptionError(
            f"engine '{name}' does not take {', '.join(sorted(unknown))}{hints} "
            f"(it takes: {', '.join(params)})")
    chosen = {k: v for k, v in offered.items() if k in params}
    chosen.update(options)
    return {key: _convert(name, key, value, params[key].default)
            for key, value in chosen.items() if value is not None}


def create_engine(name: str = "guided", offered: dict | None = None, **options) -> Engine:
    """Create engine `name` with `options` (see engine_options for `offered`); ``auto``
    picks the best one that runs here (docs/engines.md)."""
    if name == "auto":
        options = renamed_options(options)
        _check_auto_options(options)
        chosen = {**renamed_options(offered), **options}
        if chosen.get("device") is not None:
            chosen["device"] = canonical_device(chosen["device"])
        # each candidate takes those of the options it accepts
        return create_auto_engine(lambda candidate, opts: create_engine(candidate, offered=opts), chosen)
    return _construct(name, engine_options(name, options, offered))


def _check_auto_options(options: dict) -> None:
    """An option given to auto must be one some candidate engine takes (a typo is an error
    here too); engines whose runtime is missing cannot be asked and do not count."""
    taken = {"providers", *MODEL_FILE_OPTIONS}
    for name in _ENGINES:
        try:
            taken.update(engine_parameters(name))
        except EngineUnavailableError:
            continue
    unknown = [key for key in options if key not in taken]
    if unknown:
        raise EngineOptionError(
            f"engine 'auto' does not take {', '.join(sorted(unknown))}"
            f"{_did_you_mean(unknown[0], taken)} (no engine takes it)")


def _construct(name: str, kwargs: dict) -> Engine:
    try:
        return engine_class(name)(**kwargs)
    except LingbotDepthError:
        raise
    except (ValueError, TypeError) as exc:  # a value the constructor refused
        raise EngineOptionError(f"engine '{name}': {exc}") from exc


def load_engine(config, name: str | None = None, **model_files) -> tuple[Engine, str]:
    """(engine, model id) for a node configuration, `model_files` overriding the config's;
    raises what create_engine raises (the caller falls back or stops)."""
    name = name or config.engine
    offered = {**config.engine_options(), **{k: v for k, v in model_files.items() if v}}
    engine = create_engine(name, offered=offered)
    return engine, model_id(engine, offered)


def model_id(engine: Engine, options: dict) -> str:
    """What the outputs name the model by: the engine's own id, else its model file's name."""
    if engine.name in CLASSICAL_ENGINES:
        return ""
    path = {"torch": options.get("checkpoint"), "onnxruntime": options.get("onnx"),
            "tensorrt": options.get("engine_file") or options.get("onnx")}.get(engine.name)
    return getattr(engine, "model_id", "") or (Path(path).name if path else "")
