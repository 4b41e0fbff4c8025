"""Training logs: train_log.csv and eval_log.csv (always) and TensorBoard (when installed);
on resume, rows past the resumed step are dropped first."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class CsvLog:
    """Append rows of a fixed set of columns; the header is written once."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None) -> None:
        self.path, self.columns = path, columns
        if resume_step is None or not path.is_file():
            path.write_text(",".join(columns) + "\n")
        else:
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


class Board:
    """TensorBoard scalars, or nothing (one warning) when tensorboard is not installed."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed: logging to CSV only "
                        "(pip install tensorboard to get TensorBoard event files)")
            self.writer = None
            return
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def scalars(self, step: int, values: dict, prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{prefix}{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
