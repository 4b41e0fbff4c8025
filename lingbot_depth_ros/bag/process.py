"""`lingbot-depth bag process`: replay a bag through the node's pipeline into a new bag, in
three overlapping one-thread stages (docs/bags.md), so that results are deterministic."""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import LingbotDepthError
from ..core.outputs import OutputBuilder
from ..core.pairing import DropCounter
from ..core.pipeline import complete, effective_mode
from ..engines.base import Engine
from ..core.config import NodeConfig
from .frames import FrameAssembler, PairStats, iter_pairs
from .output_topics import OutputWriter, check_output_types
from .progress import progress_bar
from .reader import BagError, BagReader
from .topics import InputTopics, select_topics
from .writer import BagWriter, storage_for

log = logging.getLogger(__name__)
_QUEUE_DEPTH = 4
_END = object()
#: copied input messages travel with the next frame; past this many they go on alone
_RAW_BATCH = 64


@dataclass
class ProcessSummary:
    input: str
    output: str
    storage: str
    engine: str
    topics: InputTopics | None = None
    received: dict = field(default_factory=dict)
    pairs: int = 0
    processed: int = 0
    #: images not completed, by reason (a dropped pair counts 2, as in the node)
    drops: dict = field(default_factory=dict)
    without_camera_info: int = 0
    copied_messages: int = 0
    skipped_topics: dict = field(default_factory=dict)
    written: dict = field(default_factory=dict)
    truncated_input: bool = False
    interrupted: bool = False
    wall_s: float = 0.0
    engine_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        rec = self.received
        engine_share = f"{100 * self.engine_s / self.wall_s:.0f}% of wall time" if self.wall_s > 0 else "-"
        out = [f"input  {self.input} ({self.storage}{', TRUNCATED' if self.truncated_input else ''})",
               f"output {self.output or '(none written: no frame completed)'}"
               f"{' (INTERRUPTED: partial)' if self.interrupted else ''}",
               f"engine {self.engine}",
               f"frames in: {rec.get('color', 0)} colour, {rec.get('depth', 0)} depth, "
               f"{rec.get('camera_info', 0)} camera info",
               f"pairs {self.pairs}, processed {self.processed} "
               f"({self.fps:.1f} frames/s, engine {engine_share})"]
        if self.drops:
            out.append("dropped images by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(self.drops.items())))
        if self.without_camera_info:
            out.append(f"frames without usable camera info (no cloud/camera info out): {self.without_camera_info}")
        if self.skipped_topics:
            out.append("topics not copied: " + ", ".join(f"{k} ({v})" for k, v in self.skipped_topics.items()))
        out.append(f"copied {self.copied_messages} input messages; wrote "
                   + ", ".join(f"{k} {v}" for k, v in self.written.items()))
        return out


class _Pipeline:
    """reader thread -> engine thread -> writer (the caller's thread, which owns the output
    bag and receives Ctrl-C), bounded queues between."""

    def __init__(self, reader: BagReader, topics: InputTopics, config: NodeConfig,
                 engine: Engine, out: OutputWriter, summary: ProcessSummary,
                 progress, limit: int | None) -> None:
        self.reader, self.topics, self.config = reader, topics, config
        self.engine, self.out, self.summary, self.progress = engine, out, summary, progress
        self.limit = limit
        self.drops = DropCounter()
        self.stats = PairStats()
        self.assembler = FrameAssembler(config, effective_mode(engine.name, config.mode) == "completion")
        self.to_engine: queue.Queue = queue.Queue(_QUEUE_DEPTH)
        self.to_writer: queue.Queue = queue.Queue(_QUEUE_DEPTH)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.pairs_dropped = 0
        #: input messages to copy, (topic, log time, bytes), read since the last frame
        self._raws: list[tuple[str, int, bytes]] = []

    def _put(self, q: queue.Queue, item) -> None:
        """Blocking put that gives up once the run is stopping (nobody may consume then)."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue):
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _drop(self, exc: LingbotDepthError) -> None:
        self.pairs_dropped += 1
        self.drops.add(exc.reason, 2)
        log.warning("dropped a frame pair (%s): %s", exc.reason, exc)

    # -- stage 1: read, pair, decode ------------------------------------------------------
    # Each queue item is (frame or None, copied input messages read before it): one GIL
    # hand-off per frame, not per message.
    def _read(self) -> None:
        try:
            pairs = iter_pairs(self.reader, self.topics, self.config, self.drops, self.stats,
                               on_message=self._copy, limit=self.limit)
            with contextlib.closing(pairs):  # images left in the pairer are counted now
                for pair in pairs:
                    if self.stop.is_set():
                        break  # counted by _account_unfinished once the threads are done
                    try:
                        item = self.assembler.assemble(pair)
                    except LingbotDepthError as exc:
                        self._drop(exc)
                        continue
                    self._put(self.to_engine, (item, self._take_raws()))
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            self.errors.append(exc)
        finally:
            if self._raws:
                self._put(self.to_engine, (None, self._take_raws()))
            self._put(self.to_engine, _END)

    def _copy(self, conn, log_time: int, raw: bytes) -> None:
        if self.out.copies(conn.topic):
            self._raws.append((conn.topic, log_time, raw))
            if len(self._raws) >= _RAW_BATCH:  # e.g. a long stretch without a usable pair
                self._put(self.to_engine, (None, self._take_raws()))

    def _take_raws(self) -> list:
        raws, self._raws = self._raws, []
        return raws

    # -- stage 2: engine ------------------------------------------------------------------
    def _run_engine(self) -> None:
        try:
            while (item := self._get(self.to_engine)) is not _END:
                frame, raws = item
                result = self._complete(frame) if frame is not None else None
                self._put(self.to_writer, (frame if result is not None else None, result, raws))
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            self.errors.append(exc)
            self.stop.set()
        finally:
            self._put(self.to_writer, _END)

    def _complete(self, frame):
        """The engine's result for `frame`, None when the frame is dropped."""
        t0 = time.perf_counter()
        try:
            return complete(self.engine.complete, frame)  # the node's completion step
        except LingbotDepthError as exc:
            self._drop(exc)
        except Exception as exc:  # as in the node: a bug costs one frame, not the run
            self.pairs_dropped += 1
            self.drops.add("internal_error", 2)
            log.error("dropped a frame pair: %s: %s", type(exc).__name__, exc)
        finally:
            self.summary.engine_s += time.perf_counter() - t0
        return None

    # -- stage 3: build outputs, serialize, write (caller's thread) ------------------------
    def run(self) -> None:
        threads = [threading.Thread(target=self._read, name="bag-read", daemon=True),
                   threading.Thread(target=self._run_engine, name="bag-engine", daemon=True)]
        for thread in threads:
            thread.start()
        previous = _catch_sigint(self._on_sigint)
        try:
            while not self.summary.interrupted and (item := self._get(self.to_writer)) is not _END:
                frame, result, raws = item
                for raw in raws:
                    self.out.copy(*raw)
                if frame is None:
                    continue
                self.out.write_frame(frame, result)
                self.summary.processed += 1
                self.progress.update(1)
        finally:
            _catch_sigint(previous)
            self.stop.set()
            for thread in threads:
                thread.join(timeout=5.0)
            self._account_unfinished()
            self.summary.drops = self.drops.snapshot()
            self.summary.received = dict(self.stats.received)
            self.summary.pairs = self.stats.pairs
            self.summary.without_camera_info = self.assembler.without_camera_info
        if self.errors:
            raise self.errors[0]

    def _account_unfinished(self) -> None:
        """Pairs read but neither written nor dropped (a stopped run's queues) count as
        dropped 'interrupted', so every pair read is accounted for exactly."""
        unfinished = self.stats.pairs - self.summary.processed - self.pairs_dropped
        if unfinished > 0:
            self.pairs_dropped += unfinished
            self.drops.add("interrupted", 2 * unfinished)

    def _on_sigint(self, signum, frame) -> None:
        """First Ctrl-C: finish the message being written, then close the bag. Second: quit."""
        if self.summary.interrupted:
            raise KeyboardInterrupt
        self.summary.interrupted = True
        self.stop.set()


def _catch_sigint(handler):
    """Install `handler` for SIGINT (main thread only; elsewhere a no-op returning None);
    returns the previous handler, Python's default where it was not set from Python."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handler) or signal.default_int_handler


def process_bag(in_path: str | Path, out_path: str | Path, engine: Engine, config: NodeConfig,
                storage: str | None = None, distro: str = "auto", model_id: str = "",
                topics: dict | None = None, limit: int | None = None,
                show_progress: bool = True) -> ProcessSummary:
    """Complete every colour/depth pair of `in_path` into a new bag at `out_path` (none when no
    frame was completed: the drops say why)."""
    started = time.perf_counter()
    with BagReader(in_path, distro=distro) as reader:
        if reader.message_count == 0:
            raise BagError(f"bag {in_path} holds no messages")
        chosen = select_topics(reader, **(topics or {}))
        check_output_types(config, reader.typestore)
        out_storage = storage_for(out_path, storage, default=reader.storage)
        summary = ProcessSummary(input=str(in_path), output=str(out_path), storage=reader.storage,
                                 engine=engine.describe(), topics=chosen,
                                 truncated_input=reader.truncated)
        expected = min(reader.topics[chosen.color].count, limit or 1 << 62)
        # each frame's outputs are written before the next is built, so one set of
        # output buffers serves every frame (no multi-megabyte allocation per frame)
        builder = OutputBuilder(config.output_options, reuse_buffers=True)
        with BagWriter(out_path, out_storage, reader.typestore) as writer, \
                progress_bar(expected, enabled=show_progress) as progress:
            out = OutputWriter(writer, reader, config, builder, model_id=model_id,
                               mode=effective_mode(engine.name, config.mode))
            summary.skipped_topics = out.skipped
            try:
                _Pipeline(reader, chosen, config, engine, out, summary, progress, limit).run()
            finally:
                summary.copied_messages = out.copied
                summary.written = out.written
            if summary.processed == 0 and not summary.interrupted:
                writer.abort()  # nothing completed: no bag that looks like a result
                summary.output = ""
        summary.wall_s = time.perf_counter() - started
    return summary

