"""The README's tables say what the code does: node parameters and CLI commands."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(start: str, end: str) -> str:
    return README[README.index(start):README.index(end)]


def test_parameter_table_lists_every_declared_parameter_with_its_default():
    from lingbot_depth_ros.ros.params import PARAMS

    rows = re.findall(r"^\| `([a-z_.]+)` \| (\w+) \| `([^`]*)` \|",
                      _section("### Parameters (read at start-up)", "### `/diagnostics`"), re.M)
    documented = {name: default for name, _, default in rows}
    assert set(documented) == {p.name for p in PARAMS}
    for p in PARAMS:
        shown = '""' if p.default == "" else str(p.default).lower() if isinstance(p.default, bool) \
            else str(p.default)
        assert documented[p.name] == shown, p.name


def test_command_table_lists_every_subcommand():
    from lingbot_depth_ros.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    table = _section("## Command line: `lingbot-depth`", "## Performance")
    documented = set()
    for cell in re.findall(r"^\| `([^`]+)` \|", table, re.M):
        documented.update(part.strip().split()[-1] if " " in part.strip() else part.strip()
                          for part in cell.split("/"))
    assert set(sub.choices) <= documented | {"bag"}, set(sub.choices) - documented


def test_no_heading_or_paragraph_stands_twice():
    """A merge that applies one side's README change twice leaves copies; say where."""
    headings = re.findall(r"^#+ .*$", README, re.M)
    assert len(headings) == len(set(headings)), sorted({h for h in headings if headings.count(h) > 1})
    paragraphs = [p.strip() for p in README.split("\n\n") if len(p.strip()) > 80]
    repeated = sorted({p[:80] for p in paragraphs if paragraphs.count(p) > 1})
    assert not repeated, repeated
