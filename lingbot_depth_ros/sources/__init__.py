"""Frame sources that read a camera directly instead of subscribing to a driver's topics.

`realsense` (ROS-free, pyrealsense2) captures aligned colour + depth; `realsense_ros` runs it
inside a node and publishes the raw streams under realsense-ros names.
pyrealsense2 is imported only when a source is created (extra `realsense`).
"""
