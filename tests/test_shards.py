"""Sharded runs and their merge: `pytest --shard K/N` and `python -m workshop merge`.

The promise checked here: the packs of N shards, merged, are byte-identical to one unsharded
run's pack (apart from ``summary.json``'s ``run``), and a merge refuses packs that do not
belong together (different fixtures, overlapping shards) with a clear error.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_plugin import LEARNING_CASE, edit_json, make_project, ran_ids, version_named
from test_providers import SENTINEL_KEY, fake_responder, load_repo_fixtures

from workshop.cli import main
from workshop.evidence import PACK_FILES
from workshop.loopback import LoopbackServer, Reply
from workshop.shard import Shard

V3 = "v3_json_with_boundary"


# --------------------------------------------------------------------------- the shard rule


@given(st.integers(1, 12), st.lists(st.integers(), max_size=60))
def test_shards_split_items_into_disjoint_balanced_parts(count: int, items: list[int]) -> None:
    parts = [Shard(index, count).part(items) for index in range(1, count + 1)]
    assert sorted(x for part in parts for x in part) == sorted(items), "every item in exactly one shard"
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) <= 1, "balanced"
    for index, part in enumerate(parts, start=1):
        assert part == [x for position, x in enumerate(items) if Shard(index, count).takes(position)]


@pytest.mark.parametrize(("text", "shard"), [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)), (" 3 / 3 ", Shard(3, 3))])
def test_shard_parses_k_of_n(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard
    assert str(shard) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "1/2/3", "-1/2"])
def test_shard_refuses_what_is_not_k_of_n(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        Shard.parse(text)


# --------------------------------------------------------------------------- end to end


def _bigger_suite(root: Path) -> None:
    """Four cases (12 cells: not a multiple of 3 per version) and a regression, so the gate has work."""
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].append(LEARNING_CASE))

    def break_v3_case_2(data: dict[str, Any]) -> None:
        version_named(data, V3)["fake_model"]["scripted_replies"] = {"case_2": "not json"}

    edit_json(root / "cases" / "prompt_versions.json", break_v3_case_2)


def run_shards(pytester: pytest.Pytester, count: int, *args: str) -> list[pytest.RunResult]:
    return [
        pytester.runpytest("-rA", "--shard", f"{k}/{count}", "--evidence-dir", f"reports/shard{k}", *args)
        for k in range(1, count + 1)
    ]


def merge(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(root)
    return main(["merge", *args])


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def without_run(summary_bytes: bytes) -> dict[str, Any]:
    data = json.loads(summary_bytes)
    del data["run"]
    return data


def test_three_shards_merged_equal_one_unsharded_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    _bigger_suite(root)
    whole = pytester.runpytest("-rA", "--evidence-dir", "reports/whole")
    shards = run_shards(pytester, 3)

    # each shard runs its own part: together every test exactly once
    ran = [ran_ids(result) for result in shards]
    assert set.union(*ran) == ran_ids(whole)
    assert sum(map(len, ran)) == len(ran_ids(whole))
    sizes = [len(ids) for ids in ran]
    assert max(sizes) - min(sizes) <= 1, sizes
    for k in (1, 2, 3):
        readme = (root / "reports" / f"shard{k}" / "README.md").read_text(encoding="utf-8")
        assert f"Shard {k}/3: this pack holds one part of the cells" in readme
        assert json.loads((root / "reports" / f"shard{k}" / "summary.json").read_bytes())["selection"]["shard"] == (
            f"{k}/3"
        )

    capsys.readouterr()
    code = merge(root, monkeypatch, "reports/shard1", "reports/shard2", "reports/shard3", "-o", "reports/merged")
    out = capsys.readouterr().out
    assert code == 1, "the merged gate fails on the planted regression"
    assert "Gate: FAIL (1 regression" in out
    assert f"  regression: {V3} / case_2: invalid_json: Expecting value" in out
    assert "Evidence pack: reports/merged (12 of 12 evaluations; complete)" in out

    merged, unsharded = files_of(root / "reports" / "merged"), files_of(root / "reports" / "whole")
    assert set(merged) == set(unsharded) == PACK_FILES
    for name in sorted(PACK_FILES - {"summary.json"}):
        assert merged[name] == unsharded[name], name
    assert without_run(merged["summary.json"]) == without_run(unsharded["summary.json"])
    run = json.loads(merged["summary.json"])["run"]
    assert [source["shard"] for source in run["merged_from"]] == ["1/3", "2/3", "3/3"]
    assert run["fixtures"] == json.loads(unsharded["summary.json"])["run"]["fixtures"]


@pytest.mark.parametrize(
    "options",
    [("--repeat", "3"), ("--min-pass-rate", "0"), ("--repeat", "2", "--min-pass-rate", "0.5"), ("--no-baseline",)],
    ids=["three trials", "pass rate zero", "pass rate half", "baseline off"],
)
def test_merged_shards_equal_one_run_with_trials_and_gate_options(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...]
) -> None:
    root = make_project(pytester)
    pytester.runpytest("--evidence-dir", "reports/whole", *options)
    run_shards(pytester, 2, *options)
    merge(root, monkeypatch, "reports/shard1", "reports/shard2", "-o", "reports/merged")
    merged, unsharded = files_of(root / "reports" / "merged"), files_of(root / "reports" / "whole")
    for name in sorted(PACK_FILES - {"summary.json"}):
        assert merged[name] == unsharded[name], name
    assert without_run(merged["summary.json"]) == without_run(unsharded["summary.json"])


def test_a_missing_shard_makes_the_merge_incomplete(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    run_shards(pytester, 3)
    capsys.readouterr()
    assert merge(root, monkeypatch, "reports/shard1", "reports/shard3", "-o", "reports/merged") == 1
    assert "INCOMPLETE" in capsys.readouterr().out
    data = json.loads((root / "reports" / "merged" / "summary.json").read_bytes())
    assert data["complete"] is False
    assert data["missing"] == [cell for i, cell in enumerate(_cell_ids()) if Shard(2, 3).takes(i)]
    assert "INCOMPLETE" in (root / "reports" / "merged" / "README.md").read_text(encoding="utf-8")


def _cell_ids() -> list[str]:
    versions = ("v1_goal_only", "v2_json_contract", V3)
    return [f"{v}-{c}" for v in versions for c in ("case_1", "case_2", "case_3")]


def test_merge_refuses_packs_of_different_fixtures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    pytester.runpytest("--shard", "1/2", "--evidence-dir", "reports/shard1")
    edit_json(root / "cases" / "prompt_versions.json", lambda data: data["versions"][0].update(instructions="Help."))
    pytester.runpytest("--shard", "2/2", "--evidence-dir", "reports/shard2")
    capsys.readouterr()
    assert merge(root, monkeypatch, "reports/shard1", "reports/shard2", "-o", "reports/merged") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot merge packs of different fixtures: prompts (")
    assert "run every shard on the same commit" in err
    assert not (root / "reports" / "merged").exists(), "nothing written"


def test_merge_refuses_fixtures_changed_since_the_shards_ran(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    run_shards(pytester, 2)
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].append(LEARNING_CASE))
    capsys.readouterr()
    assert merge(root, monkeypatch, "reports/shard1", "reports/shard2", "-o", "reports/merged") == 2
    assert "cases.json changed since the shards ran" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (("--shard", "2/3"), ("--shard", "2/3"), "overlapping shards: reports/a and reports/b are both shard 2/3"),
        (("--shard", "1/2"), ("--shard", "1/3"), "cannot merge packs with different shard counts"),
        (("-k", "v1"), ("-k", "v1 or v3"), "cannot merge packs with different -k selections"),
        (("--no-baseline",), (), "cannot merge packs with different gate modes"),
    ],
    ids=["same shard twice", "different shard counts", "different selections", "different gate modes"],
)
def test_merge_refuses_packs_that_do_not_belong_together(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    first: tuple[str, ...],
    second: tuple[str, ...],
    message: str,
) -> None:
    root = make_project(pytester)
    pytester.runpytest(*first, "--evidence-dir", "reports/a")
    pytester.runpytest(*second, "--evidence-dir", "reports/b")
    capsys.readouterr()
    assert merge(root, monkeypatch, "reports/a", "reports/b", "-o", "reports/merged") == 2
    assert message in capsys.readouterr().err
    assert not (root / "reports" / "merged").exists()


def test_merge_refuses_unsharded_packs_that_overlap(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    pytester.runpytest("--evidence-dir", "reports/a")
    pytester.runpytest("--evidence-dir", "reports/b")
    capsys.readouterr()
    assert merge(root, monkeypatch, "reports/a", "reports/b", "-o", "reports/merged") == 2
    assert "overlapping packs: reports/a and reports/b both ran v1_goal_only / case_1" in capsys.readouterr().err


def test_merge_names_a_folder_that_is_not_a_pack(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    (root / "empty").mkdir()
    assert merge(root, monkeypatch, "empty", "-o", "reports/merged") == 2
    assert "error: empty: no summary.json; is this an evidence pack written by pytest?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shard", "4/3"), "--shard: K/N needs 1 <= K <= N, got '4/3'"),
        (("--shard", "2/3", "--update-baseline"), "--update-baseline needs every cell's result"),
    ],
)
def test_bad_shard_options_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    make_project(pytester)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_merge_writes_a_self_contained_html_report_of_the_merged_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(pytester)
    hostile = '<img src=x onerror="alert(1)"></td></table><script>alert(2)</script>'
    edit_json(
        root / "cases" / "prompt_versions.json",
        lambda data: version_named(data, V3)["fake_model"].update(scripted_replies={"case_2": hostile}),
    )
    run_shards(pytester, 2)
    capsys.readouterr()
    args = ["reports/shard1", "reports/shard2", "-o", "reports/merged", "--html", "reports/merged.html"]
    assert merge(root, monkeypatch, *args) == 1
    assert "HTML report: reports/merged.html" in capsys.readouterr().out
    page = (root / "reports" / "merged.html").read_text(encoding="utf-8")
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'\"" in page, "no script, no request"
    assert "Gate: FAIL (1 regression" in page
    assert "<tr><th>v3_json_with_boundary</th><td>2/3</td>" in page
    assert f"<pre>{html.escape(hostile)}</pre>" in page, "the raw output as text"
    assert "<script>" not in page and "<img" not in page
    first_row = page.index('<table class="workshop-cells"')
    assert page.index(">REGRESSION<", first_row) < page.index(">known failure<", first_row), "regressions first"


def test_merged_shards_equal_one_run_with_a_real_provider_and_a_failed_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # through the real SDK against the loopback server; one cell's calls fail (no result: an error)
    for name in ("OPENAI_MODEL", "WORKSHOP_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    root = make_project(pytester)

    def fail_v3_case_2(version: str, case: str) -> Reply | None:
        if (version, case) == (V3, "case_2"):
            raise RuntimeError("upstream failed")
        return None

    options = ("--provider", "openai-chat", "--record-mode", "all", "--max-retries", "0")
    with LoopbackServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        server.responder = fake_responder(load_repo_fixtures(root / "cases"), fail_v3_case_2)
        # subprocesses: in-process runs would drop the SDK modules they import, confusing later tests
        pytester.runpytest_subprocess("--evidence-dir", "reports/whole", *options)
        for k in (1, 2):
            pytester.runpytest_subprocess("--shard", f"{k}/2", "--evidence-dir", f"reports/shard{k}", *options)
    assert merge(root, monkeypatch, "reports/shard1", "reports/shard2", "-o", "reports/merged") == 1
    merged, unsharded = files_of(root / "reports" / "merged"), files_of(root / "reports" / "whole")
    for name in sorted(PACK_FILES - {"summary.json"}):
        assert merged[name] == unsharded[name], name
    merged_summary = json.loads(merged["summary.json"])
    assert without_run(merged["summary.json"]) == without_run(unsharded["summary.json"])
    assert merged_summary["errors"][0]["case_id"] == "case_2"
    assert merged_summary["complete"] is False
    assert set(merged_summary["run"]["latency_s"]) == {"v1_goal_only", "v2_json_contract", V3}
