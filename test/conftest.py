"""Fixtures shared by the live-node test modules (node_harness.py holds the rest)."""

import pytest


@pytest.fixture(scope="module")
def context(request):
    """An rclpy context on a DDS domain of the requesting module's own (its name picks it)."""
    from node_harness import make_context, rclpy

    ctx = make_context(request.module.__name__)
    yield ctx
    if ctx.ok():
        rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def captures():
    from node_harness import load_captures

    return load_captures()
