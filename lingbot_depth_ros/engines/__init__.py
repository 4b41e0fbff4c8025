"""Completion engines behind one interface, and the factory that builds them by name."""

from .base import Engine, merge_prediction, stage
from .registry import ENGINE_NAMES, create_engine

__all__ = ["ENGINE_NAMES", "Engine", "create_engine", "merge_prediction", "stage"]
