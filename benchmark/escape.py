"""Text made safe for each output format: Markdown, LaTeX and CSV. What a table shows comes from data
files and users (dataset names, notes, labels), so every field passes through one of these."""

from __future__ import annotations

import re

_MARKDOWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\n": " ", "\r": " "}
_MARKDOWN_SPECIAL = "\\`*_[]#"


def markdown_escape(text: str) -> str:
    """``text`` shown literally in GitHub Markdown: no raw HTML (``<script>`` becomes text), no table
    break (``|``, newlines), no emphasis, link or code span made from a dataset's or a note's name."""
    return "".join(_MARKDOWN_ESCAPES.get(ch, "\\" + ch if ch in _MARKDOWN_SPECIAL else ch) for ch in text)


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "<": r"$<$",  # in text mode the default OT1 font encoding prints < and > as ¡ and ¿
    ">": r"$>$",
    "▲": r"$^{\blacktriangle}$",  # amssymb
    "▼": r"$^{\blacktriangledown}$",
    "Δ": r"$\Delta$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


_SIGNED_NUMBER = re.compile(r"[-+]?\d*\.?\d+(e[-+]?\d+)? ?%?")


def csv_safe(text: str) -> str:
    """``text`` that a spreadsheet will not run as a formula: a field starting with ``= + - @``, a tab
    or a carriage return gets a leading ``'`` (OWASP's advice), unless it is a number (``-0.0123``,
    ``+12.3 %``) or a lone dash."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and text != "-" and not _SIGNED_NUMBER.fullmatch(text):
        return "'" + text
    return text
