"""Broken fixture files stop a run with one clear error, and the last evidence pack stays as it was.

For every fixture file a run reads (cases, prompt versions, output contract, fake model, routes,
failure guide, baseline) and whatever hypothesis puts in it -- any JSON value, the real file with any
one value replaced by a value of another type, random bytes, the real file saved as UTF-16, UTF-32,
Latin-1 or cp1252, a UTF-8 byte order mark before broken JSON, a truncated, empty or blank file --
and for files of megabytes, this module checks that:

* loading the suite as the plugin does (`EvalSuite.load`) either succeeds (the change left a valid
  fixture) or raises `FixtureError`, never another exception; content no fixture can have (not an
  object, not UTF-8, not JSON, a strict field of the wrong type) always raises it;
* the error names the broken file on every line, says what kind of breakage it is, and stays a
  few dozen lines of bounded length however big the file is;
* ``pytest`` on a project with such a file exits with a usage error (exit code 4) printing one
  ``ERROR:`` whose lines name the file, no traceback and no line of the ``workshop`` package,
  runs no test, and leaves the evidence pack of the previous run byte for byte as it was.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_plugin import PACK, make_project, run_seed, snapshot

from workshop.errors import FixtureError
from workshop.jsonfile import MAX_DEPTH
from workshop.settings import SuiteSettings
from workshop.suite import EvalSuite

REPO_CASES = Path(__file__).resolve().parents[1] / "cases"
CONTRACT = "output_contract.schema.json"
BASELINE = "baseline.json"
FILES = (
    "cases.json",
    "prompt_versions.json",
    CONTRACT,
    "fake_model.json",
    "routes.json",
    "failure_guide.json",
    BASELINE,
)
"""Every fixture file a default run reads, by its name under ``cases/``."""
ORIGINAL = {name: (REPO_CASES / name).read_bytes() for name in FILES}
DOCUMENTS = {name: json.loads(raw) for name, raw in ORIGINAL.items()}
UTF8_BOM = b"\xef\xbb\xbf"

MAX_ERROR_LINES = 25
"""A fixture error is a header, at most twenty problems and one line saying how many more there are."""
MAX_LINE_CHARS = 1000
"""Beyond the file's path, a problem line stays readable however long the values in the file are."""

LIBRARY = settings(max_examples=300, deadline=None)
"""Library-level properties: a load takes milliseconds, so many examples."""


# --------------------------------------------------------------------------- what a breakage is


@dataclass(frozen=True)
class Breakage:
    """New content for one fixture file, and what loading it must say."""

    name: str
    content: bytes
    how: str
    certain: bool
    """No valid fixture has this content: loading must fail."""
    says: tuple[str, ...] = ()
    """The error says one of these (when it fails)."""

    def __repr__(self) -> str:  # a falsifying example of megabytes would flood the report
        shown = self.content if len(self.content) <= 200 else self.content[:200] + b"..."
        return f"Breakage({self.name}, {self.how}, {len(self.content)} bytes: {shown!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How hypothesis shows a falsifying example: the short repr, not every field."""
        printer.text(repr(self))


JsonPath = tuple[Any, ...]
"""Keys and indexes from the top of a JSON document down to one value."""


def json_paths(value: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    """Every place in a JSON document, the document itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += json_paths(child, (*prefix, index))
    return found


def value_at(document: Any, path: JsonPath) -> Any:
    for part in path:
        document = document[part]
    return document


PATHS = {name: json_paths(document) for name, document in DOCUMENTS.items()}
STRING_PATHS = {
    name: [path for path in paths if isinstance(value_at(DOCUMENTS[name], path), str)] for name, paths in PATHS.items()
}


def replaced(document: Any, path: JsonPath, value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced."""
    if not path:
        return value
    changed = copy.deepcopy(document)
    value_at(changed, path[:-1])[path[-1]] = value
    return changed


def kind(value: Any) -> str:
    """The JSON type of a parsed value; integers and floats are both numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def dumped(value: Any, *, ascii_only: bool = True, indent: int | None = 2) -> bytes:
    """JSON text as an editor saves it: UTF-8; lone surrogates pass through as the broken bytes they are."""
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- strategies

names = st.sampled_from(FILES)
# text with anything in it, lone surrogates included (json.dumps writes them as \ud800 escapes)
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)
VALUES_OF_KIND = {
    "null": st.none(),
    "boolean": st.booleans(),
    "number": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    "string": any_text,
    "array": st.lists(json_values, max_size=3),
    "object": st.dictionaries(any_text, json_values, max_size=3),
}


@st.composite
def any_json(draw: st.DrawFn) -> Breakage:
    """A whole file of arbitrary JSON (NaN and Infinity included, which are not JSON)."""
    value = draw(json_values)
    return Breakage(draw(names), dumped(value), f"JSON {kind(value)}", certain=not isinstance(value, dict))


@st.composite
def one_value_of_another_type(draw: st.DrawFn) -> Breakage:
    """The real file with one value, anywhere in it, replaced by a value of another JSON type."""
    name = draw(names)
    document = DOCUMENTS[name]
    path = draw(st.sampled_from(PATHS[name]))
    original = value_at(document, path)
    new_kind = draw(st.sampled_from(sorted(set(VALUES_OF_KIND) - {kind(original)})))
    value = draw(VALUES_OF_KIND[new_kind])
    # the models are strict: a value of another type is an error, except null where a field is optional;
    # the contract is a JSON Schema, where `true` or `{}` may stand for a subschema
    certain = original is not None and value is not None and (name != CONTRACT or not path)
    content = dumped(replaced(document, path, value), ascii_only=draw(st.booleans()))
    return Breakage(name, content, f"{'/'.join(map(str, path))} -> {new_kind}", certain)


@st.composite
def random_bytes(draw: st.DrawFn) -> Breakage:
    name = draw(names)
    # `{}` is an empty baseline: a valid one
    return Breakage(name, draw(st.binary(max_size=300)), "random bytes", certain=name != BASELINE)


CP1252_ONLY = bytes(range(0x80, 0xA0)).decode("cp1252", errors="ignore")
"""The characters cp1252 has where Latin-1 has control codes: curly quotes, dashes, the euro sign."""
ENCODINGS = {
    # the real fixtures are ASCII: in UTF-16 and UTF-32 every character has NUL bytes, with a byte order mark or not
    **{
        encoding: st.characters(exclude_categories=("Cs",))
        for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
    },
    # one non-ASCII character in a one-byte encoding is never valid UTF-8
    "latin-1": st.characters(min_codepoint=0x80, max_codepoint=0xFF),
    "cp1252": st.sampled_from(CP1252_ONLY) | st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
}


@st.composite
def another_encoding(draw: st.DrawFn) -> Breakage:
    """The real file, with one character added to one of its texts, saved in an encoding that is not UTF-8."""
    name = draw(names)
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    path = draw(st.sampled_from(STRING_PATHS[name]))
    text = value_at(DOCUMENTS[name], path) + draw(ENCODINGS[encoding])
    content = json.dumps(replaced(DOCUMENTS[name], path, text), indent=2, ensure_ascii=False).encode(encoding)
    return Breakage(name, content, encoding, certain=True, says=("not UTF-8 text",))


@st.composite
def truncated(draw: st.DrawFn) -> Breakage:
    """The real file cut before its closing brace, with or without a UTF-8 byte order mark before it."""
    name = draw(names)
    raw = ORIGINAL[name]
    cut = draw(st.integers(0, raw.rindex(b"}")))
    bom = draw(st.booleans())
    return Breakage(
        name,
        (UTF8_BOM if bom else b"") + raw[:cut],
        f"{'BOM, ' if bom else ''}first {cut} bytes",
        certain=True,
        says=("invalid JSON at line", "file is empty"),
    )


@st.composite
def blank(draw: st.DrawFn) -> Breakage:
    """Nothing but whitespace (Unicode's too), maybe after a UTF-8 byte order mark."""
    text = draw(st.text(st.sampled_from(" \t\r\n\u00a0\u2003\u3000"), max_size=30))
    bom = draw(st.booleans())
    return Breakage(draw(names), (UTF8_BOM if bom else b"") + text.encode(), "blank", True, ("file is empty",))


any_breakage = st.one_of(
    any_json(), one_value_of_another_type(), random_bytes(), another_encoding(), truncated(), blank()
)


# --------------------------------------------------------------------------- loading as the plugin does


def suite_settings(directory: Path) -> SuiteSettings:
    """What the plugin reads from the ini options of a project whose fixtures are in ``directory``."""
    return SuiteSettings(
        cases=directory / "cases.json",
        prompts=directory / "prompt_versions.json",
        evidence_dir=directory.parent / "evidence",
        baseline=directory / BASELINE,
        update_baseline=False,
        use_baseline=True,
        html_report=None,
        recordings_dir=directory.parent / "recordings",
    )


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``cases/``; each example breaks one file and puts it back."""
    directory = tmp_path_factory.mktemp("project") / "cases"
    shutil.copytree(REPO_CASES, directory)
    return directory


@contextmanager
def broken(directory: Path, breakage: Breakage) -> Iterator[Path]:
    path = directory / breakage.name
    path.write_bytes(breakage.content)
    try:
        yield path
    finally:
        path.write_bytes(ORIGINAL[breakage.name])


def load(directory: Path) -> FixtureError | None:
    """Load the suite as `pytest_configure` does; the `FixtureError`, or None if it loaded.

    Any other exception propagates: that is a crash, the failure these tests look for.
    """
    try:
        EvalSuite.load(suite_settings(directory))
    except FixtureError as exc:
        return exc
    return None


def names_only(line: str, path: Path) -> bool:
    """A problem line of ``path``, or the last line of a long error: how many more problems, in that file."""
    return (
        line.startswith(f"  {path.as_posix()}: ")
        or re.fullmatch(rf"  and \d+ more in {re.escape(path.as_posix())}", line) is not None
    )


def check_error(error: FixtureError, path: Path, breakage: Breakage) -> None:
    """The error names ``path`` on every line, says what is wrong, and is short."""
    lines = str(error).splitlines()
    assert re.fullmatch(r"invalid fixtures \((1 problem|\d+ problems)\):", lines[0]), lines[0]
    assert len(lines) >= 2, "at least one problem"
    assert len(lines) <= MAX_ERROR_LINES, f"{len(lines)} lines"
    for line in lines[1:]:
        # a file breaking another one's cross-checks names it in the text ("... is not a route in routes.json")
        assert path.name in line, line
        assert len(line) <= len(path.as_posix()) + MAX_LINE_CHARS, f"a line of {len(line)} characters"
    if breakage.certain:  # the file did not load, so nothing else was checked
        assert {problem.file for problem in error.problems} == {path}
        assert all(names_only(line, path) for line in lines[1:]), lines
    if breakage.says:
        assert any(phrase in str(error) for phrase in breakage.says), str(error)


def check_breakage(directory: Path, breakage: Breakage) -> None:
    with broken(directory, breakage) as path:
        error = load(directory)
    if error is None:
        assert not breakage.certain, f"{breakage!r} loaded"
        return
    check_error(error, path, breakage)


# --------------------------------------------------------------------------- library level


def test_the_unbroken_copy_loads(cases_dir: Path) -> None:
    # the control for everything below: each failure comes from the one broken file
    assert load(cases_dir) is None


@LIBRARY
@given(breakage=any_json())
def test_any_json_value_loads_or_is_an_error_naming_the_file(cases_dir: Path, breakage: Breakage) -> None:
    check_breakage(cases_dir, breakage)


@LIBRARY
@given(breakage=one_value_of_another_type())
def test_a_value_of_another_type_anywhere_is_an_error_naming_the_file(cases_dir: Path, breakage: Breakage) -> None:
    check_breakage(cases_dir, breakage)


@LIBRARY
@given(breakage=random_bytes())
def test_random_bytes_are_an_error_naming_the_file(cases_dir: Path, breakage: Breakage) -> None:
    check_breakage(cases_dir, breakage)


@LIBRARY
@given(breakage=another_encoding())
def test_text_in_another_encoding_is_reported_as_not_utf8(cases_dir: Path, breakage: Breakage) -> None:
    check_breakage(cases_dir, breakage)


@LIBRARY
@given(breakage=truncated())
def test_a_truncated_file_is_invalid_json_with_or_without_a_bom(cases_dir: Path, breakage: Breakage) -> None:
    check_breakage(cases_dir, breakage)


@LIBRARY
@given(breakage=blank())
def test_an_empty_or_blank_file_is_reported_as_empty(cases_dir: Path, breakage: Breakage) -> None:
    check_breakage(cases_dir, breakage)


@pytest.mark.parametrize("name", FILES)
def test_a_utf8_bom_before_a_valid_fixture_is_accepted(cases_dir: Path, name: str) -> None:
    # the other side of "loads or fails": a byte order mark alone breaks nothing
    with broken(cases_dir, Breakage(name, UTF8_BOM + ORIGINAL[name], "BOM", certain=False)):
        assert load(cases_dir) is None


def _nested_contract(levels: int, valid: bool = True) -> dict[str, Any]:
    """The real contract with a property whose subschema nests ``not`` in ``not``, ``levels`` objects deep.

    The contract and its ``properties`` are two more levels: the file nests ``levels + 2`` deep.
    ``valid=False`` drops the list of intents, so loading checks the whole schema, then refuses it.
    """
    contract = copy.deepcopy(DOCUMENTS[CONTRACT])
    deep: dict[str, Any] = {}
    for _ in range(levels - 1):
        deep = {"not": deep}
    contract["properties"]["extra"] = deep
    if not valid:
        del contract["properties"]["intent"]["enum"]
    return contract


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        value = list(value.values())
    elif not isinstance(value, list):
        return 0
    return 1 + max(map(_depth, value), default=0)


def test_a_contract_nested_as_deep_as_allowed_loads(cases_dir: Path) -> None:
    contract = _nested_contract(MAX_DEPTH - 2)
    assert _depth(contract) == MAX_DEPTH
    with broken(cases_dir, Breakage(CONTRACT, dumped(contract), "deepest allowed", certain=False)):
        assert load(cases_dir) is None


def _contract_hundreds_of_levels_deep() -> bytes:
    # JSON that Python parses, but checking it as a JSON Schema recurses about 8 frames a level
    return dumped(_nested_contract(500), indent=None)


TOO_DEEP = {
    "one level more than allowed": lambda: dumped(_nested_contract(MAX_DEPTH - 1)),
    "a contract 500 levels deep": _contract_hundreds_of_levels_deep,
    "megabytes of brackets": lambda: b"[" * 3_000_000,
}


@pytest.mark.parametrize("build", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_a_fixture_nested_deeper_than_allowed_is_an_error_not_a_crash(
    cases_dir: Path, build: Callable[[], bytes]
) -> None:
    check_breakage(cases_dir, Breakage(CONTRACT, build(), "too deep", certain=True, says=("nested too deeply",)))


@pytest.mark.parametrize("ref", ["#/nowhere", "https://example.com/other.schema.json", "#"])
def test_a_contract_whose_ref_cannot_be_followed_is_an_error(cases_dir: Path, ref: str) -> None:
    contract = dumped({**DOCUMENTS[CONTRACT], "$ref": ref})
    check_breakage(cases_dir, Breakage(CONTRACT, contract, f"$ref {ref}", certain=True))


def _huge_id() -> bytes:
    document = copy.deepcopy(DOCUMENTS["cases.json"])
    document["cases"][1]["id"] = "case 2 " * 600_000  # a space is not allowed in an id
    return dumped(document)


def _huge_unknown_field() -> bytes:
    return dumped({**DOCUMENTS["fake_model.json"], "x" * 4_000_000: 1})


def _many_duplicate_versions() -> bytes:
    document = copy.deepcopy(DOCUMENTS["prompt_versions.json"])
    document["versions"] *= 1_500
    return dumped(document)


def _many_bad_rules() -> bytes:
    return dumped({**DOCUMENTS["routes.json"], "rules": [{"keywords": "json", "route": 1}] * 20_000})


def _many_duplicate_cells() -> bytes:
    document = copy.deepcopy(DOCUMENTS[BASELINE])
    document["cells"] = (document["cells"] * 10_000)[:10_000]
    return dumped(document)


HUGE = {
    "an id of megabytes": ("cases.json", _huge_id, "String should match pattern"),
    "an unknown field named with megabytes": ("fake_model.json", _huge_unknown_field, "Extra inputs are not permitted"),
    "thousands of duplicate versions": ("prompt_versions.json", _many_duplicate_versions, "duplicate name"),
    "thousands of bad rules": ("routes.json", _many_bad_rules, "Input should be a valid"),
    "thousands of duplicate cells": (BASELINE, _many_duplicate_cells, "duplicate cell"),
}


@pytest.mark.parametrize(("name", "build", "says"), HUGE.values(), ids=HUGE.keys())
def test_a_huge_broken_file_gives_a_short_error_naming_it(
    cases_dir: Path, name: str, build: Callable[[], bytes], says: str
) -> None:
    content = build()
    assert len(content) > 1_000_000
    check_breakage(cases_dir, Breakage(name, content, "huge", certain=True, says=(says,)))


# --------------------------------------------------------------------------- end to end, through pytest

WORKSHOP_LINES = re.compile(r"workshop[/\\]\w+\.py[:\"]")
"""A line of the package in a traceback: ``workshop/fixtures.py:12: in ...`` or ``File ".../workshop/x.py"``."""


@dataclass(frozen=True)
class SeededProject:
    """A project whose last run wrote an evidence pack, and that pack's bytes."""

    root: Path
    pack: dict[str, bytes]
    reports: list[str]


@pytest.fixture
def seeded(pytester: pytest.Pytester) -> SeededProject:
    root = make_project(pytester)
    run_seed(pytester)
    pack = snapshot(root / PACK)
    assert "summary.json" in pack
    return SeededProject(root, pack, sorted(p.name for p in (root / "reports").iterdir()))


def check_run_stops(pytester: pytest.Pytester, project: SeededProject, breakage: Breakage) -> None:
    """Break one file, run pytest: one usage error naming the file, no traceback, no test, the pack unchanged."""
    with broken(project.root / "cases", breakage) as path:
        result = pytester.runpytest()
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert sum(line.startswith("ERROR") for line in output.splitlines()) == 1, output
    errors = [index for index, line in enumerate(result.stderr.lines) if line.startswith("ERROR")]
    assert re.fullmatch(r"ERROR: invalid fixtures \((1 problem|\d+ problems)\):", result.stderr.lines[errors[0]])
    problems = [line for line in result.stderr.lines[errors[0] + 1 :] if line.startswith("  ")]
    assert problems, output
    assert all(names_only(line, path) for line in problems), output
    assert len(problems) < MAX_ERROR_LINES, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert not WORKSHOP_LINES.search(output), output
    assert "collected" not in result.stdout.str(), "nothing was collected"
    assert not re.search(r"\d+ (passed|failed|xfailed|error)", result.stdout.str()), "no test ran"
    assert snapshot(project.root / PACK) == project.pack, "the previous pack is byte for byte unchanged"
    assert sorted(p.name for p in (project.root / "reports").iterdir()) == project.reports, "nothing new in reports/"


@settings(
    max_examples=30,
    deadline=None,
    database=None,  # pytester runs in its own folder: keep hypothesis' files out of the project
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one project for every example, on purpose
)
@given(breakage=any_breakage.filter(lambda breakage: breakage.certain))
def test_pytest_stops_with_one_usage_error_and_keeps_the_previous_pack(
    pytester: pytest.Pytester, seeded: SeededProject, breakage: Breakage
) -> None:
    check_run_stops(pytester, seeded, breakage)


@pytest.mark.parametrize(
    ("name", "build"),
    [
        pytest.param("prompt_versions.json", _many_duplicate_versions, id="thousands-of-problems"),
        pytest.param(CONTRACT, _contract_hundreds_of_levels_deep, id="contract-500-levels-deep"),
        # check_schema walks a contract several frames per level: at the deepest nesting allowed it must
        # still fit in the stack of a plugin hook (the contract is then refused for its missing intents)
        pytest.param(CONTRACT, lambda: dumped(_nested_contract(MAX_DEPTH - 2, valid=False)), id="deepest-contract"),
    ],
)
def test_pytest_stops_with_a_short_usage_error_for_a_huge_or_deep_file(
    pytester: pytest.Pytester, seeded: SeededProject, name: str, build: Callable[[], bytes]
) -> None:
    check_run_stops(pytester, seeded, Breakage(name, build(), "huge", certain=True))
