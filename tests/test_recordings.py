"""Record and replay of real model answers, and whole pytest runs against a loopback OpenAI-compatible server.

Units: `recording_key`, `Recorder` in its three modes, `RecordingStore.save`. End to end: pytester projects like
``test_plugin``'s, whose model is `LoopbackServer` answering exactly what the fake model would, so the seed
baseline applies; ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` reach the in-process runs (and xdist workers)
through the environment. No run may leave the API key in any file it writes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_plugin import CASES, GOLDEN, PACK, VERSIONS, edit_json, eval_id, make_project, ran_ids, summary
from test_providers import SENTINEL_KEY, fake_responder, files_containing, load_repo_fixtures, request_texts

from workshop.fake_model import FakeModel
from workshop.fixtures import Case, Fixtures
from workshop.loopback import LoopbackServer, Reply
from workshop.payload import Payload, build_payload
from workshop.providers import ClientSettings, make_provider
from workshop.recordings import (
    MissingRecording,
    Recorder,
    Recording,
    RecordingStore,
    recording_key,
    recording_path,
)

REPO = Path(__file__).resolve().parents[1]
RECORDINGS_SCHEMA = REPO / "cases" / "schemas" / "recordings.schema.json"
V3 = "v3_json_with_boundary"
ALL_CELLS = [(v, c) for v in VERSIONS for c in CASES]
SAME_AS_FAKE = ("prompt_eval.csv", "failure_cases.md", "token_trace.json", "route_decisions.json")


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    return load_repo_fixtures()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


def payload_of(fixtures: Fixtures, version: str = V3, case: str = "case_1") -> tuple[Payload, Case]:
    the_case = next(c for c in fixtures.cases if c.id == case)
    the_version = next(v for v in fixtures.versions if v.name == version)
    return build_payload(the_case, the_version, {}), the_case


def provider_for(fixtures: Fixtures, url: str | None, kind: str = "openai", key: str | None = SENTINEL_KEY) -> Any:
    return make_provider(kind, fixtures.contract, frozenset(), ClientSettings(url, key, 0, 5.0))


# --------------------------------------------------------------------------- recording_key


def test_recording_key_is_stable_and_changes_with_every_part_of_the_request(fixtures: Fixtures) -> None:
    payload, _ = payload_of(fixtures)
    responses = provider_for(fixtures, None)
    request = responses.request(payload)
    key = recording_key("openai", request, 0)

    assert len(key) == 64 and int(key, 16) >= 0
    assert recording_key("openai", responses.request(payload), 0) == key, "same request, same key"
    assert recording_key("openai", dict(reversed(list(request.items()))), 0) == key, "key order does not matter"

    def key_of(**changes: Any) -> str:
        changed = Payload(**{**payload.as_dict(), **changes})
        return recording_key("openai", responses.request(changed), 0)

    variants = {
        "instructions": key_of(instructions=payload.instructions + " Be brief."),
        "input": key_of(input=payload.input + "?"),
        "model": key_of(model="gpt-other"),
        "max_output_tokens": key_of(max_output_tokens=payload.max_output_tokens + 1),
        "temperature": key_of(temperature=0.7),
        "format": recording_key(
            "openai",
            make_provider(
                "openai", fixtures.contract, frozenset({payload.prompt_version}), ClientSettings(None, None)
            ).request(payload),
            0,
        ),
        "provider": recording_key("openai-chat", request, 0),
        "chat body": recording_key("openai-chat", provider_for(fixtures, None, "openai-chat").request(payload), 0),
        "trial": recording_key("openai", request, 1),
    }
    assert key not in variants.values()
    assert len(set(variants.values())) == len(variants), variants


def test_recording_path_is_one_file_per_provider_and_model(tmp_path: Path) -> None:
    assert recording_path(tmp_path, "openai", "gpt-5.5") == tmp_path / "openai--gpt-5.5.json"
    safe = tmp_path / "openai-chat--llama3.2_3b_q4_x.json"
    assert recording_path(tmp_path, "openai-chat", "llama3.2:3b/q4 x") == safe


# --------------------------------------------------------------------------- Recorder


def test_mode_new_records_then_replays_without_a_connection(
    fixtures: Fixtures, server: LoopbackServer, tmp_path: Path
) -> None:
    server.responder = lambda request: Reply(text='{"a": 1}', model="gpt-answered", input_tokens=9, output_tokens=4)
    payload, case = payload_of(fixtures)
    store = RecordingStore(tmp_path / "recordings")
    recorder = Recorder(provider_for(fixtures, server.base_url), store, "new")

    first = recorder.complete(payload, case)
    assert (first.text, first.replayed, server.count) == ('{"a": 1}', False, 1)
    again = recorder.complete(payload, case)
    assert (again.text, again.replayed, server.count) == ('{"a": 1}', True, 1)
    assert (again.model, again.input_tokens, again.output_tokens, again.latency_s) == ("gpt-answered", 9, 4, None)
    second_trial = recorder.complete(payload, case, trial=1)
    assert second_trial.replayed is False and server.count == 2, "another trial is another call"
    assert store.save() == [tmp_path / "recordings" / "openai--gpt-5.5.json"]

    # a fresh run, the server gone and no key: replay needs neither, and opens no connection
    url = server.base_url
    server.close()
    for mode in ("new", "none"):
        replayer = Recorder(provider_for(fixtures, url, key=None), RecordingStore(tmp_path / "recordings"), mode)
        replayed = [replayer.complete(payload, case, trial) for trial in (0, 1)]
        assert [c.replayed for c in replayed] == [True, True], mode
        assert replayed[0].text == '{"a": 1}'
        assert replayer.provider._client is None, "no SDK client was even built"


def test_mode_none_without_a_recording_says_how_to_record(
    fixtures: Fixtures, server: LoopbackServer, tmp_path: Path
) -> None:
    payload, case = payload_of(fixtures, "v2_json_contract", "case_3")
    provider = provider_for(fixtures, server.base_url, "openai-chat")
    recorder = Recorder(provider, RecordingStore(tmp_path), "none")
    key = recording_key("openai-chat", provider.request(payload), 2)

    with pytest.raises(MissingRecording) as raised:
        recorder.complete(payload, case, trial=2)
    assert str(raised.value) == (
        f"no recording of v2_json_contract / case_3 (trial 2, key {key[:12]}) in "
        f"{tmp_path / 'openai-chat--gpt-5.5.json'}; record it with `pytest --provider openai-chat --record-mode new`"
    )
    assert server.count == 0
    assert not list(tmp_path.iterdir())


def test_mode_all_calls_again_and_replaces(fixtures: Fixtures, server: LoopbackServer, tmp_path: Path) -> None:
    payload, case = payload_of(fixtures)
    server.responder = lambda request: Reply(text="first answer")
    store = RecordingStore(tmp_path)
    Recorder(provider_for(fixtures, server.base_url), store, "new").complete(payload, case)
    store.save()

    server.responder = lambda request: Reply(text="second answer")
    store = RecordingStore(tmp_path)
    recorder = Recorder(provider_for(fixtures, server.base_url), store, "all")
    completion = recorder.complete(payload, case)
    assert (completion.text, completion.replayed, server.count) == ("second answer", False, 2)
    store.save()

    saved = json.loads((tmp_path / "openai--gpt-5.5.json").read_text(encoding="utf-8"))
    assert [r["output_text"] for r in saved["recordings"]] == ["second answer"]


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_refusals_and_truncation_are_recorded_and_replayed(
    kind: str, fixtures: Fixtures, server: LoopbackServer, tmp_path: Path
) -> None:
    payload, case = payload_of(fixtures)
    store = RecordingStore(tmp_path)
    recorder = Recorder(provider_for(fixtures, server.base_url, kind), store, "new")
    server.responder = lambda request: Reply(refusal="I won't.", output_tokens=2)
    refused = recorder.complete(payload, case, trial=0)
    server.responder = lambda request: Reply(text='{"id": "case_1"', truncated=True)
    cut = recorder.complete(payload, case, trial=1)
    store.save()

    replayer = Recorder(provider_for(fixtures, None, kind, key=None), RecordingStore(tmp_path), "none")
    again = [replayer.complete(payload, case, trial) for trial in (0, 1)]
    assert [(c.text, c.refusal, c.truncated, c.output_tokens) for c in again] == [
        (refused.text, "I won't.", False, 2),
        (cut.text, None, True, cut.output_tokens),
    ]
    assert server.count == 2


def recording(version: str, case: str, trial: int, text: str = "x") -> Recording:
    key = recording_key("openai", {"v": version, "c": case, "text": text}, trial)
    return Recording(key=key, prompt_version=version, case_id=case, trial=trial, output_text=text)


def test_save_merges_with_the_file_on_disk_and_sorts(tmp_path: Path) -> None:
    early = RecordingStore(tmp_path)
    assert early.get("openai", "m", "0" * 64) is None  # it has read the (missing) file already
    late = RecordingStore(tmp_path)
    for item in (recording("v3", "case_2", 1), recording("v3", "case_2", 0), recording("v1", "case_9", 0)):
        late.put("openai", "m", item)
    late.save()

    early.put("openai", "m", recording("v2", "case_1", 0))
    early.put("openai", "m", recording("v3", "case_1", 0))
    early.put("openai", "other-model", recording("v1", "case_1", 0))
    written = early.save()

    assert sorted(written) == [tmp_path / "openai--m.json", tmp_path / "openai--other-model.json"]
    saved = json.loads((tmp_path / "openai--m.json").read_text(encoding="utf-8"))
    assert [(r["prompt_version"], r["case_id"], r["trial"]) for r in saved["recordings"]] == [
        ("v1", "case_9", 0),
        ("v2", "case_1", 0),
        ("v3", "case_1", 0),
        ("v3", "case_2", 0),
        ("v3", "case_2", 1),
    ]
    assert (saved["provider"], saved["model"]) == ("openai", "m")
    jsonschema.validate(saved, json.loads(RECORDINGS_SCHEMA.read_text(encoding="utf-8")))
    assert early.save() == [], "nothing new since the last save"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging file left"


def test_new_recordings_cross_processes_as_plain_data(tmp_path: Path) -> None:
    worker = RecordingStore(tmp_path / "unused")
    answered = recording("v1", "case_1", 0).model_copy(update={"model": "m-2026-01-01", "input_tokens": 3})
    worker.put("openai-chat", "m", answered)
    data = json.loads(json.dumps(worker.new_recordings()))  # what xdist's workeroutput carries
    controller = RecordingStore(tmp_path)
    controller.add_recorded(data)
    assert controller.save() == [tmp_path / "openai-chat--m.json"], "filed under the model asked for"
    saved = json.loads((tmp_path / "openai-chat--m.json").read_text(encoding="utf-8"))
    assert (saved["provider"], saved["model"]) == ("openai-chat", "m")
    assert [Recording.model_validate(r) for r in saved["recordings"]] == [answered], "the answered model is kept"
    assert not (tmp_path / "unused").exists()


def test_a_recording_holds_no_key_and_no_headers(fixtures: Fixtures, server: LoopbackServer, tmp_path: Path) -> None:
    server.responder = lambda request: Reply(text=f"echo {request.headers.get('x-stainless-lang', '')}")
    payload, case = payload_of(fixtures)
    store = RecordingStore(tmp_path)
    Recorder(provider_for(fixtures, server.base_url), store, "new").complete(payload, case)
    (path,) = store.save()

    assert server.requests[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    text = path.read_text(encoding="utf-8")
    for secret in (SENTINEL_KEY, "Bearer", "authorization", "x-stainless", "127.0.0.1", "headers"):
        assert secret.lower() not in text.lower(), secret
    (saved,) = json.loads(text)["recordings"]
    assert set(saved) <= set(Recording.model_fields)


# --------------------------------------------------------------------------- end to end: helpers


@pytest.fixture
def project(pytester: pytest.Pytester, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seed project whose model is ``server``, answering as the fake model does."""
    for name in ("OPENAI_MODEL", "WORKSHOP_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    root = make_project(pytester, html_report=True)
    server.responder = fake_responder(load_repo_fixtures(root / "cases"))
    return root


def expected_tokens(fixtures: Fixtures) -> dict[str, tuple[int, int]]:
    """Per version: the loopback's default usage (words of the prompt, words of the answer) over the cases."""
    model = FakeModel(fixtures.fake_model, fixtures.versions)
    tokens = {}
    for version in fixtures.versions:
        answers = [model.reply(build_payload(case, version, {}), case) for case in fixtures.cases]
        prompt = sum(len(version.instructions.split()) + len(case.user_input.split()) for case in fixtures.cases)
        tokens[version.name] = (prompt, sum(len(answer.split()) for answer in answers))
    return tokens


def requested_cells(server: LoopbackServer, fixtures: Fixtures) -> Counter[tuple[str, str]]:
    """How often each (version, case) was requested."""
    versions = {v.instructions: v.name for v in fixtures.versions}
    cases = {c.user_input: c.id for c in fixtures.cases}
    return Counter(
        (versions[instructions], cases[user_input]) for instructions, user_input in map(request_texts, server.requests)
    )


def assert_no_key_anywhere(root: Path, *outputs: pytest.RunResult) -> None:
    assert files_containing(root, SENTINEL_KEY) == []
    for result in outputs:
        assert SENTINEL_KEY not in result.stdout.str() + result.stderr.str()


def run(pytester: pytest.Pytester, *args: str, passed: int = 11, xfailed: int = 4, **more: int) -> pytest.RunResult:
    result = pytester.runpytest("-rA", *args)
    result.assert_outcomes(passed=passed, xfailed=xfailed, **more)
    return result


def outcomes_of(data: dict[str, Any]) -> list[tuple[str, str, bool, str, str]]:
    return [(c["prompt_version"], c["case_id"], c["passed"], c["reason"], c["outcome"]) for c in data["cells"]]


def recordings_in(root: Path) -> dict[str, dict[str, Any]]:
    folder = root / "cases" / "recordings"
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- end to end: record, then replay


def test_openai_records_then_replays_with_the_server_gone(
    pytester: pytest.Pytester, project: Path, server: LoopbackServer, fixtures: Fixtures
) -> None:
    run(pytester)  # the fake model, for comparison
    assert server.count == 0
    fake_pack = {name: (project / PACK / name).read_bytes() for name in SAME_AS_FAKE}
    fake_cells = outcomes_of(summary(project))

    recorded = run(pytester, "--provider", "openai")
    assert recorded.ret == pytest.ExitCode.OK
    assert requested_cells(server, fixtures) == Counter(dict.fromkeys(ALL_CELLS, 1))
    assert {r.path for r in server.requests} == {"/v1/responses"}
    tokens = expected_tokens(fixtures)
    total_in, total_out = (sum(t[i] for t in tokens.values()) for i in (0, 1))
    recorded.stdout.fnmatch_lines(
        [
            "*model calls: 9/9 done (0 from recordings, 0 failed)*",
            f"Model calls: 9 answered by the model, 0 replayed from recordings, 0 cells failed; "
            f"tokens in/out {total_in}/{total_out}",
            "Evidence pack: reports/evidence (9 of 9 evaluations; complete; written in * s)",
        ]
    )

    files = recordings_in(project)
    assert list(files) == ["openai--gpt-5.5.json"]
    saved = files["openai--gpt-5.5.json"]
    assert (saved["provider"], saved["model"]) == ("openai", "gpt-5.5")
    assert [(r["prompt_version"], r["case_id"], r["trial"]) for r in saved["recordings"]] == [
        (v, c, 0) for v, c in ALL_CELLS
    ]
    data = summary(project)
    assert data["gate"]["verdict"] == "pass" and data["complete"] is True
    assert outcomes_of(data) == fake_cells
    assert {v["version"]: (v["input_tokens"], v["output_tokens"]) for v in data["versions"]} == tokens
    assert all(latency > 0 for latency in data["run"]["latency_s"].values())
    pack = {name: (project / PACK / name).read_bytes() for name in SAME_AS_FAKE}
    assert pack == fake_pack, "the model answered as the fake does: the same pack"

    server.close()  # replay must not need it: any call would now fail with a connection error, an ERROR
    replayed = run(pytester, "--provider", "openai", "--record-mode", "none")
    assert replayed.ret == pytest.ExitCode.OK
    replayed.stdout.fnmatch_lines(
        [
            "*model calls: 9/9 done (9 from recordings, 0 failed)*",
            f"Model calls: 0 answered by the model, 9 replayed from recordings, 0 cells failed; "
            f"tokens in/out {total_in}/{total_out}",
        ]
    )
    assert recordings_in(project) == files, "a replay writes nothing"
    for name, content in pack.items():
        assert (project / PACK / name).read_bytes() == content, name
    replay_data = summary(project)
    assert replay_data["versions"] == data["versions"] and replay_data["cells"] == data["cells"]
    assert set(replay_data["run"]["latency_s"].values()) == {None}, "replays cost no time"
    assert (project / "reports" / "report.html").is_file()
    assert_no_key_anywhere(project, recorded, replayed)


def test_openai_chat_records_with_structured_output_and_a_model_from_the_environment(
    pytester: pytest.Pytester,
    project: Path,
    server: LoopbackServer,
    fixtures: Fixtures,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edit_json(project / "cases" / "prompt_versions.json", _v3_structured)
    monkeypatch.setenv("OPENAI_MODEL", "llama3.2:3b")
    recorded = run(pytester, "--provider", "openai-chat")
    assert recorded.ret == pytest.ExitCode.OK
    assert requested_cells(server, fixtures) == Counter(dict.fromkeys(ALL_CELLS, 1))
    assert {(r.path, r.model) for r in server.requests} == {("/v1/chat/completions", "llama3.2:3b")}
    formats = {request_texts(r)[0]: r.body.get("response_format") for r in server.requests}
    v3 = next(v for v in fixtures.versions if v.name == V3)
    assert formats.pop(v3.instructions)["json_schema"]["strict"] is True
    assert set(formats.values()) == {None}, "only the structured version sends a response format"
    recorded.stdout.fnmatch_lines(["Model calls: 9 answered by the model, 0 replayed from recordings, 0 cells failed*"])
    assert list(recordings_in(project)) == ["openai-chat--llama3.2_3b.json"]
    assert {v["version"]: (v["input_tokens"], v["output_tokens"]) for v in summary(project)["versions"]} == (
        expected_tokens(fixtures)
    )

    server.reset_counters()
    replayed = run(pytester, "--provider", "openai-chat", "--record-mode", "none")
    assert replayed.ret == pytest.ExitCode.OK
    assert server.count == 0
    replayed.stdout.fnmatch_lines(["Model calls: 0 answered by the model, 9 replayed from recordings, 0 cells failed*"])
    assert_no_key_anywhere(project, recorded, replayed)


def _v3_structured(data: dict[str, Any]) -> None:
    next(v for v in data["versions"] if v["name"] == V3)["structured_output"] = True


# --------------------------------------------------------------------------- end to end: provider errors


def test_record_mode_none_without_recordings_errors_every_evaluation(
    pytester: pytest.Pytester, project: Path, server: LoopbackServer
) -> None:
    result = run(pytester, "--provider", "openai", "--record-mode", "none", passed=6, xfailed=0, errors=9)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert server.count == 0
    errored = {line.split("::")[1].split(" ")[0] for line in result.stdout.lines if line.startswith("ERROR ")}
    assert errored == {eval_id(v, c) for v, c in ALL_CELLS}
    assert not [line for line in result.stdout.lines if line.startswith(("FAILED ", "XFAIL "))]
    result.stdout.fnmatch_lines(
        [
            "*provider_error: v1_goal_only / case_1: no recording of v1_goal_only / case_1 (trial 0, key *) in "
            "*openai--gpt-5.5.json; record it with `pytest --provider openai --record-mode new`*"
        ]
    )
    data = summary(project)
    assert data["gate"]["verdict"] == "incomplete" and data["gate"]["errors"] == 9
    assert data["complete"] is False
    assert [(e["prompt_version"], e["case_id"]) for e in data["errors"]] == ALL_CELLS
    assert all(e["error"].startswith("provider_error: no recording of ") for e in data["errors"])
    assert not (project / "cases" / "recordings").exists()
    assert_no_key_anywhere(project, result)


def test_a_cell_whose_calls_fail_is_an_error_and_the_rest_proceed(
    pytester: pytest.Pytester, project: Path, server: LoopbackServer
) -> None:
    def fail_v3_case_2(version: str, case: str) -> Reply | None:
        if (version, case) == (V3, "case_2"):
            raise RuntimeError(f"upstream rejected {SENTINEL_KEY}")  # the 500's body echoes the key
        return None

    server.responder = fake_responder(load_repo_fixtures(project / "cases"), fail_v3_case_2)
    result = run(pytester, "--provider", "openai", "--max-retries", "0", passed=10, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert server.count == 9, "no retry with --max-retries 0"
    ids = ran_ids(result)
    assert {eval_id(v, c) for v, c in ALL_CELLS} <= ids
    (error_line,) = [line for line in result.stdout.lines if line.startswith("ERROR ")]
    assert eval_id(V3, "case_2") in error_line
    result.stdout.fnmatch_lines(["*no result: v3_json_with_boundary / case_2: provider_error: InternalServerError*"])

    lines = (project / PACK / "failure_cases.md").read_text(encoding="utf-8").splitlines()
    golden = (GOLDEN / "failure_cases.md").read_text(encoding="utf-8").splitlines()
    seed_part = itertools.takewhile(lambda line: not line.startswith("## "), golden)
    seed_items = [line for line in seed_part if line.startswith("- ")]
    assert len(seed_items) == 4
    at = lines.index("## Provider errors")
    assert lines[:at] == ["# Failure Cases", "", *seed_items, ""], "the seed's list first, then the section"
    assert lines[at + 1 : at + 4] == ["", "No result: these cells are not prompt failures.", ""]
    error = lines[at + 4]
    assert lines[at + 5 : at + 6] in ([], [""]), "one error"
    assert error.startswith("- v3_json_with_boundary / case_2: provider_error: InternalServerError: Error code: 500")
    assert "upstream rejected ***" in error
    csv_rows = (project / PACK / "prompt_eval.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == 1 + 8
    assert not [row for row in csv_rows if row.startswith(f"{V3},case_2,")]
    data = summary(project)
    assert data["gate"]["verdict"] == "incomplete" and data["gate"]["errors"] == 1
    assert (V3, "case_2") not in {(c["prompt_version"], c["case_id"]) for c in data["cells"]}
    assert len(data["cells"]) == 8
    (saved,) = recordings_in(project).values()
    assert len(saved["recordings"]) == 8, "the failed call left no recording"
    assert_no_key_anywhere(project, result)


# --------------------------------------------------------------------------- end to end: concurrency, xdist, repeats


def test_max_concurrency_bounds_the_calls_in_flight(
    pytester: pytest.Pytester, project: Path, server: LoopbackServer
) -> None:
    server.latency = 0.2
    result = run(pytester, "--provider", "openai", "--max-concurrency", "3")
    assert result.ret == pytest.ExitCode.OK
    assert server.count == 9
    assert server.max_in_flight == 3
    assert_no_key_anywhere(project, result)


def test_xdist_workers_call_each_cell_once_and_the_controller_saves_their_recordings(
    pytester: pytest.Pytester, project: Path, server: LoopbackServer, fixtures: Fixtures
) -> None:
    as_fake = server.responder
    server.responder = lambda request: dataclasses.replace(as_fake(request), model="gpt-5.5-2026-01-01")
    result = run(pytester, "--provider", "openai", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*2 workers*"])
    assert requested_cells(server, fixtures) == Counter(dict.fromkeys(ALL_CELLS, 1))
    files = recordings_in(project)
    assert list(files) == ["openai--gpt-5.5.json"], "filed under the model asked for, not the one that answered"
    saved = files["openai--gpt-5.5.json"]
    assert [(r["prompt_version"], r["case_id"]) for r in saved["recordings"]] == ALL_CELLS
    assert {r["model"] for r in saved["recordings"]} == {"gpt-5.5-2026-01-01"}

    server.reset_counters()
    replayed = run(pytester, "--provider", "openai", "--record-mode", "none")
    assert replayed.ret == pytest.ExitCode.OK and server.count == 0
    assert_no_key_anywhere(project, result, replayed)


def test_repeat_with_min_pass_rate(
    pytester: pytest.Pytester, project: Path, server: LoopbackServer, fixtures: Fixtures
) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def second_trial_wrong(version: str, case: str) -> Reply | None:
        with lock:
            seen[(version, case)] += 1
            nth = seen[(version, case)]
        if (version, case) == (V3, "case_2") and nth == 2:
            wrong = {"id": "case_2", "intent": "learning_plan", "action": "a", "confidence": 0.5}
            return Reply(text=json.dumps({**wrong, "needs_human_review": False}))
        return None

    server.responder = fake_responder(load_repo_fixtures(project / "cases"), second_trial_wrong)
    result = run(pytester, "--provider", "openai", "--repeat", "3", "--min-pass-rate", "0.6")
    assert result.ret == pytest.ExitCode.OK
    assert requested_cells(server, fixtures) == Counter(dict.fromkeys(ALL_CELLS, 3))

    data = summary(project)
    cells = {(c["prompt_version"], c["case_id"]): c for c in data["cells"]}
    flaky = cells[(V3, "case_2")]
    assert (flaky["passed"], flaky["outcome"], flaky["pass_rate"], flaky["trials"]) == (True, "passed", 0.666667, 3)
    assert all(c["trials"] == 3 for c in cells.values())
    v3 = next(v for v in data["versions"] if v["version"] == V3)
    assert (v3["passed"], v3["total"]) == (3, 3)
    assert v3["pass_all"] == round(2 / 3, 6) < 1
    assert v3["pass_at_1"] == round((1 + 1 + 2 / 3) / 3, 6)
    (saved,) = recordings_in(project).values()
    assert len(saved["recordings"]) == 27
    assert sorted({r["trial"] for r in saved["recordings"]}) == [0, 1, 2]
    assert_no_key_anywhere(project, result)
