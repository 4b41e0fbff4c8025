"""Held-out evaluation on the block-wise protocol, and the before/after training report
(identical corrupted inputs before and after; docs/training.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..core.errors import LingbotDepthError
from ..core.frame import RGBDFrame
from ..core.metrics import HIGHER_IS_BETTER, mean_metrics
from ..core.protocol import capture_seed, corrupt_depth, score_completion
from ..engines.base import Engine
from ..engines.registry import create_engine
from .config import TrainConfig
from .data import FrameRef, Split
from .logs import CsvLog

log = logging.getLogger(__name__)
#: metrics in the CSV log and the Markdown table (all on the dropped pixels)
HEADLINE = ("rmse", "mae", "abs_rel", "delta1")


def evaluate(engine: Engine, frames: list[FrameRef], cfg: TrainConfig) -> dict:
    """{level: {"masked": metrics, "all": metrics, "failed": n}} averaged over frames x seeds."""
    loaded = [(ref, ref.load(cfg.data)) for ref in frames]
    results = {}
    for level in cfg.eval.levels:
        scores, failed = [], 0
        for ref, frame in loaded:
            for seed in cfg.eval.seeds:
                corrupted = corrupt_depth(frame.depth, level, capture_seed(seed, ref.key))
                try:
                    done = engine.complete(RGBDFrame(frame.rgb, corrupted.depth, frame.K,
                                                     frame_id=frame.frame_id))
                except LingbotDepthError as exc:  # e.g. nothing valid left: counted, not fatal
                    log.warning("%s %s seed %d: %s", ref.key, level, seed, exc)
                    failed += 1
                    continue
                scores.append(score_completion(done.depth, frame.depth, corrupted.dropped))
        results[level] = {"masked": mean_metrics([s["masked"] for s in scores]),
                          "all": mean_metrics([s["all"] for s in scores]), "failed": failed}
    return results


def flatten(results: dict) -> dict[str, float]:
    """{level}_{metric} of the masked-pixel headline metrics, plus their mean over levels."""
    flat = {f"{lvl}_{m}": r["masked"].get(m, float("nan")) for lvl, r in results.items() for m in HEADLINE}
    for m in HEADLINE:
        values = [r["masked"].get(m, float("nan")) for r in results.values()]
        flat[f"mean_{m}"] = sum(values) / len(values) if values else float("nan")
    return flat


class HeldoutEvaluator:
    """Runs `evaluate` on checkpoints of one run; rank 0 only."""

    def __init__(self, cfg: TrainConfig, frames: list[FrameRef], device: torch.device,
                 resume_step: int | None = None) -> None:
        # the protocol runs on real frames (synthetic ones where there are none); held-out
        # synthetic frames get the per-material evaluation against their ground truth
        self.synthetic, self.heldout = [f for f in frames if f.synthetic], frames
        self.cfg, self.frames = cfg, [f for f in frames if not f.synthetic] or frames
        self._start: Path | None = None
        self.device = "cuda" if device.type == "cuda" else "cpu"
        self.dir = Path(cfg.out_dir) / "report"
        self.dir.mkdir(parents=True, exist_ok=True)
        columns = ["step", *flatten({lvl: {"masked": {}} for lvl in cfg.eval.levels})]
        self.log = CsvLog(self.dir.parent / "eval_log.csv", columns, resume_step)

    def model_engine(self, checkpoint: Path) -> Engine:
        options = {"device": self.device, **self.cfg.eval.engine_options}
        return create_engine("torch", **options, checkpoint=str(checkpoint))

    def _cached(self, name: str, compute) -> tuple[dict, bool]:
        """Results kept in report/<name>.json, so a resumed run does not recompute them;
        returns (results, whether they were computed now)."""
        path = self.dir / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text()), False
        results = compute()
        path.write_text(json.dumps(results, indent=1))
        return results, True

    def before(self, start_checkpoint: Path) -> dict:
        self._start = start_checkpoint
        results, fresh = self._cached("before", lambda: self._run(start_checkpoint))
        if fresh:
            self.log.write({"step": 0, **flatten(results)})
        return results

    def during(self, step: int, checkpoint: Path) -> dict[str, float]:
        flat = flatten(self._run(checkpoint))
        self.log.write({"step": step, **flat})
        return flat

    def _run(self, checkpoint: Path) -> dict:
        with self.model_engine(checkpoint) as engine:
            return evaluate(engine, self.frames, self.cfg)

    def materials(self, final: Path) -> dict:
        """Per-material masked RMSE on the held-out synthetic frames: before, after, baselines."""
        from .synthetic import material_rmse

        out = {}
        for name, checkpoint in (("before", self._start), ("after", final)):
            if checkpoint is not None:
                with self.model_engine(checkpoint) as engine:
                    out[name] = material_rmse(engine, self.synthetic, self.cfg.data)
        for name in self.cfg.eval.baselines:
            out[name] = material_rmse(create_engine(name), self.synthetic, self.cfg.data)
        return out

    def baselines(self) -> dict:
        return {name: self._cached(f"baseline_{name}",
                                   lambda n=name: evaluate(create_engine(n), self.frames, self.cfg))[0]
                for name in self.cfg.eval.baselines}

    def after(self, final: Path, before: dict, step: int, split: Split) -> dict:
        after = self._run(final)
        self.log.write({"step": step, **flatten(after)})
        report = {
            "steps": step, "final_checkpoint": str(final),
            "start": self.cfg.model.checkpoint or f"random init of model.config={self.cfg.model.config!r}",
            "heldout_frames": [f.key for f in self.heldout],
            "train_frames": [f.key for frames in split.train for f in frames],
            "levels": list(self.cfg.eval.levels), "seeds": list(self.cfg.eval.seeds),
            "before": before, "after": after, "baselines": self.baselines(),
            "summary": {"before": flatten(before), "after": flatten(after)},
        }
        if self.synthetic:
            report["materials"] = self.materials(final)
        (self.dir / "report.json").write_text(json.dumps(report, indent=1))
        (self.dir / "report.md").write_text(markdown(report))
        log.info("held-out mean masked RMSE: before %.4f m, after %.4f m",
                 report["summary"]["before"]["mean_rmse"], report["summary"]["after"]["mean_rmse"])
        return report


def markdown(report: dict) -> str:
    """Side-by-side table: per level and metric, before, after, change, baselines."""
    base = report["baselines"]
    head = ["level", "metric", "before", "after", "change", *base]
    lines = [f"# Fine-tuning report ({report['steps']} steps)", "",
             f"Start: {report['start']}", "",
             f"Held-out frames: {', '.join(report['heldout_frames'])}; block-wise protocol "
             f"(core/protocol.py), seeds {report['seeds']}; metrics on the dropped pixels.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in report["levels"]:
        for metric in HEADLINE:
            b = report["before"][level]["masked"][metric]
            a = report["after"][level]["masked"][metric]
            better = (a > b) if metric in HIGHER_IS_BETTER else (a < b)
            cells = [level, metric, f"{b:.4f}", f"{a:.4f}",
                     f"{a - b:+.4f} {'better' if better else 'worse' if a != b else 'same'}",
                     *(f"{base[n][level]['masked'][metric]:.4f}" for n in base)]
            lines.append("| " + " | ".join(cells) + " |")
    if "materials" in report:
        from .synthetic import materials_markdown
        lines += materials_markdown(report["materials"])
    return "\n".join(lines) + "\n"
