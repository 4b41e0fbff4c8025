"""Offline rosbag2 tools (no ROS install): the node's pipeline on recorded bags
(`lingbot-depth bag ...`, commands/bag.py)."""
