"""Specific exceptions, so callers can count a drop by its reason instead of crashing."""

import errno
import sys


class LingbotDepthError(Exception):
    """Base class of every error this package raises on purpose."""

    #: short machine-readable reason used as a drop counter key (diagnostics, bag summaries)
    reason = "error"


def error_class(name: str, reason: str, base: type | None, doc: str) -> type:
    """A LingbotDepthError subclass with its drop `reason`, in the caller's module; also a
    subclass of `base` (ValueError, RuntimeError...: callers catching those still catch it)."""
    if base is None or issubclass(base, LingbotDepthError):
        bases = (base or LingbotDepthError,)
    else:
        bases = (LingbotDepthError, base)
    return type(name, bases, {"reason": reason, "__doc__": doc,
                              "__module__": sys._getframe(1).f_globals["__name__"]})


EncodingError = error_class("EncodingError", "bad_encoding", ValueError,
                            "An image encoding is unknown or not allowed where it was used.")
BufferSizeError = error_class("BufferSizeError", "truncated_buffer", ValueError,
                              "An image buffer is shorter than its height, step and encoding promise.")
ShapeMismatchError = error_class("ShapeMismatchError", "size_mismatch", ValueError,
                                 "Colour, depth and intrinsics do not describe the same image.")
UnregisteredError = error_class("UnregisteredError", "unregistered", ValueError,
                                "Colour and depth come from different optical frames (depth not registered to colour).")
InvalidDepthError = error_class("InvalidDepthError", "all_invalid_depth", ValueError,
                                "The depth image holds no usable measurement at all.")
IntrinsicsError = error_class("IntrinsicsError", "bad_intrinsics", ValueError,
                              "The camera matrix is missing, singular or not finite.")
ModelFileError = error_class("ModelFileError", "model_file", RuntimeError,
                             "A checkpoint, ONNX file or TensorRT engine is missing, corrupt or does not match.")
EngineUnavailableError = error_class(
    "EngineUnavailableError", "engine_unavailable", RuntimeError,
    "An engine's runtime (onnxruntime, tensorrt, CUDA) cannot be used on this machine.")
EngineOptionError = error_class(
    "EngineOptionError", "bad_engine_option", ValueError,
    "An engine was given an option it does not take (a typo, or a file for another engine).")
EngineFailedError = error_class("EngineFailedError", "engine_failed", ValueError,
                                "The configured engine cannot run and `fallback: none` forbids replacing it.")


def one_line_reason(exc: BaseException) -> str:
    """An error's text on one line (a full disk in plain words; parser messages such as
    YAML's span several lines)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return " ".join(str(exc).split()) or type(exc).__name__
