"""Entry point of `lingbot_depth_node`: stop signals first, then malloc settings, then rclpy
(the order matters, docs/internals.md)."""

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
