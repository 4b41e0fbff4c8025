"""Find the package's data files (config/, launch/, msg/, examples/) in every install layout:
a source checkout, a colcon install (share/ of an ament prefix), or a pip install (data
files under this Python's prefix, see setup.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def data_roots() -> list[Path]:
    """Candidate roots, most specific first."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    return [SOURCE_ROOT] + [Path(p) / "share" / "lingbot_depth_ros" for p in prefixes]


def data_path(relative: str) -> Path:
    """The first existing `relative` under data_roots(); the source-checkout path otherwise
    (so an error message names a sensible place)."""
    for root in data_roots():
        candidate = root / relative
        if candidate.exists():
            return candidate
    return SOURCE_ROOT / relative
