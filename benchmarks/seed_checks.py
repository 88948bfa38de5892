"""The seed workshop's hand-written checks, as a plain loop: the floor for the library's evaluation rate.

This is the seed script's own logic (``fake_model``, ``validate_output`` and the intent check),
driven by the same fixtures, so both loops answer the same questions.
"""

from __future__ import annotations

import json
import time

from workshop.fixtures import Fixtures

REQUIRED = ["id", "intent", "action", "confidence", "needs_human_review"]


def _fake_model(fixtures: Fixtures, version_index: int, case_id: str, text: str) -> str:
    version = fixtures.versions[version_index]
    scripted = version.fake_model.scripted_replies.get(case_id)
    if scripted is not None:
        return scripted
    if version.fake_model.answer == "prose":
        return version.fake_model.prose_text or ""
    lowered = text.lower()
    if "json" in lowered or "field" in lowered or "schema" in lowered:
        intent = "structured_output"
    elif "fine-tune" in lowered or "brand tone" in lowered or "rag" in lowered:
        intent = "solution_choice"
    else:
        intent = "learning_plan"
    answer = {
        "id": case_id,
        "intent": intent,
        "action": fixtures.fake_model.actions[intent],
        "confidence": 0.86,
        "needs_human_review": False,
    }
    return json.dumps(answer, ensure_ascii=False)


def _validate(raw: str, intents: set[str]) -> tuple[bool, str, object]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return False, f"invalid_json: {exc.msg}", None
    missing = [field for field in REQUIRED if field not in data]
    if missing:
        return False, f"missing_fields: {missing}", data
    if data["intent"] not in intents:
        return False, f"bad_intent: {data['intent']}", data
    if not isinstance(data["confidence"], (int, float)):
        return False, "confidence_not_number", data
    if not 0 <= data["confidence"] <= 1:
        return False, "confidence_out_of_range", data
    if not isinstance(data["needs_human_review"], bool):
        return False, "needs_human_review_not_boolean", data
    return True, "ok", data


def seed_loop(fixtures: Fixtures) -> list[tuple[str, str, bool, str]]:
    """Every version against every case with the seed's code: (version, case id, passed, reason)."""
    intents = set(fixtures.contract.intents)
    rows = []
    for index, version in enumerate(fixtures.versions):
        for case in fixtures.cases:
            payload = {
                "model": version.model,
                "input": case.user_input,
                "max_output_tokens": version.max_output_tokens,
                "temperature": version.temperature,
                "prompt_version": version.name,
                "instructions": version.instructions,
            }
            raw = _fake_model(fixtures, index, case.id, payload["input"])
            ok, reason, data = _validate(raw, intents)
            correct = ok and data["intent"] == case.expected_intent  # type: ignore[index]
            if ok and not correct:
                reason = f"wrong_intent: {data['intent']} != {case.expected_intent}"  # type: ignore[index]
            rows.append((version.name, case.id, correct, "ok" if correct else reason))
    return rows


def seed_evaluations_per_second(fixtures: Fixtures, repeats: int = 3) -> float:
    """Median evaluations per second of `seed_loop`."""
    count = len(fixtures.cases) * len(fixtures.versions)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        seed_loop(fixtures)
        times.append(time.perf_counter() - started)
    times.sort()
    return count / times[len(times) // 2]
