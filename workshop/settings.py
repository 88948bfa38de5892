"""The suite's settings: command-line options, each with an ini equivalent."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from workshop.shard import Shard

# (option dest / ini name, flag, help, default for the ini)
PATH_OPTIONS = {
    "cases": ("--cases", "cases file (JSON); the suite is active only when this is set", ""),
    "prompts": ("--prompts", "prompt versions file (default: prompt_versions.json beside the cases file)", ""),
    "evidence_dir": ("--evidence-dir", "where the evidence pack is written", "reports/evidence"),
    "baseline": ("--baseline", "baseline of known results, for the regression gate", "cases/baseline.json"),
    "recordings_dir": ("--recordings-dir", "recorded answers of real models", "cases/recordings"),
    "history_dir": ("--history-dir", "each run's pack is also kept here, under its run id", "reports/history"),
    "html_report": (None, "HTML report written by pytest-html when --html is not given; empty for none", ""),
}
FLAG_OPTIONS = {
    "update_baseline": ("--update-baseline", "record this run's results as the new baseline, and pass"),
    "no_baseline": ("--no-baseline", "ignore the baseline: show raw pass/fail"),
}


@dataclass(frozen=True)
class ValueOption:
    """An option with a typed value; the ini value is a string parsed the same way."""

    flag: str
    help: str
    default: str
    parse: Callable[[str], Any]
    choices: tuple[str, ...] | None = None


def _at_least(minimum: float, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {text}")
        return value

    return parse


def _shard(text: str) -> Shard | None:
    return Shard.parse(text) if text.strip() else None


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"must be between 0 and 1, got {text}")
    return value


VALUE_OPTIONS = {
    "provider": ValueOption(
        "--provider", "model provider (env WORKSHOP_PROVIDER)", "fake", str, ("fake", "openai", "openai-chat")
    ),
    "record_mode": ValueOption(
        "--record-mode",
        "real providers: none = replay only, new = replay and record what is missing, all = call and re-record",
        "new",
        str,
        ("none", "new", "all"),
    ),
    "max_concurrency": ValueOption("--max-concurrency", "model calls in flight at once", "8", _at_least(1, int)),
    "repeat": ValueOption("--repeat", "trials per (version, case)", "1", _at_least(1, int)),
    "min_pass_rate": ValueOption("--min-pass-rate", "share of trials a cell must pass", "1.0", _rate),
    "max_retries": ValueOption(
        "--max-retries", "retries of a failed model call (the SDK's own)", "2", _at_least(0, int)
    ),
    "html_full_rows": ValueOption(
        "--html-full-rows",
        "above this many evaluations the HTML report keeps rows for failures only (passing ones: matrix and pack)",
        "2000",
        _at_least(0, int),
    ),
    "request_timeout": ValueOption(
        "--request-timeout", "seconds per model call attempt", "60", _at_least(0.001, float)
    ),
    "shard": ValueOption(
        "--shard",
        "run shard K of N (K/N, e.g. 2/3) of the cells; merge the packs with `python -m workshop merge`",
        "",
        _shard,
    ),
    "history_keep": ValueOption(
        "--history-keep", "how many runs' packs the history folder keeps (0: keep no history)", "20", _at_least(0, int)
    ),
}


@dataclass(frozen=True)
class SuiteSettings:
    """Resolved settings of one run; paths are absolute."""

    cases: Path
    prompts: Path
    evidence_dir: Path
    baseline: Path
    update_baseline: bool
    use_baseline: bool
    html_report: Path | None
    recordings_dir: Path
    provider: str = "fake"
    record_mode: str = "new"
    max_concurrency: int = 8
    repeat: int = 1
    min_pass_rate: float = 1.0
    max_retries: int = 2
    request_timeout: float = 60.0
    html_full_rows: int = 2000
    shard: Shard | None = None
    history_dir: Path | None = None
    history_keep: int = 20

    @property
    def gate_mode(self) -> Literal["gate", "off", "update"]:
        """How results are judged: against the baseline, raw (off), or recorded (update)."""
        if self.update_baseline:
            return "update"
        return "gate" if self.use_baseline else "off"


def add_options(parser: pytest.Parser) -> None:
    """Register the suite's options and ini values."""
    group = parser.getgroup("workshop", "prompt evaluation (workshop)")
    for name, (flag, help_text, default) in PATH_OPTIONS.items():
        if flag:
            group.addoption(flag, dest=f"workshop_{name}", metavar="PATH", default=None, help=help_text)
        parser.addini(name, help=f"workshop: {help_text}", default=default)
    for name, (flag, help_text) in FLAG_OPTIONS.items():
        group.addoption(flag, dest=f"workshop_{name}", action="store_true", default=False, help=help_text)
        parser.addini(name, help=f"workshop: {help_text}", type="bool", default=False)
    for name, option in VALUE_OPTIONS.items():
        shown = f" (default {option.default})"
        group.addoption(
            option.flag, dest=f"workshop_{name}", default=None, choices=option.choices, help=option.help + shown
        )
        parser.addini(name, help=f"workshop: {option.help}", default=option.default)


def _value(config: pytest.Config, name: str) -> Any:
    """A typed option: command line, then (for the provider) the environment, then the ini file."""
    option = VALUE_OPTIONS[name]
    text = config.getoption(f"workshop_{name}", default=None)
    source = option.flag
    if text is None and name == "provider" and os.environ.get("WORKSHOP_PROVIDER"):
        text, source = os.environ["WORKSHOP_PROVIDER"], "WORKSHOP_PROVIDER"
    if text is None:
        text, source = str(config.getini(name)), f"ini value {name!r}"
    if option.choices and text not in option.choices:
        raise pytest.UsageError(f"{source}: {text!r} is not one of {', '.join(option.choices)}")
    try:
        return option.parse(text)
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def _path(config: pytest.Config, name: str) -> Path | None:
    """An option from the command line (relative to where pytest ran) or the ini file (relative to it)."""
    given = config.getoption(f"workshop_{name}", default=None)
    if given:
        return (config.invocation_params.dir / given).resolve()
    value = config.getini(name)
    if not value:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    return (base / value).resolve()


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


_CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "pyproject.toml", "tox.ini", "setup.cfg")


def _project_dir(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` with a file pytest may read its configuration from."""
    return next(
        (folder for folder in (start, *start.parents) if any((folder / n).is_file() for n in _CONFIG_FILES)), None
    )


def _check_not_misrooted(config: pytest.Config) -> None:
    """Refuse a path option written as ``--cases PATH`` when pytest took PATH for a test path.

    pytest finds its rootdir and ini file before installed plugins add their options, so
    at that moment ``--cases /elsewhere/cases.json`` looks like a test path: pytest roots
    the run near it and never reads this project's configuration. ``--cases=PATH`` is not
    affected. That choice cannot be undone from a plugin, so say what happened instead of
    running with the wrong configuration.
    """
    args = list(config.invocation_params.args)
    invocation_dir = config.invocation_params.dir.resolve()
    project = _project_dir(invocation_dir)
    if project is None or config.rootpath.resolve() == project:
        return
    for flag in (flag for flag, _, _ in PATH_OPTIONS.values() if flag):
        for index, arg in enumerate(args[:-1]):
            value = (invocation_dir / args[index + 1]).resolve()
            if arg == flag and value.exists() and not _is_within(value, project):
                raise pytest.UsageError(
                    f"{flag} {args[index + 1]}: pytest read this path as a test path before the workshop "
                    f"plugin was loaded, and so took its configuration from {config.rootpath} instead of "
                    f"{project}. Write it with '=': {flag}={args[index + 1]}"
                )


def read_settings(config: pytest.Config) -> SuiteSettings | None:
    """The run's settings, or None when no cases file is configured (the plugin stays inert)."""
    _check_not_misrooted(config)
    cases = _path(config, "cases")
    if cases is None:
        return None
    flags = {name: bool(config.getoption(f"workshop_{name}") or config.getini(name)) for name in FLAG_OPTIONS}
    if flags["update_baseline"] and flags["no_baseline"]:
        raise pytest.UsageError("--update-baseline and --no-baseline cannot be used together")
    values = {name: _value(config, name) for name in VALUE_OPTIONS}
    if flags["update_baseline"] and values["shard"] is not None:
        raise pytest.UsageError(
            "--update-baseline needs every cell's result: run it without --shard (a shard sees only its part)"
        )
    evidence_dir = _path(config, "evidence_dir")
    baseline = _path(config, "baseline")
    recordings_dir = _path(config, "recordings_dir")
    assert evidence_dir is not None and baseline is not None and recordings_dir is not None  # all have defaults
    return SuiteSettings(
        cases=cases,
        prompts=_path(config, "prompts") or cases.with_name("prompt_versions.json"),
        evidence_dir=evidence_dir,
        baseline=baseline,
        update_baseline=flags["update_baseline"],
        use_baseline=not flags["no_baseline"],
        html_report=_path(config, "html_report"),
        recordings_dir=recordings_dir,
        history_dir=_path(config, "history_dir"),
        **values,
    )
