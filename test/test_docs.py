"""Every shell command of README.md and docs/*.md runs as written, or its doc says why not.

Each doc's commands run in order, as a reader types them, in one scratch copy of the clone,
with the colcon install of this package on PATH as a sourced workspace has it
(test/docs_runner.py says how each kind of command is run and judged). The marker convention
for commands that cannot run here is in docs/contributing.md.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from docs_commands import DocCommand, collect, collect_all
from docs_runner import PREFIX, ROOT, command_env, run_command, scratch_clone

COMMANDS = collect_all(ROOT)


class DocRun:
    """One doc's scratch clone and which of its commands ran there."""

    def __init__(self, doc: str, folder: Path) -> None:
        self.doc, self.folder = doc, folder
        self.done: dict[int, str] = {}  # line -> "" (passed) or the failure

    def run_through(self, command: DocCommand, env: dict) -> None:
        """Run the doc's runnable commands before `command` that did not run yet, then it."""
        for earlier in doc_commands(self.doc):
            if earlier.line >= command.line:
                break
            if not earlier.not_run and not needs_missing_ros2(earlier) and earlier.line not in self.done:
                self.done[earlier.line] = _outcome(earlier, self.folder, env)
        failure = _outcome(command, self.folder, env)
        self.done[command.line] = failure
        if failure:
            pytest.fail(failure, pytrace=False)


def doc_commands(doc: str) -> list[DocCommand]:
    return [c for c in COMMANDS if c.doc == doc]


def _outcome(command: DocCommand, folder: Path, env: dict) -> str:
    try:
        run_command(command, folder, env)
    except AssertionError as exc:
        return str(exc)
    return ""


@pytest.fixture(scope="module")
def doc_runs(tmp_path_factory) -> dict[str, DocRun]:
    return {}


def _doc_run(doc_runs: dict, doc: str, tmp_path_factory) -> tuple[DocRun, dict]:
    if doc not in doc_runs:
        folder = scratch_clone(tmp_path_factory.mktemp(Path(doc).stem.replace(".", "_")) / "clone")
        doc_runs[doc] = DocRun(doc, folder)
    run = doc_runs[doc]
    from node_harness import domain_id

    return run, command_env(run.folder, domain_id(__name__))


#: a command line that calls the ros2 command line (ros2 run/launch/pkg ...)
_CALLS_ROS2 = re.compile(r"(^|[\s;&|(])ros2\s")


def needs_missing_ros2(command: DocCommand) -> bool:
    """The command calls `ros2`, which this environment lacks (no ROS install, and a clone
    without ../shared/ros2-upstream, which run.sh installs ros2cli and ros2launch from)."""
    return bool(_CALLS_ROS2.search(command.text)) and shutil.which("ros2") is None


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command_runs_as_written(command: DocCommand, doc_runs, tmp_path_factory):
    if command.not_run:
        pytest.skip(f"marked not-run: {command.not_run}")
    if PREFIX is None:
        pytest.skip("lingbot_depth_ros is not in the ament index (colcon build: ./run.sh does it)")
    if needs_missing_ros2(command):
        pytest.skip("needs the ros2 command line: a ROS install, or ../shared/ros2-upstream "
                    "beside the clone (run.sh installs ros2cli and ros2launch from it)")
    run, env = _doc_run(doc_runs, command.doc, tmp_path_factory)
    run.run_through(command, env)


def test_every_shell_block_of_the_docs_is_collected():
    """Nothing escapes the collector: every fence opening a shell block yields its commands."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        blocks = len(re.findall(r"^\s*```(bash|sh|shell|console)\s*$", text, re.M))
        commands = [c for c in COMMANDS if c.doc == str(path.relative_to(ROOT))]
        assert blocks == 0 or commands, path
        assert all(c.text.strip() for c in commands)


def test_markers_need_a_reason_and_a_command(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text('<!-- not-run "nvidia-smi": needs a GPU -->\n```bash\nls\n```\n')
    with pytest.raises(ValueError, match="match no command"):
        collect(doc, tmp_path)
    doc.write_text("<!-- not-run: -->\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match="needs its reason"):
        collect(doc, tmp_path)
    doc.write_text('<!-- not-run "nvidia-smi": needs a GPU -->\n```sh\nls -d . \\\n  /\n'
                   'nvidia-smi -L\n```\n\n```console\n$ echo hi\nhi\n```\n'
                   '```text\n```bash\n```\n- item\n\n  ```bash\n  pwd\n  ```\n')
    got = [(c.line, c.text, c.not_run) for c in collect(doc, tmp_path)]
    assert got == [(3, "ls -d . \\\n  /", ""), (5, "nvidia-smi -L", "needs a GPU"),
                   (9, "echo hi", ""), (18, "pwd", "")]


def test_a_broken_readme_command_fails(tmp_path):
    """Break one README command in a copy: the collector still finds it, unmarked, and the
    runner fails it, naming the doc line."""
    if PREFIX is None:
        pytest.skip("lingbot_depth_ros is not in the ament index (colcon build: ./run.sh does it)")
    clone = scratch_clone(tmp_path / "clone")
    readme = clone / "README.md"
    good = "lingbot-depth complete --rgb examples/3/rgb.jpg"
    assert good in readme.read_text()
    readme.write_text(readme.read_text().replace(good, good.replace("rgb.jpg", "rgb_missing.jpg")))
    broken = [c for c in collect(readme, clone) if "rgb_missing.jpg" in c.text]
    assert broken and not broken[0].not_run
    from node_harness import domain_id

    with pytest.raises(AssertionError, match=r"(?s)README.md:\d+: .* exited 2"):
        run_command(broken[0], clone, command_env(clone, domain_id(__name__)))


def test_ros2_run_in_the_root_namespace_completes_nothing(tmp_path):
    """The README's former line: the presets' topics are relative to the driver's namespace,
    so without `-r __ns:=/zed` the node listens on /zed_node/... and the stand-in's frames
    (in /zed) never arrive; the runner says so."""
    if PREFIX is None:
        pytest.skip("lingbot_depth_ros is not in the ament index (colcon build: ./run.sh does it)")
    from docs_runner import run_beside_driver
    from node_harness import domain_id

    clone = scratch_clone(tmp_path / "clone")
    command = DocCommand("README.md", 0, "ros2 run lingbot_depth_ros lingbot_depth_node "
                                         "--ros-args --params-file config/zed2i.yaml", "")
    with pytest.raises(AssertionError, match="completed 0 frames on /zed/depth_completed"):
        run_beside_driver(command, clone, command_env(clone, domain_id(__name__)), "root ns",
                          timeout_s=15.0)


@pytest.mark.parametrize("value", ["$(false)/x.xml", "/no/such/profile.xml"])
def test_an_export_that_cannot_work_fails(tmp_path, value):
    """`export X=$(cmd)` exits 0 in bash when cmd fails; the runner does not let it pass."""
    command = DocCommand("docs/x.md", 1, f"export FASTDDS_DEFAULT_PROFILES_FILE={value}", "")
    with pytest.raises(AssertionError, match="exited 1"):
        run_command(command, tmp_path, dict(os.environ))


def test_a_doc_line_cannot_install_into_the_suites_venv_or_write_to_home(tmp_path):
    """A doc's install line (unmarked) fails instead of changing the venv the suite runs in,
    and `~` is a scratch folder: nothing outside the scratch area changes."""
    from node_harness import domain_id

    clone = tmp_path / "clone"
    clone.mkdir()
    env = command_env(clone, domain_id(__name__))
    assert Path(env["HOME"]).parent == tmp_path
    before = sorted(p.name for p in Path(sys.prefix, "lib").glob("python*/site-packages/*"))
    command = DocCommand("docs/x.md", 1, "pip install six==1.16.0 --target ~/t && touch ~/made", "")
    with pytest.raises(AssertionError, match="exited 1"):
        run_command(command, clone, env)
    run_command(DocCommand("docs/x.md", 2, "touch ~/made", ""), clone, env)
    assert (Path(env["HOME"]) / "made").exists()
    assert sorted(p.name for p in Path(sys.prefix, "lib").glob("python*/site-packages/*")) == before
