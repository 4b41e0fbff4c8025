"""The batching frame runner of a rig, ROS-free: one lane per camera (its own admission
queue, drops and items in flight), one completion thread that gathers ready items into one
engine call, one outputs thread (docs/rig.md).

A batch starts when an item is waiting and closes when every active camera (one that
admitted an item within the last second; at most `max_batch`) has one waiting or when the
oldest waiting item has waited `window_s`, so no item waits longer than the window for a
batch (it may still wait for the engine), and a camera that stopped delays no other. Items are taken
round-robin: one per lane in turn, starting after the lane first served last time, then a
second round while there is room; a bursting lane gets no second item before every other
waiting lane had its first, and a silent lane costs the others at most the window.

Taken items are prepared one by one (decode: a bad item is dropped alone), grouped by
`key` (the engine's input shape) and completed one call per group; a group whose call
raises is completed again item by item, so a bad frame costs only itself (complete_grouped,
which `bag process` uses too)."""

from __future__ import annotations

import queue
import threading
from collections import Counter
import time
from typing import Any, Callable, Hashable, Sequence

from .pairing import DropCounter
from .runner import BURST_BUDGET_S, Admission, hand_over, run_guarded

_POLL_S = 0.2
#: a lane that admitted nothing for this long is not waited for
ACTIVE_S = 1.0


class Lane:
    """One camera's way into the batcher: items wait with the time they were admitted;
    `cost` images are counted per dropped item (a pair is 2)."""

    def __init__(self, name: str, policy: str, drops: DropCounter | None = None,
                 cost: int = 2, clock: Callable[[], float] = time.monotonic,
                 burst_budget_s: float = BURST_BUDGET_S) -> None:
        self.name, self.cost, self._clock = name, cost, clock
        self.drops = drops if drops is not None else DropCounter()
        self.admission = Admission(policy, self.drops, cost=cost, burst_budget_s=burst_budget_s)
        self._wake: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._in_flight = 0
        #: clock time of the latest admission, None before any
        self.last_admitted: float | None = None

    def put(self, item: Any) -> bool:
        """Admit `item` under the lane's policy (never waits: live lanes are unbounded or
        dropping); False once closed."""
        now = self._clock()
        admitted = self.admission.put((now, item))
        self.last_admitted = now
        self._wake()
        return admitted

    def active(self, now: float) -> bool:
        return self.last_admitted is not None and now - self.last_admitted < ACTIVE_S

    def waiting_since(self) -> float | None:
        """When the oldest waiting item was admitted; None when none waits."""
        head = self.admission.oldest()
        return head[0] if head is not None else None

    def take_now(self) -> Any | None:
        entry = self.admission.take(timeout=0, on_take=self._start)
        return entry[1] if entry is not None else None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def pending(self) -> int:
        """Waiting plus in the workers (read in this order: an item moving between the two
        is counted once or twice, never missed)."""
        waiting = self.admission.pending
        return waiting + self.in_flight

    def _start(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finish(self) -> None:
        with self._lock:
            self._in_flight -= 1


class BatchRunner:
    """Stage 1: `prepare(lane, item)` each taken item, group by `key(prepared)`, then
    `complete(list_of_prepared) -> list_of_results` per group; stage 2: `publish(lane,
    result)`. A LingbotDepthError drops the item under its reason in its lane; any other
    exception as `internal_error`. `warn(text)` reports each drop (the caller throttles)."""

    def __init__(self, lanes: Sequence[Lane], prepare: Callable[[Lane, Any], Any],
                 key: Callable[[Any], Hashable], complete: Callable[[list], list],
                 publish: Callable[[Lane, Any], None], warn: Callable[[str], None],
                 window_s: float = 0.01, max_batch: int = 4, name: str = "lingbot",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.lanes = list(lanes)
        self.window_s, self.max_batch, self._clock = float(window_s), int(max_batch), clock
        self._prepare, self._key, self._complete = prepare, key, complete
        self._publish, self._warn = publish, warn
        self._ready = threading.Condition()
        for lane in self.lanes:
            lane._wake = self._notify
        self._next = 0  # the lane served first in the next batch
        self._handover: queue.Queue = queue.Queue(maxsize=self.max_batch)
        self._closing = threading.Event()
        #: engine calls made so far, by their number of frames
        self.calls: Counter = Counter()
        self._threads = [threading.Thread(target=self._run_batches, name=f"{name}_complete", daemon=True),
                         threading.Thread(target=self._run_outputs, name=f"{name}_outputs", daemon=True)]
        for thread in self._threads:
            thread.start()

    # -- state ----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return sum(lane.pending for lane in self.lanes)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def drain(self, timeout: float | None = None, poll_s: float = 0.01) -> bool:
        """Wait until every admitted item is finished; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            if (deadline is not None and time.monotonic() > deadline) or not self.alive():
                return False
            time.sleep(poll_s)
        return True

    def close(self, timeout: float = 10.0) -> dict[str, list]:
        """Stop both threads; returns each lane's items that never reached stage 1."""
        self._closing.set()
        left = {lane.name: [entry[1] for entry in lane.admission.close()] for lane in self.lanes}
        self._notify()
        for thread in self._threads:
            thread.join(timeout)
        return left

    def _notify(self) -> None:
        with self._ready:
            self._ready.notify_all()

    # -- stage 1: gather, prepare, complete -----------------------------------------------
    def _run_batches(self) -> None:
        while not self._closing.is_set():
            taken = self.gather(_POLL_S)
            if taken:
                self._run_batch(taken)

    def gather(self, timeout: float) -> list[tuple[Lane, Any]]:
        """The next batch: waits up to `timeout` for a first item, then up to the window
        for the other lanes; [] when none came."""
        with self._ready:
            if not self._ready.wait_for(self._any_waiting, timeout):
                return []
            while not self._closing.is_set():
                since = [t for t in (lane.waiting_since() for lane in self.lanes) if t is not None]
                if not since:
                    return []  # closed between the wake-up and now
                now = self._clock()
                active = sum(lane.active(now) for lane in self.lanes)
                left = min(since) + self.window_s - now
                if len(since) >= min(self.max_batch, max(active, 1)) or left <= 0:
                    break
                self._ready.wait(left)
        return self._take_round_robin()

    def _any_waiting(self) -> bool:
        return self._closing.is_set() or any(lane.admission.pending for lane in self.lanes)

    def _take_round_robin(self) -> list[tuple[Lane, Any]]:
        taken: list[tuple[Lane, Any]] = []
        count = len(self.lanes)
        first_served = None
        for round_index in range(self.max_batch):
            took = False
            for offset in range(count):
                if len(taken) >= self.max_batch:
                    break
                index = (self._next + offset) % count
                item = self.lanes[index].take_now()
                if item is None:
                    continue
                taken.append((self.lanes[index], item))
                took = True
                if round_index == 0:
                    first_served = index
            if not took or len(taken) >= self.max_batch:
                break
        if first_served is not None:
            self._next = (first_served + 1) % count
        return taken

    def _run_batch(self, taken: list[tuple[Lane, Any]]) -> None:
        started = time.perf_counter()
        prepared = []
        for lane, item in taken:
            done, ready = _guarded(lane, self._warn, self._prepare, lane, item)
            if done:
                prepared.append((lane, ready))
            else:
                lane.finish()
        results = complete_grouped(prepared, self._key, self._complete, self._warn, self.calls)
        for (lane, _), result in zip(prepared, results):
            if result is None or not self._hand_over((lane, result)):
                lane.finish()
        # Each lane had one batch's time for its items (up to the hand-over: a slower
        # outputs stage holds this thread too); its burst admission reads it as service time.
        elapsed = time.perf_counter() - started
        for lane in {id(lane): lane for lane, _ in taken}.values():
            lane.admission.served(elapsed)

    def _hand_over(self, entry) -> bool:
        return hand_over(self._handover, self._closing, entry)

    # -- stage 2 ---------------------------------------------------------------------------
    def _run_outputs(self) -> None:
        while not self._closing.is_set():
            try:
                lane, result = self._handover.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            _guarded(lane, self._warn, self._publish, lane, result)
            lane.finish()



def complete_grouped(entries: list[tuple[Any, Any]], key: Callable[[Any], Hashable],
                     complete: Callable[[list], list], warn: Callable[[str], None],
                     calls: Counter | None = None) -> list[Any | None]:
    """Complete (owner, item) entries, one `complete` call per group of equal `key`, in order
    of first appearance; one result per entry, None where it was dropped (counted in its
    owner's `drops` under the error's reason; an owner has `drops`, `cost`, `name`). A group
    whose call raises is completed again item by item, so a bad item costs only itself."""
    results: list[Any | None] = [None] * len(entries)
    groups: dict[Hashable, list[int]] = {}
    for index, (owner, item) in enumerate(entries):
        done, group_key = _guarded(owner, warn, key, item)
        if done:
            groups.setdefault(group_key, []).append(index)
    for indices in groups.values():
        items = [entries[i][1] for i in indices]
        if len(items) > 1:
            try:
                done_items = complete(items)
                if len(done_items) != len(items):
                    raise RuntimeError(f"{len(done_items)} results for {len(items)} frames")
                for i, result in zip(indices, done_items):
                    results[i] = result
                if calls is not None:
                    calls[len(items)] += 1
                continue
            except Exception as exc:  # one bad frame must not cost the others: one by one
                warn(f"a batch of {len(items)} frames failed ({type(exc).__name__}: {exc}); "
                     "completing them one by one")
        for i in indices:
            owner, item = entries[i]
            done, result = _guarded(owner, warn, complete, [item])
            if calls is not None:
                calls[1] += 1
            results[i] = result[0] if done else None
    return results


def _guarded(owner, warn: Callable[[str], None], stage: Callable, *args) -> tuple[bool, Any]:
    """(True, the stage's result), or the item counted in `owner.drops` under the error's
    reason and (False, None)."""
    return run_guarded(owner.drops, getattr(owner, "cost", 2), warn, stage, *args, who=_who(owner))


def _who(owner) -> str:
    return f"camera {owner.name}: " if owner.name else ""
