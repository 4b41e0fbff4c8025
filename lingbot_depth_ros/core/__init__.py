"""ROS-free core: frames, image codecs, depth validation, point clouds, metrics."""
