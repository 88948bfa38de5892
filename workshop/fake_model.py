"""The deterministic, offline fake model; everything it does comes from the fixtures."""

from __future__ import annotations

import json
from collections.abc import Sequence

from workshop.fixtures import Case, FakeModelRules, FakeReply, PromptVersion, first_match
from workshop.model import Completion
from workshop.payload import Payload


def infer_intent(text: str, rules: FakeModelRules) -> str:
    """The first rule whose keyword occurs in the lowercased text names the intent."""
    rule = first_match(text, rules.intent_rules)
    return rules.default_intent if rule is None else rule.intent


class FakeModel:
    """Answers each prompt version as its fixture says: prose, contract JSON, or a scripted reply."""

    def __init__(self, rules: FakeModelRules, versions: Sequence[PromptVersion]) -> None:
        self._rules = rules
        self._replies: dict[str, FakeReply] = {version.name: version.fake_model for version in versions}

    def complete(self, payload: Payload, case: Case) -> Completion:
        """Answer ``case`` with the raw output the seed's ``fake_model`` returns."""
        return Completion(text=self.reply(payload, case), model=payload.model)

    def reply(self, payload: Payload, case: Case) -> str:
        """The raw output text for ``case``, byte-identical to the seed's for its fixtures."""
        try:
            reply = self._replies[payload.prompt_version]
        except KeyError:
            raise ValueError(f"the fake model has no behaviour for prompt version {payload.prompt_version!r}") from None
        scripted = reply.scripted_replies.get(case.id)
        if scripted is not None:
            return scripted
        if reply.answer == "prose":
            assert reply.prose_text is not None  # FakeReply's validator guarantees it
            return reply.prose_text
        intent = infer_intent(payload.input, self._rules)
        answer = {
            "id": case.id,
            "intent": intent,
            "action": self._rules.actions[intent],
            "confidence": self._rules.confidence,
            "needs_human_review": self._needs_review(reply, payload.input),
        }
        return json.dumps(answer, ensure_ascii=False)

    def _needs_review(self, reply: FakeReply, text: str) -> bool:
        if reply.review_rule is not None and reply.review_rule.matches(text.lower()):
            return True
        return self._rules.needs_human_review
