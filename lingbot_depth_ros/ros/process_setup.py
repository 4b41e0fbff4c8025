"""What a process does before it hosts the node (`lingbot_depth_node`'s entry point, and the
textbook benchmark's lingbot side), in one place."""

from __future__ import annotations

import sys
from typing import MutableMapping

from ..core.allocator import tune_for_frame_buffers
from .dds_profile import configure_fastdds

#: The outputs thread needs the GIL back after each numpy or DDS call; the engine thread holds
#: it between its own calls for up to the switch interval (5 ms by default), which made the
#: outputs stages wait far longer than they compute. 0.5 ms keeps that wait short.
GIL_SWITCH_S = 0.0005


def prepare_node_process(environ: MutableMapping[str, str]) -> str:
    """malloc settings, the GIL switch interval and the node's Fast DDS settings; call before
    rclpy starts. Returns the DDS line for the log."""
    tune_for_frame_buffers(single_arena=True)
    sys.setswitchinterval(GIL_SWITCH_S)
    return configure_fastdds(environ)
