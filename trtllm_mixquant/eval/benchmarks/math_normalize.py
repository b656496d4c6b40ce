"""Normalise a math answer string so that notational variants of one answer compare equal as text.

Follows the MATH benchmark's `strip_string` conventions (Hendrycks et al.) with a few additions:
spacing commands, `\\left`/`\\right`, `$`, units in `\\text{}`, degrees, `\\dfrac`/`\\tfrac`,
`\\frac12`, `\\sqrt2`, `a/b`, thousands separators, `x = ` prefixes and trailing periods.
A percent sign is kept as `%` for the equivalence check to interpret.
"""

from __future__ import annotations

import re

_DROP = (r"\left", r"\right", r"\displaystyle", r"\!", r"\,", r"\;", r"\:", r"\qquad", r"\quad", "$")
_DEGREES_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°|\s*degrees?\b")
_TEXT_RE = re.compile(r"\\(?:text|textbf|textrm|textnormal|mbox|mathrm|mathbf)\s*\{([^{}]*)\}(\^\{?\d\}?)?")
_UNIT_RE = re.compile(r"\s*[a-zA-Z][a-zA-Z\s.]*")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SIMPLE_FRACTION_RE = re.compile(r"(-?\d+)/(\d+)")
_KEPT_SPACE = "\x00"
_COMMAND_SPACE_RE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_LETTER_CHOICE_RE = re.compile(r"\(([A-Z])\)")


def normalize_answer(answer: str) -> str:
    """A canonical spelling of `answer` (see the module docstring); "" for an empty answer."""
    s = re.sub(r"(?<!\\)\\ ", " ", answer.strip().replace("\n", " "))  # `\ ` is a space, `\\ ` a new row
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    for token in _DROP:
        s = s.replace(token, "")
    s = s.replace(r"\%", "%").replace(r"\$", "").replace("{,}", "")
    s = _DEGREES_RE.sub("", s)
    s = _text_blocks(s)
    s = _COMMAND_SPACE_RE.sub(lambda m: m[1] + _KEPT_SPACE, s)  # `\pi r` must not become `\pir`
    s = re.sub(r"\s+", "", s).replace(_KEPT_SPACE, " ").rstrip(".").rstrip("\\")
    s = _drop_assignment(s)
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    s = _fix_fracs_and_roots(s)
    if m := _SIMPLE_FRACTION_RE.fullmatch(s):
        s = rf"\frac{{{m[1]}}}{{{m[2]}}}"
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    if m := _LETTER_CHOICE_RE.fullmatch(s):
        s = m[1]
    return s


def _text_blocks(s: str) -> str:
    """Drop `\\text{ cm}`-style units (and their `^2`) after a value; unwrap other `\\text{...}`."""
    def replace(m: re.Match) -> str:
        before = s[:m.start()].strip()
        is_unit = before and _UNIT_RE.fullmatch(m[1]) and not before.endswith(("{", "(", ","))
        return "" if is_unit else m[1] + (m[2] or "")

    return _TEXT_RE.sub(replace, s)


def _drop_assignment(s: str) -> str:
    """`x=5` -> `5`, when the left side is a short name (at most two characters)."""
    parts = s.split("=")
    return parts[1] if len(parts) == 2 and 0 < len(parts[0]) <= 2 else s


def _fix_fracs_and_roots(s: str) -> str:
    r"""`\frac12` -> `\frac{1}{2}`, `\frac1{x}` -> `\frac{1}{x}`, `\sqrt2` -> `\sqrt{2}`."""
    s = re.sub(r"\\sqrt([^{\[\\])", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac([^{\\])([^{\\])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac([^{\\])\{", r"\\frac{\1}{", s)
    return re.sub(r"\\frac(\{[^{}]*\})([^{\\])", r"\\frac\1{\2}", s)
