"""Entry point of `lingbot_depth_node` (console script and scripts/lingbot_depth_node).

Stop signals are handled first (ros/node_process.py), so that a Ctrl-C while the slow
imports run stops the process as cleanly as one later. Process-wide malloc settings come
next: importing rclpy loads libraries whose threads create their own malloc arenas, and
once an arena exists the node's threads may be handed it even with the arena limit set
(core/allocator.py explains why the node wants one).
"""

from __future__ import annotations


def main(args: list[str] | None = None) -> int:
    from .node_process import StopRequested, install_stop_signals

    install_stop_signals()
    try:
        from ..core.allocator import tune_for_frame_buffers

        tune_for_frame_buffers(single_arena=True)
        from .node import main as node_main  # imports rclpy
    except StopRequested:
        return 0
    return node_main(args)
