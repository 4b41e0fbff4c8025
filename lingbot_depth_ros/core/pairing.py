"""Pair colour, depth and camera info by header stamp: one policy for the node and bag tools
(stamps within `slop`, every image paired or dropped with one reason; the policy in full:
docs/internals.md). What happens to a pair while the engine is busy: core/runner.py."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Pair:
    color: Any
    depth: Any
    info: Any | None
    color_stamp_ns: int
    depth_stamp_ns: int
    #: monotonic ns when the pair was formed (for latency)
    paired_at_ns: int = 0


@dataclass
class DropCounter:
    """Counts frames that were not processed, by reason; thread-safe."""

    counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.counts[reason] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


class StampPairer:
    """Approximate-time pairing of colour and depth with a bounded queue per stream. Not
    thread-safe by itself (the node calls it under its own lock)."""

    def __init__(self, slop_s: float = 0.02, queue_size: int = 10,
                 drops: DropCounter | None = None,
                 clock_ns: Callable[[], int] | None = None) -> None:
        if slop_s < 0:
            raise ValueError(f"slop must be >= 0 s, got {slop_s}")
        self.slop_ns = int(round(slop_s * 1e9))
        self.queue_size = max(1, int(queue_size))
        self.drops = drops if drops is not None else DropCounter()
        self._clock_ns = clock_ns
        #: waiting images: (stamp ns, message, arrival ns by clock_ns or 0)
        self._colors: list[tuple[int, Any, int]] = []
        self._depths: list[tuple[int, Any, int]] = []
        self._info: Any | None = None
        #: recent (stamp, info) with stamps, to give a pair the info of its own instant
        self._infos: list[tuple[int, Any]] = []
        self._last_pair_stamp: int | None = None
        #: newest stamp seen per stream (colour, depth): a time jump is one stream going back
        #: on itself; one stream lagging behind the other (a transport holding it back for a
        #: repair) is not
        self._newest_stamp: dict[bool, int] = {}

    # -- inputs ---------------------------------------------------------------------------
    def add_info(self, info: Any, stamp_ns: int | None = None) -> None:
        """Remember camera info; with its stamp, a pair gets the info nearest its own stamp."""
        self._info = info
        if stamp_ns is not None:
            self._infos.append((int(stamp_ns), info))
            del self._infos[:-self.queue_size]

    @property
    def info(self) -> Any | None:
        return self._info

    def add_color(self, stamp_ns: int, msg: Any) -> Pair | None:
        return self._add(self._colors, self._depths, stamp_ns, msg, is_color=True)

    def add_depth(self, stamp_ns: int, msg: Any) -> Pair | None:
        return self._add(self._depths, self._colors, stamp_ns, msg, is_color=False)

    @property
    def pending(self) -> int:
        """Images waiting for a partner (neither paired nor dropped yet)."""
        return len(self._colors) + len(self._depths)

    def expire(self, max_wait_ns: int) -> int:
        """Drop as "unpaired" every image that has waited more than `max_wait_ns` (by
        clock_ns) for a partner; returns how many. Needs the pairer's clock_ns."""
        if self._clock_ns is None:
            raise ValueError("expire needs a StampPairer built with clock_ns")
        oldest = self._clock_ns() - int(max_wait_ns)
        expired = 0
        for queue in (self._colors, self._depths):
            kept = [e for e in queue if e[2] >= oldest]
            expired += len(queue) - len(kept)
            queue[:] = kept
        if expired:
            self.drops.add("unpaired", expired)
        return expired

    def flush(self) -> None:
        """Count everything still queued as unpaired (end of a bag, shutdown)."""
        n = len(self._colors) + len(self._depths)
        if n:
            self.drops.add("unpaired", n)
        self._colors.clear()
        self._depths.clear()

    # -- internals ------------------------------------------------------------------------
    def _add(self, own: list, other: list, stamp_ns: int, msg: Any, is_color: bool) -> Pair | None:
        stamp_ns = int(stamp_ns)
        newest = self._newest_stamp.get(is_color)
        if newest is not None and stamp_ns < newest - max(self.slop_ns, 10**9):
            # More than a second (or the slop) back on its own stream: a bag loop or a clock reset.
            self.drops.add("time_jump", len(self._colors) + len(self._depths))
            self._colors.clear()
            self._depths.clear()
            self._last_pair_stamp = None
            self._newest_stamp.clear()
        self._newest_stamp[is_color] = max(stamp_ns, self._newest_stamp.get(is_color, stamp_ns))
        if self._last_pair_stamp is not None and stamp_ns <= self._last_pair_stamp - self.slop_ns:
            self.drops.add("late")  # arrives after a newer pair was already emitted
            return None
        # the nearest partner (the oldest of equally near ones), if within slop
        best = min(((abs(s - stamp_ns), i) for i, (s, _, _) in enumerate(other)), default=None)
        if best is None or best[0] > self.slop_ns:
            own.append((stamp_ns, msg, self._clock_ns() if self._clock_ns else 0))
            if len(own) > self.queue_size:
                own.pop(0)
                self.drops.add("unpaired")
            return None
        other_stamp, other_msg, _ = other.pop(best[1])
        pair_stamp = max(stamp_ns, other_stamp)
        # Anything older than this pair can no longer be matched by a newer partner.
        for queue in (own, other):
            stale = [e for e in queue if e[0] < pair_stamp - self.slop_ns]
            if stale:
                self.drops.add("unpaired", len(stale))
                queue[:] = [e for e in queue if e[0] >= pair_stamp - self.slop_ns]
        self._last_pair_stamp = pair_stamp
        color, depth = (msg, other_msg) if is_color else (other_msg, msg)
        cs, ds = (stamp_ns, other_stamp) if is_color else (other_stamp, stamp_ns)
        now = self._clock_ns() if self._clock_ns else 0
        return Pair(color=color, depth=depth, info=self._info_for(cs), color_stamp_ns=cs,
                    depth_stamp_ns=ds, paired_at_ns=now)

    def _info_for(self, stamp_ns: int) -> Any | None:
        """The stamped info within slop of `stamp_ns` nearest to it, else the newest info."""
        best = min(self._infos, key=lambda e: abs(e[0] - stamp_ns), default=None)
        if best is not None and abs(best[0] - stamp_ns) <= self.slop_ns:
            return best[1]
        return self._info
