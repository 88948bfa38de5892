"""End-to-end tests of the workshop pytest plugin, run in throwaway projects with `pytester`.

Each test builds a project from the repository's fixtures (``cases/*.json``) and its
``tests/test_prompt_eval.py``, runs pytest on it and checks what a user sees: outcomes,
exit codes, terminal lines, the evidence pack, ``summary.json``, the baseline and the
HTML report.
"""

from __future__ import annotations

import copy
import hashlib
import html
import itertools
import json
import platform
import re
import shutil
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
GOLDEN_PACK_FILES = ("token_trace.json", "prompt_eval.csv", "route_decisions.json", "failure_cases.md")
PACK = Path("reports", "evidence")

VERSIONS = ("v1_goal_only", "v2_json_contract", "v3_json_with_boundary")
CASES = ("case_1", "case_2", "case_3")
KNOWN_FAILURES = {*(("v1_goal_only", case) for case in CASES), ("v2_json_contract", "case_3")}
SEED_GATE_LINE = "Gate: PASS (0 regressions, 0 improvements to record, 0 new failures, 4 known failures)"
XSS = "<img src=x onerror=alert(1)>"
XSS_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
XSS_RAW_PREFIX = "<img src=x onerror"

INI_HEAD = """\
[tool.pytest.ini_options]
testpaths = ["tests"]
# hypothesis is unrelated here and slow to import per run; importlib import mode keeps the inner
# tests/test_prompt_eval.py from clashing with the outer run's module of the same name
addopts = "-ra -p no:hypothesispytest --import-mode=importlib"
xfail_strict = true
cases = "cases/cases.json"
prompts = "cases/prompt_versions.json"
evidence_dir = "reports/evidence"
baseline = "cases/baseline.json"
"""

LEARNING_CASE = {
    "id": "case_4",
    "user_input": "Teach me how embeddings work, step by step.",
    "expected_intent": "learning_plan",
    "expected_route": "Prompt first",
}


# --------------------------------------------------------------------------- helpers


def make_project(pytester: pytest.Pytester, *, html_report: bool = False) -> Path:
    """A project like the repository's: the fixtures, the evaluation tests and the plugin's ini options."""
    return write_project(pytester.path, html_report=html_report)


def write_project(root: Path, *, html_report: bool = False) -> Path:
    """`make_project` in any folder (for a project run outside pytester)."""
    shutil.copytree(REPO / "cases", root / "cases")
    (root / "tests").mkdir()
    shutil.copyfile(REPO / "tests" / "test_prompt_eval.py", root / "tests" / "test_prompt_eval.py")
    ini = INI_HEAD + ('html_report = "reports/report.html"\n' if html_report else "")
    (root / "pyproject.toml").write_text(ini, encoding="utf-8")
    return root


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    """Load a JSON fixture, let ``change`` mutate it, write it back."""
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def version_named(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(version for version in data["versions"] if version["name"] == name)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def summary(root: Path) -> dict[str, Any]:
    return json.loads((root / PACK / "summary.json").read_text(encoding="utf-8"))


def cell_outcomes(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["prompt_version"], c["case_id"]): c["outcome"] for c in data["cells"]}


def ran_ids(result: pytest.RunResult) -> set[str]:
    """Test names (``func[param]``) from the ``-rA`` short summary."""
    found = set()
    for line in result.stdout.lines:
        match = re.match(r"^(?:PASSED|FAILED|XFAIL|XPASS|ERROR|SKIPPED) \S+::(\S+)", line)
        if match:
            found.add(match.group(1))
    return found


def eval_id(version: str, case: str) -> str:
    return f"test_prompt_version[{version}-{case}]"


def assert_lines_in_order(result: pytest.RunResult, expected: list[str]) -> None:
    """``expected`` appear as consecutive, exact stdout lines (no glob: the lines hold brackets)."""
    lines = result.stdout.lines
    for start in range(len(lines) - len(expected) + 1):
        if lines[start : start + len(expected)] == expected:
            return
    raise AssertionError(
        "lines not found consecutively:\n" + "\n".join(expected) + "\n--- in ---\n" + result.stdout.str()
    )


def golden_step2() -> list[str]:
    lines = (GOLDEN / "console.txt").read_text(encoding="utf-8").splitlines()
    start = lines.index("STEP 2: Prompt version evaluation")
    end = lines.index("", start)
    return lines[start:end]


def run_seed(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=11, xfailed=4)
    assert result.ret == pytest.ExitCode.OK
    return result


# --------------------------------------------------------------------------- 1. the seed run


def test_seed_run_outcomes_terminal_and_pack(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    result = run_seed(pytester, "-rA")

    ids = ran_ids(result)
    assert {i for i in ids if i.startswith("test_prompt_version")} == {
        eval_id(v, c) for v, c in itertools.product(VERSIONS, CASES)
    }
    assert {i for i in ids if not i.startswith("test_prompt_version")} == {
        *(f"test_token_trace[{c}]" for c in CASES),
        *(f"test_route[{c}]" for c in CASES),
    }
    assert_lines_in_order(result, golden_step2())
    assert SEED_GATE_LINE in result.stdout.lines
    result.stdout.fnmatch_lines(
        ["*= prompt evaluation =*", "Evidence pack: reports/evidence (9 of 9 evaluations; complete; written in * s)"]
    )
    # the known failures are xfailed with their recorded reason
    result.stdout.fnmatch_lines(
        ["XFAIL tests/test_prompt_eval.py::test_prompt_version?v1_goal_only-case_1? - known failure: invalid_json*"]
    )

    pack = root / PACK
    assert sorted(p.name for p in pack.iterdir()) == sorted(
        [*GOLDEN_PACK_FILES, "README.md", "summary.json", "next_steps.md"]
    ), "the pack holds exactly the seed files and summary.json"
    for name in GOLDEN_PACK_FILES[:3]:
        assert (pack / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    # failure_cases.md: the seed's exact lines first, then the analysis under its own headings
    failure_cases = (pack / "failure_cases.md").read_bytes()
    seed_lines = (GOLDEN / "failure_cases.md").read_bytes()
    assert failure_cases.startswith(seed_lines + b"\n## Failures by reason\n")
    readme = (pack / "README.md").read_text(encoding="utf-8")
    assert "Best prompt version: v3_json_with_boundary (3/3 passed)" in readme
    assert "Selection" not in readme and "INCOMPLETE" not in readme

    data = summary(root)
    assert data["complete"] is True
    assert data["selection"] == {"ran": 9, "selected": 9, "total": 9, "keyword": None, "shard": None}
    assert [(v["version"], v["passed"], v["total"], v["pass_all"]) for v in data["versions"]] == [
        ("v1_goal_only", 0, 3, 0.0),
        ("v2_json_contract", 2, 3, round(2 / 3, 6)),
        ("v3_json_with_boundary", 3, 3, 1.0),
    ]
    assert cell_outcomes(data) == {
        (v, c): "known_failure" if (v, c) in KNOWN_FAILURES else "passed" for v, c in itertools.product(VERSIONS, CASES)
    }
    assert list(cell_outcomes(data)) == list(itertools.product(VERSIONS, CASES)), "cells in fixture order"
    assert data["gate"] == {
        "mode": "gate",
        "verdict": "pass",
        "regressions": [],
        "improvements": [],
        "new_failures": [],
        "known_failures": 4,
        "errors": 0,
    }
    assert data["missing"] == []
    run = data["run"]
    assert run["python"] == platform.python_version()
    assert run["pytest"] == pytest.__version__
    assert run["workshop"] == metadata.version("workshop")
    fixture_files = {
        "cases": "cases.json",
        "prompts": "prompt_versions.json",
        "contract": "output_contract.schema.json",
        "fake_model": "fake_model.json",
        "routes": "routes.json",
        "failure_guide": "failure_guide.json",
        "baseline": "baseline.json",  # the gate's memory decides which failures are known
    }
    assert set(run["fixtures"]) == set(fixture_files)
    for role, name in fixture_files.items():
        path = root / "cases" / name
        assert run["fixtures"][role]["path"] == f"cases/{name}", "relative to the project: shards run elsewhere"
        assert run["fixtures"][role]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), role


# --------------------------------------------------------------------------- 2. selection with -k


def test_k_version_selects_three_evaluations_and_the_pack_says_so(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    result = pytester.runpytest("-k", "v3", "-rA")
    result.assert_outcomes(passed=3, deselected=12)
    assert result.ret == pytest.ExitCode.OK
    assert ran_ids(result) == {eval_id("v3_json_with_boundary", c) for c in CASES}
    result.stdout.fnmatch_lines(["Evidence pack: reports/evidence (3 of 9 evaluations; complete; written in * s)"])

    pack = root / PACK
    csv_rows = (pack / "prompt_eval.csv").read_bytes().split(b"\r\n")
    assert csv_rows[0] == b"prompt_version,case_id,passed,reason,raw_output"
    body = [row for row in csv_rows[1:] if row]
    assert len(body) == 3 and all(row.startswith(b"v3_json_with_boundary,") for row in body)
    golden_v3 = [row for row in (GOLDEN / "prompt_eval.csv").read_bytes().split(b"\r\n") if row.startswith(b"v3")]
    assert body == golden_v3
    assert (pack / "failure_cases.md").read_text(encoding="utf-8") == "# Failure Cases\n\n"
    readme = (pack / "README.md").read_text(encoding="utf-8")
    assert "Selection: 3 of 9 prompt evaluations ran (`-k v3`); 6 were deselected." in readme
    # traces and routes describe every case, whatever ran
    for name in ("token_trace.json", "route_decisions.json"):
        assert (pack / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    data = summary(root)
    assert data["selection"] == {"ran": 3, "selected": 3, "total": 9, "keyword": "v3", "shard": None}
    assert [(v["version"], v["passed"], v["total"]) for v in data["versions"]] == [("v3_json_with_boundary", 3, 3)]
    assert data["complete"] is True


def test_k_case_selects_one_case_across_versions(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    result = pytester.runpytest("-k", "case_2", "-rA")
    result.assert_outcomes(passed=4, xfailed=1, deselected=10)
    assert result.ret == pytest.ExitCode.OK
    assert ran_ids(result) == {
        *(eval_id(v, "case_2") for v in VERSIONS),
        "test_token_trace[case_2]",
        "test_route[case_2]",
    }
    data = summary(root)
    assert [(c["prompt_version"], c["case_id"]) for c in data["cells"]] == [(v, "case_2") for v in VERSIONS]


# --------------------------------------------------------------------------- 3. xdist


def test_xdist_pack_matches_a_serial_run(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    run_seed(pytester)
    serial = snapshot(root / PACK)
    serial_summary = summary(root)
    shutil.rmtree(root / "reports")

    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=11, xfailed=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*2 workers*", "Evidence pack: reports/evidence (9 of 9 evaluations; complete; written in * s)"]
    )
    assert SEED_GATE_LINE in result.stdout.lines

    parallel = snapshot(root / PACK)
    assert parallel.keys() == serial.keys()
    for name in parallel.keys() - {"summary.json"}:
        assert parallel[name] == serial[name], name
    parallel_summary = summary(root)
    assert parallel_summary["run"]["fixtures"] == serial_summary["run"]["fixtures"]
    del parallel_summary["run"], serial_summary["run"]
    assert parallel_summary == serial_summary


# --------------------------------------------------------------------------- 4. regression and --update-baseline


def _study_is_structured(data: dict[str, Any]) -> None:
    rule = next(rule for rule in data["intent_rules"] if rule["intent"] == "structured_output")
    rule["keywords"].append("study")


def test_regression_fails_then_update_baseline_records_it(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    edit_json(root / "cases" / "fake_model.json", _study_is_structured)

    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # v2 answers contract JSON from the same rules: case_1 regresses for both
    result.assert_outcomes(passed=9, failed=2, xfailed=4)
    result.stdout.fnmatch_lines(
        [
            "v3_json_with_boundary / case_1: REGRESSION: passed in the baseline, fails now",
            "  reason: wrong_intent: structured_output != learning_plan",
            "  expected intent: learning_plan",
            '  raw output: {"id": "case_1", "intent": "structured_output", "action": "Define the JSON schema first*',
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Gate: FAIL (2 regressions, 0 improvements to record, 0 new failures, 4 known failures)",
            "  regression: v2_json_contract / case_1: wrong_intent: structured_output != learning_plan",
            "  regression: v3_json_with_boundary / case_1: wrong_intent: structured_output != learning_plan",
        ]
    )
    data = summary(root)
    assert data["gate"]["verdict"] == "fail"
    assert data["gate"]["regressions"] == ["v2_json_contract-case_1", "v3_json_with_boundary-case_1"]
    assert cell_outcomes(data)[("v3_json_with_boundary", "case_1")] == "regression"

    before = json.loads((root / "cases" / "baseline.json").read_text(encoding="utf-8"))
    result = pytester.runpytest("--update-baseline")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=9, xfailed=6)
    result.stdout.fnmatch_lines(
        [
            "Gate: not applied (--update-baseline); 6 failures recorded as known",
            "Baseline updated: 2 change(s)",
            "  ~ v2_json_contract / case_1: passed -> fails (wrong_intent: structured_output != learning_plan)",
            "  ~ v3_json_with_boundary / case_1: passed -> fails (wrong_intent: structured_output != learning_plan)",
        ]
    )
    assert summary(root)["gate"]["mode"] == "update"
    after = json.loads((root / "cases" / "baseline.json").read_text(encoding="utf-8"))
    cells = {(c["prompt_version"], c["case_id"]): c for c in after["cells"]}
    assert cells[("v3_json_with_boundary", "case_1")] == {
        "prompt_version": "v3_json_with_boundary",
        "case_id": "case_1",
        "passed": False,
        "reason": "wrong_intent: structured_output != learning_plan",
    }
    unchanged = {(c["prompt_version"], c["case_id"]): c for c in before["cells"]}
    del unchanged[("v2_json_contract", "case_1")], unchanged[("v3_json_with_boundary", "case_1")]
    assert all(cells[key] == cell for key, cell in unchanged.items())
    # cells the run did not cover (the safety cases' cells) are kept, in their place
    assert len(after["cells"]) == len(before["cells"])
    assert [(c["prompt_version"], c["case_id"]) for c in after["cells"]] == [
        (c["prompt_version"], c["case_id"]) for c in before["cells"]
    ]

    result = pytester.runpytest("-rx")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=9, xfailed=6)
    result.stdout.fnmatch_lines(
        [
            "XFAIL tests/test_prompt_eval.py::test_prompt_version?v3_json_with_boundary-case_1? - "
            "known failure: wrong_intent: structured_output != learning_plan"
        ]
    )
    assert "Gate: PASS (0 regressions, 0 improvements to record, 0 new failures, 6 known failures)" in (
        result.stdout.lines
    )
    assert summary(root)["gate"]["verdict"] == "pass"


# --------------------------------------------------------------------------- 5. improvement


def test_improvement_fails_until_recorded(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    edit_json(
        root / "cases" / "prompt_versions.json",
        lambda data: version_named(data, "v2_json_contract")["fake_model"].pop("scripted_replies"),
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=11, failed=1, xfailed=3)
    result.stdout.fnmatch_lines(
        [
            "*_ test_prompt_version?v2_json_contract-case_3? _*",
            "v2_json_contract / case_3: IMPROVEMENT: the baseline records a failure, passes now; "
            "record it with `pytest --update-baseline`",
            "  recorded reason: missing_fields: *",
        ]
    )
    result.stdout.fnmatch_lines(["  record improvements with `pytest --update-baseline`"])
    data = summary(root)
    assert data["gate"]["improvements"] == ["v2_json_contract-case_3"]
    assert data["gate"]["verdict"] == "fail"


# --------------------------------------------------------------------------- 6. new cases and versions


def _add_v4(data: dict[str, Any]) -> None:
    v4 = copy.deepcopy(version_named(data, "v3_json_with_boundary"))
    v4["name"] = "v4_candidate"
    data["versions"].append(v4)


def test_new_version_and_case_add_tests_without_python(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].append(LEARNING_CASE))
    edit_json(root / "cases" / "prompt_versions.json", _add_v4)

    # v1 answers prose to every case, so v1 / case_4 is a new failure: leave v1 out here
    result = pytester.runpytest("-k", "not v1_goal_only", "-rA")
    assert result.ret == pytest.ExitCode.OK
    # 3 versions x 4 cases (1 known failure) + 4 token traces + 4 routes
    result.assert_outcomes(passed=19, xfailed=1, deselected=4)
    ids = ran_ids(result)
    new_ids = {eval_id("v4_candidate", c) for c in (*CASES, "case_4")} | {
        eval_id(v, "case_4") for v in ("v2_json_contract", "v3_json_with_boundary")
    }
    assert new_ids | {"test_token_trace[case_4]", "test_route[case_4]"} <= ids
    data = summary(root)
    outcomes = cell_outcomes(data)
    for test_id in new_ids:
        version, case = test_id[len("test_prompt_version[") : -1].split("-")
        assert outcomes[(version, case)] == "new", test_id
    assert outcomes[("v3_json_with_boundary", "case_1")] == "passed"
    assert ("v4_candidate", 4, 4) in [(v["version"], v["passed"], v["total"]) for v in data["versions"]]
    assert data["gate"]["verdict"] == "pass"

    # the whole suite: v1 / case_4 is a new cell that fails
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=19, failed=1, xfailed=4)
    result.stdout.fnmatch_lines(["v1_goal_only / case_4: NEW FAILURE: not in the baseline, and a new cell must pass*"])


def test_new_case_the_model_gets_wrong_is_a_new_failure(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    wrong = {
        "id": "case_5",
        # "ragged" holds the fake model's "rag" keyword: it answers solution_choice
        "user_input": "My answers look ragged. Make me a study plan to write better ones.",
        "expected_intent": "learning_plan",
    }
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].append(wrong))
    result = pytester.runpytest("-k", "not v1_goal_only")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # no expected_route: no route test for case_5
    result.assert_outcomes(passed=12, failed=2, xfailed=1, deselected=4)
    result.stdout.fnmatch_lines(
        [
            "v3_json_with_boundary / case_5: NEW FAILURE: not in the baseline, and a new cell must pass "
            "(or record it with `pytest --update-baseline`)",
            "  reason: wrong_intent: solution_choice != learning_plan",
            "  expected intent: learning_plan",
        ]
    )
    data = summary(root)
    assert data["gate"]["new_failures"] == ["v2_json_contract-case_5", "v3_json_with_boundary-case_5"]


# --------------------------------------------------------------------------- 7. --no-baseline


def test_no_baseline_shows_raw_failures(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    result = pytester.runpytest("--no-baseline")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=11, failed=4)
    result.stdout.fnmatch_lines(
        [
            "v1_goal_only / case_1: FAILED",
            "  reason: invalid_json: Expecting value",
        ]
    )
    result.stdout.fnmatch_lines(["Gate: off (--no-baseline); raw result FAIL, 4 failing"])
    for version, case in sorted(KNOWN_FAILURES):
        result.stdout.fnmatch_lines([f"FAILED tests/test_prompt_eval.py::test_prompt_version?{version}-{case}?*"])
    data = summary(root)
    assert data["gate"]["mode"] == "off"
    assert data["gate"]["verdict"] == "fail"
    assert set(cell_outcomes(data).values()) == {"passed", "failed"}


# --------------------------------------------------------------------------- 8. broken fixtures


def _bad_syntax(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # drop the comma after case_1's object: the parser stops at case_2's opening brace
    broken = text.replace('"expected_route": "Prompt first"\n    },', '"expected_route": "Prompt first"\n    }', 1)
    assert broken != text
    path.write_text(broken, encoding="utf-8")


def _unknown_intent(path: Path) -> None:
    edit_json(path, lambda data: data["cases"][1].update(expected_intent="chit_chat"))


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        pytest.param(
            _bad_syntax,
            "cases/cases.json: invalid JSON at line 11, column 5: Expecting ',' delimiter",
            id="syntax",
        ),
        pytest.param(
            _unknown_intent,
            "cases/cases.json: cases[1] (id 'case_2'): field 'expected_intent': "
            "'chit_chat' is not an intent the contract allows (learning_plan, structured_output, solution_choice)",
            id="unknown-intent",
        ),
    ],
)
def test_broken_fixtures_are_a_usage_error_and_keep_the_previous_pack(
    pytester: pytest.Pytester, breakage: Callable[[Path], None], expected: str
) -> None:
    root = make_project(pytester)
    run_seed(pytester)
    before = snapshot(root / "reports")
    assert "evidence/summary.json" in before

    breakage(root / "cases" / "cases.json")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.ret == 4  # what a CI job sees
    problem = f"  {(root / 'cases' / 'cases.json').as_posix()}: {expected.removeprefix('cases/cases.json: ')}"
    assert result.stderr.lines[:2] == ["ERROR: invalid fixtures (1 problem):", problem]
    assert "collected" not in result.stdout.str(), "nothing was collected"
    assert not re.search(r"\d+ (passed|failed|xfailed)", result.stdout.str()), "no test ran"
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert snapshot(root / "reports") == before
    reports = sorted(p.name for p in (root / "reports").iterdir())
    assert reports == [".evidence.lock", "evidence", "history"], "no staging folders left"


# --------------------------------------------------------------------------- 9. --cases outside the project


def _outside_cases(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the cases folder elsewhere, with a fourth case; the project's baseline knows v1 fails it."""
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "cases"
    shutil.copytree(pytester.path / "cases", elsewhere)
    edit_json(elsewhere / "cases.json", lambda data: data["cases"].append(LEARNING_CASE))
    edit_json(
        pytester.path / "cases" / "baseline.json",
        lambda data: data["cells"].append(
            {
                "prompt_version": "v1_goal_only",
                "case_id": "case_4",
                "passed": False,
                "reason": "invalid_json: Expecting value",
            }
        ),
    )
    return elsewhere / "cases.json"


def _check_outside_run(pytester: pytest.Pytester, result: pytest.RunResult, cases_file: Path) -> None:
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    # 3 versions x 4 cases, 4 traces, 4 routes
    result.assert_outcomes(passed=15, xfailed=5)
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}", "configfile: pyproject.toml", "collected 20 items"])
    assert "ERROR: not found" not in result.stderr.str() + result.stdout.str()
    data = summary(pytester.path)
    assert data["selection"]["total"] == 12
    assert Path(data["run"]["fixtures"]["cases"]["path"]) == cases_file.resolve(), "outside the project: absolute"
    assert ("v3_json_with_boundary", "case_4") in cell_outcomes(data)


def test_cases_option_with_equals_uses_outside_cases(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    make_project(pytester)
    cases_file = _outside_cases(pytester, tmp_path_factory)
    result = pytester.runpytest_subprocess(f"--cases={cases_file}")
    _check_outside_run(pytester, result, cases_file)


def test_cases_option_with_space_outside_the_project_is_a_clear_usage_error(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # pytest roots the run at a positional-looking path before installed plugins add their options,
    # so `--cases PATH` outside the project would run without the project's configuration: refuse it
    make_project(pytester)
    cases_file = _outside_cases(pytester, tmp_path_factory)
    result = pytester.runpytest_subprocess("--cases", str(cases_file))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--cases {cases_file}: pytest read this path as a test path*--cases={cases_file}*"])
    assert not (pytester.path / "reports").exists()
    assert not (cases_file.parent.parent / "reports").exists()


SPACED = "mes cas d'évaluation/données ü 例"


def test_fixture_paths_with_spaces_and_non_ascii_characters_work(pytester: pytest.Pytester) -> None:
    # fixtures in a folder named with spaces, an apostrophe, accents and CJK; from the ini and from --cases=
    root = make_project(pytester)
    shutil.move(root / "cases", root / SPACED)
    ini = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(ini.replace('"cases/', f'"{SPACED}/'), encoding="utf-8")
    run_seed(pytester)
    for name in ("token_trace.json", "prompt_eval.csv", "route_decisions.json"):
        assert (root / PACK / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    assert summary(root)["run"]["fixtures"]["cases"]["path"].endswith(f"{SPACED}/cases.json")

    shutil.rmtree(root / PACK)
    result = pytester.runpytest_subprocess(
        f"--cases={root / SPACED / 'cases.json'}", "--evidence-dir=reports/é vidence"
    )
    result.assert_outcomes(passed=11, xfailed=4)
    result.stdout.fnmatch_lines(["Evidence pack: reports/é vidence (9 of 9 evaluations; complete*"])
    assert (root / "reports" / "é vidence" / "prompt_eval.csv").read_bytes() == (
        GOLDEN / "prompt_eval.csv"
    ).read_bytes()


def test_cases_option_with_space_inside_the_project_works(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    result = pytester.runpytest_subprocess("--cases", "cases/cases.json")
    result.assert_outcomes(passed=11, xfailed=4)


# --------------------------------------------------------------------------- 10. inert without configuration

PLUGIN_PROBE = """
import workshop.plugin


def test_plugin_loaded_once(pytestconfig):
    pm = pytestconfig.pluginmanager
    assert pm.get_plugin("workshop") is workshop.plugin
    assert sum(plugin is workshop.plugin for plugin in pm.get_plugins()) == 1
    names = [name for name, _ in pm.list_name_plugin()]
    assert names.count("workshop-suite") == {expected_suites}
"""


def test_inert_without_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="def test_one():\n    assert 1 + 1 == 2\n",
        test_cell="def test_cell(prompt_cell):\n    pass\n",
        test_probe=PLUGIN_PROBE.format(expected_suites=0),
    )
    result = pytester.runpytest("-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*fixture 'prompt_cell' not found*"])
    assert "test_cell[" not in result.stdout.str(), "not parametrized"
    assert "prompt evaluation" not in result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "reports").exists()


def test_configured_plugin_registers_its_suite_once(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    pytester.makepyfile(**{"tests/test_probe": PLUGIN_PROBE.format(expected_suites=1)})
    result = pytester.runpytest()
    result.assert_outcomes(passed=12, xfailed=4)


# --------------------------------------------------------------------------- 11. -p no:html


def test_html_plugin_disabled_still_runs(pytester: pytest.Pytester) -> None:
    root = make_project(pytester, html_report=True)
    result = pytester.runpytest("-p", "no:html")
    result.assert_outcomes(passed=11, xfailed=4)
    assert result.ret == pytest.ExitCode.OK
    assert not (root / "reports" / "report.html").exists()
    assert (root / PACK / "summary.json").is_file()


# --------------------------------------------------------------------------- 12. the HTML report


def _xss_replies(data: dict[str, Any]) -> None:
    bad_intent = json.dumps(
        {"id": "case_2", "intent": XSS, "action": XSS, "confidence": 0.5, "needs_human_review": False}
    )
    replies = {"case_1": XSS, "case_2": bad_intent}
    version_named(data, "v3_json_with_boundary")["fake_model"]["scripted_replies"] = replies


def test_html_report_escapes_model_output(pytester: pytest.Pytester) -> None:
    root = make_project(pytester, html_report=True)
    edit_json(root / "cases" / "prompt_versions.json", _xss_replies)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=9, failed=2, xfailed=4)

    report = root / "reports" / "report.html"
    assert report.is_file()
    text = report.read_text(encoding="utf-8")
    # self-contained: no asset folder, no linked stylesheet or script file
    assert not (root / "reports" / "assets").exists()
    assert not re.search(r"<link[^>]+href=", text)
    assert not re.search(r"<script[^>]+src=", text)
    assert XSS_RAW_PREFIX not in text

    match = re.search(r'<div id="data-container" data-jsonblob="([^"]*)"', text)
    assert match, "pytest-html 4 data blob"
    blob = json.loads(html.unescape(match.group(1)))
    assert XSS_RAW_PREFIX not in json.dumps(blob, ensure_ascii=False)
    rows = {test_id: entries[-1] for test_id, entries in blob["tests"].items()}

    row = rows["tests/test_prompt_eval.py::test_prompt_version[v3_json_with_boundary-case_1]"]
    cells = row["resultsTableRow"]
    assert '<td class="col-version">v3_json_with_boundary</td>' in cells
    assert '<td class="col-case">case_1</td>' in cells
    assert '<td class="col-reason">invalid_json: Expecting value</td>' in cells
    extras = " ".join(extra["content"] for extra in row["extras"])
    assert f"<pre>{XSS_ESCAPED}</pre>" in extras
    assert XSS_RAW_PREFIX not in extras

    row = rows["tests/test_prompt_eval.py::test_prompt_version[v3_json_with_boundary-case_2]"]
    assert f'<td class="col-reason">bad_intent: {XSS_ESCAPED}</td>' in row["resultsTableRow"]
    assert XSS_RAW_PREFIX not in " ".join(row["resultsTableRow"])

    # a test that is not a prompt evaluation has the columns, empty
    row = rows["tests/test_prompt_eval.py::test_route[case_1]"]
    assert '<td class="col-version"></td>' in row["resultsTableRow"]

    header = re.findall(r'<th class="sortable" data-column-type="(\w+)"', text)
    assert {"version", "case", "reason"} <= set(header)

    matrix = text[text.index('<div class="workshop-matrix">') :]
    matrix = matrix[: matrix.index("</table></div>")]
    assert "<h2>Prompt evaluation</h2>" in matrix
    assert "Gate: FAIL (2 regressions, 0 improvements to record, 0 new failures, 4 known failures)" in matrix
    assert "<td>0/3</td>" in matrix and "<td>2/3</td>" in matrix and "<td>1/3</td>" in matrix
    assert f'title="bad_intent: {XSS_ESCAPED}"' in matrix
    assert ">REGRESSION</td>" in matrix


def test_html_report_seed_matrix(pytester: pytest.Pytester) -> None:
    root = make_project(pytester, html_report=True)
    run_seed(pytester)
    text = (root / "reports" / "report.html").read_text(encoding="utf-8")
    matrix = text[text.index('<div class="workshop-matrix">') :]
    matrix = matrix[: matrix.index("</table></div>")]
    assert SEED_GATE_LINE in matrix
    assert "<tr><th>v3_json_with_boundary</th><td>3/3</td>" in matrix
    assert "<tr><th>v1_goal_only</th><td>0/3</td>" in matrix
    assert matrix.count(">known failure</td>") == 4


# --------------------------------------------------------------------------- interrupted runs

STOP_AT = """
import os
import pytest

STOP = {stop!r}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if item.name == "test_prompt_version[" + STOP + "]":
        {action}
"""


def test_ctrl_c_writes_what_finished_marked_incomplete(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    pytester.makeconftest(STOP_AT.format(stop="v2_json_contract-case_1", action="raise KeyboardInterrupt"))
    result = pytester.runpytest_subprocess()  # in-process, pytester re-raises the KeyboardInterrupt
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = summary(root)
    assert data["complete"] is False
    assert [(c["prompt_version"], c["case_id"]) for c in data["cells"]] == [
        ("v1_goal_only", "case_1"),
        ("v1_goal_only", "case_2"),
        ("v1_goal_only", "case_3"),
    ]
    assert "v2_json_contract-case_1" in data["missing"]
    readme = (root / PACK / "README.md").read_text(encoding="utf-8")
    assert "INCOMPLETE" in readme
    result.stdout.fnmatch_lines(["Evidence pack: reports/evidence (3 of 9 evaluations; INCOMPLETE*"])


def test_update_baseline_is_not_applied_by_an_interrupted_run(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    before = (root / "cases" / "baseline.json").read_bytes()
    pytester.makeconftest(STOP_AT.format(stop="v3_json_with_boundary-case_1", action="raise KeyboardInterrupt"))
    result = pytester.runpytest_subprocess("--update-baseline")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (root / "cases" / "baseline.json").read_bytes() == before


def test_a_crashed_xdist_worker_leaves_a_pack_marked_incomplete(pytester: pytest.Pytester) -> None:
    root = make_project(pytester)
    pytester.makeconftest(STOP_AT.format(stop="v3_json_with_boundary-case_2", action="os._exit(3)"))
    result = pytester.runpytest("-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = summary(root)
    assert data["complete"] is False
    assert data["missing"] == ["v3_json_with_boundary-case_2"]
    assert len(data["cells"]) == 8
    csv_rows = (root / PACK / "prompt_eval.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == 1 + 8


def test_html_report_at_scale_keeps_rows_only_for_what_needs_a_look(pytester: pytest.Pytester) -> None:
    # above html_full_rows, passes and known failures are counted in the matrix, not listed as rows
    root = make_project(pytester, html_report=True)
    edit_json(root / "cases" / "prompt_versions.json", _xss_replies)  # two v3 regressions
    result = pytester.runpytest("--html-full-rows", "5")
    result.assert_outcomes(passed=9, failed=2, xfailed=4)
    text = (root / "reports" / "report.html").read_text(encoding="utf-8")
    match = re.search(r'<div id="data-container" data-jsonblob="([^"]*)"', text)
    assert match
    # pytest-html keeps an empty entry for a test without a row
    rows = {test for test, entries in json.loads(html.unescape(match.group(1)))["tests"].items() if entries}
    evaluations = {row for row in rows if "test_prompt_version[" in row}
    assert evaluations == {
        "tests/test_prompt_eval.py::test_prompt_version[v3_json_with_boundary-case_1]",
        "tests/test_prompt_eval.py::test_prompt_version[v3_json_with_boundary-case_2]",
    }
    assert "tests/test_prompt_eval.py::test_route[case_1]" in rows, "other tests keep their rows"
    assert "7 evaluations that passed or failed as the baseline expects are counted here" in text
    assert "Request payload" not in text, "no payload in row extras at scale"
    # every evaluation is still in the pack
    csv_rows = (root / PACK / "prompt_eval.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == 1 + 9
