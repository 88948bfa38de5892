"""The safety cases: risky requests and harmless look-alikes, through pytest and the fixture itself.

``cases/safety_cases.json`` holds requests that need a person to review them (unsafe,
legal, medical, production deployment decisions) and harmless requests that share their
words. The end-to-end tests run ``pytest --cases=cases/safety_cases.json`` in a throwaway
project (as ``test_plugin`` does) and read the evidence pack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_plugin import PACK, make_project, run_seed, summary

from workshop.evaluation import evaluate_all
from workshop.fake_model import FakeModel, infer_intent
from workshop.fixtures import load_fixtures

REPO = Path(__file__).resolve().parents[1]
SAFETY_FILE = REPO / "cases" / "safety_cases.json"
SAFETY = load_fixtures(SAFETY_FILE, REPO / "cases" / "prompt_versions.json")
V1, V2, V3 = (version.name for version in SAFETY.versions)
RISKY = [case.id for case in SAFETY.cases if case.expected_needs_human_review]
HARMLESS = [case.id for case in SAFETY.cases if case.expected_needs_human_review is False]
MISSED = "wrong_review_flag: got false, expected true"
OVER_FLAGGED = "wrong_review_flag: got true, expected false"
SAFETY_ARGS = ("--cases=cases/safety_cases.json",)


def review_row(data: dict[str, Any], version: str) -> dict[str, Any]:
    return next(row for row in data["analysis"]["review_boundary"] if row["version"] == version)


def failures(data: dict[str, Any], version: str) -> dict[str, str]:
    return {c["case_id"]: c["reason"] for c in data["cells"] if c["prompt_version"] == version and not c["passed"]}


# --------------------------------------------------------------------------- the fixture itself


def test_the_safety_fixture_has_risky_cases_and_harmless_look_alikes() -> None:
    raw = json.loads(SAFETY_FILE.read_text(encoding="utf-8"))["cases"]
    assert len(RISKY) >= 8 and len(HARMLESS) >= 8
    assert len(RISKY) + len(HARMLESS) == len(raw) == len(SAFETY.cases)
    assert {case["expected_intent"] for case in raw} == set(SAFETY.contract.intents), "all three intents present"
    for case in raw:
        assert {"expected_intent", "expected_route", "expected_needs_human_review"} <= case.keys(), case["id"]
        assert isinstance(case["expected_needs_human_review"], bool), case["id"]
    for flag in (True, False):
        intents = {case["expected_intent"] for case in raw if case["expected_needs_human_review"] is flag}
        assert len(intents) >= 2, f"needs_human_review={flag}: the boundary is not one intent"


def test_the_fake_model_gets_every_intent_right_so_only_the_flags_fail() -> None:
    for case in SAFETY.cases:
        assert infer_intent(case.user_input, SAFETY.fake_model) == case.expected_intent, case.id
    results = evaluate_all(SAFETY, FakeModel(SAFETY.fake_model, SAFETY.versions), environ={})
    later = [r for r in results if r.prompt_version in (V2, V3)]
    assert later and all(json.loads(r.raw_output)["intent"] == r.expected_intent for r in later), (
        "v2 and v3 answer contract JSON with the right intent"
    )
    assert {r.reason.split(":")[0] for r in later if not r.passed} == {"wrong_review_flag"}


# --------------------------------------------------------------------------- through pytest


def test_safety_suite_passes_against_the_committed_baseline(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    result = pytester.runpytest(*SAFETY_ARGS)
    # 48 evaluations (22 pass, 26 known failures) + 16 token traces + 16 routes
    result.assert_outcomes(passed=54, xfailed=26)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["Evidence pack: reports/evidence (48 of 48 evaluations; complete*)"])
    assert "Gate: PASS (0 regressions, 0 improvements to record, 0 new failures, 26 known failures)" in (
        result.stdout.lines
    )
    result.stdout.fnmatch_lines(
        [
            f"Review boundary, {V2}: 0 flagged correctly, 8 missed, 0 over-flagged, 8 correctly not flagged, "
            "0 not judged",
        ]
    )

    data = summary(root)
    assert data["complete"] is True
    assert data["gate"]["verdict"] == "pass"
    assert data["gate"]["known_failures"] == 26
    assert [(v["version"], v["passed"], v["total"]) for v in data["versions"]] == [
        (V1, 0, 16),
        (V2, 8, 16),
        (V3, 14, 16),
    ]
    v1 = failures(data, V1)
    assert set(v1) == set(RISKY) | set(HARMLESS)
    assert {reason.split(":")[0] for reason in v1.values()} == {"invalid_json"}
    assert failures(data, V2) == dict.fromkeys(RISKY, MISSED)
    assert failures(data, V3) == {"risky_skip_review": MISSED, "harmless_production_concept": OVER_FLAGGED}
    assert {c["outcome"] for c in data["cells"] if not c["passed"]} == {"known_failure"}

    # the human-review boundary, per version
    boundary = data["analysis"]["review_boundary"]
    assert [row["version"] for row in boundary] == [V1, V2, V3]
    assert review_row(data, V1) == {
        "version": V1,
        "flagged": 0,
        "missed": 0,
        "over_flagged": 0,
        "cleared": 0,
        "unjudged": 16,
    }
    assert review_row(data, V2) == {
        "version": V2,
        "flagged": 0,
        "missed": 8,
        "over_flagged": 0,
        "cleared": 8,
        "unjudged": 0,
    }
    assert review_row(data, V3) == {
        "version": V3,
        "flagged": 7,
        "missed": 1,
        "over_flagged": 1,
        "cleared": 7,
        "unjudged": 0,
    }

    # failures by reason, version diffs and next steps
    reasons = {group["type"]: group for group in data["analysis"]["reasons"]}
    assert list(reasons) == ["invalid_json", "wrong_review_flag"]
    assert reasons["wrong_review_flag"]["by_version"] == {V2: 8, V3: 2}
    diffs = {diff["version"]: diff for diff in data["analysis"]["version_diffs"]}
    assert diffs[V2]["fixed"] == HARMLESS
    assert diffs[V3]["fixed"] == [case for case in RISKY if case != "risky_skip_review"]
    assert diffs[V3]["broken"] == ["harmless_production_concept"]
    assert [(s["version"], s["passed"], s["total"], s["route"]) for s in data["analysis"]["next_steps"]] == [
        (V1, 0, 16, "Prompt"),
        (V2, 8, 16, "Prompt"),
        (V3, 14, 16, "Prompt"),
    ]

    pack = root / PACK
    failure_cases = (pack / "failure_cases.md").read_text(encoding="utf-8")
    lines = failure_cases.splitlines()
    assert sum(line.startswith("- ") for line in lines) == 26, "one list item per failing evaluation"
    table = lines.index("## Human-review boundary")
    assert lines[table + 2].startswith("| version | flagged correctly | missed (should have been flagged) |")
    assert lines[table + 4 : table + 7] == [
        f"| {V1} | 0 | 0 | 0 | 0 | 16 |",
        f"| {V2} | 0 | 8 | 0 | 8 | 0 |",
        f"| {V3} | 7 | 1 | 1 | 7 | 0 |",
    ]
    next_steps = (pack / "next_steps.md").read_text(encoding="utf-8")
    assert next_steps.startswith("# Next Steps\n")
    for version, passed in ((V1, 0), (V2, 8), (V3, 14)):
        assert f"## {version}: {passed}/16 passed\n\nRecommended next route: Prompt\n" in next_steps
    assert "- wrong_review_flag (risky_skip_review, harmless_production_concept): " in next_steps


def test_the_default_run_still_shows_the_seeds_numbers(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    run_seed(pytester)
    data = summary(root)
    assert data["selection"]["total"] == 9
    assert sorted({c["case_id"] for c in data["cells"]}) == ["case_1", "case_2", "case_3"]
    assert [(v["version"], v["passed"], v["total"]) for v in data["versions"]] == [(V1, 0, 3), (V2, 2, 3), (V3, 3, 3)]
    assert data["analysis"]["review_boundary"] == [], "the seed's cases declare no review flag"
    failure_cases = (root / PACK / "failure_cases.md").read_text(encoding="utf-8")
    assert "## Human-review boundary" not in failure_cases
    assert (root / PACK / "next_steps.md").is_file()
