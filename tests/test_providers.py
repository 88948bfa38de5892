"""The real-model providers, driven through the official ``openai`` SDK over real HTTP to a loopback server.

Units first (the strict output schema, request bodies), then calls against `LoopbackServer`: happy paths,
refusals, truncation and every fault the SDK can meet, none of which may leak the API key. Recordings and the
end-to-end pytest runs are in ``test_recordings.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from workshop.calls import CallKey, Prefetcher
from workshop.contract import Contract
from workshop.evaluation import judge_completion
from workshop.fake_model import FakeModel
from workshop.fixtures import Case, Fixtures, PromptVersion, load_fixtures
from workshop.loopback import Fault, LoopbackServer, ReceivedRequest, Reply
from workshop.model import Completion, ProviderError
from workshop.payload import Payload, build_payload
from workshop.providers import (
    CONTRACT_FORMAT_NAME,
    ChatProvider,
    ClientSettings,
    OpenAIProvider,
    ResponsesProvider,
    make_provider,
    strict_schema,
)

REPO = Path(__file__).resolve().parents[1]
CASES_DIR = REPO / "cases"
SENTINEL_KEY = "sk-test-SENTINEL-1234"
PROVIDER_TYPES = {"openai": ResponsesProvider, "openai-chat": ChatProvider}

# --------------------------------------------------------------------------- shared helpers (test_recordings too)


def load_repo_fixtures(cases_dir: Path = CASES_DIR) -> Fixtures:
    return load_fixtures(cases_dir / "cases.json", cases_dir / "prompt_versions.json")


def request_texts(request: ReceivedRequest) -> tuple[str, str]:
    """(instructions, user input) of a Responses or a Chat Completions request."""
    body = request.body
    if "messages" in body:
        by_role = {message["role"]: message["content"] for message in body["messages"]}
        return by_role["system"], by_role["user"]
    return body["instructions"], body["input"]


def fake_responder(fixtures: Fixtures, override: Callable[[str, str], Reply | None] | None = None) -> Any:
    """A responder answering exactly what the fake model answers (so the seed baseline applies).

    ``override(version name, case id)`` may return another reply (or raise: the server then answers 500).
    """
    model = FakeModel(fixtures.fake_model, fixtures.versions)
    versions = {version.instructions: version for version in fixtures.versions}
    cases = {case.user_input: case for case in fixtures.cases}

    def respond(request: ReceivedRequest) -> Reply:
        instructions, user_input = request_texts(request)
        version, case = versions[instructions], cases[user_input]
        if override is not None:
            replaced = override(version.name, case.id)
            if replaced is not None:
                return replaced
        return Reply(text=model.reply(build_payload(case, version, {}), case))

    return respond


def files_containing(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``needle``."""
    found = needle.encode()
    return [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file() and found in p.read_bytes()]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    return load_repo_fixtures()


@pytest.fixture(scope="module")
def contract(fixtures: Fixtures) -> Contract:
    return fixtures.contract


def version_named(fixtures: Fixtures, name: str) -> PromptVersion:
    return next(version for version in fixtures.versions if version.name == name)


def case_named(fixtures: Fixtures, case_id: str) -> Case:
    return next(case for case in fixtures.cases if case.id == case_id)


@pytest.fixture
def payload(fixtures: Fixtures) -> Payload:
    return build_payload(case_named(fixtures, "case_1"), version_named(fixtures, "v3_json_with_boundary"), {})


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


ProviderFactory = Callable[..., OpenAIProvider]


@pytest.fixture
def make(server: LoopbackServer, contract: Contract) -> Iterator[ProviderFactory]:
    """Providers of ``server`` (``kind`` openai or openai-chat); their SDK clients are closed afterwards."""
    made: list[OpenAIProvider] = []

    def build(
        kind: str = "openai",
        *,
        max_retries: int = 0,
        timeout_s: float = 5.0,
        api_key: str | None = SENTINEL_KEY,
        base_url: str | None = None,
        structured: frozenset[str] = frozenset(),
    ) -> OpenAIProvider:
        settings = ClientSettings(base_url or server.base_url, api_key, max_retries, timeout_s)
        provider = make_provider(kind, contract, structured, settings)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        if provider._client is not None:
            provider._client.close()


# --------------------------------------------------------------------------- 1. strict_schema


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_strict_schema_of_the_real_contract(contract: Contract) -> None:
    original = json.loads((CASES_DIR / "output_contract.schema.json").read_text(encoding="utf-8"))
    schema = strict_schema(contract)

    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(original["properties"]) == list(schema["properties"])
    assert "$schema" not in schema
    assert not [key for node in walk(schema) if isinstance(node, dict) for key in node if key.startswith("x-")]
    assert "x-reasons" in original["properties"]["intent"], "the contract does carry annotations"
    props = schema["properties"]
    assert props["confidence"]["minimum"] == 0 and props["confidence"]["maximum"] == 1
    assert props["intent"]["enum"] == ["learning_plan", "structured_output", "solution_choice"]
    assert props["needs_human_review"]["type"] == "boolean"
    # nothing else changed: dropping what was removed and added gives the contract back
    for name, spec in original["properties"].items():
        assert props[name] == {k: v for k, v in spec.items() if k != "x-reasons"}, name
    # the contract itself is untouched, and the result is still a valid schema the fake v3 answer meets
    assert dict(contract.schema) == original
    jsonschema.Draft202012Validator.check_schema(schema)
    answer = {"id": "case_1", "intent": "learning_plan", "action": "a", "confidence": 0.9, "needs_human_review": False}
    jsonschema.validate(answer, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**answer, "extra": 1}, schema)


def test_strict_schema_closes_nested_objects() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["intent"],
        "properties": {
            "intent": {"type": "string", "enum": ["a"], "x-reasons": {"enum": "bad_intent: {value}"}},
            "detail": {
                "type": "object",
                "properties": {"why": {"type": "string"}, "score": {"type": "number", "minimum": 0}},
            },
            "steps": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        },
    }
    strict = strict_schema(Contract(schema=schema, path=Path("nested.json")))

    assert strict["required"] == ["intent", "detail", "steps"]
    detail = strict["properties"]["detail"]
    assert detail["additionalProperties"] is False and detail["required"] == ["why", "score"]
    assert detail["properties"]["score"]["minimum"] == 0
    item = strict["properties"]["steps"]["items"]
    assert item["additionalProperties"] is False and item["required"] == ["n"]
    assert "x-reasons" not in strict["properties"]["intent"] and "$schema" not in strict


# --------------------------------------------------------------------------- 1. request bodies


def test_responses_request_body(make: ProviderFactory, payload: Payload, contract: Contract) -> None:
    plain = make("openai").request(payload)
    assert plain == {
        "model": payload.model,
        "instructions": payload.instructions,
        "input": payload.input,
        "max_output_tokens": payload.max_output_tokens,
        "temperature": payload.temperature,
    }

    structured = make("openai", structured=frozenset({payload.prompt_version})).request(payload)
    assert structured == {
        **plain,
        "text": {
            "format": {
                "type": "json_schema",
                "name": CONTRACT_FORMAT_NAME,
                "schema": strict_schema(contract),
                "strict": True,
            }
        },
    }
    other_version = make("openai", structured=frozenset({"v2_json_contract"})).request(payload)
    assert other_version == plain


def test_chat_request_body(make: ProviderFactory, payload: Payload, contract: Contract) -> None:
    plain = make("openai-chat").request(payload)
    assert plain == {
        "model": payload.model,
        "messages": [
            {"role": "system", "content": payload.instructions},
            {"role": "user", "content": payload.input},
        ],
        "max_tokens": payload.max_output_tokens,
        "temperature": payload.temperature,
    }

    structured = make("openai-chat", structured=frozenset({payload.prompt_version})).request(payload)
    assert structured == {
        **plain,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": CONTRACT_FORMAT_NAME, "schema": strict_schema(contract), "strict": True},
        },
    }


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_the_sdk_sends_the_request_body_as_built(
    kind: str, make: ProviderFactory, server: LoopbackServer, payload: Payload
) -> None:
    provider = make(kind, structured=frozenset({payload.prompt_version}))
    provider.complete(payload)

    (received,) = server.requests
    assert received.path == ("/v1/responses" if kind == "openai" else "/v1/chat/completions")
    assert received.body == provider.request(payload)
    assert received.headers["authorization"] == f"Bearer {SENTINEL_KEY}"


def test_unknown_provider_is_a_clear_error(contract: Contract) -> None:
    from workshop.errors import WorkshopError

    with pytest.raises(WorkshopError, match="unknown provider 'claude'; choose one of fake, openai, openai-chat"):
        make_provider("claude", contract, frozenset(), ClientSettings(None, None))


# --------------------------------------------------------------------------- 2. calls: happy paths


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_happy_path_text_usage_model_and_latency(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    server.responder = lambda request: Reply(
        text='{"answer": 42}', model="gpt-answered-2026-01-01", input_tokens=17, output_tokens=5
    )
    server.latency = 0.05
    provider = make(kind)
    assert isinstance(provider, PROVIDER_TYPES[kind])
    payload = Payload("gpt-asked", "hello there", 50, 0.0, "v3_json_with_boundary", "be brief")

    completion = provider.complete(payload)

    assert completion.text == '{"answer": 42}'
    assert completion.model == "gpt-answered-2026-01-01"
    assert (completion.input_tokens, completion.output_tokens) == (17, 5)
    assert completion.latency_s is not None and 0.05 <= completion.latency_s < 5
    assert completion.refusal is None and completion.truncated is False and completion.replayed is False
    assert server.count == 1 and server.requests[0].model == "gpt-asked"


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_a_local_server_needs_no_key(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    provider = make(kind, api_key=None)
    payload = Payload("m", "hi", 10, 0.0, "v", "i")
    assert provider.complete(payload).text == "ok"
    assert server.requests[0].headers["authorization"] == "Bearer unused"


def test_no_key_and_no_base_url_is_a_provider_error(contract: Contract, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    provider = ResponsesProvider(ClientSettings(None, None), contract)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY is not set"):
        provider.complete(Payload("m", "hi", 10, 0.0, "v", "i"))


def test_client_settings_from_environ() -> None:
    environ = {"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_API_KEY": SENTINEL_KEY}
    assert ClientSettings.from_environ(environ, 1, 2.5) == ClientSettings("http://127.0.0.1:1/v1", SENTINEL_KEY, 1, 2.5)
    assert ClientSettings.from_environ({"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}, 0, 1) == ClientSettings(
        None, None, 0, 1
    )


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_refusal_is_recorded_and_judged_as_a_refusal(
    kind: str, make: ProviderFactory, server: LoopbackServer, fixtures: Fixtures, payload: Payload
) -> None:
    server.responder = lambda request: Reply(refusal="I can't help with that.\nSorry.")
    completion = make(kind).complete(payload)

    assert completion.refusal == "I can't help with that.\nSorry."
    assert completion.text == ""
    trial = judge_completion(completion, case_named(fixtures, "case_1"), fixtures.contract)
    assert trial.passed is False
    assert trial.reason == "refusal: I can't help with that.\\nSorry.", "one line: the break is escaped"


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_truncated_answer_says_so(
    kind: str, make: ProviderFactory, server: LoopbackServer, fixtures: Fixtures, payload: Payload
) -> None:
    cut = '{"id": "case_1", "intent": "learning_'
    server.responder = lambda request: Reply(text=cut, truncated=True)
    completion = make(kind).complete(payload)

    assert completion.truncated is True and completion.text == cut
    trial = judge_completion(completion, case_named(fixtures, "case_1"), fixtures.contract)
    assert trial.passed is False
    assert trial.reason.startswith("truncated: max_output_tokens reached; invalid_json: "), trial.reason


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_truncated_but_valid_answer_passes(
    kind: str, make: ProviderFactory, server: LoopbackServer, fixtures: Fixtures, payload: Payload
) -> None:
    case = case_named(fixtures, "case_1")
    good = FakeModel(fixtures.fake_model, fixtures.versions).reply(payload, case)
    server.responder = lambda request: Reply(text=good, truncated=True)
    completion = make(kind).complete(payload)
    assert completion.truncated is True
    assert judge_completion(completion, case, fixtures.contract).reason == "ok"


# --------------------------------------------------------------------------- 2. calls: faults


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_rate_limit_with_retry_after_then_success(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    server.add_faults(Fault("rate_limit", retry_after=0.01))
    provider = make(kind, max_retries=1)
    provider._client_once()  # build the client before timing
    started = time.perf_counter()
    completion = provider.complete(Payload("m", "hi", 10, 0.0, "v", "i"))

    assert completion.text == "ok"
    assert server.count == 2
    assert time.perf_counter() - started < 0.3, "Retry-After was honoured, not the SDK's own backoff (0.375-0.5 s)"


@pytest.mark.parametrize("max_retries", [0, 1])
def test_server_error_on_every_attempt(max_retries: int, make: ProviderFactory, server: LoopbackServer) -> None:
    server.add_faults(*[Fault("server_error")] * (max_retries + 3))
    with pytest.raises(ProviderError, match=r"^InternalServerError: Error code: 500"):
        make(max_retries=max_retries).complete(Payload("m", "hi", 10, 0.0, "v", "i"))
    assert server.count == max_retries + 1


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_hang_past_the_timeout_is_a_fast_provider_error(
    kind: str, make: ProviderFactory, server: LoopbackServer
) -> None:
    server.add_faults(Fault("hang", seconds=10))
    started = time.perf_counter()
    with pytest.raises(ProviderError, match=r"^APITimeoutError: .*timed out"):
        make(kind, timeout_s=0.2).complete(Payload("m", "hi", 10, 0.0, "v", "i"))
    assert time.perf_counter() - started < 2
    assert server.count == 1


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_connection_reset_is_a_provider_error(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    server.add_faults(Fault("reset"))
    with pytest.raises(ProviderError, match=r"^APIConnectionError: "):
        make(kind).complete(Payload("m", "hi", 10, 0.0, "v", "i"))
    assert server.count == 1


def test_closed_port_is_a_provider_error(make: ProviderFactory) -> None:
    with LoopbackServer() as gone:
        url = gone.base_url
    with pytest.raises(ProviderError, match=r"^APIConnectionError: "):
        make(base_url=url).complete(Payload("m", "hi", 10, 0.0, "v", "i"))


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_malformed_body_is_a_provider_error_after_one_request(
    kind: str, make: ProviderFactory, server: LoopbackServer
) -> None:
    server.add_faults(Fault("malformed"))
    with pytest.raises(ProviderError) as raised:
        make(kind, max_retries=2).complete(Payload("m", "hi", 10, 0.0, "v", "i"))
    assert str(raised.value)
    assert server.count == 1


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_empty_output_is_a_provider_error(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    server.add_faults(Fault("empty"))
    with pytest.raises(ProviderError, match=r"^empty output$"):
        make(kind).complete(Payload("m", "hi", 10, 0.0, "v", "i"))
    assert server.count == 1


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_empty_truncated_output_says_why(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    server.responder = lambda request: Reply(text="", truncated=True)
    with pytest.raises(ProviderError, match=r"^empty output \(max_output_tokens reached\)$"):
        make(kind).complete(Payload("m", "hi", 10, 0.0, "v", "i"))


def _echo_the_key(request: ReceivedRequest) -> Reply:
    raise PermissionError(f"invalid key: {request.headers['authorization']} (expected another one)")


@pytest.mark.parametrize("kind", ["openai", "openai-chat"])
def test_the_key_never_reaches_a_provider_error(kind: str, make: ProviderFactory, server: LoopbackServer) -> None:
    server.responder = _echo_the_key  # the server's error body quotes the key back
    with pytest.raises(ProviderError) as raised:
        make(kind).complete(Payload("m", "hi", 10, 0.0, "v", "i"))

    message = str(raised.value)
    assert message.startswith("InternalServerError: Error code: 500")
    assert "invalid key: Bearer ***" in message, "the server did echo the key; it was masked"
    assert SENTINEL_KEY not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_key_is_masked_in_any_sdk_exception_text(
    make: ProviderFactory, monkeypatch: pytest.MonkeyPatch, payload: Payload
) -> None:
    provider = make()

    def leak(client: Any, request: dict[str, Any]) -> Completion:
        raise RuntimeError(f"{SENTINEL_KEY} twice: {SENTINEL_KEY}")

    monkeypatch.setattr(provider, "_call", leak)
    with pytest.raises(ProviderError, match=r"^RuntimeError: \*\*\* twice: \*\*\*$"):
        provider.complete(payload)


# --------------------------------------------------------------------------- the Prefetcher's bounded pool


def in_thread(action: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Run ``action`` in a daemon thread; fail (instead of hanging the suite) if it does not finish."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(action()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "deadlocked"
    return outcome[0]


def test_prefetcher_calls_each_key_once_and_bounds_concurrency() -> None:
    lock = threading.Lock()
    calls: list[CallKey] = []
    running = [0, 0]  # now, most

    def call(key: CallKey) -> Completion:
        with lock:
            calls.append(key)
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return Completion(text=f"{key}", replayed=key[2] == 1)

    prefetcher = Prefetcher(call, max_concurrency=2)
    keys = [("v", f"case_{i}", trial) for i in range(3) for trial in (0, 1)]
    assert prefetcher.submit(keys) == 6
    assert prefetcher.submit(keys[:3]) == 0, "submitted already"
    assert [c.text for c in prefetcher.completions(keys[::-1])] == [f"{k}" for k in keys[::-1]]
    stats = in_thread(prefetcher.wait_all)
    assert (stats.submitted, stats.done, stats.replayed, stats.failed) == (6, 6, 3, 0)
    assert sorted(calls) == sorted(keys) and running[1] == 2
    assert stats.line() == "model calls: 6/6 done (3 from recordings, 0 failed)"
    prefetcher.close()


def test_prefetcher_with_instant_calls_does_not_deadlock() -> None:
    prefetcher = Prefetcher(lambda key: Completion(text="x", replayed=True), max_concurrency=4)
    keys = [("v", f"case_{i}", 0) for i in range(50)]
    assert in_thread(lambda: prefetcher.submit(keys)) == 50
    assert in_thread(prefetcher.wait_all).done == 50
    assert len(in_thread(lambda: prefetcher.completions(keys))) == 50
    prefetcher.close()


def test_prefetcher_failures_are_provider_errors() -> None:
    def call(key: CallKey) -> Completion:
        if key[1] == "bug":
            raise KeyError("oops")
        raise ProviderError("empty output")

    prefetcher = Prefetcher(call, max_concurrency=2)
    with pytest.raises(ProviderError, match=r"^empty output$"):
        prefetcher.completions([("v", "c", 0)])
    with pytest.raises(ProviderError, match=r"^KeyError: 'oops'$"):
        prefetcher.completions([("v", "bug", 0)])
    assert in_thread(prefetcher.wait_all).failed == 2
    prefetcher.close()
    with pytest.raises(ValueError, match="at least 1"):
        Prefetcher(call, max_concurrency=0)


def test_prefetcher_close_cancels_pending_calls_quietly(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    prefetcher = Prefetcher(lambda key: Completion(text="x") if gate.wait(5) else Completion(text=""), 1)
    prefetcher.submit([("v", "c", trial) for trial in range(3)])
    with caplog.at_level(logging.ERROR):
        prefetcher.close()
        gate.set()
        stats = in_thread(prefetcher.wait_all)
    assert (stats.done, stats.failed) == (3, 2), "the two cancelled calls count as failed"
    assert not [r for r in caplog.records if "callback" in r.getMessage()], caplog.text
