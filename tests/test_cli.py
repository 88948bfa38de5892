"""``python -m workshop``: the seed's console output and evidence files, from the fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workshop.cli import main
from workshop.schemas import render_schemas

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
CASES = ROOT / "cases" / "cases.json"
PROMPTS = ROOT / "cases" / "prompt_versions.json"
GOLDEN_FILES = ("token_trace.json", "prompt_eval.csv", "route_decisions.json", "failure_cases.md")
FIXTURE_ARGS = ["--cases", str(CASES), "--prompts", str(PROMPTS)]


def test_golden_run_in_a_subprocess(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "workshop", *FIXTURE_ARGS, "--evidence-dir", "ch07_workshop_evidence"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={**os.environ, "OPENAI_MODEL": ""},
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout == (GOLDEN / "console.txt").read_bytes()
    assert completed.stderr == b""
    evidence = tmp_path / "ch07_workshop_evidence"
    for name in GOLDEN_FILES:
        assert (evidence / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    readme = (evidence / "README.md").read_text(encoding="utf-8")
    assert "Run command: `python -m workshop`" in readme
    assert "Best prompt version: v3_json_with_boundary (3/3 passed)" in readme


def test_golden_run_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*FIXTURE_ARGS, "--evidence-dir", "ch07_workshop_evidence"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (GOLDEN / "console.txt").read_text(encoding="utf-8")
    assert captured.err == ""
    assert sorted(p.name for p in (tmp_path / "ch07_workshop_evidence").iterdir()) == sorted(
        [*GOLDEN_FILES, "README.md"]
    )


def test_explain_adds_the_analysis_after_the_seeds_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*FIXTURE_ARGS, "--evidence-dir", "ch07_workshop_evidence", "--explain"]) == 0
    out = capsys.readouterr().out
    golden = (GOLDEN / "console.txt").read_text(encoding="utf-8")
    steps_1_to_3 = golden[: golden.index("\nSTEP 4")]
    assert out.startswith(steps_1_to_3 + "\nWhy, and what next\n")
    assert "Failures by reason: invalid_json 3 (v1_goal_only 3); missing_fields 1 (v2_json_contract 1)" in out
    assert "Next route: v1_goal_only -> Prompt; v2_json_contract -> Structured output" in out
    assert out.endswith("ch07_workshop_evidence/README.md\nch07_workshop_evidence/next_steps.md\n")
    pack = tmp_path / "ch07_workshop_evidence"
    seed_list = (GOLDEN / "failure_cases.md").read_text(encoding="utf-8")
    assert (pack / "failure_cases.md").read_text(encoding="utf-8").startswith(seed_list + "\n## Failures by reason")
    for name in ("token_trace.json", "prompt_eval.csv", "route_decisions.json"):
        assert (pack / name).read_bytes() == (GOLDEN / name).read_bytes()
    assert "Recommended next route: Structured output" in (pack / "next_steps.md").read_text(encoding="utf-8")


def test_run_twice_replaces_the_pack(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*FIXTURE_ARGS, "--evidence-dir", "out"]) == 0
    assert main([*FIXTURE_ARGS, "--evidence-dir", "out"]) == 0
    assert (tmp_path / "out" / "prompt_eval.csv").read_bytes() == (GOLDEN / "prompt_eval.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"], "no staging folders left"


def test_default_evidence_dir_is_reports_evidence_under_the_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(FIXTURE_ARGS) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        "STEP 4: Evidence files\n" + "".join(f"reports/evidence/{n}\n" for n in [*GOLDEN_FILES, "README.md"])
    )
    for name in GOLDEN_FILES:
        assert (tmp_path / "reports" / "evidence" / name).read_bytes() == (GOLDEN / name).read_bytes()


def test_default_fixtures_are_cases_under_the_cwd(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "cases", tmp_path / "cases")
    monkeypatch.chdir(tmp_path)
    assert main(["--evidence-dir", "ch07_workshop_evidence"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "console.txt").read_text(encoding="utf-8")


def broken_cases(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "cases", tmp_path / "cases")
    path = tmp_path / "cases" / "cases.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["cases"][1]["expected_intent"] = "fine_tune"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_broken_fixture_exits_2_with_the_message_on_stderr(tmp_path):
    cases = broken_cases(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-m", "workshop", "--cases", str(cases), "--prompts", str(tmp_path / "cases" / PROMPTS.name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.startswith("error: invalid fixtures (1 problem):\n")
    assert f"{cases.as_posix()}: cases[1] (id 'case_2'): field 'expected_intent'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "reports").exists()


def test_a_missing_fixture_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--cases", "nope.json", "--prompts", str(PROMPTS)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: invalid fixtures (1 problem):\n  nope.json: file not found" in captured.err


def test_an_evidence_dir_holding_other_files_exits_2_and_keeps_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mywork").mkdir()
    (tmp_path / "mywork" / "thesis.tex").write_text("precious")
    assert main([*FIXTURE_ARGS, "--evidence-dir", "mywork"]) == 2
    assert "refusing to replace mywork" in capsys.readouterr().err
    assert (tmp_path / "mywork" / "thesis.tex").read_text() == "precious"


def test_schemas_command_writes_the_schemas(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["schemas", "--dir", "out/schemas"]) == 0
    expected = render_schemas()
    assert capsys.readouterr().out == "".join(f"out/schemas/{name}\n" for name in expected)
    for name, text in expected.items():
        assert (tmp_path / "out" / "schemas" / name).read_text(encoding="utf-8") == text
    assert sorted(p.name for p in (tmp_path / "out" / "schemas").iterdir()) == sorted(expected)


def test_schemas_command_in_a_subprocess(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "workshop", "schemas", "--dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "s" / "cases.schema.json").read_bytes() == (
        ROOT / "cases" / "schemas" / "cases.schema.json"
    ).read_bytes()


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--nope"])
    assert info.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
