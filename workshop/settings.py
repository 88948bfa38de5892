"""The suite's settings: command-line options, each with an ini equivalent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

# (option dest / ini name, flag, help, default for the ini)
PATH_OPTIONS = {
    "cases": ("--cases", "cases file (JSON); the suite is active only when this is set", ""),
    "prompts": ("--prompts", "prompt versions file (default: prompt_versions.json beside the cases file)", ""),
    "evidence_dir": ("--evidence-dir", "where the evidence pack is written", "reports/evidence"),
    "baseline": ("--baseline", "baseline of known results, for the regression gate", "cases/baseline.json"),
    "html_report": (None, "HTML report written by pytest-html when --html is not given; empty for none", ""),
}
FLAG_OPTIONS = {
    "update_baseline": ("--update-baseline", "record this run's results as the new baseline, and pass"),
    "no_baseline": ("--no-baseline", "ignore the baseline: show raw pass/fail"),
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
    evidence_dir = _path(config, "evidence_dir")
    baseline = _path(config, "baseline")
    assert evidence_dir is not None and baseline is not None  # both have defaults
    return SuiteSettings(
        cases=cases,
        prompts=_path(config, "prompts") or cases.with_name("prompt_versions.json"),
        evidence_dir=evidence_dir,
        baseline=baseline,
        update_baseline=flags["update_baseline"],
        use_baseline=not flags["no_baseline"],
        html_report=_path(config, "html_report"),
    )
