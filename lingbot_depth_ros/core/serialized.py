"""The serialized (CDR) form of the node's output messages, ROS-free, for the bag tools: the
`*_parts` forms keep pixels uncopied (equal to rosbags' and rclpy's bytes, docs/internals.md)."""

from __future__ import annotations

from .cdr import CdrWriter
from .codec import ImageFields
from .outputs import CameraInfoFields, FrameOutputs
from .pointcloud import CloudFields


# -- writing -------------------------------------------------------------------------------
def _image(w: CdrWriter, stamp_ns: int, frame_id: str, fields: ImageFields) -> None:
    w.header(stamp_ns, frame_id)
    w.u32(fields.height, fields.width)
    w.string(fields.encoding)
    w.u8(fields.is_bigendian)
    w.u32(fields.step)
    w.blob(fields.data)


def _camera_info(w: CdrWriter, stamp_ns: int, frame_id: str, info: CameraInfoFields) -> None:
    w.header(stamp_ns, frame_id)
    w.u32(info.height, info.width)
    w.string(info.distortion_model)
    w.f64s(info.d, sequence=True)
    for matrix in (info.k, info.r, info.p):
        w.f64s(matrix, sequence=False)
    w.u32(info.binning_x, info.binning_y, *info.roi[:4])
    w.u8(bool(info.roi[4]))


def image_parts(stamp_ns: int, frame_id: str, fields: ImageFields) -> list:
    """A serialized Image as buffers to write in order (pixels uncopied); joined: image_cdr."""
    w = CdrWriter()
    _image(w, stamp_ns, frame_id, fields)
    return w.parts()


def image_cdr(stamp_ns: int, frame_id: str, fields: ImageFields) -> bytes:
    return b"".join(image_parts(stamp_ns, frame_id, fields))


def camera_info_cdr(stamp_ns: int, frame_id: str, info: CameraInfoFields) -> bytes:
    if len(info.k) != 9 or len(info.r) != 9 or len(info.p) != 12:
        raise ValueError("camera info needs 9 K, 9 R and 12 P values")
    w = CdrWriter()
    _camera_info(w, stamp_ns, frame_id, info)
    return w.value()


def cloud_parts(stamp_ns: int, frame_id: str, cloud: CloudFields) -> list:
    """A serialized PointCloud2 as buffers to write in order."""
    w = CdrWriter()
    w.header(stamp_ns, frame_id)
    w.u32(cloud.height, cloud.width, len(cloud.fields))
    for field in cloud.fields:
        w.string(field.name)
        w.u32(field.offset)
        w.u8(field.datatype)
        w.u32(field.count)
    w.u8(bool(cloud.is_bigendian))
    w.u32(cloud.point_step, cloud.row_step)
    w.blob(cloud.data)
    w.u8(bool(cloud.is_dense))
    return w.parts()


def completed_rgbd_parts(outputs: FrameOutputs) -> list:
    """lingbot_depth_ros/CompletedRGBD of one frame as buffers to write in order (needs the
    rgbd outputs and camera info); every part carries the frame's stamp and frame id."""
    if outputs.depth_32fc1 is None or outputs.color is None or outputs.camera_info is None:
        raise ValueError("CompletedRGBD needs the rgbd outputs and camera info")
    stamp, frame_id, s = outputs.stamp_ns, outputs.frame_id, outputs.summary
    w = CdrWriter()
    w.header(stamp, frame_id)
    for image in (outputs.color, outputs.depth_32fc1, outputs.source_mask):
        _image(w, stamp, frame_id, image)
    _camera_info(w, stamp, frame_id, outputs.camera_info)
    w.f32(s.measured_fraction, s.filled_fraction, s.latency_ms, s.inference_ms)
    for text in (s.engine, s.model, s.mode):
        w.string(text)
    return w.parts()
