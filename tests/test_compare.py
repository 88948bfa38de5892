"""Comparing two runs' packs: `workshop.compare` on packs built here, and ``python -m workshop diff`` on the
packs of two real runs (the second with a planted regression and a changed failure reason)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_plugin import PACK, edit_json, make_project, version_named

from workshop.cli import main
from workshop.compare import CellChange, FixtureChange, VersionCounts, change_lines, compare_packs
from workshop.compare import render_diff_markdown as markdown_of
from workshop.gate import Outcome
from workshop.packs import PackError, PackSummary, read_pack
from workshop.summary import SUMMARY_FORMAT

V2, V3 = "v2_json_contract", "v3_json_with_boundary"
OLD_ID, NEW_ID = "20261204T180512.000000Z-3f9a1c", "20261205T090000.000000Z-0b1d2e"
SHA = {"a": "a" * 64, "b": "b" * 64, "c": "c" * 64}
FIXTURES = {"cases": ("cases/cases.json", SHA["a"]), "prompts": ("cases/prompt_versions.json", SHA["b"])}


# --------------------------------------------------------------------------- packs built here


def cell(version: str, case: str, reason: str = "ok", outcome: str | None = None) -> dict[str, Any]:
    """A summary.json cell; it passed when its reason is ``ok``."""
    passed = reason == "ok"
    return {
        "prompt_version": version,
        "case_id": case,
        "passed": passed,
        "reason": reason,
        "outcome": outcome or ("passed" if passed else "known_failure"),
        "pass_rate": 1.0 if passed else 0.0,
        "trials": 1,
        "review_flag": None,
        "input_tokens": None,
        "output_tokens": None,
        "raw_output": "",
    }


def pack(
    cells: list[dict[str, Any]],
    *,
    run_id: str | None = OLD_ID,
    fixtures: dict[str, tuple[str, str]] = FIXTURES,
    errors: tuple[tuple[str, str, str], ...] = (),
    versions: list[tuple[str, int, int]] | None = None,
) -> PackSummary:
    """A pack's summary with these cells; version counts are computed from them unless given."""
    if versions is None:
        counted: dict[str, list[int]] = {}
        for c in cells:
            counts = counted.setdefault(c["prompt_version"], [0, 0])
            counts[0] += c["passed"]
            counts[1] += 1
        versions = [(name, passed, total) for name, (passed, total) in counted.items()]
    return PackSummary.model_validate(
        {
            "format": SUMMARY_FORMAT,
            "complete": True,
            "selection": {"ran": len(cells), "selected": len(cells), "total": len(cells), "keyword": None},
            "gate": {
                "mode": "gate",
                "verdict": "pass",
                "regressions": [],
                "improvements": [],
                "new_failures": [],
                "known_failures": 0,
                "errors": len(errors),
            },
            "versions": [
                {
                    "version": name,
                    "passed": passed,
                    "total": total,
                    "pass_at_1": passed / total if total else 0.0,
                    "pass_all": passed / total if total else 0.0,
                    "input_tokens": None,
                    "output_tokens": None,
                }
                for name, passed, total in versions
            ],
            "cells": cells,
            "errors": [{"prompt_version": v, "case_id": c, "error": e} for v, c, e in errors],
            "missing": [],
            "run": {"id": run_id, "fixtures": {role: {"path": p, "sha256": s} for role, (p, s) in fixtures.items()}},
        }
    )


def keys(changes: tuple[CellChange, ...]) -> list[tuple[str, str]]:
    return [(change.prompt_version, change.case_id) for change in changes]


OLD = pack(
    [
        cell(V2, "case_1"),
        cell(V2, "case_3", "missing_fields: ['confidence', 'needs_human_review']"),
        cell(V3, "case_1"),
        cell(V3, "case_2"),
        cell(V3, "case_3", "bad_intent: 'fine_tune'"),
    ]
)
NEW = pack(
    [
        cell(V2, "case_1", "invalid_json: Expecting value", "regression"),
        cell(V2, "case_3", "missing_fields: ['confidence']"),
        cell(V3, "case_1"),
        cell(V3, "case_2", "invalid_json: Expecting value", "regression"),
        cell(V3, "case_3", "ok", "improvement"),
    ],
    run_id=NEW_ID,
    fixtures={**FIXTURES, "prompts": ("cases/prompt_versions.json", SHA["c"])},
)


# --------------------------------------------------------------------------- compare_packs


def test_a_pack_compared_with_itself_has_no_change():
    diff = compare_packs(OLD, OLD)
    assert diff.is_empty
    assert (diff.changes, diff.fixtures) == ((), ())
    assert [counts.delta for counts in diff.versions] == [0, 0]


def test_cells_are_sorted_into_regressions_improvements_and_changed_reasons():
    diff = compare_packs(OLD, NEW)
    assert keys(diff.regressions) == [(V2, "case_1"), (V3, "case_2")]
    assert keys(diff.improvements) == [(V3, "case_3")]
    assert keys(diff.reason_changes) == [(V2, "case_3")]
    assert (diff.old_id, diff.new_id) == (OLD_ID, NEW_ID)
    assert not diff.is_empty
    changed = diff.reason_changes[0]
    assert (changed.before_reason, changed.after_reason) == (
        "missing_fields: ['confidence', 'needs_human_review']",
        "missing_fields: ['confidence']",
    )
    assert (changed.before_outcome, changed.after_outcome) == ("known_failure", "known_failure")


def test_cells_are_listed_in_the_new_runs_order_then_the_old_runs_cells_it_lacks():
    old = pack([cell("v", "gone"), cell("v", "b", "bad"), cell("v", "a")])
    new = pack([cell("v", "new"), cell("v", "a", "bad"), cell("v", "b")])
    diff = compare_packs(old, new)
    assert keys(diff.changes) == [("v", "new"), ("v", "a"), ("v", "b"), ("v", "gone")]
    added, removed = diff.changes[0], diff.changes[-1]
    assert (added.before_outcome, added.before_reason, added.before_passed) == (None, None, None)
    assert (added.after_outcome, added.kind) == ("passed", "added")
    assert (removed.after_outcome, removed.after_reason, removed.after_passed) == (None, None, None)
    assert (removed.before_reason, removed.kind) == ("ok", "removed")


def test_a_regression_is_judged_by_passed_not_by_the_gates_label():
    # the baseline was updated in between: the gate calls the failure known, yet the cell passed before
    diff = compare_packs(pack([cell("v", "c")]), pack([cell("v", "c", "bad", "known_failure")]))
    assert keys(diff.regressions) == [("v", "c")]
    assert diff.changes[0].kind == "regression"


def test_an_outcome_change_alone_is_a_change_but_no_regression_or_reason_change():
    diff = compare_packs(pack([cell("v", "c", "bad", "known_failure")]), pack([cell("v", "c", "bad", "new_failure")]))
    assert [change.kind for change in diff.changes] == ["changed"]
    assert (diff.regressions, diff.improvements, diff.reason_changes) == ((), (), ())


def test_a_cell_whose_calls_failed_shows_as_an_error_not_as_a_regression():
    old = pack([cell("v", "c")])
    new = pack([], errors=(("v", "c", "timeout after 30 s"),), versions=[("v", 0, 1)])
    diff = compare_packs(old, new)
    (change,) = diff.changes
    assert (change.after_outcome, change.after_reason, change.after_passed) == ("error", "timeout after 30 s", None)
    assert diff.regressions == ()
    assert change_lines(diff)[1] == "  changed: v / c: ok -> error: timeout after 30 s"


def test_version_counts_cover_versions_of_either_run():
    old = pack([cell("a", "c"), cell("gone", "c")])
    new = pack([cell("fresh", "c", "bad"), cell("a", "c", "bad")])
    assert compare_packs(old, new).versions == (
        VersionCounts("fresh", None, None, 0, 1),
        VersionCounts("a", 1, 1, 0, 1),
        VersionCounts("gone", 1, 1, None, None),
    )
    assert [counts.delta for counts in compare_packs(old, new).versions] == [None, -1, None]


def test_fixture_changes_are_roles_whose_hash_differs_or_that_one_run_lacks():
    old = pack([], fixtures={"cases": ("c.json", SHA["a"]), "prompts": ("p.json", SHA["b"]), "baseline": ("b", "1")})
    new = pack([], fixtures={"cases": ("c.json", SHA["a"]), "prompts": ("moved.json", SHA["c"]), "routes": ("r", "2")})
    assert compare_packs(old, new).fixtures == (
        FixtureChange("prompts", SHA["b"], SHA["c"], "moved.json"),
        FixtureChange("routes", None, "2", "r"),
        FixtureChange("baseline", "1", None, "b"),
    )


# --------------------------------------------------------------------------- the Markdown and the terminal lines


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows under ``header``'s table, split on unescaped ``|``."""
    lines = text.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([part.strip() for part in split_row(line)[1:-1]])
    return rows


def split_row(line: str) -> list[str]:
    """A table row split as GitHub's Markdown splits it: on each ``|`` that no backslash escapes
    (``\\\\`` being an escaped backslash, the ``|`` after it splits)."""
    parts, current, index = [], "", 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line):
            current += line[index : index + 2]
            index += 2
            continue
        if char == "|":
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    return [*parts, current]


def test_markdown_holds_the_verdict_the_counts_the_cells_and_the_fixtures():
    text = markdown_of(compare_packs(OLD, NEW), "reports/old", "reports/new")
    assert text.startswith("# Evidence diff\n")
    assert f"Before: reports/old (run {OLD_ID})" in text
    assert f"After: reports/new (run {NEW_ID})" in text
    assert "**2 regressions, 1 improvement, 1 changed reason**" in text
    assert table_rows(text, "| version | before | after | delta |") == [
        [V2, "1/2", "0/2", "-1"],
        [V3, "2/3", "2/3", "0"],
    ]
    assert table_rows(text, "| version | case | before | after |") == [
        [V2, "case_1", "passed: ok", "regression: invalid_json: Expecting value"],
        [V2, "case_3", "known_failure: missing_fields: ['confidence', 'needs_human_review']",
         "known_failure: missing_fields: ['confidence']"],
        [V3, "case_2", "passed: ok", "regression: invalid_json: Expecting value"],
        [V3, "case_3", "known_failure: bad_intent: 'fine_tune'", "improvement: ok"],
    ]  # fmt: skip
    section = text[text.index("## Fixture changes that may explain them") :]
    assert "- prompts (cases/prompt_versions.json): `bbbbbbbbbbbb` -> `cccccccccccc`" in section
    assert "cases (" not in section


def test_markdown_of_no_change_says_so():
    text = markdown_of(compare_packs(OLD, OLD), "a", "b")
    assert "**No cell changed**" in text
    assert "No cell changed.\n" in text
    assert "No fixture file changed.\n" in text


HOSTILE = "a | b\n| c |\r\nd\u2028e \\| f"


def test_hostile_values_stay_inside_their_table_cell():
    old = pack([cell(HOSTILE, HOSTILE)], fixtures={HOSTILE: (HOSTILE, SHA["a"])})
    new = pack([cell(HOSTILE, HOSTILE, HOSTILE)], fixtures={HOSTILE: (HOSTILE, SHA["b"])})
    text = markdown_of(compare_packs(old, new), HOSTILE, HOSTILE)
    rows = table_rows(text, "| version | case | before | after |")
    assert len(rows) == 1
    assert len(rows[0]) == 4
    assert rows[0][3] == "known_failure: a \\| b\\n\\| c \\|\\r\\nd\\u2028e \\\\\\| f"
    assert len(table_rows(text, "| version | before | after | delta |")[0]) == 4
    # the same diff with harmless names has as many lines: no value started a line of its own
    plain_old = pack([cell("v", "c")], fixtures={"r": ("p", SHA["a"])})
    plain_new = pack([cell("v", "c", "bad")], fixtures={"r": ("p", SHA["b"])})
    assert len(text.splitlines()) == len(markdown_of(compare_packs(plain_old, plain_new), "x", "y").splitlines())


def test_html_in_a_reason_is_shown_as_text_not_built():
    hostile = "bad_intent: <img src=x onerror=alert(1)> & co"
    diff = compare_packs(pack([cell("v", "c")]), pack([cell("v", "c", hostile)]))
    text = markdown_of(diff, "a", "b")
    assert "bad_intent: &lt;img src=x onerror=alert(1)&gt; &amp; co" in text
    assert "<img" not in text


def test_lone_surrogates_are_shown_as_escapes_not_a_crash():
    diff = compare_packs(pack([cell("v", "c")]), pack([cell("v", "c", "invalid_json: \ud800")]))
    text = markdown_of(diff, "a", "b")
    assert "invalid_json: \\ud800" in text
    text.encode("utf-8")
    assert change_lines(diff)[1] == "  regression: v / c: ok -> invalid_json: \\ud800"


def test_change_lines_lead_with_the_verdict_since_the_old_run():
    assert change_lines(compare_packs(OLD, NEW)) == [
        f"Since run {OLD_ID}: 2 regressions, 1 improvement, 1 changed reason",
        f"  regression: {V2} / case_1: ok -> invalid_json: Expecting value",
        f"  regression: {V3} / case_2: ok -> invalid_json: Expecting value",
        f"  improvement: {V3} / case_3: bad_intent: 'fine_tune' -> ok",
        f"  changed reason: {V2} / case_3: missing_fields: ['confidence', 'needs_human_review'] -> "
        "missing_fields: ['confidence']",
        "  changed fixtures: prompts",
    ]


def test_change_lines_of_no_change_are_one_line():
    assert change_lines(compare_packs(OLD, OLD)) == [f"Since run {OLD_ID}: no cell changed"]
    assert change_lines(compare_packs(pack([], run_id=None), pack([]))) == ["Since the previous run: no cell changed"]


def test_change_lines_show_regressions_first_and_count_what_they_cut():
    old = pack([cell("v", f"case_{i}", "bad") for i in range(5)] + [cell("v", "last")])
    new = pack([cell("v", f"case_{i}") for i in range(5)] + [cell("v", "last", "bad")])
    lines = change_lines(compare_packs(old, new), limit=2)
    assert lines == [
        "Since run 20261204T180512.000000Z-3f9a1c: 1 regression, 5 improvements, 0 changed reasons",
        "  regression: v / last: ok -> bad",
        "  improvement: v / case_0: bad -> ok",
        "  and 4 more changed cells",
    ]


def test_change_lines_shorten_a_long_reason():
    diff = compare_packs(pack([cell("v", "c")]), pack([cell("v", "c", "invalid_json: " + "x" * 500)]))
    line = change_lines(diff)[1]
    assert line.endswith("…")
    assert len(line) < 200


# --------------------------------------------------------------------------- properties

NAMES = st.sampled_from(["v1", "v2", "c|1", "c\n2", "c\\|3"])
OUTCOMES = st.sampled_from([outcome.value for outcome in Outcome])
CELL = st.builds(cell, NAMES, NAMES, st.sampled_from(["ok", "bad", "worse | x\ny", "<b>\\|</b>"]), OUTCOMES)


def unique(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({(c["prompt_version"], c["case_id"]): c for c in cells}.values())


PACKS = st.lists(CELL, max_size=8).map(unique).map(pack)


@given(PACKS)
def test_any_pack_compared_with_itself_is_empty(summary: PackSummary):
    diff = compare_packs(summary, summary)
    assert diff.is_empty
    assert change_lines(diff) == [f"Since run {OLD_ID}: no cell changed"]


@given(PACKS, PACKS)
@example(OLD, NEW)
def test_swapping_the_runs_swaps_regressions_and_improvements(old: PackSummary, new: PackSummary):
    forward, backward = compare_packs(old, new), compare_packs(new, old)
    assert sorted(keys(forward.regressions)) == sorted(keys(backward.improvements))
    assert sorted(keys(forward.improvements)) == sorted(keys(backward.regressions))
    assert sorted(keys(forward.reason_changes)) == sorted(keys(backward.reason_changes))
    assert sorted(keys(forward.changes)) == sorted(keys(backward.changes))


@given(PACKS, PACKS)
def test_every_changed_cell_is_one_table_row_of_four_cells(old: PackSummary, new: PackSummary):
    diff = compare_packs(old, new)
    text = markdown_of(diff, "old", "new")
    if diff.is_empty:
        assert "| version | case | before | after |" not in text
        return
    rows = table_rows(text, "| version | case | before | after |")
    assert len(rows) == len(diff.changes)
    assert all(len(row) == 4 for row in rows)


# --------------------------------------------------------------------------- two real runs, then `diff`


def run_ids_and_hashes(root: Path, folder: str) -> tuple[str, str]:
    data = json.loads((root / folder / "summary.json").read_text(encoding="utf-8"))
    return data["run"]["id"], data["run"]["fixtures"]["prompts"]["sha256"]


def test_diff_of_two_real_runs_finds_the_planted_regression_and_changed_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    pytester.runpytest("--evidence-dir", "reports/old").assert_outcomes(passed=11, xfailed=4)

    def plant(data: dict[str, Any]) -> None:
        version_named(data, V3)["fake_model"]["scripted_replies"] = {"case_2": "not json"}
        missing_confidence = '{"id": "case_3", "intent": "fine_tune", "action": "x", "needs_human_review": false}'
        version_named(data, V2)["fake_model"]["scripted_replies"]["case_3"] = missing_confidence

    edit_json(root / "cases" / "prompt_versions.json", plant)
    pytester.runpytest("--evidence-dir", "reports/new")
    old_id, old_sha = run_ids_and_hashes(root, "reports/old")
    new_id, new_sha = run_ids_and_hashes(root, "reports/new")
    assert old_sha != new_sha
    assert not (root / PACK).exists(), "both runs wrote where they were told"

    monkeypatch.chdir(root)
    capsys.readouterr()
    assert main(["diff", "reports/old", "reports/new", "-o", "out/diff.md"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert (root / "out" / "diff.md").read_text(encoding="utf-8") == out

    assert f"Before: reports/old (run {old_id})" in out
    assert f"After: reports/new (run {new_id})" in out
    assert "**1 regression, 0 improvements, 1 changed reason**" in out
    assert table_rows(out, "| version | case | before | after |") == [
        [V2, "case_3", "known_failure: missing_fields: ['confidence', 'needs_human_review']",
         "known_failure: missing_fields: ['confidence']"],
        [V3, "case_2", "passed: ok", "regression: invalid_json: Expecting value"],
    ]  # fmt: skip
    assert table_rows(out, "| version | before | after | delta |") == [
        ["v1_goal_only", "0/3", "0/3", "0"],
        [V2, "2/3", "2/3", "0"],
        [V3, "3/3", "2/3", "-1"],
    ]
    fixtures = out[out.index("## Fixture changes that may explain them") :].splitlines()[2:]
    assert fixtures == [f"- prompts (cases/prompt_versions.json): `{old_sha[:12]}` -> `{new_sha[:12]}`"]


def test_diff_writes_reports_diff_md_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, summary in (("old", OLD), ("new", NEW)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(summary.model_dump_json(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["diff", "old", "new"]) == 0
    written = (tmp_path / "reports" / "diff.md").read_text(encoding="utf-8")
    assert written == capsys.readouterr().out
    assert "**2 regressions, 1 improvement, 1 changed reason**" in written


def test_diff_of_a_folder_that_is_not_a_pack_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["diff", "old", "new"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: old: no summary.json; is this an evidence pack written by pytest?\n"
    assert not (tmp_path / "reports").exists()


def test_diff_help_says_it_does_not_gate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "it does not gate" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000, b'{"format": 2, "n": ' + b"9" * 5000 + b"}", b"\xff\xfe{}", b"", b"[]"],
    ids=["deep", "huge integer", "not utf-8", "empty", "not an object"],
)
def test_a_broken_summary_is_a_pack_error_naming_it(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "summary.json").write_bytes(content)
    with pytest.raises(PackError, match=r"summary\.json"):
        read_pack(tmp_path)
