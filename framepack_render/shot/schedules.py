"""Deforum schedules: a numeric setting keyframed over the frames of a video.

``"0:(10), 60:(6)"`` is 10 at frame 0, 6 from frame 60 on, and linear in between. The values
are Deforum's (sd-webui-deforum's ``FrameInterpolater``), frame for frame:
- a keyframe value that is a plain number holds at its frame, and frames between two keyframes
  are interpolated linearly (towards an expression keyframe: towards its value at its frame);
- an expression value is evaluated on every frame from its keyframe to the next, with ``t``
  (the frame), ``max_f`` (the last frame) and ``s`` (the seed); it is never interpolated;
- before the first keyframe and after the last the value holds; keyframes outside the video
  are ignored. Deforum needs a keyframe at frame 0; here the first value holds back to 0.
- A value is "a plain number" exactly when Deforum's test says so: the text without quotes and
  parentheses is a decimal number ("(10)", "(-0.5)"); anything else ("( 10 )", "(1e3)") is an
  expression.

Beyond Deforum: commas inside expressions work (keyframes split at commas outside
parentheses), keys may be seconds ("2s", rounded to the nearest frame), and the expressions
are read by our own parser (``expressions``), never eval or numexpr.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import Mark, ShotError
from .expressions import Expr, ExpressionError, evaluate, parse_expression, uses_names

VALUE_NAMES = frozenset({"t", "max_f", "s"})
KEY_NAMES = frozenset({"max_f", "s"})
MAX_TEXT = 100_000  # characters: a keyframe per frame of a long Parseq curve fits
_DEFORUM_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_KEY_LIMIT = 1e9  # frames or seconds: far past any video, well inside a float
_WHOLE = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_SECONDS = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*s")
_LOOKS_LIKE = re.compile(r"""\s*(?:"[^"]*"|'[^']*'|[^:,"']*)\s*:""")


@dataclass(frozen=True)
class Keyframe:
    """One ``KEY:(VALUE)``. The key is a frame, seconds or an expression of max_f and s; the
    value a plain number or an expression. Offsets point into the schedule's text."""

    frame: int | None
    seconds: float | None
    frame_expr: Expr | None
    number: float | None
    expr: Expr | None
    key_offset: int
    value_offset: int
    key_text: str = ""  # as written (inside its quotes, if quoted)
    value_text: str = ""  # as written, parentheses included


@dataclass(frozen=True)
class Schedule:
    text: str
    keyframes: tuple[Keyframe, ...]
    fps: float
    mark: Mark | None = field(default=None, compare=False)
    what: str | None = field(default=None, compare=False)  # the setting, for messages

    @property
    def is_constant(self) -> bool:
        """Whether every frame has the same value, whatever the video's length and seed."""
        values = set()
        for keyframe in self.keyframes:
            if keyframe.expr is None:
                values.add(keyframe.number)
            elif uses_names(keyframe.expr):
                return False
            else:
                try:
                    values.add(evaluate(keyframe.expr, {}))
                except ExpressionError:
                    return False
        return len(values) == 1

    def value(self, frame: int, max_frames: int, seed: int) -> float:
        """The value at ``frame`` of a video of ``max_frames`` frames (clamped into it)."""
        return _Timeline(self, max_frames, seed).value(frame)

    def values(self, max_frames: int, seed: int) -> list[float]:
        """The value of every frame, 0 to max_frames - 1."""
        timeline = _Timeline(self, max_frames, seed)
        return [timeline.value(frame) for frame in range(max_frames)]

    def offset_at(self, frame: int, max_frames: int, seed: int,
                  bad: Callable[[float], bool] | None = None) -> int:
        """Where the keyframe that shapes ``frame``'s value writes its value, to point a
        message about that value at it. Between two keyframes both shape it: the first whose
        own value is ``bad`` is chosen, else the earlier."""
        timeline = _Timeline(self, max_frames, seed)
        index = bisect.bisect_right(timeline.frames, frame) - 1
        shaping = [max(index, 0)]
        if 0 <= index < len(timeline.frames) - 1 and timeline.keyframes[index].expr is None \
                and timeline.frames[index] != frame:
            shaping.append(index + 1)  # interpolated towards the next keyframe
        chosen = next((i for i in shaping if bad is not None and bad(timeline.at(i))),
                      shaping[0])
        return timeline.keyframes[chosen].value_offset

    def ignored(self, max_frames: int, seed: int) -> list[tuple[int, Keyframe]]:
        """Keyframes outside the video (Deforum ignores them too), with their frames."""
        return [(frame, keyframe) for frame, keyframe in _keyed(self, max_frames, seed)
                if not 0 <= frame < max_frames]

    def error(self, offset: int, message: str) -> ShotError:
        """A one-line error pointing at ``offset`` in the text."""
        what = f"{self.what} schedule" if self.what else "schedule"
        return ShotError.at(inner_mark(self.mark, self.text, offset), f"{what}: {message}")

    def __str__(self) -> str:
        return self.text


def parse_schedule(text: str, mark: Mark | None = None, *, fps: float,
                   what: str | None = None) -> Schedule:
    """Read a schedule string, or raise ShotError with one line pointing inside it. ``mark``
    is where the string is written (its opening quote, if quoted); ``fps`` turns seconds keys
    into frames; ``what`` names the setting in messages."""
    shell = Schedule(text, (), fps, mark, what)
    if len(text) > MAX_TEXT:
        raise shell.error(0, f"longer than {MAX_TEXT} characters")
    try:
        keyframes = tuple(_keyframe(*entry, fps) for entry in _entries(text))
    except ExpressionError as problem:
        raise shell.error(problem.offset, problem.message) from None
    return Schedule(text, keyframes, fps, mark, what)


def as_schedule(value: Any, mark: Mark | None = None, *, fps: float,
                what: str | None = None) -> Schedule:
    """A number as a constant schedule, or a schedule string read."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return parse_schedule(f"0:({value!r})", mark, fps=fps, what=what)
    return parse_schedule(str(value), mark, fps=fps, what=what)


def is_schedule(value: Any) -> bool:
    """Whether ``value`` is a string written as a schedule (``KEY:`` at its start)."""
    return isinstance(value, str) and _LOOKS_LIKE.match(value) is not None


# ---------------------------------------------------------------- reading


def _entries(text: str) -> list[tuple[str, int, str, int]]:
    """(key, key offset, value, value offset) of each keyframe, split at the commas outside
    parentheses and quotes."""
    entries = []
    position = _skip_space(text, 0)
    if position == len(text):
        raise ExpressionError("empty; write keyframes such as 0:(10), 60:(6)", 0)
    while True:
        key, key_offset, position = _key(text, position)
        value, value_offset, position = _value(text, position)
        entries.append((key, key_offset, value, value_offset))
        if position == len(text):
            return entries
        position = _skip_space(text, position + 1)  # past the comma
        if position == len(text):
            raise ExpressionError("nothing after the last ','", position)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _key(text: str, position: int) -> tuple[str, int, int]:
    """The key's text (inside its quotes, if quoted), its offset, and the position after ':'."""
    start = position
    if text[position] in "'\"":
        close = text.find(text[position], position + 1)
        if close < 0:
            raise ExpressionError(f"unbalanced {text[position]}: the key's quote is not "
                                  "closed", position)
        key, key_offset = text[position + 1:close], position + 1
        position = _skip_space(text, close + 1)
        if position == len(text) or text[position] != ":":
            raise ExpressionError("expected ':' after the key", position)
    else:
        while position < len(text) and text[position] not in ":,":
            position += 1
        if position == len(text) or text[position] == ",":
            raise ExpressionError("a keyframe is FRAME:(VALUE), such as 0:(10)", start)
        key, key_offset = text[start:position], start
    stripped = key.strip()
    if not stripped:
        raise ExpressionError("a keyframe needs a frame before ':'", start)
    return stripped, key_offset + key.index(stripped), position + 1


def _value(text: str, position: int) -> tuple[str, int, int]:
    """The value's text up to the next comma outside parentheses and quotes, its offset, and
    the position of that comma (or the end)."""
    start = _skip_space(text, position)
    opened: list[int] = []
    quote: int | None = None
    position = start
    while position < len(text):
        char = text[position]
        if quote is not None:
            if char == text[quote]:
                quote = None
        elif char in "'\"":
            quote = position
        elif char == "(":
            opened.append(position)
        elif char == ")":
            if not opened:
                raise ExpressionError("unbalanced ')'", position)
            opened.pop()
        elif char == "," and not opened:
            break
        elif char == ":":
            raise ExpressionError("':' inside a value; is a ',' missing between keyframes?",
                                  position)
        position += 1
    if quote is not None:
        raise ExpressionError(f"unbalanced {text[quote]}: this quote is not closed", quote)
    if opened:
        raise ExpressionError("unbalanced '(': no ')' closes it", opened[-1])
    value = text[start:position].rstrip()
    if not value:
        raise ExpressionError("the keyframe has no value after ':'", start)
    return value, start, position


def _keyframe(key: str, key_offset: int, value: str, value_offset: int,
              fps: float) -> Keyframe:
    frame, seconds, frame_expr = _frame_key(key, key_offset, fps)
    number = _deforum_number(value)
    expr = None if number is not None else parse_expression(value, VALUE_NAMES, value_offset)
    return Keyframe(frame, seconds, frame_expr, number, expr, key_offset, value_offset, key,
                    value)


def _frame_key(key: str, offset: int, fps: float) -> tuple[int | None, float | None,
                                                           Expr | None]:
    if _WHOLE.fullmatch(key):
        return int(_finite_key(key, key, offset)), None, None
    seconds = _SECONDS.fullmatch(key)
    if seconds:
        return None, _finite_key(seconds.group(1), key, offset), None
    if _DEFORUM_NUMBER.fullmatch(key):
        raise ExpressionError(f"frame {key} is not a whole frame; write a whole number, "
                              "seconds such as 2s, or an expression in quotes", offset)
    try:
        return None, None, parse_expression(key, KEY_NAMES, offset)
    except ExpressionError as problem:
        if "unknown name 't'" in problem.message:
            raise ExpressionError("a frame key cannot use t (the frame it defines); use "
                                  "max_f or s", problem.offset) from None
        raise


def _finite_key(number: str, key: str, offset: int) -> float:
    """A key's number; a 400-digit frame would overflow int() and the frame arithmetic."""
    value = float(number)
    if not math.isfinite(value) or abs(value) > _KEY_LIMIT:
        shown = key if len(key) <= 20 else key[:17] + "..."
        raise ExpressionError(f"frame {shown} is too large (at most {_KEY_LIMIT:g})", offset)
    return value


def _deforum_number(value: str) -> float | None:
    """The number, when Deforum's test calls the value one (quotes and parentheses dropped)."""
    bare = value.replace("'", "").replace('"', "").replace("(", "").replace(")", "")
    return float(bare) if _DEFORUM_NUMBER.fullmatch(bare) else None


# ---------------------------------------------------------------- values


def _key_frame(schedule: Schedule, keyframe: Keyframe, max_frames: int, seed: int) -> int:
    if keyframe.frame is not None:
        return keyframe.frame
    if keyframe.seconds is not None:
        return math.floor(keyframe.seconds * schedule.fps + 0.5 + 1e-9)
    assert keyframe.frame_expr is not None
    try:
        value = evaluate(keyframe.frame_expr, {"max_f": max_frames - 1, "s": seed})
    except ExpressionError as problem:
        raise schedule.error(problem.offset, f"{problem.message} (in a frame key)") from None
    return math.trunc(value)  # as Deforum's int() of numexpr's result


def _keyed(schedule: Schedule, max_frames: int, seed: int) -> list[tuple[int, Keyframe]]:
    """Each keyframe with its frame; a frame written twice keeps the later keyframe."""
    by_frame: dict[int, Keyframe] = {}
    for keyframe in schedule.keyframes:
        by_frame[_key_frame(schedule, keyframe, max_frames, seed)] = keyframe
    return sorted(by_frame.items(), key=lambda item: item[0])


class _Timeline:
    """A schedule over one video: the keyframes inside it, sorted, and their values."""

    def __init__(self, schedule: Schedule, max_frames: int, seed: int):
        if max_frames < 1:
            raise ValueError("a video has at least one frame")
        self.schedule = schedule
        self.max_frames = max_frames
        self.seed = seed
        inside = [(frame, keyframe) for frame, keyframe in _keyed(schedule, max_frames, seed)
                  if 0 <= frame < max_frames]
        if not inside:
            raise schedule.error(0, f"no keyframe falls inside the video (frames 0 to "
                                    f"{max_frames - 1})")
        self.frames = [frame for frame, _ in inside]
        self.keyframes = [keyframe for _, keyframe in inside]

    def value(self, frame: int) -> float:
        frame = min(max(frame, 0), self.max_frames - 1)
        index = bisect.bisect_right(self.frames, frame) - 1
        if index < 0:  # before the first keyframe: its value holds back to frame 0
            return self.at(0)
        keyframe = self.keyframes[index]
        if keyframe.expr is not None:
            return self.evaluate(keyframe, frame)
        if self.frames[index] == frame or index + 1 == len(self.frames):
            return float(keyframe.number)  # type: ignore[arg-type]
        left, right = self.frames[index], self.frames[index + 1]
        low, high = float(keyframe.number), self.at(index + 1)  # type: ignore[arg-type]
        # np.interp's formula (pandas' linear interpolation), so values agree to the last bits
        return (high - low) / (right - left) * (frame - left) + low

    def at(self, index: int) -> float:
        """The value keyframe ``index`` has at its own frame."""
        keyframe = self.keyframes[index]
        if keyframe.expr is None:
            return float(keyframe.number)  # type: ignore[arg-type]
        return self.evaluate(keyframe, self.frames[index])

    def evaluate(self, keyframe: Keyframe, frame: int) -> float:
        assert keyframe.expr is not None
        variables = {"t": frame, "max_f": self.max_frames - 1, "s": self.seed}
        try:
            return evaluate(keyframe.expr, variables)
        except ExpressionError as problem:
            raise self.schedule.error(problem.offset,
                                      f"{problem.message} at frame {frame}") from None


# ---------------------------------------------------------------- positions


def inner_mark(mark: Mark | None, text: str, offset: int) -> Mark:
    """The position of ``text[offset]`` in the file that wrote ``text`` at ``mark``. The line
    is read back so that a quoted string's quote and escapes are counted; when the line does
    not hold the text as written (a ${var}, a folded line), the mark itself."""
    if mark is None:
        return Mark("<schedule>", 1, offset + 1)
    raw = _source_line(mark)
    column = _raw_column(raw, text, offset) if raw is not None else None
    return mark if column is None else Mark(mark.file, mark.line, mark.col + column)


def _source_line(mark: Mark) -> str | None:
    """The line of ``mark`` from its column on, or None when it cannot be read."""
    try:
        if os.path.getsize(mark.file) > 8 * 1024 * 1024:
            return None
        with open(mark.file, encoding="utf-8-sig", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if number == mark.line:
                    return line.rstrip("\r\n")[mark.col - 1:]
    except (OSError, UnicodeError):
        return None
    return None


def _raw_column(raw: str, text: str, offset: int) -> int | None:
    """Where ``text[offset]`` sits in ``raw`` (the scalar as written), or None."""
    if raw.startswith(text):
        return offset
    if not raw or raw[0] not in "'\"":
        return None
    positions = _quoted_positions(raw)
    if positions is None or positions[0] != text:
        return None
    return positions[1][min(offset, len(positions[1]) - 1)]


def _quoted_positions(raw: str) -> tuple[str, list[int]] | None:
    """A one-line quoted YAML scalar decoded, and the raw column of each decoded character
    (plus one for its closing quote)."""
    quote, chars, columns = raw[0], [], []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == quote and quote == "'" and raw[index + 1:index + 2] == "'":
            chars.append("'")
            columns.append(index)
            index += 2
            continue
        if char == quote:
            columns.append(index)
            return "".join(chars), columns
        if char == "\\" and quote == '"':
            width = {"x": 2, "u": 4, "U": 8}.get(raw[index + 1:index + 2], 0)
            decoded = _escape(raw[index:index + 2 + width])
            if decoded is None:
                return None
            chars.append(decoded)
            columns.append(index)
            index += 2 + width
            continue
        chars.append(char)
        columns.append(index)
        index += 1
    return None


def _escape(sequence: str) -> str | None:
    simple = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "/": "/", " ": " ", "0": "\0",
              "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}
    if len(sequence) == 2 and sequence[1] in simple:
        return simple[sequence[1]]
    try:
        return chr(int(sequence[2:], 16)) if len(sequence) > 2 else None
    except ValueError:
        return None
