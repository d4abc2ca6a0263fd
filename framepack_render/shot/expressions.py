"""A small, safe arithmetic language: the expressions of Deforum schedules.

Deforum hands schedule expressions to numexpr. This is our own parser and evaluator for the
same notation, so a shot file can never run code: numbers, the variables a schedule defines,
+ - * / // % **, comparisons, parentheses and a fixed list of math functions (numexpr's real
ones). Everything is computed in floats, and a value that is not a finite number is an error
rather than a NaN that would travel into a render. Work is bounded: expressions have a length
and nesting limit, and a float can only overflow, never grow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Union

from .errors import suggest

MAX_DEPTH = 32  # nested parentheses, calls and unary signs
MAX_NODES = 200  # numbers, names and operators; also bounds the depth evaluation recurses to


class ExpressionError(Exception):
    """A mistake in an expression; ``offset`` is the character it points at."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


# ---------------------------------------------------------------- the tree


@dataclass(frozen=True)
class Number:
    value: float
    offset: int


@dataclass(frozen=True)
class Name:
    name: str
    offset: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: "Expr"
    offset: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: "Expr"
    right: "Expr"
    offset: int  # the operator


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple["Expr", ...]
    offset: int


Expr = Union[Number, Name, Unary, Binary, Call]


# ---------------------------------------------------------------- functions


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


def _round(x: float) -> float:
    return float(round(x))  # half to even, as numpy (and so numexpr) rounds


# numexpr's real-valued functions, with their argument counts. No constants: numexpr (and so
# Deforum) has no pi or e.
FUNCTIONS: dict[str, tuple[int, Callable[..., float]]] = {
    "sin": (1, math.sin), "cos": (1, math.cos), "tan": (1, math.tan),
    "arcsin": (1, math.asin), "arccos": (1, math.acos), "arctan": (1, math.atan),
    "arctan2": (2, math.atan2),
    "sinh": (1, math.sinh), "cosh": (1, math.cosh), "tanh": (1, math.tanh),
    "arcsinh": (1, math.asinh), "arccosh": (1, math.acosh), "arctanh": (1, math.atanh),
    "sqrt": (1, math.sqrt), "exp": (1, math.exp), "expm1": (1, math.expm1),
    "log": (1, math.log), "log10": (1, math.log10), "log2": (1, math.log2),
    "log1p": (1, math.log1p),
    "abs": (1, abs), "ceil": (1, math.ceil), "floor": (1, math.floor),
    "trunc": (1, math.trunc), "round": (1, _round), "sign": (1, _sign),
    "fmod": (2, math.fmod), "hypot": (2, math.hypot), "copysign": (2, math.copysign),
    "minimum": (2, min), "maximum": (2, max),
    "where": (3, lambda c, a, b: a if c else b),  # evaluated lazily below
}

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


# ---------------------------------------------------------------- tokens

# ASCII only: numexpr (so Deforum) reads no other digits, though float() would.
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|//|<=|>=|==|!=|[-+*/%<>(),])
""", re.VERBOSE | re.ASCII)


@dataclass(frozen=True)
class _Token:
    kind: str  # number | name | op | bad (a character that starts no token) | end
    text: str
    offset: int


def _tokens(text: str, start: int) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:  # reported when the parser reaches it, after any earlier mistake
            tokens.append(_Token("bad", text[position], start + position))
            break
        kind = found.lastgroup or "space"
        if kind != "space":
            tokens.append(_Token(kind, found.group(), start + position))
        position = found.end()
    tokens.append(_Token("end", "", start + len(text)))
    return tokens


# ---------------------------------------------------------------- parser


class _Parser:
    """Recursive descent with Python's precedence: comparison < + - < * / // % < unary signs
    < ** (right-associative, so -2**2 is -4 and 2**-1 is 0.5)."""

    def __init__(self, tokens: list[_Token], names: frozenset[str]):
        self.tokens = tokens
        self.position = 0
        self.names = names
        self.depth = 0
        self.nodes = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.position]

    def advance(self) -> _Token:
        token = self.token
        self.position += 1
        return token

    def count(self, token: _Token) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(f"the expression is longer than {MAX_NODES} terms",
                                  token.offset)

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"the expression is nested more than {MAX_DEPTH} levels deep",
                                  token.offset)

    def parse(self) -> Expr:
        if self.token.kind == "end":
            raise ExpressionError("an empty expression", self.token.offset)
        expr = self.comparison()
        if self.token.kind != "end":
            raise self.unexpected()
        return expr

    def unexpected(self) -> ExpressionError:
        token = self.token
        if token.kind == "bad":
            hint = " (Deforum's expressions have no text or brackets)" \
                if token.text in "'\"[]{}" else ""
            return ExpressionError(f"unexpected character {token.text!r} in an expression"
                                   f"{hint}", token.offset)
        if token.kind == "end":
            return ExpressionError("the expression ends too early", token.offset)
        if token.text == ")":
            return ExpressionError("a value is missing before ')'" if self.depth else
                                   "unbalanced ')'", token.offset)
        return ExpressionError(f"unexpected '{token.text}'", token.offset)

    def comparison(self) -> Expr:
        left = self.arith()
        if self.token.text in _COMPARISONS:
            op = self.advance()
            self.count(op)
            left = Binary(op.text, left, self.arith(), op.offset)
            if self.token.text in _COMPARISONS:
                raise ExpressionError("comparisons cannot be chained; use where()",
                                      self.token.offset)
        return left

    def arith(self) -> Expr:
        left = self.term()
        while self.token.text in ("+", "-"):
            op = self.advance()
            self.count(op)
            left = Binary(op.text, left, self.term(), op.offset)
        return left

    def term(self) -> Expr:
        left = self.factor()
        while self.token.text in ("*", "/", "//", "%"):
            op = self.advance()
            self.count(op)
            left = Binary(op.text, left, self.factor(), op.offset)
        return left

    def factor(self) -> Expr:
        if self.token.text in ("+", "-"):
            op = self.advance()
            self.count(op)
            self.nest(op)
            operand = self.factor()
            self.depth -= 1
            return Unary(op.text, operand, op.offset)
        return self.power()

    def power(self) -> Expr:
        base = self.atom()
        if self.token.text == "**":
            op = self.advance()
            self.count(op)
            self.nest(op)
            exponent = self.factor()
            self.depth -= 1
            return Binary("**", base, exponent, op.offset)
        return base

    def atom(self) -> Expr:
        token = self.token
        if token.kind == "number":
            self.advance()
            self.count(token)
            value = float(token.text)
            if not math.isfinite(value):
                raise ExpressionError(f"the number {token.text} is too large", token.offset)
            return Number(value, token.offset)
        if token.kind == "name":
            self.advance()
            self.count(token)
            if self.token.text == "(":
                return self.call(token)
            return self.name(token)
        if token.text == "(":
            self.advance()
            self.nest(token)
            inner = self.comparison()
            self.depth -= 1
            if self.token.text != ")":
                raise ExpressionError("unbalanced '(': no ')' closes it", token.offset) \
                    if self.token.kind == "end" else self.unexpected()
            self.advance()
            return inner
        raise self.unexpected()

    def name(self, token: _Token) -> Name:
        if token.text not in self.names:
            raise ExpressionError(_unknown_name(token.text, self.names), token.offset)
        return Name(token.text, token.offset)

    def call(self, token: _Token) -> Call:
        if token.text not in FUNCTIONS:
            raise ExpressionError(f"unknown function '{token.text}'"
                                  f"{suggest(token.text, FUNCTIONS)}", token.offset)
        opening = self.advance()
        self.nest(opening)
        args: list[Expr] = []
        if self.token.text != ")":
            args.append(self.comparison())
            while self.token.text == ",":
                self.advance()
                args.append(self.comparison())
        if self.token.text != ")":
            raise ExpressionError(f"unbalanced '(': no ')' closes {token.text}(",
                                  opening.offset) if self.token.kind == "end" \
                else self.unexpected()
        self.advance()
        self.depth -= 1
        wanted = FUNCTIONS[token.text][0]
        if len(args) != wanted:
            raise ExpressionError(f"{token.text}() takes {wanted} argument"
                                  f"{'s' if wanted > 1 else ''}, not {len(args)}", token.offset)
        return Call(token.text, tuple(args), token.offset)


def _unknown_name(name: str, names: frozenset[str]) -> str:
    if name in FUNCTIONS:
        return f"'{name}' is a function; write {name}(...)"
    if name in ("pi", "e"):
        return f"unknown name '{name}' (Deforum has no constants; write the number)"
    known = ", ".join(sorted(names)) or "none"
    return f"unknown name '{name}'{suggest(name, names)} (known here: {known})"


def parse_expression(text: str, names: frozenset[str], start: int = 0) -> Expr:
    """The tree of ``text``, whose first character is at ``start`` in the caller's string
    (errors carry offsets there). ``names`` are the variables it may use."""
    return _Parser(_tokens(text, start), names).parse()


def uses_names(expr: Expr) -> bool:
    """Whether the expression reads any variable (else it is the same on every frame)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name):
            return True
        if isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack += [node.left, node.right]
        elif isinstance(node, Call):
            stack += list(node.args)
    return False


# ---------------------------------------------------------------- evaluation


def evaluate(expr: Expr, variables: Mapping[str, float]) -> float:
    """The expression's value; ExpressionError when any step is not a finite number. The
    tree's depth is bounded by the parser, so recursion here stays shallow."""
    value = _evaluate(expr, variables)
    if not math.isfinite(value):
        raise ExpressionError("the expression is not a finite number", expr.offset)
    return value


def _evaluate(expr: Expr, variables: Mapping[str, float]) -> float:
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Name):
        return float(variables[expr.name])
    if isinstance(expr, Unary):
        operand = _evaluate(expr.operand, variables)
        return -operand if expr.op == "-" else operand
    if isinstance(expr, Binary):
        return _binary(expr, variables)
    return _call(expr, variables)


def _binary(expr: Binary, variables: Mapping[str, float]) -> float:
    left = _evaluate(expr.left, variables)
    right = _evaluate(expr.right, variables)
    op = expr.op
    if op in _COMPARISONS:
        return 1.0 if _COMPARISONS[op](left, right) else 0.0
    try:
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif op == "/":
            result = left / right
        elif op == "//":
            result = left // right
        elif op == "%":
            result = left % right  # floored, as numexpr's
        else:
            result = math.pow(left, right)
    except ZeroDivisionError:
        raise ExpressionError("division by zero", expr.offset) from None
    except OverflowError:
        raise ExpressionError("the value is too large", expr.offset) from None
    except ValueError:  # a negative number to a fractional power, 0 to a negative one
        raise ExpressionError(f"{left:g} ** {right:g} is not a real number",
                              expr.offset) from None
    return _finite(result, expr.offset)


def _call(expr: Call, variables: Mapping[str, float]) -> float:
    if expr.function == "where":  # only the branch chosen is computed, like a conditional
        condition, chosen, other = expr.args
        return _evaluate(chosen if _evaluate(condition, variables) else other, variables)
    function = FUNCTIONS[expr.function][1]
    args = [_evaluate(arg, variables) for arg in expr.args]
    try:
        result = float(function(*args))
    except OverflowError:
        raise ExpressionError(f"{expr.function}() is too large here", expr.offset) from None
    except (ValueError, ZeroDivisionError):
        shown = ", ".join(f"{a:g}" for a in args)
        raise ExpressionError(f"{expr.function}({shown}) is not a real number",
                              expr.offset) from None
    return _finite(result, expr.offset)


def _finite(value: float, offset: int) -> float:
    if not math.isfinite(value):
        raise ExpressionError("the value is not a finite number", offset)
    return value
