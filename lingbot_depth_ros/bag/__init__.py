"""Offline rosbag2 tools (no ROS install): the node's pipeline on recorded bags.

reader/recover (open sqlite3 and MCAP bags, Humble/Jazzy/Kilted types, truncated MCAP),
topics (which topics are colour, depth, camera info), decode (Image, CompressedImage,
compressedDepth), frames (the node's pairing and input checks), writer/mcap_writer (output
bags), messages/output_topics (the node's outputs as bag messages), and the commands:
process, evaluate, viz, demo (`lingbot-depth bag ...`, see commands/bag.py).
"""
