"""Decode the image messages found in bags into numpy: raw Image, CompressedImage colour and
image_transport's ``compressedDepth`` (layout: docs/bags.md). ROS-free: messages are read by
their fields only."""

from __future__ import annotations

import struct

import cv2
import numpy as np

from ..core.codec import ImageFields, decode_fields, to_rgb8
from ..core.depth import DEFAULT_DEPTH_SCALE, DepthRange, depth_to_metres
from ..core.errors import EncodingError, error_class

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)

_CONFIG_HEADER = struct.Struct("<iff")
_INV_DEPTH = 0  # compressionFormat::INV_DEPTH, the only format the publisher writes


CompressedImageError = error_class("CompressedImageError", "bad_compressed_image", EncodingError,
                                   "A CompressedImage payload cannot be decoded (corrupt, truncated or unsupported).")


def is_compressed_depth(msg) -> bool:
    return "compresseddepth" in str(msg.format).lower()


# -- colour ---------------------------------------------------------------------------------
def decode_color(msg, msgtype: str) -> np.ndarray:
    """Colour Image or CompressedImage -> uint8 (H, W, 3) RGB."""
    if msgtype == IMAGE:
        fields = ImageFields.from_msg(msg)
        return to_rgb8(decode_fields(fields), fields.encoding)
    if msgtype == COMPRESSED:
        if is_compressed_depth(msg):
            raise EncodingError(f"colour topic carries a compressedDepth image ('{msg.format}')")
        bgr = _imdecode(msg.data, cv2.IMREAD_COLOR, str(msg.format))
        # image_transport writes "<enc>; jpeg compressed bgr8|rgb8": the payload's channel
        # order. cv2 hands back whatever order was stored, labelled BGR.
        if str(msg.format).replace(" ", "").lower().endswith("compressedrgb8"):
            return bgr
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    raise EncodingError(f"cannot read colour from {msgtype} (need {IMAGE} or {COMPRESSED})")


def _imdecode(data, flags: int, what: str) -> np.ndarray:
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buf.size == 0:
        raise CompressedImageError(f"compressed image ('{what}') has no data")
    image = cv2.imdecode(buf, flags)
    if image is None:
        raise CompressedImageError(
            f"compressed image ('{what}', {buf.size} bytes) is corrupt or not jpeg/png")
    return image


# -- depth ----------------------------------------------------------------------------------
def decode_depth(msg, msgtype: str, depth_scale: float = DEFAULT_DEPTH_SCALE,
                 valid_range: DepthRange = DepthRange()) -> np.ndarray:
    """Depth Image or compressedDepth CompressedImage -> float32 metres, NaN = no data."""
    if msgtype == IMAGE:
        fields = ImageFields.from_msg(msg)
        return depth_to_metres(decode_fields(fields), fields.encoding, depth_scale, valid_range)
    if msgtype == COMPRESSED:
        if not is_compressed_depth(msg):
            raise EncodingError(
                f"depth topic carries a '{msg.format}' CompressedImage; only image_transport's "
                "compressedDepth keeps depth values (jpeg/png colour compression does not)")
        encoding, raw = decode_compressed_depth(str(msg.format), msg.data)
        return depth_to_metres(raw, encoding, depth_scale, valid_range)
    raise EncodingError(f"cannot read depth from {msgtype} (need {IMAGE} or {COMPRESSED})")


def _split_depth_format(fmt: str) -> tuple[str, str]:
    """'16UC1; compressedDepth png' -> ('16UC1', 'png'); a bare 'compressedDepth' is png."""
    encoding, _, rest = fmt.partition(";")
    encoding = encoding.strip()
    words = rest.split()
    codec = words[1].lower() if len(words) > 1 else "png"
    if not words or words[0].lower() != "compresseddepth":
        raise EncodingError(f"'{fmt}' is not a compressedDepth format")
    return encoding, codec


def decode_compressed_depth(fmt: str, data) -> tuple[str, np.ndarray]:
    """compressedDepth payload -> (encoding, uint16 raw for 16UC1 | float32 metres for 32FC1)."""
    encoding, codec = _split_depth_format(fmt)
    if codec != "png":
        raise EncodingError(f"compressedDepth '{codec}' is not supported (only png): '{fmt}'")
    if encoding not in ("16UC1", "32FC1"):
        raise EncodingError(f"compressedDepth of '{encoding}' (need 16UC1 or 32FC1): '{fmt}'")
    view = memoryview(data).cast("B")
    if len(view) <= _CONFIG_HEADER.size:
        raise CompressedImageError(
            f"compressedDepth payload is {len(view)} bytes, shorter than its 12-byte header")
    kind, quant_a, quant_b = _CONFIG_HEADER.unpack_from(view, 0)
    image = _imdecode(view[_CONFIG_HEADER.size:], cv2.IMREAD_UNCHANGED, fmt)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise CompressedImageError(
            f"compressedDepth PNG must be 16-bit single channel, got {image.dtype} {image.shape}")
    if encoding == "16UC1":
        return encoding, image
    if kind != _INV_DEPTH:
        raise CompressedImageError(f"compressedDepth header format {kind} is unknown")
    q = image.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.float32(quant_a) / (q - np.float32(quant_b))
    metres[image == 0] = np.nan
    return encoding, metres


def encode_compressed_depth(depth: np.ndarray, depth_max: float = 10.0,
                            depth_quantization: float = 100.0) -> tuple[str, bytes]:
    """uint16 raw (16UC1) or float32 metres (32FC1) -> (format, data) as the publisher writes,
    with its default parameters; values beyond `depth_max` become no data."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if depth.dtype == np.uint16:
        encoding, header = "16UC1", _CONFIG_HEADER.pack(_INV_DEPTH, 0.0, 0.0)
        raw = np.where(depth > np.uint16(min(65535, depth_max * 1000.0)), 0, depth).astype(np.uint16)
    elif depth.dtype == np.float32:
        encoding = "32FC1"
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / np.float32(depth_max))
        header = _CONFIG_HEADER.pack(_INV_DEPTH, float(quant_a), float(quant_b))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = quant_a / depth + quant_b
            keep = np.isfinite(depth) & (depth > 0) & (depth < depth_max)
        raw = np.where(keep, np.clip(q, 0, 65535), 0).astype(np.uint16)
    else:
        raise EncodingError(f"compressedDepth needs uint16 or float32 depth, got {depth.dtype}")
    ok, png = cv2.imencode(".png", raw, params)
    if not ok:
        raise CompressedImageError("PNG encoding of the depth image failed")
    return f"{encoding}; compressedDepth png", header + png.tobytes()


def encode_compressed_color(rgb: np.ndarray, codec: str = "jpeg",
                            quality: int = 90) -> tuple[str, bytes]:
    """uint8 (H, W, 3) RGB -> (format, data) like image_transport's compressed publisher."""
    if codec not in ("jpeg", "png"):
        raise EncodingError(f"colour compression must be jpeg or png, got '{codec}'")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, data = cv2.imencode(f".{codec}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise CompressedImageError(f"{codec} encoding of the colour image failed")
    return f"rgb8; {codec} compressed bgr8", data.tobytes()
