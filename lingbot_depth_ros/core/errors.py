"""Specific exceptions, so callers can count a drop by its reason instead of crashing."""

import errno


class LingbotDepthError(Exception):
    """Base class of every error this package raises on purpose."""

    #: short machine-readable reason used as a drop counter key (diagnostics, bag summaries)
    reason = "error"


class EncodingError(LingbotDepthError, ValueError):
    """An image encoding is unknown or not allowed where it was used."""

    reason = "bad_encoding"


class BufferSizeError(LingbotDepthError, ValueError):
    """An image buffer is shorter than its height, step and encoding promise."""

    reason = "truncated_buffer"


class ShapeMismatchError(LingbotDepthError, ValueError):
    """Colour, depth and intrinsics do not describe the same image."""

    reason = "size_mismatch"


class UnregisteredError(LingbotDepthError, ValueError):
    """Colour and depth come from different optical frames (depth not registered to colour)."""

    reason = "unregistered"


class InvalidDepthError(LingbotDepthError, ValueError):
    """The depth image holds no usable measurement at all."""

    reason = "all_invalid_depth"


class IntrinsicsError(LingbotDepthError, ValueError):
    """The camera matrix is missing, singular or not finite."""

    reason = "bad_intrinsics"


class ModelFileError(LingbotDepthError, RuntimeError):
    """A checkpoint, ONNX file or TensorRT engine is missing, corrupt or does not match."""

    reason = "model_file"


class EngineUnavailableError(LingbotDepthError, RuntimeError):
    """An engine's runtime (onnxruntime, tensorrt, CUDA) cannot be used on this machine."""

    reason = "engine_unavailable"


class EngineOptionError(LingbotDepthError, ValueError):
    """An engine was given an option it does not take (a typo, or a file for another engine)."""

    reason = "bad_engine_option"


class EngineFailedError(LingbotDepthError, ValueError):
    """The configured engine cannot run and `fallback: none` forbids replacing it."""

    reason = "engine_failed"


def one_line_reason(exc: BaseException) -> str:
    """An error's text on one line (a full disk in plain words; parser messages such as
    YAML's span several lines)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return " ".join(str(exc).split()) or type(exc).__name__
