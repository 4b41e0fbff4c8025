"""Distributed training: 2 processes, gloo on CPU, as torchrun would start them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from lingbot_depth_ros.model import load_checkpoint
from lingbot_depth_ros.train.loop import train
from test_train_loop import tiny_cfg

WORLD = 2
STEPS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, cfg, port: int, out: Path) -> None:
    # The environment torchrun gives each process.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    outcome = train(cfg)
    torch.save({"state": outcome.model.state_dict(), "losses": outcome.losses,
                "final": str(outcome.final_checkpoint)}, out / f"rank{rank}.pt")


def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    cfg = tiny_cfg(tmp_path / "run", steps=STEPS, batch_size=1, save_every=100)
    mp.spawn(_rank_main, args=(cfg, free_port(), tmp_path), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    start = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000000.pt").state_dict()
    moved = [k for k in start if not torch.equal(start[k], r0["state"][k])]
    assert moved, "training did not change the weights"
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in start), "ranks diverged"
    # Rank 0 alone writes the checkpoint; it holds the shared weights.
    assert r0["final"].endswith("model_final.pt") and r1["final"] == "None"
    final = load_checkpoint(r0["final"]).state_dict()
    assert all(torch.equal(final[k], r0["state"][k]) for k in start)
    # Both ranks log the same (all-reduced) loss although each saw different samples.
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == STEPS
