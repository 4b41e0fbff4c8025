"""Publishing serialized messages from a reused buffer, without rclpy's extra copy.

rclpy's `Publisher.publish(bytes)` converts the bytes to a std::string first: one more copy
and one more allocation of the whole message per call (a 640x480 cloud is 4.9 MB). Here the
message parts (core.serialized) are joined into a buffer kept per publisher, and that buffer
is handed to `rcl_publish_serialized_message` directly, so the DDS writer's own copy is the
only one. rcl is the library rclpy itself calls, found in this process; the publisher stays
locked against destruction for the call as rclpy does. Where rcl or the publisher's handle
cannot be reached (another rclpy), every call goes through `Publisher.publish(bytes)`, and
the reason is logged once.
"""

from __future__ import annotations

import ctypes
import logging

from ..core.native import loaded_libraries

log = logging.getLogger(__name__)

_RCL_RET_OK = 0


class _Allocator(ctypes.Structure):
    """rcutils_allocator_t (unused when publishing; zeroed)."""

    _fields_ = [("allocate", ctypes.c_void_p), ("deallocate", ctypes.c_void_p),
                ("reallocate", ctypes.c_void_p), ("zero_allocate", ctypes.c_void_p),
                ("state", ctypes.c_void_p)]


class _SerializedMessage(ctypes.Structure):
    """rcl_serialized_message_t, i.e. rcutils_uint8_array_t."""

    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_length", ctypes.c_size_t),
                ("buffer_capacity", ctypes.c_size_t), ("allocator", _Allocator)]


class _ErrorString(ctypes.Structure):
    """rcutils_error_string_t."""

    _fields_ = [("str", ctypes.c_char * 1024)]


def _loaded_library(stem: str) -> str:
    """`stem`.so as rclpy loaded it into this process, else the bare name for the loader."""
    return next((p for p in loaded_libraries() if p.endswith("/" + stem + ".so")), stem + ".so")


def _load_rcl():
    """(rcl_publish_serialized_message, rcutils_get_error_string, rcutils_reset_error), or a
    str saying why they are not available."""
    try:
        rcl = ctypes.CDLL(_loaded_library("librcl"))
        rcutils = ctypes.CDLL(_loaded_library("librcutils"))
        publish = rcl.rcl_publish_serialized_message
        get_error, reset_error = rcutils.rcutils_get_error_string, rcutils.rcutils_reset_error
    except (OSError, AttributeError) as exc:
        return f"rcl is not reachable from ctypes ({exc})"
    publish.argtypes = (ctypes.c_void_p, ctypes.POINTER(_SerializedMessage), ctypes.c_void_p)
    publish.restype = ctypes.c_int
    get_error.argtypes, get_error.restype = (), _ErrorString
    reset_error.argtypes, reset_error.restype = (), None
    return publish, get_error, reset_error


_RCL = None


def _rcl():
    global _RCL
    if _RCL is None:
        _RCL = _load_rcl()
    return _RCL


class SerializedPublisher:
    """Publishes serialized messages, given as a list of buffers, on one rclpy publisher.

    Not thread-safe: one thread publishes on it (the node's outputs thread)."""

    def __init__(self, publisher) -> None:
        self.publisher = publisher
        self._buffer = bytearray()
        self._message = _SerializedMessage()
        rcl = _rcl()
        handle_pointer = getattr(getattr(publisher, "handle", None), "pointer", None)
        if isinstance(rcl, str) or not isinstance(handle_pointer, int):
            self.direct = False
            self.reason = rcl if isinstance(rcl, str) else "the rclpy publisher has no rcl pointer"
            log.info("publishing %s through rclpy: %s", publisher.topic_name, self.reason)
        else:
            self.direct, self.reason = True, ""
            self._publish, self._get_error, self._reset_error = rcl

    @property
    def topic_name(self) -> str:
        return self.publisher.topic_name

    def get_subscription_count(self) -> int:
        return self.publisher.get_subscription_count()

    def publish(self, parts: list) -> None:
        """Publish the message made of `parts` joined in order (core.serialized *_parts)."""
        if not self.direct:
            self.publisher.publish(b"".join(parts))
            return
        size = sum(memoryview(part).nbytes for part in parts)
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)
        offset = 0
        for part in parts:
            part = memoryview(part).cast("B")
            view[offset:offset + part.nbytes] = part
            offset += part.nbytes
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._buffer))
        message = self._message
        message.buffer, message.buffer_length, message.buffer_capacity = address, size, len(self._buffer)
        with self.publisher.handle:  # keeps the rcl publisher alive for the call, as rclpy does
            ret = self._publish(self.publisher.handle.pointer, ctypes.byref(message), None)
        if ret != _RCL_RET_OK:
            error = self._get_error().str.decode(errors="replace")
            self._reset_error()
            raise RuntimeError(f"failed to publish on {self.publisher.topic_name}: {error} (rcl {ret})")
