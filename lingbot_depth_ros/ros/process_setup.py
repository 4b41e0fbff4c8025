"""What a process does before it hosts the node, wherever the node runs (`lingbot_depth_node`,
the demo's in-process replay), so that the demo measures the node as it is deployed."""

from __future__ import annotations

import sys
from typing import MutableMapping

from ..core.allocator import tune_for_frame_buffers
from .dds_profile import PROFILES_FILE, configure_fastdds

#: The outputs thread needs the GIL back after each numpy or DDS call; the engine thread holds
#: it between its own calls for up to the switch interval (5 ms by default), which made the
#: outputs stages wait far longer than they compute. 0.5 ms keeps that wait short.
GIL_SWITCH_S = 0.0005


def prepare_node_process(environ: MutableMapping[str, str], profile: str = "",
                         dds: bool = True) -> str:
    """malloc settings, the GIL switch interval and (dds) the node's Fast DDS settings, with
    `profile` as the profile file unless one is set already (what the launch file gives);
    call before rclpy starts. Returns the DDS line for the log ("" without dds)."""
    tune_for_frame_buffers(single_arena=True)
    sys.setswitchinterval(GIL_SWITCH_S)
    if not dds:
        return ""
    if profile:
        environ.setdefault(PROFILES_FILE, profile)
    return configure_fastdds(environ)
