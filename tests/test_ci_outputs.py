"""What CI systems read: GitHub's job summary (``GITHUB_STEP_SUMMARY``) and JUnit XML properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from test_plugin import LEARNING_CASE, XSS, edit_json, make_project, version_named

from workshop.cli import main

V3 = "v3_json_with_boundary"


def _v3_regressions(data: dict[str, Any]) -> None:
    version_named(data, V3)["fake_model"]["scripted_replies"] = {"case_1": XSS, "case_2": "| not json |"}


def test_step_summary_is_appended_when_github_asks_for_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(pytester)
    edit_json(root / "cases" / "prompt_versions.json", _v3_regressions)
    target = root / "step-summary.md"
    target.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = target.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## Prompt evaluation\n"), "appended, never replaced"
    assert "❌ Gate: FAIL (2 regressions, 0 improvements to record, 0 new failures, 4 known failures)" in text
    lines = text.splitlines()
    assert "| Prompt version | Passed | case_1 | case_2 | case_3 |" in lines
    assert "| v1_goal_only | 0/3 | known failure | known failure | known failure |" in lines
    assert f"| {V3} | 1/3 | **REGRESSION** | **REGRESSION** | pass |" in lines
    assert "### Regressions: 2" in lines
    # model output is text here too: GitHub renders HTML in job summaries
    assert f"- {V3} / case_1: invalid_json: Expecting value" in lines
    assert "<img" not in text


def test_step_summary_is_not_written_without_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(pytester)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.OK
    assert {p.name for p in root.iterdir()} - {".pytest_cache"} == {"cases", "pyproject.toml", "reports", "tests"}


def test_an_unwritable_step_summary_is_a_warning_not_a_failure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(pytester)
    (root / "a-folder").mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(root / "a-folder"))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["GitHub step summary NOT written: *a-folder*"])


def test_a_merge_appends_its_own_step_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    for k in (1, 2):
        pytester.runpytest("--shard", f"{k}/2", "--evidence-dir", f"reports/shard{k}")
    target = root / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    monkeypatch.chdir(root)
    assert main(["merge", "reports/shard1", "reports/shard2", "-o", "reports/merged"]) == 0
    text = target.read_text(encoding="utf-8")
    assert text.startswith("## Prompt evaluation (merged from 2 packs)\n")
    assert "✅ Gate: PASS (0 regressions, 0 improvements to record, 0 new failures, 4 known failures)" in text
    assert f"| {V3} | 3/3 | pass | pass | pass |" in text.splitlines()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_junit_xml_carries_version_case_and_reason(pytester: pytest.Pytester, workers: tuple[str, ...]) -> None:
    root = make_project(pytester)
    edit_json(root / "cases" / "prompt_versions.json", _v3_regressions)
    pytester.runpytest("--junitxml=junit.xml", *workers)
    tree = ET.parse(root / "junit.xml")
    properties = {
        case.get("name"): {prop.get("name"): prop.get("value") for prop in case.iter("property")}
        for case in tree.iter("testcase")
    }
    assert properties[f"test_prompt_version[{V3}-case_2]"] == {
        "version": V3,
        "case": "case_2",
        "reason": "invalid_json: Expecting value",
    }
    assert properties["test_prompt_version[v2_json_contract-case_3]"]["reason"] == (
        "missing_fields: ['confidence', 'needs_human_review']"
    )
    assert properties[f"test_prompt_version[{V3}-case_3]"]["reason"] == "ok"
    assert properties["test_route[case_1]"] == {}, "other tests get no properties"
    assert len([name for name in properties if name.startswith("test_prompt_version[")]) == 9


def test_step_summary_counts_outcomes_per_version_for_many_cases(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(pytester)
    extra = [{**LEARNING_CASE, "id": f"case_{n}"} for n in range(4, 25)]  # 24 cases: counts, not columns
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].extend(extra))
    target = root / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    pytester.runpytest("--no-baseline")
    lines = target.read_text(encoding="utf-8").splitlines()
    assert "| Prompt version | Passed | pass | FAIL |" in lines
    assert "| v1_goal_only | 0/24 | 0 | 24 |" in lines
    assert "| v2_json_contract | 23/24 | 23 | 1 |" in lines
    assert f"| {V3} | 24/24 | 24 | 0 |" in lines
