"""Checkpoints (official format) and the trainer state that makes `--resume` exact.

Under out_dir: checkpoints/step_NNNNNNN.pt (step 0 = the starting weights, kept), model_final.pt
and trainer_state.pt, each written atomically, the state after its checkpoint."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ModelFileError
from ..model import load_weights, save_checkpoint

STATE_NAME = "trainer_state.pt"
FINAL_NAME = "model_final.pt"


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step_{step:07d}.pt"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Resumed:
    step: int
    checkpoint: Path
    config: dict  #: the configuration the run was saved with


def save_trainer_state(out_dir: Path, step: int, model, optimizer, scheduler,
                       config: dict, keep: int) -> Path:
    """Checkpoint the model at `step`, then the trainer state that points at it."""
    ckpt = checkpoint_path(out_dir, step)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, ckpt)
    state = {"step": step, "checkpoint": ckpt.name, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": rng_state(), "config": config}
    tmp = out_dir / (STATE_NAME + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, out_dir / STATE_NAME)
    prune_checkpoints(out_dir, keep)
    return ckpt


def prune_checkpoints(out_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints; step 0 (the start) always stays."""
    steps = sorted(p for p in (out_dir / "checkpoints").glob("step_*.pt")
                   if p.name != checkpoint_path(out_dir, 0).name)
    for old in steps[:max(0, len(steps) - max(1, keep))]:
        old.unlink()


def load_trainer_state(out_dir: Path, model, optimizer, scheduler) -> Resumed:
    """Restore everything `save_trainer_state` wrote; raise ModelFileError if incomplete."""
    path = out_dir / STATE_NAME
    if not path.is_file():
        raise ModelFileError(f"--resume: no {STATE_NAME} in {out_dir} (nothing to resume)")
    try:
        # Our own file: it holds numpy/python RNG states, which weights_only cannot load.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelFileError(f"--resume: {path} is unreadable: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("checkpoint"), str):
        raise ModelFileError(f"--resume: {path} is not a trainer state written by this package")
    ckpt = out_dir / "checkpoints" / state["checkpoint"]
    if not ckpt.is_file():
        raise ModelFileError(f"--resume: {path} points at {ckpt}, which is missing")
    load_weights(model, ckpt)  # a truncated or mismatched file: one ModelFileError naming it
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return Resumed(step=int(state["step"]), checkpoint=ckpt, config=state.get("config", {}))
