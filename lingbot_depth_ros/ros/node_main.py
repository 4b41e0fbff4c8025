"""Entry point of `lingbot_depth_node` (console script and scripts/lingbot_depth_node).

Process-wide malloc settings come first: importing rclpy loads libraries whose threads
create their own malloc arenas, and once an arena exists the node's threads may be handed
it even with the arena limit set (core/allocator.py explains why the node wants one).
"""

from __future__ import annotations


def main(args: list[str] | None = None) -> int:
    from ..core.allocator import tune_for_frame_buffers

    tune_for_frame_buffers(single_arena=True)
    from .node import main as node_main  # imports rclpy

    return node_main(args)
