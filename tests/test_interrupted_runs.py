"""Interrupted, starved and concurrent runs: the evidence pack on disk is always one run's whole pack.

Each run here is a real `pytest` process on a throwaway project: Ctrl-C (a real SIGINT from
outside), a SIGKILLed xdist worker, a full disk and a read-only folder (a small tmpfs and a
read-only bind mount, in a private mount namespace made with `unshare`), and two runs writing
the same evidence folder at the same moment.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_plugin import PACK, edit_json, make_project, snapshot

from workshop.evidence import PACK_FILES, spreadsheet_safe

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]

# Pauses the run inside one evaluation until the test acts: the paused process writes its pid
# (a worker's own, under xdist) to a marker file named after the cell.
PAUSE_AT = """
import os
import time
from pathlib import Path

PAUSE = {pause!r}


def pytest_runtest_call(item):
    if item.name == "test_prompt_version[" + PAUSE + "]":
        Path("paused-" + PAUSE).write_text(str(os.getpid()))
        time.sleep(60)
"""


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PYTEST, *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {path.name}:\n{process.communicate()[0]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {path.name}")
        time.sleep(0.02)
    time.sleep(0.05)  # the pid is written before the sleep starts
    return path.read_text()


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def pack_files(root: Path) -> dict[str, bytes]:
    return snapshot(root / PACK)


def assert_one_whole_pack(files: dict[str, bytes]) -> dict[str, Any]:
    """Every file of the pack tells the same story: one run's, complete or marked INCOMPLETE."""
    assert set(files) == PACK_FILES
    data = json.loads(files["summary.json"])
    cells = data["cells"]
    rows = list(csv.reader(io.StringIO(files["prompt_eval.csv"].decode("utf-8"), newline="")))
    assert rows[1:] == [
        [c["prompt_version"], c["case_id"], str(c["passed"]), c["reason"], spreadsheet_safe(c["raw_output"])]
        for c in cells
    ], "prompt_eval.csv and summary.json come from the same run"
    failure_items = [line for line in files["failure_cases.md"].decode("utf-8").split("\n## ")[0].splitlines()]
    assert len([line for line in failure_items if line.startswith("- ")]) == sum(not c["passed"] for c in cells)
    readme = files["README.md"].decode("utf-8")
    assert ("INCOMPLETE" in readme) == (not data["complete"])
    versions = {c["prompt_version"] for c in cells}
    assert {v["version"] for v in data["versions"]} == versions
    json.loads(files["token_trace.json"])
    json.loads(files["route_decisions.json"])
    return data


def no_leftovers(root: Path) -> None:
    assert sorted(p.name for p in (root / "reports").iterdir() if p.name.startswith(".evidence.")) in (
        [],
        [".evidence.lock"],
    ), "no staging or retired folders"


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A seed project with a complete pack from a first run."""
    root = make_project(pytester)
    done = subprocess.run(PYTEST, cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout
    assert assert_one_whole_pack(pack_files(root))["complete"] is True
    return root


# --------------------------------------------------------------------------- Ctrl-C and a killed worker


def test_sigint_mid_run_leaves_a_whole_pack_marked_incomplete(project: Path) -> None:
    (project / "conftest.py").write_text(PAUSE_AT.format(pause="v2_json_contract-case_2"))
    process = start(project)
    wait_for(project / "paused-v2_json_contract-case_2", process)
    os.kill(process.pid, signal.SIGINT)
    code, output = finish(process)
    assert code == pytest.ExitCode.INTERRUPTED, output
    data = assert_one_whole_pack(pack_files(project))
    assert data["complete"] is False
    assert [(c["prompt_version"], c["case_id"]) for c in data["cells"]] == [
        ("v1_goal_only", "case_1"),
        ("v1_goal_only", "case_2"),
        ("v1_goal_only", "case_3"),
        ("v2_json_contract", "case_1"),
    ]
    assert "INCOMPLETE" in output
    no_leftovers(project)


def test_sigkill_of_an_xdist_worker_leaves_a_whole_pack_marked_incomplete(project: Path) -> None:
    (project / "conftest.py").write_text(PAUSE_AT.format(pause="v3_json_with_boundary-case_1"))
    process = start(project, "-n", "2")
    worker = int(wait_for(project / "paused-v3_json_with_boundary-case_1", process))
    assert worker != process.pid
    os.kill(worker, signal.SIGKILL)
    code, output = finish(process)
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert re.search(r"worker \S+ crashed", output)
    data = assert_one_whole_pack(pack_files(project))
    assert data["complete"] is False
    assert data["missing"] == ["v3_json_with_boundary-case_1"]
    assert len(data["cells"]) == 8
    no_leftovers(project)


# --------------------------------------------------------------------------- no space, no write access


def _can_unshare() -> bool:
    try:
        done = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


needs_mount_namespace = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare -Urm` (a private mount namespace) to mount a tmpfs or a read-only bind"
)


def run_in_mount_namespace(root: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (a shell command; ``{pytest}`` in it runs pytest with ``args``) in a private
    mount namespace, so the mounts it makes vanish with it."""
    pytest_command = " ".join(map(shlex.quote, [*PYTEST, *args]))
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script.replace("{pytest}", pytest_command)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def many_cases(data: dict[str, Any]) -> None:
    """200 more cases: a pack too big for what is left of a 128 KiB disk."""
    data["cases"] += [
        {
            "id": f"bulk_{n}",
            "user_input": f"Teach me step {n} of attention, with an example, in plain words please.",
            "expected_intent": "learning_plan",
            "expected_route": "Prompt first",
        }
        for n in range(200)
    ]


@needs_mount_namespace
def test_a_full_disk_leaves_the_previous_pack_byte_for_byte(project: Path) -> None:
    before = pack_files(project)
    everything_before = snapshot(project / "reports")
    edit_json(project / "cases" / "cases.json", many_cases)
    # reports/ on a 128 KiB tmpfs holding the previous pack: the new pack does not fit beside it.
    # The tmpfs goes with the namespace, so what the run left on it is copied out to after/.
    script = (
        "mkdir disk && mount -t tmpfs -o size=128k tmpfs disk && cp -a reports/. disk/ && "
        "mount --bind disk reports && {pytest}; code=$?; cp -a disk after; exit $code"
    )
    done = run_in_mount_namespace(project, script, "--no-baseline", "-p", "no:html")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "Evidence pack NOT written: cannot write the evidence pack to" in done.stdout
    assert "No space left on device" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert snapshot(project / "after" / "evidence") == before
    assert snapshot(project / "after") == everything_before, "the history too: the disk holds what it held"
    assert not [p.name for p in (project / "after").iterdir() if ".new-" in p.name or ".old-" in p.name]


@needs_mount_namespace
def test_a_read_only_evidence_folder_is_a_clear_error_and_keeps_the_previous_pack(project: Path) -> None:
    before = snapshot(project / "reports")
    script = "mount --bind reports reports && mount -o remount,ro,bind reports && {pytest}"
    done = run_in_mount_namespace(project, script, "-p", "no:html")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "Evidence pack NOT written: cannot write the evidence pack to" in done.stdout
    assert "Read-only file system" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert snapshot(project / "reports") == before


# --------------------------------------------------------------------------- two runs, one folder

# Holds each run just before it writes its pack until both runs are there, so they write at once.
MEET_BEFORE_WRITING = """
import os
import time
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    Path(f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(Path().glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
"""


def test_two_runs_writing_one_evidence_folder_leave_one_runs_whole_pack(project: Path) -> None:
    # what each run writes when it runs alone
    alone = {}
    for keyword in ("v1", "v3"):
        done = subprocess.run([*PYTEST, "-k", keyword], cwd=project, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout
        alone[keyword] = pack_files(project)

    (project / "conftest.py").write_text(MEET_BEFORE_WRITING)
    for round_ in range(2):
        for ready in project.glob("ready-*"):
            ready.unlink()
        runs = [start(project, "-k", keyword) for keyword in ("v1", "v3")]
        results = [finish(process) for process in runs]
        assert [code for code, _ in results] == [0, 0], results
        assert all("Evidence pack: reports/evidence" in output for _, output in results), "both wrote a pack"
        files = pack_files(project)
        assert_one_whole_pack(files)
        keyword = json.loads(files["summary.json"])["selection"]["keyword"]
        without_run = {name: content for name, content in files.items() if name != "summary.json"}
        assert without_run == {n: c for n, c in alone[keyword].items() if n != "summary.json"}, round_
        no_leftovers(project)
