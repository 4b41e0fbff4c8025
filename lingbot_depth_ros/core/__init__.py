"""ROS-free core: frames, image codecs, depth validation, point clouds, metrics."""

from .frame import CompletionResult, RGBDFrame, SourceMask

__all__ = ["CompletionResult", "RGBDFrame", "SourceMask"]
