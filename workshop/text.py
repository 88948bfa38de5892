"""Making untrusted text (model output, hand-edited fixtures) safe to show on one line."""

from __future__ import annotations

import html
import re

# Everything str.splitlines() breaks on, so a shown value can never start a new line.
_LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """Escape line breaks (``\\n`` and the rest) so the text stays on one line."""
    if not _LINE_BREAKS.search(text):
        return text
    return _LINE_BREAKS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def markdown_text(text: str) -> str:
    """Text shown in Markdown as itself: on one line, with ``&``, ``<`` and ``>`` as entities, so a
    renderer (GitHub's included) builds no HTML from it and loads nothing."""
    return html.escape(one_line(text), quote=False)


_PIPE = re.compile(r"(\\*)\|")


def markdown_cell(text: str) -> str:
    r"""`markdown_text` that also stays inside its Markdown table cell: every ``|`` escaped, and
    backslashes right before one doubled (text's ``\|`` escaped as ``\\|`` would be an escaped
    backslash, then a cell border)."""
    return _PIPE.sub(lambda match: match.group(1) * 2 + "\\|", markdown_text(text))


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def some(items: list[str] | tuple[str, ...], limit: int = 10) -> str:
    """Up to ``limit`` items, comma-separated, then how many more there are."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
