"""Throwaway projects for the scale benchmark: generated cases, the suite, and pytest's floor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPANIONS = ("prompt_versions.json", "output_contract.schema.json", "fake_model.json", "routes.json")
COMPANIONS += ("failure_guide.json",)

# Wording that keeps each seed text's intent and route under the fake model's keyword rules.
PREFIXES = ("", "Quick question: ", "Hello! ", "As a beginner, ", "For my team, ", "Honestly, ")
SUFFIXES = ("", " Thanks.", " Please keep it short.", " This is for a workshop.", " No rush.")

EVAL_TEST = """
def test_prompt_version(prompt_cell):
    prompt_cell.check()
"""

FLOOR_TEST = """
import json
import pytest

IDS = json.load(open(__file__.replace(".py", "_ids.json"), encoding="utf-8"))


@pytest.mark.parametrize("cell", IDS, ids=IDS)
def test_prompt_version(cell):
    assert True
"""


def generated_cases(count: int) -> list[dict[str, str]]:
    """``count`` cases from the seed's three, with new ids and varied wording."""
    seed = json.loads((ROOT / "cases" / "cases.json").read_text(encoding="utf-8"))["cases"]
    cases = []
    for index in range(count):
        base = seed[index % len(seed)]
        prefix = PREFIXES[(index // 3) % len(PREFIXES)]
        suffix = SUFFIXES[(index // 18) % len(SUFFIXES)]
        text = base["user_input"]
        cases.append(
            {
                "id": f"gen_{index:05d}",
                "user_input": f"{prefix}{text[0].lower() if prefix else text[0]}{text[1:]}{suffix}",
                "expected_intent": base["expected_intent"],
                "expected_route": base["expected_route"],
            }
        )
    return cases


def suite_project(folder: Path, count: int, html: bool) -> Path:
    """A project running the suite on ``count`` generated cases (three versions each)."""
    cases_dir = folder / "cases"
    cases_dir.mkdir(parents=True)
    for name in COMPANIONS:
        shutil.copyfile(ROOT / "cases" / name, cases_dir / name)
    document = {"routes": "routes.json", "cases": generated_cases(count)}
    (cases_dir / "cases.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_prompt_eval.py").write_text(EVAL_TEST, encoding="utf-8")
    ini = [
        "[tool.pytest.ini_options]",
        'testpaths = ["tests"]',
        'cases = "cases/cases.json"',
        'evidence_dir = "reports/evidence"',
        'baseline = "cases/baseline.json"',
        f'html_report = "{"reports/report.html" if html else ""}"',
    ]
    (folder / "pyproject.toml").write_text("\n".join(ini) + "\n", encoding="utf-8")
    return folder


def floor_project(folder: Path, count: int) -> Path:
    """pytest alone: the same number of parametrized tests, with the same ids, that only ``assert True``."""
    versions = [v["name"] for v in json.loads((ROOT / "cases" / "prompt_versions.json").read_text())["versions"]]
    ids = [f"{version}-{case['id']}" for version in versions for case in generated_cases(count)]
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "test_prompt_eval.py").write_text(FLOOR_TEST, encoding="utf-8")
    (folder / "tests" / "test_prompt_eval_ids.json").write_text(json.dumps(ids), encoding="utf-8")
    (folder / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n', encoding="utf-8")
    return folder
