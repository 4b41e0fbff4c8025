"""A tqdm progress bar in frames, with frames/s and ETA; silent when disabled or not a TTY."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int | None, enabled: bool = True, unit: str = "frame",
                 desc: str = "completing") -> None:
        self._bar = None
        if enabled:
            self._bar = tqdm(total=total or None, unit=unit, desc=desc, dynamic_ncols=True,
                             file=sys.stderr, disable=None,  # None: off when not a terminal
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                        "[{elapsed}<{remaining}, {rate_fmt}]")
        self._n = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, done: int) -> None:
        """Set the number of finished frames (called from one thread)."""
        if self._bar is not None and done > self._n:
            self._bar.update(done - self._n)
        self._n = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
