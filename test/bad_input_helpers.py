"""The bad-input suites' one check: run the real `lingbot-depth` in a subprocess and assert
exit code 2 (or the documented code), one error line, no traceback, and nothing
finished-looking at the output path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
_LOG_PREFIXES = ("DEBUG ", "INFO ", "WARNING ")


def cli(*argv, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "lingbot_depth_ros.cli", *map(str, argv)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """stderr without the INFO/WARNING log records a command prints while it works."""
    return [line for line in stderr.splitlines() if line and not line.startswith(_LOG_PREFIXES)]


def assert_refused(proc: subprocess.CompletedProcess, *words: str, code: int = 2,
                   nothing_at: Path | None = None) -> str:
    """Exit `code`, exactly one error line naming `words`, no traceback; no output left."""
    lines = error_lines(proc.stderr)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and "error:" in lines[0], lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    if nothing_at is not None:
        assert_nothing_at(nothing_at)
    return lines[0]


def assert_nothing_at(path: Path) -> None:
    path = Path(path)
    assert not path.exists(), f"{path} exists after a failed run"
    partial = path.with_name(path.name + ".partial")
    assert not partial.exists(), f"{partial} left behind"
