"""Specific exceptions, so callers can count a drop by its reason instead of crashing."""

import errno


class LingbotDepthError(Exception):
    """Base class of every error this package raises on purpose."""

    #: short machine-readable reason used as a drop counter key (diagnostics, bag summaries)
    reason = "error"


def _error(name: str, base: type, reason: str, doc: str) -> type:
    """A LingbotDepthError subclass that is also `base` (callers catching ValueError or
    RuntimeError still catch it); one table row per class."""
    return type(name, (LingbotDepthError, base), {"reason": reason, "__doc__": doc, "__module__": __name__})


EncodingError = _error("EncodingError", ValueError, "bad_encoding",
                       "An image encoding is unknown or not allowed where it was used.")
BufferSizeError = _error("BufferSizeError", ValueError, "truncated_buffer",
                         "An image buffer is shorter than its height, step and encoding promise.")
ShapeMismatchError = _error("ShapeMismatchError", ValueError, "size_mismatch",
                            "Colour, depth and intrinsics do not describe the same image.")
UnregisteredError = _error("UnregisteredError", ValueError, "unregistered",
                           "Colour and depth come from different optical frames (depth not registered to colour).")
InvalidDepthError = _error("InvalidDepthError", ValueError, "all_invalid_depth",
                           "The depth image holds no usable measurement at all.")
IntrinsicsError = _error("IntrinsicsError", ValueError, "bad_intrinsics",
                         "The camera matrix is missing, singular or not finite.")
ModelFileError = _error("ModelFileError", RuntimeError, "model_file",
                        "A checkpoint, ONNX file or TensorRT engine is missing, corrupt or does not match.")
EngineUnavailableError = _error("EngineUnavailableError", RuntimeError, "engine_unavailable",
                                "An engine's runtime (onnxruntime, tensorrt, CUDA) cannot be used on this machine.")
EngineOptionError = _error("EngineOptionError", ValueError, "bad_engine_option",
                           "An engine was given an option it does not take (a typo, or a file for another engine).")
EngineFailedError = _error("EngineFailedError", ValueError, "engine_failed",
                           "The configured engine cannot run and `fallback: none` forbids replacing it.")


def one_line_reason(exc: BaseException) -> str:
    """An error's text on one line (a full disk in plain words; parser messages such as
    YAML's span several lines)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return " ".join(str(exc).split()) or type(exc).__name__
