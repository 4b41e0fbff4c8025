"""Fast DDS settings the node gives its own process before rclpy starts.

rmw_fastrtps forces two DataWriter/DataReader settings on every entity unless
RMW_FASTRTPS_USE_QOS_FROM_XML=1: the publish mode (from RMW_FASTRTPS_PUBLICATION_MODE) and
the history memory policy (PREALLOCATED_WITH_REALLOC). The latter keeps a pool of payload
buffers per publisher and subscription that grows, one full-size message at a time, whenever
more samples are in flight than ever before (a stalled subscriber, a busy core), and never
shrinks: the node's memory then rises in steps of one cloud (4.7 MB) minutes into a run.
config/fastdds_large_data.xml carries a default writer and reader profile with the DYNAMIC
policy (each sample's buffer is freed once the history lets it go) and asynchronous
publishing; where that file is the profile file in effect, the node lets its XML rule.
Every QoS the node sets in code (depth, reliability, durability) still applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import MutableMapping

PROFILES_FILE = "FASTDDS_DEFAULT_PROFILES_FILE"
USE_QOS_FROM_XML = "RMW_FASTRTPS_USE_QOS_FROM_XML"
PUBLICATION_MODE = "RMW_FASTRTPS_PUBLICATION_MODE"
#: the default writer profile of config/fastdds_large_data.xml; a profile file that defines
#: it sets everything rmw_fastrtps would otherwise force (memory policy and publish mode)
WRITER_PROFILE = "lingbot_dynamic_writers"


def defines_writer_profile(path: str) -> bool:
    try:
        return f'profile_name="{WRITER_PROFILE}"' in Path(path).read_text(errors="replace")
    except OSError:
        return False


def configure_fastdds(environ: MutableMapping[str, str]) -> str:
    """Set the node's Fast DDS variables in `environ` (os.environ before rclpy.init); an
    explicit setting in the environment always wins. Returns a line for the log."""
    # Large messages (clouds, CompletedRGBD) go to Fast DDS's own sending thread instead of
    # being sent as fragments inside publish(): much less publishing time (docs/node.md).
    environ.setdefault(PUBLICATION_MODE, "ASYNCHRONOUS")
    profiles = environ.get(PROFILES_FILE, "")
    if USE_QOS_FROM_XML in environ:
        return f"Fast DDS: {USE_QOS_FROM_XML}={environ[USE_QOS_FROM_XML]} as set in the environment"
    if profiles and defines_writer_profile(profiles):
        environ[USE_QOS_FROM_XML] = "1"
        return (f"Fast DDS: writer and reader settings from {profiles} (history memory DYNAMIC: "
                "buffers freed after use, no pools growing during the run)")
    return ("Fast DDS: rmw_fastrtps defaults (history memory PREALLOCATED_WITH_REALLOC: its "
            f"buffer pools grow with the busiest moment so far); {PROFILES_FILE} "
            + (f"= {profiles} has no '{WRITER_PROFILE}' profile" if profiles else "is not set"))


def use_launch_profile(environ: MutableMapping[str, str], profile: str) -> None:
    """Give a process that plays or records beside the node (the demo's player and recorder)
    the profile the launch file gives everything it starts, unless one is set. Fast DDS reads
    it at the process's first rclpy.init: call before that."""
    environ.setdefault(PROFILES_FILE, profile)
