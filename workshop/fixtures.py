"""The JSON fixtures under ``cases/``: their models, and loading them with clear errors.

Every model is strict (no type coercion) and forbids unknown fields, so a typo in a
hand-edited file is an error that names the file, the item and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from workshop.contract import Contract, load_contract
from workshop.errors import FixtureError, Problem
from workshop.files import file_sha256
from workshop.jsonfile import read_json_file
from workshop.text import shorten, some

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]
KEYWORD_PATTERN = r"^[^A-Z]*$"
Keyword = Annotated[str, StringConstraints(min_length=1, pattern=KEYWORD_PATTERN)]
"""Keywords are matched against lowercased text, so one with a capital letter could never match."""


class FixtureModel(BaseModel):
    """Base of every fixture model: frozen, strict, no unknown fields."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", populate_by_name=True)


class FixtureFile(FixtureModel):
    """Base of a whole fixture file; ``$schema`` lets editors validate while users type."""

    schema_: str | None = Field(default=None, alias="$schema")


class Case(FixtureModel):
    """One learner request and what a good answer must say about it."""

    id: Identifier
    user_input: NonEmptyText
    expected_intent: NonEmptyText
    expected_route: NonEmptyText | None = None
    expected_needs_human_review: bool | None = Field(
        default=None,
        description="True for requests that ask for unsafe, legal, medical or production deployment decisions; "
        "when set, the answer's needs_human_review must match it.",
    )


class CaseFile(FixtureFile):
    """``cases.json``: the fixed test cases, and the route rules they are checked against."""

    routes: NonEmptyText = Field(default="routes.json", description="Route rules file, relative to this file.")
    cases: list[Case] = Field(min_length=1)


class KeywordRule(FixtureModel):
    """A rule that fires when any keyword occurs as a substring of the lowercased text."""

    keywords: list[Keyword] = Field(min_length=1)

    def matches(self, lowered: str) -> bool:
        """True if any keyword is a substring of ``lowered`` (already lowercased text)."""
        return any(keyword in lowered for keyword in self.keywords)


R = TypeVar("R", bound=KeywordRule)


def first_match(text: str, rules: Sequence[R]) -> R | None:
    """The first rule with a keyword in ``text`` (lowercased first, as the seed does), or None."""
    lowered = text.lower()
    return next((rule for rule in rules if rule.matches(lowered)), None)


class FakeReply(FixtureModel):
    """How the offline fake model answers a prompt version.

    ``prose`` answers every case with ``prose_text``; ``contract_json`` answers with
    contract JSON built from the keyword rules. ``scripted_replies`` answer given
    case ids verbatim and win over both.
    """

    answer: Literal["prose", "contract_json"]
    prose_text: str | None = None
    scripted_replies: dict[Identifier, str] = Field(default_factory=dict)
    review_rule: KeywordRule | None = Field(
        default=None,
        description="contract_json answers: needs_human_review is true when a keyword occurs in the lowercased "
        "request (else the fake model's default).",
    )

    @model_validator(mode="after")
    def _prose_needs_text(self) -> FakeReply:
        if self.answer == "prose" and self.prose_text is None:
            raise ValueError('"prose_text" is required when "answer" is "prose"')
        return self


class PromptVersion(FixtureModel):
    """One prompt version: its instructions, request settings and fake-model behaviour."""

    name: Identifier
    instructions: NonEmptyText
    model: NonEmptyText
    max_output_tokens: int = Field(gt=0)
    temperature: float = Field(ge=0, le=2)
    structured_output: bool = Field(
        default=False, description="Real providers: send the output contract as a strict JSON Schema output format."
    )
    fake_model: FakeReply


class PromptFile(FixtureFile):
    """``prompt_versions.json``: the versions in order, with their contract and fake-model rules."""

    contract: NonEmptyText = Field(
        default="output_contract.schema.json", description="Output contract (JSON Schema), relative to this file."
    )
    fake_model: NonEmptyText = Field(default="fake_model.json", description="Fake model rules, relative to this file.")
    failure_guide: NonEmptyText = Field(
        default="failure_guide.json",
        description="What each failure means and what to change next, relative to this file.",
    )
    versions: list[PromptVersion] = Field(min_length=1)


class IntentRule(KeywordRule):
    """Keywords that make the fake model answer with ``intent``."""

    intent: NonEmptyText


class FakeModelRules(FixtureFile):
    """``fake_model.json``: the fake model's intent rules (first match wins) and its answer fields."""

    intent_rules: list[IntentRule]
    default_intent: NonEmptyText
    actions: dict[str, NonEmptyText] = Field(description="The action the fake model proposes for each intent.")
    confidence: float = Field(ge=0, le=1)
    needs_human_review: bool


class RouteRule(KeywordRule):
    """Keywords that send a request down ``route`` first."""

    route: NonEmptyText


class RouteRules(FixtureFile):
    """``routes.json``: the solution-route rules (first match wins) and the default route."""

    rules: list[RouteRule]
    default_route: NonEmptyText

    def route_names(self) -> list[str]:
        """Every route these rules can answer, in rule order, default last."""
        names = [rule.route for rule in self.rules] + [self.default_route]
        return list(dict.fromkeys(names))


class ReasonGuide(FixtureModel):
    """What one type of failure means, why it happens, and the next change on the route ladder."""

    type: NonEmptyText
    reasons: list[NonEmptyText] = Field(min_length=1, description="Reason prefixes (the text before ':') of this type.")
    meaning: NonEmptyText
    why: NonEmptyText
    next_change: NonEmptyText
    route: NonEmptyText | None = Field(
        description="The rung of the ladder this change belongs to; null: not a prompt problem."
    )


class Advice(FixtureModel):
    """Advice for a pattern: a failure repeated across versions, or a case with a given first route."""

    meaning: NonEmptyText
    next_change: NonEmptyText
    route: NonEmptyText
    applies_to: list[NonEmptyText] = Field(
        default_factory=lambda: ["wrong_intent"], description="Reason types this advice replaces the usual advice for."
    )
    over_repeats: bool = Field(
        default=False,
        description="Stands even when the failure repeats across versions (sourced knowledge needs retrieval, "
        "not training); otherwise the repeated-failure advice wins.",
    )


class FailureGuide(FixtureFile):
    """``failure_guide.json``: the explanations and advice the failure analysis uses."""

    ladder: list[NonEmptyText] = Field(min_length=1, description="Routes, cheapest first.")
    reasons: list[ReasonGuide] = Field(min_length=1)
    repeated_wrong_intent: Advice
    route_advice: dict[str, Advice] = Field(
        default_factory=dict, description="Advice for failing cases whose first route (routes.json) is the key."
    )

    def guide_for(self, reason: str) -> ReasonGuide | None:
        """The entry whose reason prefixes include this reason's type."""
        kind = reason.split(":", 1)[0]
        return next((entry for entry in self.reasons if kind in entry.reasons), None)


@dataclass(frozen=True)
class Fixtures:
    """A loaded, cross-checked set of fixtures: what one evaluation run needs."""

    cases: tuple[Case, ...]
    versions: tuple[PromptVersion, ...]
    contract: Contract
    fake_model: FakeModelRules
    routes: RouteRules
    guide: FailureGuide
    files: dict[str, Path]
    """Role (``cases``, ``prompts``, ``contract``, ``fake_model``, ``routes``) to the file it came from."""

    def file_hashes(self) -> dict[str, str]:
        """sha256 of each fixture file, by role: what makes two runs comparable."""
        return {role: file_sha256(path) for role, path in self.files.items()}


M = TypeVar("M", bound=FixtureModel)

SHOWN_VALUE_CHARS = 60
"""A value from a fixture is cut to this length where a message quotes it (it may come from a huge file)."""


def _shown(value: str) -> str:
    """A fixture value as a message quotes it: repr, cut to `SHOWN_VALUE_CHARS`."""
    return repr(shorten(value, SHOWN_VALUE_CHARS))


def _listed(values: Sequence[str]) -> str:
    """Names for a message: the first ten, each cut short, then how many more."""
    return some([shorten(value, SHOWN_VALUE_CHARS) for value in values])


def _item_label(data: Any, loc: Sequence[Any]) -> tuple[str | None, str]:
    """Split a pydantic error location into the list item it is in and the field path."""
    item: str | None = None
    field_start = 0
    node = data
    for index, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            element = node[part]
            # a list inside an item (a rule's keywords) is labelled from that item: rules[0].keywords[3]
            prefix = ".".join(filter(None, [item, *(str(p) for p in loc[field_start:index])]))
            label = f"{prefix}[{part}]"
            if isinstance(element, dict):
                key = next((k for k in ("id", "name") if isinstance(element.get(k), str)), None)
                if key:
                    label += f" ({key} {_shown(element[key])})"
            item, field_start = label, index + 1
            node = element
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
    return item, ".".join(str(p) for p in loc[field_start:])


def validate_fixture(model: type[M], data: Any, path: Path) -> M:
    """Validate parsed JSON as ``model``; raise `FixtureError` naming file, item and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            item, field = _item_label(data, error["loc"])
            message = error["msg"]
            if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == KEYWORD_PATTERN:
                message = "keywords must be lowercase: they are matched against lowercased text"
            problems.append(Problem(path, message, item=item, field=field or None))
        raise FixtureError(problems) from None


def load_model(model: type[M], path: Path) -> M:
    """Read one fixture file and validate it as ``model``."""
    return validate_fixture(model, read_json_file(path), path)


def _duplicates(path: Path, kind: str, names: Sequence[str], field: str) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for index, name in enumerate(names):
        if name in seen:
            message = f"duplicate {field} {_shown(name)} (first used by item {seen[name]})"
            problems.append(Problem(path, message, item=f"{kind}[{index}]", field=field))
        seen.setdefault(name, index)
    return problems


def _intent_problems(fixtures: Fixtures) -> list[Problem]:
    intents = fixtures.contract.intents
    not_allowed = f"is not an intent the contract allows ({_listed(intents)})"
    cases_path, fake_path = fixtures.files["cases"], fixtures.files["fake_model"]
    problems = [
        Problem(
            cases_path,
            f"{_shown(case.expected_intent)} {not_allowed}",
            item=f"cases[{i}] (id {_shown(case.id)})",
            field="expected_intent",
        )
        for i, case in enumerate(fixtures.cases)
        if case.expected_intent not in intents
    ]
    rules = fixtures.fake_model
    problems += [
        Problem(fake_path, f"{_shown(rule.intent)} {not_allowed}", item=f"intent_rules[{i}]", field="intent")
        for i, rule in enumerate(rules.intent_rules)
        if rule.intent not in intents
    ]
    if rules.default_intent not in intents:
        problems.append(Problem(fake_path, f"{_shown(rules.default_intent)} {not_allowed}", field="default_intent"))
    for intent in dict.fromkeys([rule.intent for rule in rules.intent_rules] + [rules.default_intent]):
        if intent not in rules.actions:
            problems.append(Problem(fake_path, f"no action for intent {_shown(intent)}", field="actions"))
    return problems


def _route_problems(fixtures: Fixtures) -> list[Problem]:
    names = fixtures.routes.route_names()
    not_a_route = f"is not a route in {fixtures.files['routes'].name} ({_listed(names)})"
    return [
        Problem(
            fixtures.files["cases"],
            f"{_shown(case.expected_route)} {not_a_route}",
            item=f"cases[{i}] (id {_shown(case.id)})",
            field="expected_route",
        )
        for i, case in enumerate(fixtures.cases)
        if case.expected_route is not None and case.expected_route not in names
    ]


def _guide_problems(fixtures: Fixtures) -> list[Problem]:
    guide, path = fixtures.guide, fixtures.files["failure_guide"]
    ladder = _listed(guide.ladder)
    problems = [
        Problem(
            path,
            f"{_shown(entry.route)} is not on the ladder ({ladder})",
            item=f"reasons[{i}] (type {_shown(entry.type)})",
            field="route",
        )
        for i, entry in enumerate(guide.reasons)
        if entry.route is not None and entry.route not in guide.ladder
    ]
    if guide.repeated_wrong_intent.route not in guide.ladder:
        message = f"{_shown(guide.repeated_wrong_intent.route)} is not on the ladder ({ladder})"
        problems.append(Problem(path, message, item="repeated_wrong_intent", field="route"))
    problems += [
        Problem(
            path, f"{_shown(advice.route)} is not on the ladder ({ladder})", item=f"route_advice.{name}", field="route"
        )
        for name, advice in guide.route_advice.items()
        if advice.route not in guide.ladder
    ]
    names = fixtures.routes.route_names()
    problems += [
        Problem(
            path, f"{_shown(route)} is not a route in {fixtures.files['routes'].name}", field=f"route_advice.{route}"
        )
        for route in guide.route_advice
        if route not in names
    ]
    return problems


def check_fixtures(fixtures: Fixtures) -> list[Problem]:
    """Problems between files: duplicate ids and names, intents and routes no file defines."""
    return (
        _duplicates(fixtures.files["cases"], "cases", [c.id for c in fixtures.cases], "id")
        + _duplicates(fixtures.files["prompts"], "versions", [v.name for v in fixtures.versions], "name")
        + _intent_problems(fixtures)
        + _route_problems(fixtures)
        + _guide_problems(fixtures)
    )


T = TypeVar("T")


def _collect(problems: list[Problem], load: Callable[[], T]) -> T | None:
    """Run one load step; on a fixture error keep its problems and go on with the next file."""
    try:
        return load()
    except FixtureError as exc:
        problems.extend(exc.problems)
        return None


def load_fixtures(cases_path: Path, prompts_path: Path) -> Fixtures:
    """Load the case and prompt files, the files they name, and check them against each other.

    Raises `FixtureError` listing every problem found, each naming file, item and field.
    Files that load are checked even when another one is broken, so one run shows all problems.
    """
    problems: list[Problem] = []
    case_file = _collect(problems, lambda: load_model(CaseFile, cases_path))
    prompt_file = _collect(problems, lambda: load_model(PromptFile, prompts_path))
    files = {"cases": cases_path, "prompts": prompts_path}
    contract = rules = routes = guide = None
    # each companion file is checked as soon as the file naming it has loaded
    if prompt_file is not None:
        files["contract"] = prompts_path.parent / prompt_file.contract
        files["fake_model"] = prompts_path.parent / prompt_file.fake_model
        files["failure_guide"] = prompts_path.parent / prompt_file.failure_guide
        contract = _collect(problems, lambda: load_contract(files["contract"]))
        rules = _collect(problems, lambda: load_model(FakeModelRules, files["fake_model"]))
        guide = _collect(problems, lambda: load_model(FailureGuide, files["failure_guide"]))
    if case_file is not None:
        files["routes"] = cases_path.parent / case_file.routes
        routes = _collect(problems, lambda: load_model(RouteRules, files["routes"]))
    if None in (case_file, prompt_file, contract, rules, routes, guide):
        raise FixtureError(problems)
    assert case_file and prompt_file and contract and rules and routes and guide  # for the type checker
    fixtures = Fixtures(
        cases=tuple(case_file.cases),
        versions=tuple(prompt_file.versions),
        contract=contract,
        fake_model=rules,
        routes=routes,
        guide=guide,
        files=files,
    )
    problems = check_fixtures(fixtures)
    if problems:
        raise FixtureError(problems)
    return fixtures
