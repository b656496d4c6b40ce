"""A small, safe LaTeX-to-sympy parser for final answers: numbers, letters, + - * / ^, \\frac,
\\sqrt, \\pi, \\infty, `!` and common functions, with implicit multiplication.

Nothing is evaluated as Python: the parser builds sympy objects itself, so no `eval`, and refuses
powers and factorials whose exact value would be too large to compute quickly. Anything outside the
grammar raises ValueError, and the caller falls back to comparing strings.
"""

from __future__ import annotations

import math
import re

import sympy

MAX_LENGTH = 400  # longer answers are not parsed
MAX_DIGITS = 5000  # most digits a power may produce exactly
_TOKEN_RE = re.compile(r"\s*(\d+\.?\d*|\.\d+|\\[a-zA-Z]+|\\.|[a-zA-Z]|[-+*/^()\[\]{}!,|])")
_CONSTANTS = {r"\pi": sympy.pi, r"\infty": sympy.oo}
_GREEK = {rf"\{name}" for name in ("alpha", "beta", "gamma", "delta", "theta", "lambda", "mu", "phi", "sigma", "omega")}
_FUNCTIONS = {r"\sin": sympy.sin, r"\cos": sympy.cos, r"\tan": sympy.tan, r"\cot": sympy.cot,
              r"\sec": sympy.sec, r"\csc": sympy.csc, r"\ln": sympy.log, r"\log": sympy.log, r"\exp": sympy.exp}
_TIMES = ("*", r"\cdot", r"\times")
_DIVIDE = ("/", r"\div")
_CLOSING = {"(": ")", "{": "}", "[": "]"}


def parse_latex_expr(text: str) -> sympy.Expr:
    """The sympy value of a LaTeX math expression; ValueError when it is outside the grammar."""
    if len(text) > MAX_LENGTH:
        raise ValueError("expression too long")
    return _Parser(text).parse()


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected character {text[pos]!r}")
        if m[1] not in (r"\left", r"\right"):
            tokens.append(m[1])
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self) -> sympy.Expr:
        value = self.expr()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected or 'more input'}, got {token!r}")
        self.pos += 1
        return token

    def expr(self) -> sympy.Expr:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> sympy.Expr:
        value = self.unary()
        while True:
            token = self.peek()
            if token in _TIMES:
                self.take()
                value = value * self.unary()
            elif token in _DIVIDE:
                self.take()
                value = value / self.unary()
            elif self.starts_atom(token):
                value = value * self.power()  # implicit multiplication: 2\sqrt{3}, 3x, (a)(b)
            else:
                return value

    def unary(self) -> sympy.Expr:
        if self.peek() in ("+", "-"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> sympy.Expr:
        value = self.atom()
        while self.peek() == "!":
            self.take()
            value = _factorial(value)
        if self.peek() == "^":
            self.take()
            exponent = self.unary() if self.peek() in ("+", "-") else self.atom()  # 2^10 is 1024, as written
            value = _power(value, exponent)
        return value

    def starts_atom(self, token: str | None) -> bool:
        if token is None:
            return False
        return (token[0].isdigit() or token[0] == "." or token.isalpha() or token in ("(", "{", "[")
                or token in (r"\frac", r"\sqrt") or token in _CONSTANTS or token in _FUNCTIONS or token in _GREEK)

    def argument(self) -> sympy.Expr:
        """A braced group or a single character: the arguments of `\\frac12` and `\\sqrt2`."""
        token = self.peek()
        if token is not None and token[0].isdigit() and len(token) > 1 and "." not in token:
            self.tokens[self.pos] = token[1:]
            return sympy.Integer(token[0])
        return self.atom()

    def atom(self) -> sympy.Expr:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return sympy.Rational(token)
        if token.isalpha():
            return sympy.Symbol(token)
        if token in _CLOSING:
            value = self.expr()
            self.take(_CLOSING[token])
            return value
        if token == r"\frac":
            return self.argument() / self.argument()
        if token == r"\sqrt":
            index = sympy.Integer(2)
            if self.peek() == "[":
                self.take()
                index = self.expr()
                self.take("]")
            return _power(self.argument(), 1 / index)
        if token in _CONSTANTS:
            return _CONSTANTS[token]
        if token in _FUNCTIONS:
            return _FUNCTIONS[token](self.power())
        if token in _GREEK:
            return sympy.Symbol(token[1:])
        raise ValueError(f"unsupported token {token!r}")


def _digits(value: sympy.Expr) -> float:
    """Decimal digits of the largest integer an exact number carries (numerator or denominator)."""
    if value.is_Rational:
        return max(abs(value.p).bit_length(), value.q.bit_length()) * math.log10(2)
    try:
        return abs(math.log10(abs(complex(value)))) if value != 0 else 0.0
    except (OverflowError, TypeError, ValueError):
        return math.inf


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    """base ** exponent, refused when its exact value could have more than MAX_DIGITS digits."""
    if exponent.is_number:
        try:
            size = abs(complex(exponent))
        except (OverflowError, TypeError):
            raise ValueError("exponent too large") from None
        if size * max(_digits(base) if base.is_number else 3.0, 1.0) > MAX_DIGITS:
            raise ValueError("power too large")
    return sympy.Pow(base, exponent)


def _factorial(value: sympy.Expr) -> sympy.Expr:
    if not value.is_Integer or not 0 <= value <= 500:
        raise ValueError("factorial of a non-integer or too large a number")
    return sympy.factorial(value)
