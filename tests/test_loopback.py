"""The loopback server, driven by the real ``openai`` SDK over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from workshop.loopback import Fault, LoopbackServer, ReceivedRequest, Reply

ClientFactory = Callable[..., openai.OpenAI]
USER = [{"role": "user", "content": "one two three"}]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def make_client(server: LoopbackServer) -> Iterator[ClientFactory]:
    """Clients of ``server``; strict response validation proves the JSON matches the SDK's types."""
    clients: list[openai.OpenAI] = []

    def make(max_retries: int = 0, timeout: float = 5.0, strict: bool = True) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key="test-key",
            base_url=server.base_url,
            max_retries=max_retries,
            timeout=timeout,
            _strict_response_validation=strict,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def ask_responses(client: openai.OpenAI, model: str = "gpt-test") -> Any:
    return client.responses.create(model=model, instructions="be brief", input="one two three")


def ask_chat(client: openai.OpenAI, model: str = "gpt-test") -> Any:
    return client.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]


def test_responses_happy_path(server: LoopbackServer, make_client: ClientFactory) -> None:
    response = ask_responses(make_client())

    assert response.output_text == "ok"
    assert response.model == "gpt-test"
    assert response.status == "completed"
    assert response.incomplete_details is None
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (5, 1, 6)
    [request] = server.requests
    assert request.path == "/v1/responses"
    assert request.body["input"] == "one two three"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.prompt_text == "be brief\none two three"


def test_chat_completions_happy_path(server: LoopbackServer, make_client: ClientFactory) -> None:
    completion = ask_chat(make_client())

    [choice] = completion.choices
    assert choice.message.content == "ok"
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert completion.model == "gpt-test"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        3,
        1,
        4,
    )
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].body["messages"] == USER


def test_default_responder_echoes_the_requested_model(make_client: ClientFactory) -> None:
    client = make_client()
    assert ask_responses(client, model="model-a").model == "model-a"
    assert ask_chat(client, model="model-b").model == "model-b"


def test_responder_scripts_text_model_and_token_counts(server: LoopbackServer, make_client: ClientFactory) -> None:
    def responder(request: ReceivedRequest) -> Reply:
        return Reply(text=request.prompt_text.upper(), model="scripted", input_tokens=11, output_tokens=7)

    server.responder = responder
    client = make_client()

    response = client.responses.create(model="gpt-test", input=[{"role": "user", "content": "hello there"}])
    assert (response.output_text, response.model) == ("HELLO THERE", "scripted")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 7, 18)
    completion = ask_chat(client)
    assert completion.choices[0].message.content == "ONE TWO THREE"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 18


def test_refusal_on_both_apis(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.responder = lambda request: Reply(refusal="I can't help with that.")
    client = make_client()

    response = ask_responses(client)
    assert response.output_text == ""
    [part] = response.output[0].content
    assert (part.type, part.refusal) == ("refusal", "I can't help with that.")
    message = ask_chat(client).choices[0].message
    assert (message.content, message.refusal) == (None, "I can't help with that.")


def test_truncation_on_both_apis(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.responder = lambda request: Reply(text="cut short", truncated=True)
    client = make_client()

    response = ask_responses(client)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "cut short"
    choice = ask_chat(client).choices[0]
    assert (choice.finish_reason, choice.message.content) == ("length", "cut short")


def test_rate_limit_is_retried_after_retry_after(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("rate_limit", retry_after=0.1))
    started = time.perf_counter()

    assert ask_responses(make_client(max_retries=2)).output_text == "ok"

    assert time.perf_counter() - started >= 0.1
    assert server.count == 2
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1"]
    assert not server.faults


def test_rate_limit_without_retries_raises(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("rate_limit", retry_after=3))
    with pytest.raises(openai.RateLimitError) as caught:
        ask_chat(make_client(max_retries=0))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"
    assert server.count == 1


def test_server_error_is_retried(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("server_error"))
    assert ask_chat(make_client(max_retries=1)).choices[0].message.content == "ok"
    assert server.count == 2


def test_server_error_without_retries_raises(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("server_error"))
    with pytest.raises(openai.InternalServerError) as caught:
        ask_responses(make_client(max_retries=0))
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) >= {"message", "type", "code"}


def test_hang_times_out_and_does_not_block_shutdown() -> None:
    with LoopbackServer() as server:
        server.add_faults(Fault("hang", seconds=5))
        client = openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0, timeout=0.3)
        started = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            ask_responses(client)
        assert time.perf_counter() - started < 2
        client.close()
        closing = time.perf_counter()
    assert time.perf_counter() - closing < 0.5
    assert server.count == 1


def test_reset_raises_connection_error_then_service_resumes(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("reset"))
    client = make_client(max_retries=0)
    with pytest.raises(openai.APIConnectionError) as caught:
        ask_responses(client)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert ask_responses(client).output_text == "ok"
    assert server.count == 2


def test_reset_is_retried(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("reset"))
    assert ask_chat(make_client(max_retries=1)).choices[0].message.content == "ok"
    assert server.count == 2


@pytest.mark.parametrize("strict", [True, False])
def test_malformed_body_raises_json_decode_error_without_retry(
    server: LoopbackServer, make_client: ClientFactory, strict: bool
) -> None:
    # The SDK parses the 200 body after its retry loop: json.loads fails and the JSONDecodeError escapes as is
    # (it is not an openai.OpenAIError), whatever the retry budget.
    server.add_faults(Fault("malformed"), Fault("malformed"))
    client = make_client(max_retries=2, strict=strict)
    with pytest.raises(json.JSONDecodeError):
        ask_responses(client)
    with pytest.raises(json.JSONDecodeError):
        ask_chat(client)
    assert server.count == 2


def test_empty_output(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("empty"), Fault("empty"))
    client = make_client()

    response = ask_responses(client)
    assert response.output_text == ""
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.output_tokens == 0
    assert ask_chat(client).choices[0].message.content == ""


def test_faults_are_consumed_in_order_then_normal_answers_resume(
    server: LoopbackServer, make_client: ClientFactory
) -> None:
    server.add_faults(Fault("rate_limit"), Fault("server_error"))
    client = make_client(max_retries=0)
    with pytest.raises(openai.RateLimitError):
        ask_responses(client)
    with pytest.raises(openai.InternalServerError):
        ask_responses(client)
    assert ask_responses(client).output_text == "ok"
    assert not server.faults


def test_unknown_path_is_404_with_openai_error_body(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.add_faults(Fault("server_error"))
    with pytest.raises(openai.NotFoundError) as caught:
        make_client(max_retries=2).models.list()
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.code == "unknown_url"
    assert server.count == 1
    assert len(server.faults) == 1  # only API endpoints consume faults


def test_concurrent_requests_overlap(server: LoopbackServer, make_client: ClientFactory) -> None:
    server.latency = 0.2
    client = make_client()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        texts = list(pool.map(lambda _: ask_responses(client).output_text, range(16)))
    elapsed = time.perf_counter() - started

    assert texts == ["ok"] * 16
    assert server.max_in_flight == 16
    assert elapsed < 1.0  # serialized it would take 16 * 0.2 = 3.2 s


def test_reset_counters(server: LoopbackServer, make_client: ClientFactory) -> None:
    ask_chat(make_client())
    assert (server.count, server.max_in_flight) == (1, 1)
    server.reset_counters()
    assert (server.count, server.requests, server.max_in_flight) == (0, [], 0)


def test_unknown_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]


def test_base_url_needs_a_running_server() -> None:
    server = LoopbackServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1")
