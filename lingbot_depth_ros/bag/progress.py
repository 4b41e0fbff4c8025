"""A tqdm progress bar in frames, with frames/s and ETA; silent when disabled or not a TTY."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int | None, enabled: bool = True, desc: str = "completing") -> tqdm:
    """Advance it with update(1) per finished frame; use as a context manager (closes it)."""
    return tqdm(total=total or None, unit="frame", desc=desc, dynamic_ncols=True, file=sys.stderr,
                disable=None if enabled else True,  # None: off when not a terminal
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                           "[{elapsed}<{remaining}, {rate_fmt}]")
