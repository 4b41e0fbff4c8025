"""`lingbot-depth bag process`: replay a bag through the node's pipeline into a new bag, in
three overlapping one-thread stages (docs/bags.md), so that results are deterministic."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.config import NodeConfig
from ..core.errors import LingbotDepthError
from ..core.outputs import OutputBuilder
from ..core.pairing import DropCounter
from ..core.batcher import complete_grouped
from ..core.pipeline import INPUT_ERRORS, effective_mode
from ..core.rig import CameraSpec
from ..core.runner import Admission, FrameRunner
from ..engines.base import Engine
from ..engines.fallback import EngineFallback
from .batches import BatchGatherer
from .frames import BagCamera, FrameAssembler, iter_rig_pairs
from .output_topics import OutputWriter, check_output_types
from .progress import progress_bar
from .reader import BagError, BagReader
from .topics import InputTopics, select_topics
from .writer import BagWriter, storage_for

log = logging.getLogger(__name__)
#: frames admitted ahead of the engine (the reader waits beyond that)
_QUEUE_DEPTH = 4
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
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
    #: the signal that interrupted the run (SIGINT or SIGTERM), "" when none did
    stop_signal: str = ""
    #: why the engine was replaced by guided mid-bag, "" when it was not
    fallback_reason: str = ""
    #: why the engine stopped for good (fallback none), "" when it did not
    engine_failure: str = ""
    wall_s: float = 0.0
    engine_s: float = 0.0
    #: engine calls by their number of frames
    engine_calls: dict = field(default_factory=dict)
    #: a rig's cameras: name -> pairs, processed, dropped (empty for one camera)
    cameras: dict = field(default_factory=dict)

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
        for name, counts in self.cameras.items():
            dropped = ", ".join(f"{k} {v}" for k, v in sorted(counts["dropped"].items())) or "none"
            out.append(f"camera {name}: pairs {counts['pairs']}, processed {counts['processed']}, "
                       f"dropped images: {dropped}")
        if any(size > 1 for size in self.engine_calls):
            out.append("engine calls by frames per call: "
                       + ", ".join(f"{size}: {n}" for size, n in sorted(self.engine_calls.items())))
        if self.without_camera_info:
            out.append(f"frames without usable camera info (no cloud/camera info out): {self.without_camera_info}")
        if self.skipped_topics:
            out.append("topics not copied: " + ", ".join(f"{k} ({v})" for k, v in self.skipped_topics.items()))
        out.append(f"copied {self.copied_messages} input messages; wrote "
                   + ", ".join(f"{k} {v}" for k, v in self.written.items()))
        return out


class _Pipeline:
    """A reader thread pairs and decodes every camera's frames and admits them, in batches
    (bag/batches.py), into the node's runner (core/runner.py) under `every`; the runner's
    stage 1 completes each batch through the node's EngineFallback, one engine call per
    input shape (core/batcher.complete_grouped, as the live rig does), and its stage 2
    writes it in the caller's thread, which owns the output bag and receives Ctrl-C and
    SIGTERM. One thread per stage and a first-in first-out queue keep the output in input
    order."""

    def __init__(self, reader: BagReader, cameras: list[BagCamera], config: NodeConfig,
                 engine: EngineFallback, out: OutputWriter, summary: ProcessSummary,
                 progress, limit: int | None) -> None:
        self.reader, self.cameras, self.config = reader, cameras, config
        self.engine, self.out, self.summary, self.progress = engine, out, summary, progress
        self.limit = limit
        self.drops = DropCounter()  # the run's own: interrupted, a bug's internal_error
        self.assemblers = {id(c): FrameAssembler(c.config, self._completion_mode()) for c in cameras}
        self.batches = BatchGatherer(len(cameras), config.max_batch, int(config.batch_window_ms * 1e6))
        self.processed = {c.name: 0 for c in cameras}
        self.calls: Counter = Counter()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        #: pairs dropped before the engine (reader thread) and by stage 1 (its own thread),
        #: each counted by one thread only
        self._dropped_reading = self._dropped_completing = 0
        self._write_failed = False
        #: input messages to copy, (topic, log time, bytes), read since the last batch
        self._raws: list[tuple[str, int, bytes]] = []
        self.runner = FrameRunner(Admission("every", self.drops, depth=_QUEUE_DEPTH), self.drops,
                                  self._complete, self._write, self._warn, name="bag",
                                  dropped=self._dropped, outputs_thread=False)
        self.read_done = threading.Event()

    def _completion_mode(self) -> bool:
        return effective_mode(self.engine.engine.name, self.config.mode) == "completion"

    def _warn(self, text: str) -> None:
        log.warning("%s", text)

    # -- the reader thread: read, pair, decode, batch, admit -------------------------------
    # Each admitted item is (batch of (camera, frame), copied input messages read before
    # it): one hand-off per batch, not per message.
    def _read_all(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            self.errors.append(exc)
        finally:
            self.read_done.set()

    def _read(self) -> None:
        pairs = iter_rig_pairs(self.reader, self.cameras, on_message=self._copy, limit=self.limit)
        with contextlib.closing(pairs):  # images left in the pairers are counted now
            for camera, pair in pairs:
                if self.stop.is_set():
                    break  # counted by _account_unfinished once the threads are done
                assembler = self.assemblers[id(camera)]
                assembler.completion_mode = self._completion_mode()
                try:
                    item = assembler.assemble(pair)
                except LingbotDepthError as exc:
                    self._drop(camera, exc)
                    continue
                for batch in self.batches.add(camera, item, item.log_time_ns):
                    self._admit((batch, self._take_raws()))
        last = self.batches.flush()
        if last or self._raws:
            self._admit((last, self._take_raws()))

    def _admit(self, item) -> None:
        """Wait for room in the runner's queue (back-pressure), giving up once stopping."""
        while not self.stop.is_set() and not self.runner.admission.put(item, timeout=0.1):
            if not self.runner.alive():
                raise RuntimeError("the bag's worker threads stopped")

    def _copy(self, conn, log_time: int, raw: bytes) -> None:
        if self.out.copies(conn.topic):
            self._raws.append((conn.topic, log_time, raw))
            if len(self._raws) >= _RAW_BATCH and not self.batches.pending:
                self._admit(([], self._take_raws()))  # e.g. a long stretch without a usable pair

    def _take_raws(self) -> list:
        raws, self._raws = self._raws, []
        return raws

    def _drop(self, camera: BagCamera, exc: LingbotDepthError) -> None:
        self._dropped_reading += 1
        camera.drops.add(exc.reason, 2)
        log.warning("%sdropped a frame pair (%s): %s", f"camera {camera.name}: " if camera.name else "",
                    exc.reason, exc)

    # -- runner stage 1: complete ---------------------------------------------------------
    def _complete(self, item):
        batch, raws = item
        t0 = time.perf_counter()
        try:  # the node's completion step, with its fallback
            results = complete_grouped(batch, lambda frame: self.engine.batch_key(frame.frame),
                                       self._complete_frames, self._warn, self.calls)
        finally:
            self.summary.engine_s += time.perf_counter() - t0
        self._dropped_completing += sum(result is None for result in results)
        return batch, results, raws

    def _complete_frames(self, items: list) -> list:
        results = self.engine.complete_batch([item.frame for item in items], INPUT_ERRORS)
        return [item.infinities.restore(result) if item.infinities is not None else result
                for item, result in zip(items, results)]

    def _dropped(self, item):
        """Stage 1 failed on a whole batch (a bug; the runner counted one pair): the rest of
        it is counted too, and its copies still go out."""
        batch, raws = item
        self._dropped_completing += len(batch)
        if len(batch) > 1:
            self.drops.add("internal_error", 2 * (len(batch) - 1))
        return [], [], raws

    # -- runner stage 2: build outputs, serialize, write (the caller's thread) -------------
    def _write(self, done) -> None:
        batch, results, raws = done
        if self._write_failed:
            return  # the output failed: nothing more is written
        try:
            for raw in raws:
                self.out.copy(*raw)
            engine = self.engine.model_id, effective_mode(self.engine.engine.name, self.config.mode)
            for (camera, frame), result in zip(batch, results):
                if result is None:
                    continue
                self.out.write_frame(frame, result, engine, camera=camera.name)
                self.summary.processed += 1
                self.processed[camera.name] += 1
                self.progress.update(1)
        except BaseException as exc:  # a failed write ends the run; the caller re-raises it
            self._write_failed = True
            self.errors.append(exc)
            self.stop.set()

    def run(self) -> None:
        reader = threading.Thread(target=self._read_all, name="bag_read", daemon=True)
        reader.start()
        previous = _catch_stop_signals(self._on_signal)
        try:
            while not self.stop.is_set() and self.runner.alive():
                if not self.runner.output_step(0.1) and self.read_done.is_set() \
                        and self.runner.pending == 0:
                    break
        finally:
            _catch_stop_signals(previous)
            self.stop.set()
            reader.join(timeout=5.0)
            self.runner.close(timeout=5.0)
            self._account_unfinished()
            self._summarize()
            self.summary.engine_failure = self.engine.failure
            self.summary.fallback_reason = self.engine.stats.fallback_reason
            if self.engine.failure or self.engine.stats.fallback_reason:
                self.summary.engine += f" -> {self.engine.describe()}"
        if self.errors:
            raise self.errors[0]

    def _summarize(self) -> None:
        drops, received = Counter(self.drops.snapshot()), Counter()
        for camera in self.cameras:
            drops.update(camera.drops.snapshot())
            received.update(camera.stats.received)
        self.summary.drops, self.summary.received = dict(drops), dict(received)
        self.summary.pairs = sum(c.stats.pairs for c in self.cameras)
        self.summary.without_camera_info = sum(a.without_camera_info for a in self.assemblers.values())
        self.summary.engine_calls = dict(self.calls)
        if any(c.name for c in self.cameras):
            self.summary.cameras = {c.name: {"pairs": c.stats.pairs, "processed": self.processed[c.name],
                                             "dropped": c.drops.snapshot()} for c in self.cameras}

    def _account_unfinished(self) -> None:
        """Pairs read but neither written nor dropped (a stopped run's queue) count as
        dropped 'interrupted', so every pair read is accounted for exactly."""
        dropped = self._dropped_reading + self._dropped_completing
        unfinished = sum(c.stats.pairs for c in self.cameras) - self.summary.processed - dropped
        if unfinished > 0:
            self.drops.add("interrupted", 2 * unfinished)

    def _on_signal(self, signum, frame) -> None:
        """First Ctrl-C or SIGTERM: finish the frame being written, then close the bag.
        A second: quit."""
        if self.summary.interrupted:
            raise KeyboardInterrupt
        self.summary.interrupted = True
        self.summary.stop_signal = signal.Signals(signum).name
        self.stop.set()


def _catch_stop_signals(handler):
    """Install `handler` for SIGINT and SIGTERM (main thread only; elsewhere a no-op returning
    None); returns the previous handlers, to be given back to this function."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    if isinstance(handler, dict):
        for signum, previous in handler.items():
            signal.signal(signum, previous)
        return None
    return {signum: signal.signal(signum, handler) or signal.SIG_DFL for signum in _STOP_SIGNALS}


def process_bag(in_path: str | Path, out_path: str | Path, engine: Engine, config: NodeConfig,
                storage: str | None = None, distro: str = "auto", model_id: str = "",
                topics: dict | None = None, limit: int | None = None,
                show_progress: bool = True, cameras: list[CameraSpec] | None = None) -> ProcessSummary:
    """Complete every colour/depth pair of `in_path` into a new bag at `out_path` (none when no
    frame was completed: the drops say why). `cameras`: a rig's (core/rig.py; each camera's
    topics in its namespace, its outputs there too), batched as the live rig batches."""
    started = time.perf_counter()
    with BagReader(in_path, distro=distro) as reader:
        if reader.message_count == 0:
            raise BagError(f"bag {in_path} holds no messages")
        rig = _bag_cameras(reader, config, cameras, topics)
        check_output_types(config, reader.typestore)
        out_storage = storage_for(out_path, storage, default=reader.storage)
        summary = ProcessSummary(input=str(in_path), output=str(out_path), storage=reader.storage,
                                 engine=engine.describe(), topics=rig[0].topics,
                                 truncated_input=reader.truncated)
        expected = min(sum(reader.topics[c.topics.color].count for c in rig), limit or 1 << 62)
        # each frame's outputs are written before the next is built, so one set of
        # output buffers serves every frame (no multi-megabyte allocation per frame)
        builder = OutputBuilder(config.output_options, reuse_buffers=True)
        with BagWriter(out_path, out_storage, reader.typestore) as writer, \
                progress_bar(expected, enabled=show_progress) as progress:
            out = OutputWriter(writer, reader, config, builder, model_id=model_id,
                               mode=effective_mode(engine.name, config.mode),
                               cameras=tuple(c.name for c in rig))
            summary.skipped_topics = out.skipped
            # the node's fallback policy; the engine it falls back to is closed here, the
            # given one by its caller
            fallback = EngineFallback(config, log=log, engine=engine, model_id=model_id)
            try:
                _Pipeline(reader, rig, config, fallback, out, summary, progress, limit).run()
            finally:
                fallback.close()
                summary.copied_messages = out.copied
                summary.written = out.written
            if summary.processed == 0 and not summary.interrupted:
                writer.abort()  # nothing completed: no bag that looks like a result
                summary.output = ""
        summary.wall_s = time.perf_counter() - started
    return summary


def _bag_cameras(reader: BagReader, config: NodeConfig, cameras: list[CameraSpec] | None,
                 topics: dict | None) -> list[BagCamera]:
    """The cameras to complete: a rig's, each with its topics found in the bag; else the one
    camera of `topics` (given or detected)."""
    if not cameras or not cameras[0].name:
        return [BagCamera("", select_topics(reader, **(topics or {})), config)]
    if topics:
        raise BagError("topic options choose one camera's topics; a rig's cameras take theirs "
                       "from the parameter file")
    rig = []
    for camera in cameras:
        c = camera.config
        try:
            chosen = select_topics(reader, color=camera.topic(c.color_topic),
                                   depth=camera.topic(c.depth_topic), info=camera.topic(c.camera_info_topic))
        except LingbotDepthError as exc:
            raise type(exc)(f"camera {camera.name}: {exc}") from None
        rig.append(BagCamera(camera.name, chosen, c))
    return rig
