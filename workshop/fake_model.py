"""The deterministic, offline fake model; everything it does comes from the fixtures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from workshop.fixtures import Case, FakeModelRules, FakeReply, PromptVersion, first_match
from workshop.model import Completion
from workshop.payload import Payload

# one encoder for every answer (json.dumps with options builds a new one per call); same output
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def infer_intent(text: str, rules: FakeModelRules) -> str:
    """The first rule whose keyword occurs in the lowercased text names the intent."""
    rule = first_match(text, rules.intent_rules)
    return rules.default_intent if rule is None else rule.intent


def _first(lowered: str, rules: tuple[tuple[tuple[str, ...], str], ...], default: str) -> str:
    for keywords, answer in rules:
        for keyword in keywords:
            if keyword in lowered:
                return answer
    return default


def _contains_any(lowered: str, keywords: tuple[str, ...]) -> bool:
    for keyword in keywords:  # noqa: SIM110 - any() with a generator costs more, once per answer
        if keyword in lowered:
            return True
    return False


@dataclass(frozen=True, slots=True)
class _VersionReply:
    """One version's `FakeReply`, flattened once: the fake model answers thousands of times a run."""

    answer: str
    prose_text: str
    scripted: dict[str, str]
    review_keywords: tuple[str, ...]


class FakeModel:
    """Answers each prompt version as its fixture says: prose, contract JSON, or a scripted reply."""

    def __init__(self, rules: FakeModelRules, versions: Sequence[PromptVersion]) -> None:
        self._intent_rules = tuple((tuple(rule.keywords), rule.intent) for rule in rules.intent_rules)
        self._default_intent = rules.default_intent
        self._actions = dict(rules.actions)
        self._confidence = rules.confidence
        self._review_by_default = rules.needs_human_review
        self._replies = {version.name: _flatten(version.fake_model) for version in versions}

    def complete(self, payload: Payload, case: Case) -> Completion:
        """Answer ``case`` with the raw output the seed's ``fake_model`` returns."""
        return Completion(text=self.reply(payload, case), model=payload.model)

    def reply(self, payload: Payload, case: Case) -> str:
        """The raw output text for ``case``, byte-identical to the seed's for its fixtures."""
        try:
            reply = self._replies[payload.prompt_version]
        except KeyError:
            raise ValueError(f"the fake model has no behaviour for prompt version {payload.prompt_version!r}") from None
        scripted = reply.scripted.get(case.id)
        if scripted is not None:
            return scripted
        if reply.answer == "prose":
            return reply.prose_text
        lowered = payload.input.lower()
        intent = _first(lowered, self._intent_rules, self._default_intent)
        needs_review = self._review_by_default or _contains_any(lowered, reply.review_keywords)
        answer = {
            "id": case.id,
            "intent": intent,
            "action": self._actions[intent],
            "confidence": self._confidence,
            "needs_human_review": needs_review,
        }
        return _ENCODER.encode(answer)


def _flatten(reply: FakeReply) -> _VersionReply:
    keywords = tuple(reply.review_rule.keywords) if reply.review_rule is not None else ()
    return _VersionReply(reply.answer, reply.prose_text or "", dict(reply.scripted_replies), keywords)
