"""Run history: `keep_run` keeps the newest K run packs and deletes nothing it did not write;
`previous_run` finds the run before this one of the same suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_compare import FIXTURES, pack
from test_plugin import PACK, edit_json, make_project, version_named

from workshop.errors import EvidenceError
from workshop.history import RUN_ID_PATTERN, keep_run, previous_run
from workshop.summary import new_run_id

SUITE = {role: path for role, (path, _sha) in FIXTURES.items()}
IDS = [f"2026120{day}T120000.000000Z-00000{day}" for day in range(1, 7)]


def pack_files(run_id: str, fixtures: dict[str, tuple[str, str]] = FIXTURES) -> dict[str, bytes]:
    """A small pack whose summary.json names the run and its fixtures."""
    summary = pack([], run_id=run_id, fixtures=fixtures).model_dump_json().encode("utf-8")
    return {"summary.json": summary, "README.md": f"# run {run_id}\n".encode()}


def previous_folder(history_dir: Path, roles_paths: dict[str, str], before: str) -> Path | None:
    found = previous_run(history_dir, roles_paths, before)
    return found.folder if found else None


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``: file contents, None for folders."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))
    }


def runs_in(history: Path) -> list[str]:
    return sorted(p.name for p in history.iterdir() if RUN_ID_PATTERN.fullmatch(p.name))


# --------------------------------------------------------------------------- keep_run


def test_run_ids_from_new_run_id_match_the_pattern():
    assert all(RUN_ID_PATTERN.fullmatch(new_run_id()) for _ in range(20))
    assert not RUN_ID_PATTERN.fullmatch("20261204T180512.000000Z-3f9a1c/..")
    assert not RUN_ID_PATTERN.fullmatch("latest")


@pytest.mark.parametrize("keep", [1, 3, 6, 10])
def test_the_newest_runs_are_kept_and_older_ones_deleted(tmp_path: Path, keep: int):
    history = tmp_path / "history"
    # written out of time order: age is the run id, not the order of writing
    for run_id in [IDS[2], IDS[0], IDS[5], IDS[1], IDS[4], IDS[3]]:
        written = keep_run(history, run_id, pack_files(run_id), keep)
        assert written == history / run_id
        assert (written / "summary.json").read_bytes() == pack_files(run_id)["summary.json"]
    # the newest, and the run written last even where it is older than those
    kept = sorted({*IDS[-keep:], IDS[3]})
    assert runs_in(history) == kept
    for run_id in kept:
        assert snapshot(history / run_id) == pack_files(run_id)


def test_pruned_runs_take_their_lock_files_with_them(tmp_path: Path):
    history = tmp_path / "history"
    for run_id in IDS:
        keep_run(history, run_id, pack_files(run_id), 2)
    # one lock file per kept run at most: the history folder does not grow with every run
    assert sorted(p.name for p in history.iterdir() if p.name.endswith(".lock")) == [
        f".{IDS[4]}.lock",
        f".{IDS[5]}.lock",
    ]


def test_pruning_never_deletes_what_history_did_not_write(tmp_path: Path):
    history = tmp_path / "history"
    history.mkdir()
    (history / "notes").mkdir()
    (history / "notes" / "summary.json").write_text("mine", encoding="utf-8")
    (history / "20200101T000000.000000Z-aaaaaa.txt").write_text("a file", encoding="utf-8")
    (history / "20200101T000000.000000Z-bbbbbb").write_text("a file named like a run", encoding="utf-8")
    foreign = history / "20200101T000000.000000Z-cccccc"
    foreign.mkdir()
    (foreign / "summary.json").write_text("{}", encoding="utf-8")
    (foreign / "analysis.ipynb").write_text("someone's work", encoding="utf-8")
    nested = history / "20200101T000000.000000Z-dddddd"
    (nested / "plots").mkdir(parents=True)
    (history / ".20200101T000000.000000Z-eeeeee.lock").write_text("", encoding="utf-8")
    (history / "README.md").write_text("what this folder is", encoding="utf-8")
    before = snapshot(history)

    for run_id in IDS:
        keep_run(history, run_id, pack_files(run_id), 1)

    after = snapshot(history)
    assert {path: content for path, content in after.items() if path in before} == before
    assert runs_in(history) == sorted(["20200101T000000.000000Z-bbbbbb", foreign.name, nested.name, IDS[-1]])


def test_a_symlink_named_like_an_old_run_is_left_alone(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere" / IDS[0]
    keep_run(elsewhere.parent, IDS[0], pack_files(IDS[0]), 5)
    history = tmp_path / "history"
    history.mkdir()
    os.symlink(elsewhere, history / IDS[0], target_is_directory=True)
    for run_id in IDS[1:]:
        keep_run(history, run_id, pack_files(run_id), 1)
    assert (history / IDS[0]).is_symlink()
    assert snapshot(elsewhere) == pack_files(IDS[0])


def test_keep_zero_writes_and_deletes_nothing(tmp_path: Path):
    history = tmp_path / "history"
    assert keep_run(history, IDS[0], pack_files(IDS[0]), 0) is None
    assert not history.exists()
    for run_id in IDS[:3]:
        keep_run(history, run_id, pack_files(run_id), 5)
    before = snapshot(history)
    assert keep_run(history, IDS[3], pack_files(IDS[3]), 0) is None
    assert snapshot(history) == before


@pytest.mark.parametrize("run_id", ["../escape", "latest", "", IDS[0] + "/x"])
def test_keep_run_refuses_a_name_that_is_not_a_run_id(tmp_path: Path, run_id: str):
    with pytest.raises(ValueError, match="not a run id"):
        keep_run(tmp_path / "history", run_id, pack_files(IDS[0]), 3)
    assert not (tmp_path / "history").exists()


def test_a_history_folder_that_is_a_file_is_a_clear_error(tmp_path: Path):
    history = tmp_path / "history"
    history.write_text("oops", encoding="utf-8")
    with pytest.raises(EvidenceError, match=r"cannot keep this run in the history folder .*history"):
        keep_run(history, IDS[0], pack_files(IDS[0]), 3)
    assert history.read_text(encoding="utf-8") == "oops"


def test_an_old_run_that_cannot_be_deleted_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    history = tmp_path / "history"
    keep_run(history, IDS[0], pack_files(IDS[0]), 1)

    def refuse(path: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    with pytest.raises(EvidenceError, match=r"cannot remove old runs from the history folder .*: Permission denied"):
        keep_run(history, IDS[1], pack_files(IDS[1]), 1)
    assert runs_in(history) == IDS[:2], "the new run was kept all the same"


# --------------------------------------------------------------------------- previous_run


def test_previous_run_is_the_newest_run_before_this_one(tmp_path: Path):
    history = tmp_path / "history"
    for run_id in IDS:
        keep_run(history, run_id, pack_files(run_id), 10)
    assert previous_folder(history, SUITE, IDS[3]) == history / IDS[2]
    found = previous_run(history, SUITE, IDS[3])
    assert found is not None and found.pack.run.id == IDS[2], "the pack comes back as read"
    assert previous_folder(history, SUITE, "99999999T999999.000000Z-ffffff") == history / IDS[-1]
    assert previous_folder(history, SUITE, IDS[0]) is None


def test_previous_run_skips_packs_it_cannot_read(tmp_path: Path):
    history = tmp_path / "history"
    keep_run(history, IDS[0], pack_files(IDS[0]), 10)
    broken = {
        IDS[1]: {"summary.json": b"{not json"},
        IDS[2]: {"summary.json": b'{"format": 1}'},
        IDS[3]: {"README.md": b"no summary"},
        IDS[4]: {"summary.json": b"1" * 5000},  # Python 3.11+: json refuses integers this long (ValueError)
    }
    for run_id, files in broken.items():
        keep_run(history, run_id, files, 10)
    assert previous_folder(history, SUITE, IDS[5]) == history / IDS[0]


def test_previous_run_skips_runs_of_another_suite(tmp_path: Path):
    history = tmp_path / "history"
    keep_run(history, IDS[0], pack_files(IDS[0]), 10)
    other_cases = {**FIXTURES, "cases": ("other/cases.json", FIXTURES["cases"][1])}
    keep_run(history, IDS[1], pack_files(IDS[1], other_cases), 10)
    no_prompts = {"cases": FIXTURES["cases"]}
    keep_run(history, IDS[2], pack_files(IDS[2], no_prompts), 10)
    assert previous_folder(history, SUITE, IDS[5]) == history / IDS[0]
    assert previous_folder(history, {**SUITE, "cases": "other/cases.json"}, IDS[5]) == history / IDS[1]


def test_previous_run_matches_the_same_suite_with_changed_contents(tmp_path: Path):
    history = tmp_path / "history"
    edited = {**FIXTURES, "prompts": (FIXTURES["prompts"][0], "f" * 64), "routes": ("cases/routes.json", "0" * 64)}
    keep_run(history, IDS[0], pack_files(IDS[0], edited), 10)
    assert previous_folder(history, SUITE, IDS[1]) == history / IDS[0]


def test_previous_run_ignores_folders_not_named_by_a_run_id(tmp_path: Path):
    history = tmp_path / "history"
    keep_run(history, IDS[0], pack_files(IDS[0]), 10)
    # a copy of a pack under another name sorts after every run id, yet is no run
    shutil.copytree(history / IDS[0], history / "latest")
    assert previous_folder(history, SUITE, IDS[1]) == history / IDS[0]


def test_no_history_yet_means_no_previous_run(tmp_path: Path):
    assert previous_folder(tmp_path / "missing", SUITE, IDS[0]) is None
    assert not (tmp_path / "missing").exists()


def test_staging_folders_of_killed_history_writes_are_removed_once_older_than_every_kept_run(tmp_path: Path) -> None:
    history = tmp_path / "history"
    history.mkdir()
    stale = history / ".20200101T000000.000000Z-aaaaaa.new-x1y2z3"
    stale.mkdir()
    (stale / "summary.json").write_text("{}")
    recent = history / ".20991231T235959.000000Z-bbbbbb.new-q9w8e7"  # a run writing its history right now
    recent.mkdir()
    lookalike = history / ".notes.new-keep"
    lookalike.mkdir()
    keep_run(history, "20261204T180512.000000Z-3f9a1c", {"README.md": b"x"}, keep=2)
    assert not stale.exists()
    assert recent.exists() and lookalike.exists()


# --------------------------------------------------------------------------- through pytest


def _break_v3_case_2_and_change_v2_case_3(data: dict[str, Any]) -> None:
    version_named(data, "v3_json_with_boundary")["fake_model"]["scripted_replies"] = {"case_2": "not json"}
    version_named(data, "v2_json_contract")["fake_model"]["scripted_replies"]["case_3"] = '{"id": "case_3"}'


def test_each_run_is_kept_and_the_summary_says_what_changed_since_the_previous_one(
    pytester: pytest.Pytester,
) -> None:
    root = make_project(pytester)
    history = root / "reports" / "history"
    first = pytester.runpytest("--history-keep", "2")
    assert first.ret == pytest.ExitCode.OK
    assert not [line for line in first.stdout.lines if line.startswith("Since ")], "nothing to compare with yet"
    (first_id,) = [p.name for p in history.iterdir() if RUN_ID_PATTERN.fullmatch(p.name)]
    first.stdout.fnmatch_lines([f"Kept in history: reports/history/{first_id}"])
    assert (history / first_id / "summary.json").read_bytes() == (root / PACK / "summary.json").read_bytes()

    same = pytester.runpytest("--history-keep", "2")
    same.stdout.fnmatch_lines([f"Since run {first_id}: no cell changed"])

    edit_json(root / "cases" / "prompt_versions.json", _break_v3_case_2_and_change_v2_case_3)
    changed = pytester.runpytest("--history-keep", "2")
    assert changed.ret == pytest.ExitCode.TESTS_FAILED
    runs = sorted(p.name for p in history.iterdir() if RUN_ID_PATTERN.fullmatch(p.name))
    assert len(runs) == 2 and first_id not in runs, "the last two runs are kept"
    changed.stdout.fnmatch_lines(
        [
            f"Since run {runs[0]}: 1 regression, 0 improvements, 1 changed reason",
            "  regression: v3_json_with_boundary / case_2: ok -> invalid_json: Expecting value",
            "  changed reason: v2_json_contract / case_3: missing_fields: ['confidence', 'needs_human_review'] -> "
            "missing_fields: ['intent', 'action', 'confidence', 'needs_human_review']",
            "  changed fixtures: prompts",
        ]
    )


def test_history_keep_zero_keeps_no_history(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    result = pytester.runpytest("--history-keep", "0")
    assert result.ret == pytest.ExitCode.OK
    assert not (root / "reports" / "history").exists()
    assert "Kept in history" not in result.stdout.str()


def test_run_ids_made_in_quick_succession_sort_in_the_order_they_were_made() -> None:
    ids = [new_run_id() for _ in range(200)]
    assert all(RUN_ID_PATTERN.fullmatch(run_id) for run_id in ids)
    assert sorted(ids) == ids, "the same second is no tie: history prunes and compares by this order"
