"""One frame runner for the live node and `bag process`, ROS-free: an admission queue, then
two worker threads (complete, then outputs), so throughput is set by the slower stage, not
their sum. The admission policy decides what happens to a pair that arrives while the
workers are busy (docs/design.md):

- latest: one waiting pair; a newer one replaces it (counted `superseded`).
- burst:  while the workers keep up on average (their recent service time below the
          recent mean arrival interval), as many waiting pairs as they can finish within
          `burst_budget_s`; otherwise two. A newer pair replaces the oldest, so a consumer
          that keeps up on average loses nothing to a burst of arrivals (a camera's jitter,
          or a reliable transport releasing frames held back for a repair), and one that
          does not keep up stays fresh.
- every:  a first-in first-out queue that drops nothing: bounded (the producer waits for
          room: back-pressure to a bag reader) or without bound (a live node's executor
          must never wait; latency and memory grow while the workers lag).

Items leave in arrival order and each stage has one thread, so results come out in input
order. A stage that raises costs that item, counted under the error's reason, never the
thread."""

from __future__ import annotations

import collections
import queue
import statistics
import threading
import time
from typing import Any, Callable

from .errors import LingbotDepthError
from .pairing import DropCounter

ADMISSIONS = ("latest", "burst", "every")
#: burst: longest a full queue may take to drain (its length times the recent service time)
BURST_BUDGET_S = 0.5
#: burst: pairs that always may wait, and the most that ever wait (memory: a pair is ~2 MB)
_BURST_MIN, _BURST_MAX = 2, 64
#: window of arrivals that gives the mean arrival interval (a transport stall plus the
#: burst that follows it must fit, so the mean is the camera's rate, not the burst's)
_ARRIVAL_WINDOW_S = 3.0
_POLL_S = 0.2


class ServiceLoad:
    """Recent arrivals and service times of a queue: does its consumer keep up on average?"""

    def __init__(self) -> None:
        self._arrivals: collections.deque = collections.deque()
        self._services: collections.deque = collections.deque(maxlen=15)

    def arrived(self, now: float) -> None:
        self._arrivals.append(now)
        while self._arrivals and self._arrivals[0] < now - _ARRIVAL_WINDOW_S:
            self._arrivals.popleft()

    def served(self, seconds: float) -> None:
        self._services.append(seconds)

    def room(self, budget_s: float) -> int:
        """Items that may wait: as many as the consumer finishes within `budget_s` while it
        keeps up on average (service below 0.9 of the mean arrival interval), else the minimum."""
        if not self._services or len(self._arrivals) < 2:
            return _BURST_MIN
        service = statistics.median(self._services)
        interval = (self._arrivals[-1] - self._arrivals[0]) / (len(self._arrivals) - 1)
        if service <= 0 or service >= 0.9 * interval:
            return _BURST_MIN
        return max(_BURST_MIN, min(_BURST_MAX, int(budget_s / service)))


class Admission:
    """The queue between a producer (the executor's pairing callback, a bag reader) and the
    runner's first stage; `cost` images are counted per superseded item (a pair is 2)."""

    def __init__(self, policy: str, drops: DropCounter, depth: int | None = None,
                 cost: int = 2, burst_budget_s: float = BURST_BUDGET_S) -> None:
        if policy not in ADMISSIONS:
            raise ValueError(f"admission must be one of {', '.join(ADMISSIONS)}, got '{policy}'")
        if not burst_budget_s >= 0:
            raise ValueError(f"burst budget must be >= 0 s, got {burst_budget_s}")
        self.policy, self._drops, self._cost = policy, drops, cost
        #: every: most items waiting, None without bound; latest: 1; burst: see `room`
        self.depth = 1 if policy == "latest" else depth if policy == "every" else None
        self.burst_budget_s = float(burst_budget_s)
        self.load = ServiceLoad()
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any, timeout: float | None = None) -> bool:
        """Admit `item`. latest/burst never wait (the oldest waiting item is superseded);
        a bounded `every` waits for room. False when the queue closed (or timed out) first."""
        with self._cond:
            if self.policy == "every" and self.depth is not None:
                if not self._cond.wait_for(lambda: len(self._items) < self.depth or self._closed,
                                           timeout):
                    return False
            if self._closed:
                return False
            self.load.arrived(time.monotonic())
            room = self.room
            while room is not None and self.policy != "every" and len(self._items) >= room:
                self._items.popleft()
                self._drops.add("superseded", self._cost)
            self._items.append(item)
            self._cond.notify_all()
            return True

    @property
    def room(self) -> int | None:
        """Most items that may wait now (None: without bound)."""
        if self.policy == "burst":
            return self.load.room(self.burst_budget_s)
        return self.depth

    def served(self, seconds: float) -> None:
        """One item took `seconds` from leaving this queue until the next could be taken."""
        with self._cond:
            self.load.served(seconds)

    @property
    def pending(self) -> int:
        """Items waiting for the first stage."""
        with self._cond:
            return len(self._items)

    def oldest(self) -> Any | None:
        """The item that has waited longest (left in the queue), None when none waits."""
        with self._cond:
            return self._items[0] if self._items else None

    def take(self, timeout: float | None = None,
             on_take: Callable[[], None] | None = None) -> Any | None:
        """The oldest waiting item, None after `timeout` or once closed and empty.
        `on_take` runs under the queue's lock, so a taker's count of items in its hands
        and this queue's `pending` never both miss an item."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            item = self._items.popleft()
            if on_take is not None:
                on_take()
            self._cond.notify_all()
            return item

    def close(self) -> list:
        """Stop admitting; wakes every waiter. Returns the items still waiting (now the
        caller's to account for)."""
        with self._cond:
            self._closed = True
            left = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return left


class FrameRunner:
    """Stage 1 `complete(item)` then stage 2 `publish(result)`, one thread each, with one
    result handed over between them. A stage raising a LingbotDepthError drops the item
    under its reason; any other exception as `internal_error` (a bug costs one frame).
    `dropped(item)`, where given, is handed to stage 2 in place of a result that stage 1
    could not make (a bag still copies the input messages that came with that frame).
    `outputs_thread=False`: the caller runs stage 2 itself with `output_step` (a bag's
    writer belongs to the thread that opened it: sqlite3 allows no other)."""

    def __init__(self, admission: Admission, drops: DropCounter, complete: Callable[[Any], Any],
                 publish: Callable[[Any], None], warn: Callable[[str], None],
                 name: str = "lingbot", cost: int = 2,
                 dropped: Callable[[Any], Any] | None = None,
                 outputs_thread: bool = True) -> None:
        self.admission, self._drops, self._cost = admission, drops, cost
        self._dropped = dropped
        self._complete, self._publish, self._warn = complete, publish, warn
        self._handover: queue.Queue = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closing = threading.Event()
        self._threads = [threading.Thread(target=self._run_completion, name=f"{name}_complete", daemon=True)]
        if outputs_thread:
            self._threads.append(
                threading.Thread(target=self._run_outputs, name=f"{name}_outputs", daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def in_flight(self) -> int:
        """Items taken from the admission queue and not yet published or dropped."""
        with self._lock:
            return self._in_flight

    @property
    def pending(self) -> int:
        """Items admitted and not yet finished: waiting plus in flight (read in this order,
        an item moving between the two is counted once or twice, never missed)."""
        waiting = self.admission.pending
        return waiting + self.in_flight

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def drain(self, timeout: float | None = None, poll_s: float = 0.01) -> bool:
        """Wait until every admitted item is finished; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            if deadline is not None and time.monotonic() > deadline:
                return False
            if not self.alive():
                return False
            time.sleep(poll_s)
        return True

    def close(self, timeout: float = 10.0) -> list:
        """Stop both threads (the item each holds is finished or abandoned); returns the
        items that never reached stage 1."""
        self._closing.set()
        left = self.admission.close()
        for thread in self._threads:
            thread.join(timeout)
        return left

    # -- the two threads ------------------------------------------------------------------
    def _run_completion(self) -> None:
        while not self._closing.is_set():
            item = self.admission.take(timeout=_POLL_S, on_take=self._start)
            if item is None:
                continue
            taken = time.perf_counter()
            done, result = self._guarded(self._complete, item)
            if not done and self._dropped is not None:
                done, result = True, self._dropped(item)
            if not (done and self._hand_over(result)):
                self._finish()
            # up to the hand-over: a slower outputs stage holds this thread too
            self.admission.served(time.perf_counter() - taken)

    def _hand_over(self, result) -> bool:
        return hand_over(self._handover, self._closing, result)

    def _run_outputs(self) -> None:
        while not self._closing.is_set():
            self.output_step(_POLL_S)

    def output_step(self, timeout: float) -> bool:
        """Stage 2 for the next result, waiting up to `timeout`; False when none came."""
        try:
            result = self._handover.get(timeout=timeout)
        except queue.Empty:
            return False
        self._guarded(self._publish, result)
        self._finish()
        return True

    def _start(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _finish(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _guarded(self, stage: Callable, arg) -> tuple[bool, Any]:
        return run_guarded(self._drops, self._cost, self._warn, stage, arg)


def run_guarded(drops: DropCounter, cost: int, warn: Callable[[str], None], stage: Callable,
                *args, who: str = "") -> tuple[bool, Any]:
    """Run one stage for one item: (True, its result), or count the item (`cost` images) in
    `drops` under the error's reason, warn (`who` first) and return (False, None)."""
    try:
        return True, stage(*args)
    except LingbotDepthError as exc:
        drops.add(exc.reason, cost)
        warn(f"{who}dropped a frame pair ({exc.reason}): {exc}")
    except Exception as exc:  # a bug must cost one frame, never the runner
        drops.add("internal_error", cost)
        warn(f"{who}dropped a frame pair (internal_error): {type(exc).__name__}: {exc}")
    return False, None


def hand_over(handover: queue.Queue, closing: threading.Event, item) -> bool:
    """Put `item` into the one-item hand-over between two stages, waiting while it is full;
    False once `closing` is set."""
    while not closing.is_set():
        try:
            handover.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class StageClock:
    """Wall time and this thread's CPU time of consecutive stages, milliseconds.

    CPU time shows the node's own cost even on a loaded machine, where wall time also
    counts waiting for the CPU and the GIL."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.cpu_ms: dict[str, float] = {}
        self.resume()

    def resume(self) -> None:
        """Start the next stage now (time spent waiting between threads is no stage's)."""
        self._wall, self._cpu = time.perf_counter(), time.thread_time()

    def add(self, stage: str, ms: float, cpu_ms: float) -> None:
        """A stage measured elsewhere (the receive callbacks)."""
        self.ms[stage], self.cpu_ms[stage] = ms, cpu_ms

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.ms[stage] = (wall - self._wall) * 1e3
        self.cpu_ms[stage] = (cpu - self._cpu) * 1e3
        self._wall, self._cpu = wall, cpu
