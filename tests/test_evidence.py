"""The evidence pack: the seed's files byte for byte, written atomically."""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from hypothesis import example, given
from hypothesis import strategies as st

from workshop.errors import EvidenceError
from workshop.evaluation import EvalResult, Trial, best_version, evaluate_all, score_versions
from workshop.evidence import (
    FORMULA_TRIGGERS,
    PACK_FILES,
    ReadmeInfo,
    lock_path,
    render_pack,
    spreadsheet_safe,
    write_pack,
)
from workshop.fake_model import FakeModel
from workshop.fixtures import IDENTIFIER_PATTERN, load_fixtures
from workshop.model import Completion
from workshop.payload import Payload
from workshop.routes import decide_routes
from workshop.tokens import trace_text

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
FIXTURES = load_fixtures(ROOT / "cases" / "cases.json", ROOT / "cases" / "prompt_versions.json")
GOLDEN_FILES = ("token_trace.json", "prompt_eval.csv", "route_decisions.json", "failure_cases.md")
SEED_ORDER = [*GOLDEN_FILES, "README.md"]


def seed_pack(run_command: str = "python -m workshop", results: list[EvalResult] | None = None) -> dict[str, bytes]:
    traces = [trace_text(case.id, case.user_input) for case in FIXTURES.cases]
    if results is None:
        results = evaluate_all(FIXTURES, FakeModel(FIXTURES.fake_model, FIXTURES.versions), environ={})
    scores = score_versions(results, [v.name for v in FIXTURES.versions])
    decisions = decide_routes(FIXTURES.cases, FIXTURES.routes)
    return render_pack(traces, results, decisions, ReadmeInfo(run_command), best_version(scores))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def leftovers(parent: Path, name: str) -> list[str]:
    """Staging or retired folders beside the pack (the lock file stays, as lock files do)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.") and p != lock_path(parent / name))


PAYLOAD = Payload("m", "input", 1, 0.0, "v", "instructions")


def result(version: str, case: str, passed: bool, reason: str, raw: str) -> EvalResult:
    trial = Trial(passed, reason, Completion(raw))
    return EvalResult(version, case, passed, reason, "learning_plan", PAYLOAD, (trial,))


# --- the seed's files --------------------------------------------------------


def test_pack_files_are_in_the_seeds_order():
    assert list(seed_pack()) == SEED_ORDER


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_rendered_files_are_byte_identical_to_the_seeds(name):
    assert seed_pack()[name] == (GOLDEN / name).read_bytes()


def test_written_pack_is_byte_identical_to_the_seeds(tmp_path):
    target = tmp_path / "ch07_workshop_evidence"
    paths = write_pack(target, seed_pack())
    assert paths == [target / name for name in SEED_ORDER]
    for name in GOLDEN_FILES:
        assert (target / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    assert sorted(p.name for p in target.iterdir()) == sorted(SEED_ORDER)


def test_csv_rows_end_with_crlf_like_the_seeds_dictwriter():
    content = seed_pack()["prompt_eval.csv"]
    assert content.startswith(b"prompt_version,case_id,passed,reason,raw_output\r\n")
    assert content.count(b"\r\n") == 10


def test_readme_names_the_run_command_and_the_best_version():
    readme = seed_pack()["README.md"].decode("utf-8")
    assert "Run command: `python -m workshop`" in readme
    assert "Best prompt version: v3_json_with_boundary (3/3 passed)" in readme
    assert readme.startswith("# Chapter 7 LLM Workshop Evidence\n\n")
    assert "Review `failure_cases.md`" in readme


def test_readme_best_version_is_computed_from_the_results():
    results = evaluate_all(FIXTURES, FakeModel(FIXTURES.fake_model, FIXTURES.versions), environ={})
    only_v1_v2 = [r for r in results if r.prompt_version != "v3_json_with_boundary"]
    readme = seed_pack(results=only_v1_v2)["README.md"].decode("utf-8")
    assert "Best prompt version: v2_json_contract (2/3 passed)" in readme
    readme = seed_pack(results=[])["README.md"].decode("utf-8")
    assert "Best prompt version: none" in readme


def test_readme_notes_follow_the_best_version_line():
    traces, routes = [], []
    files = render_pack(traces, [], routes, ReadmeInfo("pytest", notes=("Selection: all.", "Complete.")), None)
    readme = files["README.md"].decode("utf-8")
    assert readme.index("Best prompt version") < readme.index("Selection: all.\n\nComplete.") < readme.index("Review")


def test_lone_surrogates_in_outputs_are_kept_visible_not_a_crash():
    files = render_pack([], [result("v", "c", False, "bad_intent: \ud800", "\udcff")], [], ReadmeInfo("x"), None)
    assert "\\udcff" in files["prompt_eval.csv"].decode("utf-8")
    assert "- v / c: bad_intent: \\ud800\n" in files["failure_cases.md"].decode("utf-8")


# --- hypothesis: the CSV and the Markdown hold any text -----------------------

IDS = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
RESULTS = st.lists(st.builds(result, IDS, IDS, st.booleans(), st.text(), st.text()), max_size=6)


@given(RESULTS)
@example([result("v", "c", False, 'a,"b"\r\n- c\rd\n', 'line 1\nline 2\r\n\x00 ,""')])
def test_csv_parses_back_to_the_same_rows(results):
    content = render_pack([], results, [], ReadmeInfo("x"), None)["prompt_eval.csv"]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    safe = spreadsheet_safe
    assert rows == [
        ["prompt_version", "case_id", "passed", "reason", "raw_output"],
        *(
            [safe(r.prompt_version), safe(r.case_id), str(r.passed), safe(r.reason), safe(r.raw_output)]
            for r in results
        ),
    ]
    assert not any(cell.startswith(FORMULA_TRIGGERS) for row in rows for cell in row), "no cell is a formula"


@given(st.text())
@example('=HYPERLINK("http://x","y")')
@example("'=already quoted")
def test_spreadsheet_safe_changes_only_cells_a_spreadsheet_would_run(text):
    safe = spreadsheet_safe(text)
    if text[:1] in FORMULA_TRIGGERS:
        assert safe == "'" + text
    else:
        assert safe == text, "text that is not a formula is kept exactly"


@pytest.mark.parametrize(
    "output",
    ["=1+1", "+SUM(A1)", "-2+3", "@SUM(1)", "\tx", "\rx", "=cmd|' /C calc'!A0", '=HYPERLINK("http://x","y")'],
)
def test_formula_outputs_are_neutralised_in_the_csv(output):
    content = render_pack([], [result("v", "c", False, "bad: " + output, output)], [], ReadmeInfo("x"), None)
    rows = list(csv.reader(io.StringIO(content["prompt_eval.csv"].decode("utf-8"), newline="")))
    assert rows[1] == ["v", "c", "False", "bad: " + output, "'" + output]


@given(RESULTS)
@example([result("v2", "case_3", False, "bad_intent: a\n- v3 / case_9: ok", "{}")])
def test_failure_cases_has_one_list_item_line_per_failure(results):
    text = render_pack([], results, [], ReadmeInfo("x"), None)["failure_cases.md"].decode("utf-8")
    lines = re.split(r"\r\n|\r|\n", text)  # CommonMark line endings
    failures = [r for r in results if not r.passed]
    assert lines[:2] == ["# Failure Cases", ""]
    assert lines[-1] == ""
    items = lines[2:-1]
    assert len(items) == len(failures)
    assert all(line.startswith("- ") for line in items)


# --- atomic writing ----------------------------------------------------------


def new_pack() -> dict[str, bytes]:
    return seed_pack(run_command="python -m workshop --again")


def test_a_second_pack_replaces_the_first(tmp_path):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    write_pack(target, new_pack())
    assert snapshot(target) == dict(sorted(new_pack().items()))
    assert leftovers(tmp_path, "evidence") == []


def test_a_smaller_pack_removes_files_of_the_previous_one(tmp_path):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    write_pack(target, {"README.md": b"only"})
    assert snapshot(target) == {"README.md": b"only"}


def test_parent_folders_are_created(tmp_path):
    target = tmp_path / "reports" / "deep" / "evidence"
    write_pack(target, seed_pack())
    assert (target / "README.md").is_file()


@pytest.mark.parametrize("fail_on_call", [1, 3, 5])
def test_interrupted_write_leaves_the_previous_pack_unchanged(tmp_path, monkeypatch, fail_on_call):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    before = snapshot(target)
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == fail_on_call:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        write_pack(target, new_pack())
    assert len(calls) == fail_on_call
    assert snapshot(target) == before
    assert leftovers(tmp_path, "evidence") == []


def test_interrupted_first_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "evidence"

    def fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        write_pack(target, seed_pack())
    assert [p.name for p in tmp_path.iterdir()] == [lock_path(target).name]


def test_interrupted_swap_puts_the_previous_pack_back(tmp_path, monkeypatch):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    before = snapshot(target)
    real_rename = os.rename

    def rename(src, dst):
        if ".new-" in Path(src).name:  # staging -> target, after the old pack was moved aside
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_pack(target, new_pack())
    assert snapshot(target) == before
    assert leftovers(tmp_path, "evidence") == []


def test_os_error_while_writing_is_an_evidence_error(tmp_path, monkeypatch):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    before = snapshot(target)

    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(EvidenceError, match="No space left on device"):
        write_pack(target, new_pack())
    assert snapshot(target) == before
    assert leftovers(tmp_path, "evidence") == []


def test_refuses_to_replace_a_folder_with_other_files(tmp_path):
    target = tmp_path / "evidence"
    target.mkdir()
    (target / "README.md").write_text("mine")
    (target / "notes.txt").write_text("my notes")
    with pytest.raises(EvidenceError, match=r"refusing to replace .*not part of an evidence pack"):
        write_pack(target, seed_pack())
    assert snapshot(target) == {"README.md": b"mine", "notes.txt": b"my notes"}
    assert leftovers(tmp_path, "evidence") == []


def test_refuses_to_replace_a_folder_with_a_subfolder(tmp_path):
    target = tmp_path / "evidence"
    (target / "README.md").mkdir(parents=True)
    with pytest.raises(EvidenceError, match="refusing to replace"):
        write_pack(target, seed_pack())
    assert (target / "README.md").is_dir()


def test_an_empty_folder_is_replaced(tmp_path):
    target = tmp_path / "evidence"
    target.mkdir()
    write_pack(target, seed_pack())
    assert sorted(p.name for p in target.iterdir()) == sorted(SEED_ORDER)


def test_a_folder_of_pack_files_is_replaced(tmp_path):
    target = tmp_path / "evidence"
    target.mkdir()
    (target / "summary.json").write_text("{}")
    write_pack(target, seed_pack())
    assert "summary.json" not in os.listdir(target)
    assert "summary.json" in PACK_FILES


def test_refuses_a_path_that_is_a_file(tmp_path):
    target = tmp_path / "evidence"
    target.write_text("not a folder")
    with pytest.raises(EvidenceError, match="it is a file, not a folder"):
        write_pack(target, seed_pack())
    assert target.read_text() == "not a folder"


def test_a_parent_that_is_a_file_is_an_evidence_error(tmp_path):
    (tmp_path / "reports").write_text("file")
    with pytest.raises(EvidenceError, match="cannot write the evidence pack"):
        write_pack(tmp_path / "reports" / "evidence", seed_pack())


def test_unknown_file_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not pack file names"):
        write_pack(tmp_path / "evidence", {"../escape.md": b"x"})
    assert list(tmp_path.iterdir()) == []


def test_recovers_a_pack_left_aside_by_a_killed_swap(tmp_path):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    before = snapshot(target)
    retired = tmp_path / ".evidence.old-0123456789ab"
    os.rename(target, retired)  # killed between the two renames: no target, the old pack aside
    write_pack(target, new_pack())
    assert snapshot(target) == dict(sorted(new_pack().items()))
    assert leftovers(tmp_path, "evidence") == []
    assert before != snapshot(target)


def test_recovery_keeps_the_previous_pack_if_the_next_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    before = snapshot(target)
    os.rename(target, tmp_path / ".evidence.old-0123456789ab")

    def fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        write_pack(target, new_pack())
    assert snapshot(target) == before
    assert leftovers(tmp_path, "evidence") == []


# --- concurrent writers -------------------------------------------------------

WRITERS = 4
ROUNDS = 25


def _writer_pack(writer: int, round_: int) -> dict[str, bytes]:
    """A pack whose every file names its writer and round, so a mix of two packs shows."""
    mark = f"writer {writer} round {round_}\n".encode()
    return {name: mark * (1 + writer) for name in sorted(PACK_FILES)}


def _write_rounds(target: str, writer: int, start: Any) -> None:
    start.wait()
    for round_ in range(ROUNDS):
        write_pack(Path(target), _writer_pack(writer, round_))


def _is_one_whole_pack(files: dict[str, bytes]) -> bool:
    return set(files) == PACK_FILES and len(set(files.values())) == 1


def test_concurrent_writers_leave_one_writers_whole_pack(tmp_path):
    target = tmp_path / "evidence"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [context.Process(target=_write_rounds, args=(str(target), k, start)) for k in range(WRITERS)]
    for process in writers:
        process.start()
    start.set()
    seen = 0
    while any(process.is_alive() for process in writers):
        # a reader that takes the writers' lock sees one writer's whole pack, every time
        with FileLock(lock_path(target)):
            if target.exists():
                assert _is_one_whole_pack(snapshot(target))
                seen += 1
    for process in writers:
        process.join()
    assert [process.exitcode for process in writers] == [0] * WRITERS, "no writer failed"
    assert _is_one_whole_pack(snapshot(target))
    assert leftovers(tmp_path, "evidence") == []
    assert seen > 0


def test_a_pack_folder_is_readable_by_the_team(tmp_path):
    target = tmp_path / "evidence"
    write_pack(target, seed_pack())
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
