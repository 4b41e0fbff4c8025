"""Frame sources that read a camera directly instead of subscribing to a driver's topics:
`realsense` (ROS-free) and `realsense_ros` (inside a node); pyrealsense2 loads on first use."""
