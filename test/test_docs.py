"""Every shell command of README.md and docs/*.md runs as written, or its doc says why not.

Each doc's commands run in order, as a reader types them, in a scratch copy of the clone
(tracked and new files, no build outputs) with the colcon install of this package on PATH as
a sourced workspace has it. A command that stays running (`ros2 run`, `ros2 launch`,
`lingbot_depth_node`) runs beside a driver stand-in (test/driver_standin.py) that publishes
its preset's topics in the driver's default namespace; it must publish completed depth on
`/<that namespace>/depth_completed` and then stop cleanly on SIGINT. The marker convention
for commands that cannot run here is in docs/contributing.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from docs_commands import DocCommand, collect, collect_all

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
COMMANDS = collect_all(ROOT)
#: seconds one command that exits may take (the quick start's demo is the longest)
COMMAND_TIMEOUT_S = 600
#: completed frames a long-running command must publish before it is stopped
FRAMES_WANTED = 3
LONG_RUNNING = re.compile(r"^(ros2 (run|launch)|lingbot_depth_node)\b")
CAMERA_ALIASES = {"realsense": "realsense_d435i", "orbbec": "orbbec_gemini335", "zed": "zed2i"}


def _install_prefix() -> Path | None:
    try:
        from ament_index_python.packages import get_package_prefix

        return Path(get_package_prefix("lingbot_depth_ros"))
    except Exception:  # noqa: BLE001 - no ament index, or the package is not in it
        return None


PREFIX = _install_prefix()


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
            if not earlier.not_run and earlier.line not in self.done:
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


def scratch_clone(dest: Path) -> Path:
    """The clone's tracked and new (not ignored) files, copied to `dest`."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=False)
    if listed.returncode == 0:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:  # an export without .git: everything but build outputs
        skip = {".git", ".venv", ".ws", "out", "__pycache__"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    for name in names:
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def command_env(folder: Path, domain: int) -> dict:
    """The test's environment as a sourced workspace has it: the package's bin/ on PATH; run.sh
    in the scratch clone reuses this venv and this build (its own workspace folder, linked)."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", LINGBOT_VENV=sys.prefix)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if PREFIX is not None:
        env["PATH"] = f"{PREFIX / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        ws = PREFIX.parents[1]  # <ws>/install/lingbot_depth_ros
        scratch_ws = folder.parent / f"{folder.name}.ws"
        if not scratch_ws.exists() and (ws / ".lingbot-build").exists():
            scratch_ws.mkdir()
            shutil.copy2(ws / ".lingbot-build", scratch_ws / ".lingbot-build")
            # a link: run.sh replaces (never empties) it if the build stamp ever differs
            (scratch_ws / "install").symlink_to(ws / "install")
        env["LINGBOT_WS"] = str(scratch_ws)
    return env


def run_command(command: DocCommand, folder: Path, env: dict) -> None:
    """Raises AssertionError naming the doc line when the command fails."""
    where = f"{command.doc}:{command.line}: `{command.text}`"
    if LONG_RUNNING.match(command.text):
        _run_beside_driver(command, folder, env, where)
        return
    try:
        done = subprocess.run(["bash", "-c", f"set -eo pipefail\n{command.text}"], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{where} ran past {COMMAND_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise AssertionError(f"{where} exited {done.returncode}:\n{_tail(done.stdout + done.stderr)}")


def driver_for(text: str) -> tuple[str, str]:
    """(preset, namespace) of the driver a node command expects: the preset from its params
    file or camera:= argument, the namespace the driver publishes in by default."""
    from driver_topics import DRIVERS

    found = re.search(r"config/(\w+)\.yaml", text) or re.search(r"\bcamera:=(\w+)", text)
    if found is None:
        raise AssertionError("names no preset (config/<preset>.yaml or camera:=); mark it not-run "
                             "or give it one")
    preset = CAMERA_ALIASES.get(found.group(1), found.group(1))
    if preset not in DRIVERS:
        raise AssertionError(f"no driver stand-in for preset '{preset}'")
    return preset, DRIVERS[preset].namespace


def _run_beside_driver(command: DocCommand, folder: Path, env: dict, where: str) -> None:
    try:
        preset, namespace = driver_for(command.text)
    except AssertionError as exc:
        raise AssertionError(f"{where} {exc}") from None
    outputs = f"/{namespace}/depth_completed"
    driver = subprocess.Popen([sys.executable, str(HERE / "driver_standin.py"), env["ROS_DOMAIN_ID"],
                               preset, namespace, "10"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    node = subprocess.Popen(["bash", "-c", f"exec {command.text}"], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(node.stdout), daemon=True)
    reader.start()
    try:
        received = _count_outputs(outputs, int(env["ROS_DOMAIN_ID"]), node, timeout_s=90.0)
        if received < FRAMES_WANTED:
            raise AssertionError(
                f"{where} completed {received} frames on {outputs} from a {preset} driver "
                f"stand-in in /{namespace} (wanted {FRAMES_WANTED}); exit "
                f"{node.poll()}:\n{_tail(''.join(lines))}")
        os.killpg(node.pid, signal.SIGINT)  # Ctrl-C in its terminal
        try:
            rc = node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{where} did not stop within 30 s of SIGINT") from None
        reader.join(timeout=5)
        if rc != 0:
            raise AssertionError(f"{where} exited {rc} on SIGINT:\n{_tail(''.join(lines))}")
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        driver.send_signal(signal.SIGINT)
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()


def _count_outputs(topic: str, domain: int, node: subprocess.Popen, timeout_s: float) -> int:
    """Completed depth images received on `topic` until FRAMES_WANTED came, the node exited
    or `timeout_s` passed."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    received = []
    try:
        listener = rclpy.create_node("docs_listener", context=context)
        listener.create_subscription(Image, topic, received.append,
                                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(listener)
        deadline = time.monotonic() + timeout_s
        while len(received) < FRAMES_WANTED and node.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.2)
        executor.shutdown()
        listener.destroy_node()
    finally:
        context.try_shutdown()
    return len(received)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


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


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command_runs_as_written(command: DocCommand, doc_runs, tmp_path_factory):
    if command.not_run:
        pytest.skip(f"marked not-run: {command.not_run}")
    if PREFIX is None:
        pytest.skip("lingbot_depth_ros is not in the ament index (colcon build: ./run.sh does it)")
    run, env = _doc_run(doc_runs, command.doc, tmp_path_factory)
    run.run_through(command, env)


def test_every_shell_block_of_the_docs_is_collected():
    """Nothing escapes the collector: every fence opening a shell block yields its commands."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        blocks = len(re.findall(r"^```(bash|sh|shell|console)\s*$", text, re.M))
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
                   'nvidia-smi -L\n```\n\n```console\n$ echo hi\nhi\n```\n')
    got = [(c.line, c.text, c.not_run) for c in collect(doc, tmp_path)]
    assert got == [(3, "ls -d . \\\n  /", ""), (5, "nvidia-smi -L", "needs a GPU"),
                   (9, "echo hi", "")]


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
