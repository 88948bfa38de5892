"""Real models through the official ``openai`` SDK: the Responses API and Chat Completions.

``openai`` talks to OpenAI; ``openai-chat`` talks to any server that speaks Chat
Completions (Ollama, vLLM, llama.cpp's server, LM Studio). Retries, backoff and
``Retry-After`` are the SDK's own; whatever still fails after the last attempt
becomes a `ProviderError`, never a prompt failure.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from workshop.contract import REASONS_KEYWORD, Contract
from workshop.errors import WorkshopError
from workshop.model import Completion, ProviderError
from workshop.payload import Payload

ProviderName = Literal["fake", "openai", "openai-chat"]
PROVIDERS: tuple[ProviderName, ...] = ("fake", "openai", "openai-chat")
CONTRACT_FORMAT_NAME = "output_contract"
INSTALL_HINT = "pip install 'workshop[openai]'"


@dataclass(frozen=True)
class ClientSettings:
    """How to reach the API: endpoint and key from the environment, retries and timeout from options."""

    base_url: str | None
    api_key: str | None
    max_retries: int = 2
    timeout_s: float = 60.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], max_retries: int, timeout_s: float) -> ClientSettings:
        """``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (empty counts as unset)."""
        return cls(
            environ.get("OPENAI_BASE_URL") or None, environ.get("OPENAI_API_KEY") or None, max_retries, timeout_s
        )


def strict_schema(contract: Contract) -> dict[str, Any]:
    """The contract in the form structured outputs accept in strict mode.

    Strict mode wants every object closed (``additionalProperties: false``) with all its
    properties required, and no annotations of ours (``x-reasons``, ``$schema``).
    """

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: convert(value) for key, value in node.items() if key != "$schema" and not key.startswith("x-")}
        if out.get("type") == "object" and isinstance(out.get("properties"), dict):
            out["additionalProperties"] = False
            out["required"] = list(out["properties"])
        return out

    assert REASONS_KEYWORD.startswith("x-")
    return convert(copy.deepcopy(dict(contract.schema)))


def require_sdk() -> None:
    """Fail early, with the install command, when the ``openai`` package is missing."""
    _import_openai()


def _import_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise WorkshopError(f"the openai providers need the openai package: {INSTALL_HINT}") from None
    return openai


class OpenAIProvider:
    """Common ground of the two APIs: the client, request building, timing and error mapping."""

    name: ProviderName = "openai"

    def __init__(
        self, settings: ClientSettings, contract: Contract, structured_versions: frozenset[str] = frozenset()
    ) -> None:
        self.settings = settings
        self.structured_versions = structured_versions
        self._format = strict_schema(contract)
        self._client: Any = None
        self._lock = threading.Lock()

    def _client_once(self) -> Any:
        # built on the first real call: replaying recordings needs neither the SDK nor a key
        with self._lock:
            if self._client is None:
                openai = _import_openai()
                if not self.settings.api_key and not self.settings.base_url:
                    raise ProviderError(
                        "OPENAI_API_KEY is not set (a local server set with OPENAI_BASE_URL may need none)"
                    )
                self._client = openai.OpenAI(
                    # local OpenAI-compatible servers ignore the key, but the SDK insists on one
                    api_key=self.settings.api_key or "unused",
                    base_url=self.settings.base_url,
                    max_retries=self.settings.max_retries,
                    timeout=self.settings.timeout_s,
                )
            return self._client

    def request(self, payload: Payload) -> dict[str, Any]:
        """The request body for ``payload``: what is sent, and what recordings are keyed on."""
        raise NotImplementedError

    def _call(self, client: Any, request: dict[str, Any]) -> Completion:
        raise NotImplementedError

    def send(self, request: dict[str, Any]) -> Completion:
        """Send a request built by `request`; raise `ProviderError` when the last attempt fails."""
        client = self._client_once()
        started = time.perf_counter()
        try:
            completion = self._call(client, request)
        except Exception as exc:  # the SDK's errors, and what it lets escape (a non-JSON body)
            raise ProviderError(self._describe(exc)) from None
        completion = completion._replace(latency_s=round(time.perf_counter() - started, 6))
        if not completion.text and completion.refusal is None:
            cut = " (max_output_tokens reached)" if completion.truncated else ""
            raise ProviderError(f"empty output{cut}")
        return completion

    def complete(self, payload: Payload, case: object = None) -> Completion:
        """Build, send and time one request (the `Model` protocol)."""
        return self.send(self.request(payload))

    def _describe(self, exc: Exception) -> str:
        message = f"{type(exc).__name__}: {exc}"
        if self.settings.api_key:  # never let the key reach a report, even inside a server's message
            message = message.replace(self.settings.api_key, "***")
        return message


class ResponsesProvider(OpenAIProvider):
    """OpenAI's Responses API (``POST /v1/responses``)."""

    name: ProviderName = "openai"

    def request(self, payload: Payload) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": payload.model,
            "instructions": payload.instructions,
            "input": payload.input,
            "max_output_tokens": payload.max_output_tokens,
            "temperature": payload.temperature,
        }
        if payload.prompt_version in self.structured_versions:
            body["text"] = {
                "format": {"type": "json_schema", "name": CONTRACT_FORMAT_NAME, "schema": self._format, "strict": True}
            }
        return body

    def _call(self, client: Any, request: dict[str, Any]) -> Completion:
        response = client.responses.create(**request)
        refusal = next(
            (
                part.refusal
                for item in response.output
                if item.type == "message"
                for part in item.content
                if part.type == "refusal"
            ),
            None,
        )
        details = response.incomplete_details
        usage = response.usage
        return Completion(
            text=response.output_text,
            model=response.model,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            refusal=refusal,
            truncated=response.status == "incomplete" and details is not None and details.reason == "max_output_tokens",
        )


class ChatProvider(OpenAIProvider):
    """Chat Completions (``POST /v1/chat/completions``), spoken by most OpenAI-compatible servers."""

    name: ProviderName = "openai-chat"

    def request(self, payload: Payload) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": payload.model,
            "messages": [
                {"role": "system", "content": payload.instructions},
                {"role": "user", "content": payload.input},
            ],
            # max_tokens, not max_completion_tokens: the one every compatible server knows
            "max_tokens": payload.max_output_tokens,
            "temperature": payload.temperature,
        }
        if payload.prompt_version in self.structured_versions:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": CONTRACT_FORMAT_NAME, "schema": self._format, "strict": True},
            }
        return body

    def _call(self, client: Any, request: dict[str, Any]) -> Completion:
        response = client.chat.completions.create(**request)
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            model=response.model,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            refusal=getattr(choice.message, "refusal", None),
            truncated=choice.finish_reason == "length",
        )


PROVIDER_CLASSES: dict[str, Callable[..., OpenAIProvider]] = {"openai": ResponsesProvider, "openai-chat": ChatProvider}


def make_provider(
    name: str, contract: Contract, structured_versions: frozenset[str], settings: ClientSettings
) -> OpenAIProvider:
    """The provider called ``name`` (``openai`` or ``openai-chat``)."""
    try:
        factory = PROVIDER_CLASSES[name]
    except KeyError:
        raise WorkshopError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}") from None
    return factory(settings, contract, structured_versions)


def environ_provider(environ: Mapping[str, str] = os.environ) -> str | None:
    """``WORKSHOP_PROVIDER`` from the environment, if set."""
    return environ.get("WORKSHOP_PROVIDER") or None
