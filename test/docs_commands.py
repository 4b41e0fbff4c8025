"""Every shell command of README.md and docs/*.md, with the reason where a doc marks it as not
run by the docs test (test/test_docs.py; the convention is in docs/contributing.md).

A shell block is a fenced block opened with ```bash, ```sh, ```shell or ```console. Each of
its command lines (a line ending in a backslash continues on the next; `$ ` prompts of
console blocks are dropped, their output lines skipped) is one `DocCommand`. HTML comments
on the lines right above the opening fence mark commands as not run here:

    <!-- not-run: REASON -->              every command of the block
    <!-- not-run "PREFIX": REASON -->     the block's commands that start with PREFIX
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(\s*)```\s*(\S*)")
CLOSING_FENCE = re.compile(r"^\s*```+\s*$")  # no info string (CommonMark)
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
MARK = re.compile(r'^<!--\s*not-run(?:\s+"(?P<prefix>[^"]+)")?\s*:\s*(?P<reason>.*?)\s*-->\s*$')


@dataclass(frozen=True)
class DocCommand:
    doc: str         # path relative to the repository root
    line: int        # 1-based line of the command's first line in the doc
    text: str        # the command as a shell would read it (continuations kept)
    not_run: str     # the doc's reason for not running it here; "" = run it

    @property
    def id(self) -> str:
        words = self.text.split()
        return f"{self.doc}:{self.line}:{' '.join(words[:3])}"


def doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def collect(path: Path, root: Path) -> list[DocCommand]:
    """The commands of one Markdown file; raises ValueError on a marker that matches nothing
    (a stale marker would otherwise hide a command someone adds later)."""
    lines = path.read_text().split("\n")
    name = str(path.relative_to(root))
    commands: list[DocCommand] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        # every fenced block is skipped whole, so a fence inside another kind is no block
        end = next((j for j in range(i + 1, len(lines)) if CLOSING_FENCE.match(lines[j])),
                   len(lines))
        if fence.group(2) not in SHELL_LANGUAGES:
            i = end + 1
            continue
        marks = _marks_above(lines, i)
        indent = len(fence.group(1))  # a block inside a list item: its lines are indented too
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[:end]]
        block = _block_commands(body, i + 1, end, console=fence.group(2) == "console")
        used = set()
        for line_no, text in block:
            reason = ""
            for key, why in marks:
                if key is None or text.startswith(key):
                    reason, _ = why, used.add(key)
                    break
            commands.append(DocCommand(name, line_no, text, reason))
        stale = [key for key, _ in marks if key not in used]
        if stale:
            raise ValueError(f"{name}:{i + 1}: not-run marker(s) {stale} match no command of the block")
        i = end + 1
    return commands


def _marks_above(lines: list[str], fence: int) -> list[tuple[str | None, str]]:
    """(prefix or None for the whole block, reason) of the marker comments right above."""
    marks = []
    j = fence - 1
    while j >= 0 and lines[j].strip().startswith("<!--"):
        match = MARK.match(lines[j].strip())
        if match is None:
            raise ValueError(f"line {j + 1}: comment above a shell block is not "
                             f"'<!-- not-run[ \"PREFIX\"]: REASON -->': {lines[j].strip()}")
        if not match.group("reason"):
            raise ValueError(f"line {j + 1}: a not-run marker needs its reason")
        marks.append((match.group("prefix"), match.group("reason")))
        j -= 1
    # Prefix markers first, so a block-wide marker does not shadow them.
    return sorted(marks, key=lambda m: m[0] is None)


def _block_commands(lines: list[str], start: int, end: int, console: bool) -> list[tuple[int, str]]:
    commands, pending, first = [], [], 0
    for j in range(start, end):
        text = lines[j]
        if not pending:
            if console:
                if not text.startswith("$ "):
                    continue  # output of the previous command
                text = text[2:]
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            first = j + 1
        pending.append(text)
        if not text.rstrip().endswith("\\"):
            commands.append((first, "\n".join(pending)))
            pending = []
    if pending:
        commands.append((first, "\n".join(pending)))
    return commands


def collect_all(root: Path) -> list[DocCommand]:
    return [c for path in doc_files(root) for c in collect(path, root)]
