"""Whether two final answers are the same mathematical answer.

Both are normalised (`normalize_answer`); equal strings match. Tuples and intervals compare
element by element; sets `\\{...\\}` and bare lists `1, 2` (MATH's "all solutions") in any order.
Single values are parsed with the safe LaTeX parser and compared exactly when both are rational
(`\\frac{1}{2}` == `0.5`, `1/3` != `0.33`), else numerically to 1e-9 relative, at a few points for
any free variables. A value written with `%` also matches its value over 100.
"""

from __future__ import annotations

import cmath

import sympy

from trtllm_mixquant.eval.benchmarks.latex_expr import parse_latex_expr
from trtllm_mixquant.eval.benchmarks.math_normalize import normalize_answer

RELATIVE_TOLERANCE = 1e-9
_OPEN, _CLOSE = "([{", ")]}"
_POINTS = (sympy.Rational(37, 101), sympy.Rational(-113, 59), sympy.Rational(71, 29), sympy.Rational(5, 7))


def answers_equal(prediction: str | None, reference: str | None) -> bool:
    """True when `prediction` is an acceptable spelling of `reference`; False for a missing answer."""
    if prediction is None or reference is None:
        return False
    p, r = normalize_answer(prediction), normalize_answer(reference)
    return bool(p) and bool(r) and _equal(p, r)


def parse_value(answer: str) -> sympy.Expr | None:
    """The sympy value of a normalised single answer, or None when it does not parse."""
    try:
        return parse_latex_expr(answer)
    except (ValueError, TypeError, ArithmeticError):
        return None


def split_sequence(s: str) -> tuple[str, list[str]] | None:
    """(brackets, elements) of `(1,2)`, `[0,\\infty)`, `\\{1,2\\}` or `1,2`; None for a single value."""
    brackets, inner = "", s
    if s.startswith(r"\{") and s.endswith(r"\}"):
        brackets, inner = "{}", s[2:-2]
    elif len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _encloses(s):
        brackets, inner = s[0] + s[-1], s[1:-1]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return (brackets, parts) if len(parts) > 1 else None


def _encloses(s: str) -> bool:
    """Whether the first and last characters of s bracket all of it: `(1,2)` yes, `(1)+(2)` no."""
    depth = 0
    for ch in s[:-1]:
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth == 0:
            return False
    return True


def _equal(p: str, r: str) -> bool:
    if p == r:
        return True
    p_seq, r_seq = split_sequence(p), split_sequence(r)
    if p_seq is None and r_seq is None:
        return _values_equal(p, r)
    if p_seq is None or r_seq is None or p_seq[0] != r_seq[0] or len(p_seq[1]) != len(r_seq[1]):
        return False
    (brackets, p_items), r_items = p_seq, r_seq[1]
    if brackets in ("", "{}"):  # a set, or "all solutions, separated by commas": any order
        return all(any(_equal(a, b) for b in r_items) for a in p_items) and \
            all(any(_equal(a, b) for a in p_items) for b in r_items)
    return all(_equal(a, b) for a, b in zip(p_items, r_items))


def _values_equal(p: str, r: str) -> bool:
    p_body, r_body = p.rstrip("%"), r.rstrip("%")
    if p_body == r_body:
        return True
    p_value, r_value = parse_value(p_body), parse_value(r_body)
    if p_value is None or r_value is None:
        return False
    p_values = [p_value, p_value / 100] if p.endswith("%") else [p_value]
    r_values = [r_value, r_value / 100] if r.endswith("%") else [r_value]
    return any(_sympy_equal(a, b) for a in p_values for b in r_values)


def _sympy_equal(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Exact for rationals; otherwise numerically equal at a few points for the free symbols."""
    try:
        if a.is_Rational and b.is_Rational:
            return a == b
        difference = a - b
        if difference == 0:
            return True
        symbols = sorted(difference.free_symbols, key=str)
        checked = 0
        for k in range(len(_POINTS) if symbols else 1):
            at = {s: _POINTS[(k + j) % len(_POINTS)] for j, s in enumerate(symbols)}
            diff, scale = complex(difference.subs(at).evalf(30)), complex(b.subs(at).evalf(30))
            if not (cmath.isfinite(diff) and cmath.isfinite(scale)):
                continue
            if abs(diff) > RELATIVE_TOLERANCE * max(1.0, abs(scale)):
                return False
            checked += 1
        return checked > 0
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return False
