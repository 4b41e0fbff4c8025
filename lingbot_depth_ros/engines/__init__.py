"""Completion engines behind one interface, and the factory that builds them by name."""

from .registry import create_engine

__all__ = ["create_engine"]
