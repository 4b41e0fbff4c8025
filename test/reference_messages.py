"""rclpy-built reference messages for the outputs the node publishes as serialized bytes
(core.serialized): a test serializes these with rclpy and compares."""

from __future__ import annotations

from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from lingbot_depth_ros.core.outputs import FrameOutputs
from lingbot_depth_ros.core.pointcloud import CloudFields
from lingbot_depth_ros.ros import messages


def cloud_msg(fields: CloudFields, header: Header) -> PointCloud2:
    msg = PointCloud2(
        header=header, height=int(fields.height), width=int(fields.width),
        fields=[PointField(name=f.name, offset=int(f.offset), datatype=int(f.datatype),
                           count=int(f.count)) for f in fields.fields],
        is_bigendian=bool(fields.is_bigendian), point_step=int(fields.point_step),
        row_step=int(fields.row_step), is_dense=bool(fields.is_dense))
    msg.data = messages.message_data(fields.data)
    return msg


def rgbd_msg(outputs: FrameOutputs, header: Header):
    """CompletedRGBD of one frame.

    Needs outputs built with OutputOptions(rgbd=True) and camera info; returns None when the
    message module is not available (pip install without colcon).
    """
    if messages.CompletedRGBD is None:
        return None
    if outputs.depth_32fc1 is None or outputs.color is None or outputs.camera_info is None:
        raise ValueError("CompletedRGBD needs the rgbd outputs and camera info")
    summary = outputs.summary
    msg = messages.CompletedRGBD(
        header=header, measured_fraction=summary.measured_fraction,
        filled_fraction=summary.filled_fraction, latency_ms=summary.latency_ms,
        inference_ms=summary.inference_ms, engine=summary.engine, model=summary.model,
        mode=summary.mode)
    msg.rgb = messages.image_msg(outputs.color, header)
    msg.depth = messages.image_msg(outputs.depth_32fc1, header)
    msg.source_mask = messages.image_msg(outputs.source_mask, header)
    msg.camera_info = messages.camera_info_msg(outputs.camera_info, header)
    return msg
