"""Write synthetic frames as capture folders (the layout of examples/) plus what only a
simulator knows: ``gt_depth.png`` (uint16 mm, 0 = nothing hit), ``labels.png`` (uint8,
materials.LABELS), ``ir_left.png`` / ``ir_right.png`` and ``meta.json``. Frames are seeded and
independent: a worker (local process, Ray task or Dask task) renders and encodes one frame and
hands back its files; only this process writes, each folder appearing whole (renamed from
``NAME.partial``), so a run that stops resumes by skipping the folders already there."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .cameras import camera_model
from .materials import LABELS

META_NAME = "meta.json"
#: mm per unit of the depth PNGs (the examples' convention, and the drivers' depth_scale)
DEPTH_SCALE = 0.001


@dataclass(frozen=True)
class FrameJob:
    seed: int
    camera: str
    width: int
    height: int
    config: dict
    threads: int = 1


def folder_name(seed: int) -> str:
    return f"{seed:06d}"


def depth_png(depth_m: np.ndarray) -> np.ndarray:
    """float metres, NaN = none -> uint16 mm, 0 = none (REP 118)."""
    mm = np.where(np.isfinite(depth_m), np.rint(depth_m / DEPTH_SCALE), 0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode an image of {image.dtype} {image.shape} as PNG")
    return data.tobytes()


def render_job(job: FrameJob) -> dict[str, bytes]:
    """Render one frame and encode its files: {file name: bytes}. Runs in a worker."""
    from . import render
    from .frame import simulate_frame
    render.set_render_threads(job.threads)
    camera = camera_model(job.camera)
    if (job.width, job.height) != (camera.width, camera.height):
        camera = camera.at_resolution(job.width, job.height)
    frame = simulate_frame(job.seed, camera, job.config, ir_truth=False)
    K = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in frame.K) + "\n"
    meta = {"seed": job.seed, "camera": job.camera, "scene": frame.scene_kind,
            "width": job.width, "height": job.height, "depth_scale": DEPTH_SCALE,
            "labels": LABELS, "cpu_seconds": {k: round(v, 3) for k, v in frame.seconds.items()},
            "valid_share": float(np.isfinite(frame.depth).mean())}
    return {"rgb.png": _png(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)),
            "raw_depth.png": _png(depth_png(frame.depth)),
            "intrinsics.txt": K.encode(),
            "gt_depth.png": _png(depth_png(frame.depth_gt)),
            "labels.png": _png(frame.labels),
            "ir_left.png": _png(frame.ir_left), "ir_right.png": _png(frame.ir_right),
            META_NAME: (json.dumps(meta, indent=1) + "\n").encode()}


def write_frame(out: Path, seed: int, files: dict[str, bytes]) -> Path:
    """Write one frame's folder whole: staged in NAME.partial, renamed into place."""
    final = out / folder_name(seed)
    staging = out / (folder_name(seed) + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, data in files.items():
        (staging / name).write_bytes(data)
    if final.exists():  # a frame folder without its meta.json: unfinished, replaced
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def pending_seeds(out: Path, seeds: list[int]) -> list[int]:
    """The seeds whose folder is not complete yet (resume)."""
    return [s for s in seeds if not (out / folder_name(s) / META_NAME).is_file()]


def run_local(jobs: list[FrameJob], workers: int) -> Iterator[tuple[int, dict]]:
    """(seed, files) as frames finish, over `workers` local processes (1: this process)."""
    if workers <= 1:
        for job in jobs:
            yield job.seed, render_job(job)
        return
    # spawn: the renderer's thread pools do not survive fork
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        todo = iter(jobs)
        running = {}
        for job in todo:
            running[pool.submit(render_job, job)] = job.seed
            if len(running) >= 2 * workers:
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                seed = running.pop(future)
                yield seed, future.result()
                job = next(todo, None)
                if job is not None:
                    running[pool.submit(render_job, job)] = job.seed


def cluster_runner(address: str) -> Callable[[list[FrameJob]], Iterator[tuple[int, dict]]]:
    """A runner over a cluster: ``ray://HOST:PORT`` (or ``ray:auto``) through Ray, anything
    else (``tcp://HOST:PORT``) through a Dask distributed scheduler. Raises ImportError with
    the reason where the library is not installed."""
    if address.startswith("ray:"):
        return lambda jobs: _run_ray(address, jobs)
    return lambda jobs: _run_dask(address, jobs)


def _run_ray(address: str, jobs: list[FrameJob]) -> Iterator[tuple[int, dict]]:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"--cluster {address} needs Ray (pip install ray): {exc}") from None
    ray.init(address="auto" if address == "ray:auto" else address, ignore_reinit_error=True)
    remote = ray.remote(render_job)
    pending = {remote.remote(job): job.seed for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)


def _run_dask(address: str, jobs: list[FrameJob]) -> Iterator[tuple[int, dict]]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError(f"--cluster {address} needs Dask (pip install distributed): {exc}") from None
    with Client(address) as client:
        futures = {client.submit(render_job, job, pure=False): job.seed for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
