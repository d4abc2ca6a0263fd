"""Deforum schedules: frame-for-frame values (by hand, and against Deforum's algorithm restated
below), one-line errors pointing inside the string, and schedules in FramePack shots."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from framepack_render.plan import build_plan
from framepack_render.shot import ShotError, load
from framepack_render.shot.errors import Mark
from framepack_render.shot.schedules import as_schedule, is_schedule, parse_schedule

from .conftest import HEAVY, run, run_without, write

TOLERANCE = 1e-6


def values(text: str, max_frames: int, seed: int = 0, fps: float = 30) -> list[float]:
    return parse_schedule(text, fps=fps).values(max_frames, seed)


def assert_values(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected)
    for frame, (a, b) in enumerate(zip(got, expected)):
        assert abs(a - b) <= TOLERANCE, f"frame {frame}: {a} != {b}"


# ---------------------------------------------------------------- values by hand


def test_two_keyframes_are_linear_between_and_held_after() -> None:
    expected = [10 - 4 * f / 60 if f <= 60 else 6 for f in range(100)]
    assert_values(values("0:(10), 60:(6)", 100), expected)


def test_without_a_frame_zero_keyframe_the_first_value_holds_back_to_zero() -> None:
    expected = [2.0 if f <= 10 else 2 + 0.2 * (f - 10) if f <= 20 else 4.0 for f in range(30)]
    assert_values(values("10:(2), 20:(4)", 30), expected)


def test_expressions_use_t_max_f_and_s_on_every_frame_until_the_next_keyframe() -> None:
    expected = [2 * t + 3 if t < 10 else 19 - t for t in range(20)]
    assert_values(values("0:(t*2 + s), 10:(max_f - t)", 20, seed=3), expected)


def test_a_number_interpolates_towards_an_expression_s_value_at_its_keyframe() -> None:
    # Deforum leaves the frames between a number and an expression empty, then fills them
    # linearly up to the expression's value at its own frame (t = 10: 100).
    expected = [10.0 * f if f <= 10 else float(f * f) for f in range(15)]
    assert_values(values("0:(0), 10:(t*t)", 15), expected)


def test_an_expression_runs_up_to_the_next_keyframe_without_interpolation() -> None:
    expected = [float(t) for t in range(10)] + [0.5 * (f - 10) for f in range(10, 20)] + [5.0] * 5
    assert_values(values("0:(t), 10:(0), 20:(5)", 25), expected)


def test_only_a_bare_number_is_a_number_as_deforum_tests_it() -> None:
    # "( 10 )" and "(1e1)" are expressions to Deforum: held until the next keyframe.
    for text in ("0:( 10 ), 10:(0)", "0:(1e1), 10:(0)"):
        assert_values(values(text, 12), [10.0] * 10 + [0.0, 0.0])
    assert_values(values("0:(10), 10:(0)", 12), [10 - f for f in range(11)] + [0.0])


def test_seconds_keys_count_at_the_fps_and_round_half_up() -> None:
    assert values("0s:(10), 2s:(6)", 100) == values("0:(10), 60:(6)", 100)
    assert values("0.5s:(1), 1.05s:(2)", 40) == values("15:(1), 32:(2)", 40)
    assert values("1s:(0), 2s:(1)", 60, fps=24) == values("24:(0), 48:(1)", 60)


def test_a_frame_key_may_be_a_quoted_expression_of_max_f_and_s() -> None:
    expected = [1 + 4 * f / 9 for f in range(10)] + [5.0, 5.0]
    assert_values(values('0:(1), "max_f-2":(5)', 12), expected)
    # Deforum's int() truncates: max_f / 3 = 3.33 is frame 3.
    assert values("0:(0), 'max_f/3':(3)", 11) == values("0:(0), 3:(3)", 11)
    assert values('0:(0), "s":(4)', 10, seed=4) == values("0:(0), 4:(4)", 10)


def test_commas_inside_expressions_do_not_split_keyframes() -> None:
    expected = [2.0 if t <= 5 else 1.0 for t in range(10)] + [math.hypot(t, 3)
                                                               for t in range(10, 14)]
    assert_values(values("0:(where(t>5, 1, 2)), 10:(hypot(t, 3))", 14), expected)


def test_the_deforum_example_schedule() -> None:
    text = "0:(1.0), 120:(1.0025+0.002*sin(1.25*3.14*t/30))"
    expected = [1.0 + f / 120 * (1.0025 + 0.002 * math.sin(1.25 * 3.14 * 120 / 30) - 1.0)
                for f in range(121)]
    expected += [1.0025 + 0.002 * math.sin(1.25 * 3.14 * t / 30) for t in range(121, 180)]
    assert_values(values(text, 180), expected)


def test_python_precedence_and_floored_modulo() -> None:
    assert values("0:(-2**2)", 1) == [-4.0]
    assert values("0:(2**-1)", 1) == [0.5]
    assert values("0:((t-10)%3)", 8) == [float((t - 10) % 3) for t in range(8)]
    assert values("0:(2**3**2)", 1) == [512.0]


def test_keyframes_outside_the_video_are_ignored_and_the_later_of_two_wins() -> None:
    assert values("0:(0), 100:(10)", 50) == [0.0] * 50  # as Deforum: no ramp towards it
    assert values("0:(1), 5:(2), 5:(3)", 7)[5:] == [3.0, 3.0]


def test_value_is_values_at_the_frame_and_clamps() -> None:
    schedule = parse_schedule("0:(t), 10:(3)", fps=30)
    every = schedule.values(20, 0)
    assert [schedule.value(f, 20, 0) for f in range(20)] == every
    assert schedule.value(-5, 20, 0) == every[0] and schedule.value(99, 20, 0) == every[-1]


def test_is_constant_and_is_schedule() -> None:
    for text in ("0:(5)", "0:(5), 10:(5)", "0:(2+3), 50:(5)"):
        assert parse_schedule(text, fps=30).is_constant, text
    for text in ("0:(5), 10:(6)", "0:(t)", "0:(s)"):
        assert not parse_schedule(text, fps=30).is_constant, text
    assert is_schedule("0:(10), 60:(6)") and is_schedule('"max_f-2":(1)')
    assert is_schedule("0s: (1)")
    assert not any(is_schedule(v) for v in ("balanced", "1.2s", 10, 2.5, None, "auto"))
    assert as_schedule(2.5, fps=30).values(3, 0) == [2.5] * 3


# ---------------------------------------------------------------- against Deforum's algorithm


Expression = Callable[[int, int, int], float]
EXPRESSIONS: list[tuple[str, Expression]] = [
    ("t/10", lambda t, m, s: t / 10),
    ("sin(t/7)*2", lambda t, m, s: math.sin(t / 7) * 2),
    ("1.0025+0.002*sin(1.25*3.14*t/30)", lambda t, m, s: 1.0025 + 0.002 * math.sin(
        1.25 * 3.14 * t / 30)),
    ("max_f-t", lambda t, m, s: m - t),
    ("(s%7)+t**2/100", lambda t, m, s: (s % 7) + t ** 2 / 100),
    ("abs(cos(t/5))*3", lambda t, m, s: abs(math.cos(t / 5)) * 3),
    ("where(t>20, 1, 2)", lambda t, m, s: 1 if t > 20 else 2),
    ("-2**2+t", lambda t, m, s: -4 + t),
    ("t%7", lambda t, m, s: t % 7),
    ("floor(t/3)", lambda t, m, s: math.floor(t / 3)),
    ("sqrt(t+1)", lambda t, m, s: math.sqrt(t + 1)),
    ("exp(-t/50)", lambda t, m, s: math.exp(-t / 50)),
]


def deforum_reference(keyframes: dict[int, float | Expression], max_frames: int,
                      seed: int) -> list[float]:
    """sd-webui-deforum's get_inbetweens, restated: an empty series; a number set at its frame;
    an expression set on every frame from its keyframe to the next; both ends filled from the
    first and last values; the gaps filled linearly (pandas' interpolate, i.e. np.interp)."""
    series = np.full(max_frames, np.nan)
    current: float | Expression | None = None
    for i in range(max_frames):
        if i in keyframes:
            current = keyframes[i]
            if not callable(current):
                series[i] = current
        if callable(current):
            series[i] = current(i, max_frames - 1, seed)
    valid = np.flatnonzero(~np.isnan(series))
    series[0], series[-1] = series[valid[0]], series[valid[-1]]
    valid = np.flatnonzero(~np.isnan(series))
    return np.interp(np.arange(max_frames), valid, series[valid]).tolist()


def test_random_schedules_match_deforum_frame_for_frame() -> None:
    rng = random.Random(14)
    for _ in range(300):
        max_frames, seed = rng.randint(1, 150), rng.randint(0, 10 ** 6)
        keyframes: dict[int, float | Expression] = {}
        parts = []
        for frame in sorted({rng.randint(0, 170) for _ in range(rng.randint(1, 6))}):
            if rng.random() < 0.5:
                number = rng.choice([10, 6, -1.5, 0.25, 3, 0.75, 100])
                parts.append(f"{frame}:({number})")
                keyframes[frame] = float(number)
            else:
                text, function = rng.choice(EXPRESSIONS)
                parts.append(f"{frame}:({text})")
                keyframes[frame] = function
        inside = {f: v for f, v in keyframes.items() if f < max_frames}
        if not inside:
            continue
        text = ", ".join(parts)
        assert_values(values(text, max_frames, seed), deforum_reference(inside, max_frames, seed))


# ---------------------------------------------------------------- malformed strings


MALFORMED = [
    ("0:(10", 3, "unbalanced '(': no ')' closes it"),
    ("0:10)", 5, "unbalanced ')'"),
    ("0:(10), 60:(sine(t))", 13, "unknown function 'sine'; did you mean 'sin'?"),
    ("0:(pi*t)", 4, "unknown name 'pi' (Deforum has no constants"),
    ("0:(t*speed)", 6, "unknown name 'speed'"),
    ("a:(1)", 1, "unknown name 'a'"),
    ("10.5:(1)", 1, "frame 10.5 is not a whole frame"),
    ("'t+1':(1)", 2, "a frame key cannot use t"),
    ("0:(__import__('os').system('true'))", 4, "unknown function '__import__'"),
    ("0:(().__class__)", 5, "a value is missing before ')'"),
    ("0:(1e999)", 4, "the number 1e999 is too large"),
    ("0:(1 +)", 7, "a value is missing before ')'"),
    ("0:(1), , 5:(2)", 8, "a keyframe is FRAME:(VALUE)"),
    ("0:(1) 5:(2)", 8, "is a ',' missing between keyframes?"),
    ("", 1, "empty"),
    ("0:(1),", 7, "nothing after the last ','"),
    ("0:", 3, "the keyframe has no value"),
    ("0:(where(t, 1))", 4, "where() takes 3 arguments, not 2"),
    ("0:(" + "(" * 40 + "t" + ")" * 40 + ")", 35, "nested more than 32 levels deep"),
    ("0:(" + "+".join(["t"] * 300) + ")", 204, "longer than 200 terms"),
    ("0:(1), " * 20000, 1, "longer than 100000 characters"),
]
FAILS_WHEN_EVALUATED = [
    ("0:(10**10**10)", 6, "the value is too large at frame 0"),
    ("0:(9**9**9**9)", 8, "too large at frame 0"),
    ("0:(1), 2:(log(t-5))", 11, "log(-3) is not a real number at frame 2"),
    ("0:(1/(t-2))", 5, "division by zero at frame 2"),
    ("0:((-8)**(1/3))", 8, "is not a real number at frame 0"),
    ("200:(1)", 1, "no keyframe falls inside the video (frames 0 to 9)"),
]


def _one_line(error: ShotError, column: int, fragment: str) -> None:
    lines = str(error).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"<schedule>:1:{column}: schedule: "), lines[0]
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("text,column,fragment", MALFORMED,
                         ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
def test_a_malformed_schedule_is_one_line_at_its_column(text: str, column: int,
                                                        fragment: str) -> None:
    with pytest.raises(ShotError) as caught:
        parse_schedule(text, fps=30)
    _one_line(caught.value, column, fragment)


@pytest.mark.parametrize("text,column,fragment", FAILS_WHEN_EVALUATED,
                         ids=[f"evaluated-{i}" for i in range(len(FAILS_WHEN_EVALUATED))])
def test_a_value_that_is_no_number_is_one_line_at_its_column(text: str, column: int,
                                                             fragment: str) -> None:
    schedule = parse_schedule(text, fps=30)
    with pytest.raises(ShotError) as caught:
        schedule.values(10, 0)
    _one_line(caught.value, column, fragment)


def test_hostile_schedules_are_answered_at_once() -> None:
    start = time.perf_counter()
    for text, _, _ in MALFORMED + FAILS_WHEN_EVALUATED:
        with pytest.raises(ShotError):
            parse_schedule(text, fps=30).values(10, 0)
    assert time.perf_counter() - start < 2.0


def test_an_error_column_counts_from_the_mark_of_the_string(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", 'a: 1\nguidance: "0:(10), 60:(sine(t))"\n')
    mark = Mark(str(path), 2, 11)  # the opening quote
    with pytest.raises(ShotError) as caught:
        parse_schedule("0:(10), 60:(sine(t))", mark, fps=30, what="guidance")
    assert str(caught.value).startswith(f"{path}:2:24: guidance schedule: unknown function")


# ---------------------------------------------------------------- in FramePack shots


SHOT = """
model: tiny
image: images/start.png
output: renders/out.mp4
size: 256x256
steps: 4
sampling: {sampling}
guidance: {guidance}
sections:
  - prompt: the ball rolls
    duration: 2.4s
  - prompt: the ball stops
    duration: 2.4s
"""


def snap(value: float) -> float:
    return float(f"{value:.10g}")


def plan_of(folder: Path, guidance: str, sampling: str = "inverted") -> dict:
    path = write(folder, "shot.yaml", SHOT.format(guidance=guidance, sampling=sampling))
    plan = build_plan(load(path).shots[0])
    return {"keys": [w.key for w in plan.windows],
            "guidance": [w.sampling.guidance for w in plan.windows]}


def test_plan_json_lists_each_window_s_scheduled_values(shot_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    text = SHOT.format(guidance='"0:(10), 72:(6)"', sampling="inverted")
    text += "flow_shift: {mu: '0:(0.8), 1s:(1.0)'}\n"
    path = write(shot_dir, "shot.yaml", text)
    code, out, err = run(capsys, "plan", "--json", "--cache", tmp_path / "cache", path)
    assert code == 0, err
    windows = json.loads(out)["plans"][0]["windows"]
    assert [w["schedules"]["frame"] for w in windows] == [1, 37, 73, 109]
    guidance = [w["schedules"]["values"]["guidance"] for w in windows]
    assert guidance == [snap(10 - 4 * f / 72) for f in (1, 37)] + [6.0, 6.0]
    mu = [w["schedules"]["values"]["flow_shift.mu"] for w in windows]
    assert mu == [snap(0.8 + 0.2 / 30), 1.0, 1.0, 1.0]
    assert [w["shift"]["mu"] for w in windows] == mu
    write(shot_dir, "shot.yaml", SHOT.format(guidance="10", sampling="inverted"))
    code, out, err = run(capsys, "plan", "--json", "--cache", tmp_path / "cache", path)
    assert code == 0, err
    assert [w["schedules"] for w in json.loads(out)["plans"][0]["windows"]] == [None] * 4


def test_a_constant_schedule_keys_like_its_number_and_no_schedule_like_before(
        shot_dir: Path) -> None:
    plain = plan_of(shot_dir, "7.5")
    assert plan_of(shot_dir, '"0:(7.5)"')["keys"] == plain["keys"]
    assert plan_of(shot_dir, '"0:(7.5), 100:(7.5)"')["keys"] == plain["keys"]


def test_plan_prints_each_window_s_scheduled_values_in_a_column_that_fits(
        shot_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from io import StringIO

    from rich.console import Console

    from framepack_render.report import print_plan

    path = write(shot_dir, "shot.yaml", SHOT.format(guidance='"0:(10), 72:(6)"',
                                                    sampling="inverted") + "teacache: '0:(0.15)'\n")
    code, out, err = run(capsys, "plan", "--cache", tmp_path / "cache", path)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert "scheduled" in out and len(rows) == 4
    # Frames 1, 37, 73 and 109 sample it; the constant TeaCache is no column of its own.
    for row, value in zip(rows, ("9.94", "7.94", "6", "6")):
        assert f" guidance {value} " in row and "teacache" not in row
    narrow = StringIO()
    print_plan(Console(file=narrow, width=80), build_plan(load(path).shots[0]))
    borders = tuple("┏┃┡│└")
    table = [line for line in narrow.getvalue().splitlines() if line.startswith(borders)]
    assert max(map(len, table)) <= 80 and table[1].endswith("cached ┃")
    assert sum("guidance " in line for line in table) == 4
    write(shot_dir, "shot.yaml", SHOT.format(guidance="10", sampling="inverted"))
    code, out, err = run(capsys, "plan", "--cache", tmp_path / "cache", path)
    assert code == 0 and "scheduled" not in out and "guidance" not in out


def test_editing_a_keyframe_rekeys_exactly_the_windows_whose_value_changed(
        shot_dir: Path) -> None:
    # Window first frames are 1, 37, 73, 109. Inverted sampling generates window 0 last, so
    # a change that reaches window 0 only re-keys window 0 alone.
    before = plan_of(shot_dir, '"0:(10), 30:(10), 40:(6)"')
    after = plan_of(shot_dir, '"0:(9), 30:(10), 40:(6)"')
    assert after["guidance"][1:] == before["guidance"][1:]
    assert after["guidance"][0] == snap(9 + 1 / 30)
    assert [a != b for a, b in zip(before["keys"], after["keys"])] == [True, False, False, False]
    # Forward sampling generates window 3 last: a change of the last keyframe reaches it only.
    before = plan_of(shot_dir, '"0:(10), 100:(10), 110:(6)"', "forward")
    after = plan_of(shot_dir, '"0:(10), 100:(10), 110:(5)"', "forward")
    assert before["guidance"][3] == snap(10 - 4 * 9 / 10) != after["guidance"][3]
    assert [a != b for a, b in zip(before["keys"], after["keys"])] == [False, False, False, True]


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line and ": warning: " not in line]


@pytest.mark.parametrize("written,line,column,fragment", [
    ('"0:(10), 72:(sine(t))"', 7, 24, "guidance schedule: unknown function 'sine'"),
    ("0:(10), 72:(sine(t))", 7, 23, "guidance schedule: unknown function 'sine'"),
    ("'0:(10), ''x'':(1)'", 7, 22, "guidance schedule: unknown name 'x'"),
    ('"0:(10), 60:(t*5)"', 7, 23, "guidance schedule: 188.833 at frame 37 (window 2); "
                                  "guidance must be from 0 to 100"),
])
def test_a_malformed_schedule_in_a_shot_is_one_line_inside_the_string(
        shot_dir: Path, capsys: pytest.CaptureFixture[str], written: str, line: int,
        column: int, fragment: str) -> None:
    path = write(shot_dir, "shot.yaml", SHOT.format(guidance=written, sampling="inverted"))
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    errors = _errors(err)
    assert len(errors) == 1, err
    assert errors[0].startswith(f"{path}:{line}:{column}: "), errors[0]
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in err


def test_keyframes_past_the_end_are_warned(shot_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = write(shot_dir, "shot.yaml", SHOT.format(guidance='"0:(10), 500:(6)"',
                                                    sampling="inverted"))
    code, _, err = run(capsys, "validate", path)
    assert code == 0, err
    assert f"{path}:7:20: warning: guidance schedule: the keyframe at frame 500 is outside " \
           "the video (frames 0 to 144) and changes nothing" in err


def test_an_edit_takes_numbers(shot_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SHOT.format(guidance='"0:(10), 50:(6)"', sampling="inverted") + """
edits:
  - name: still
    image: images/start.png
    prompt: the ball
    guidance: "0:(3)"
    output: renders/still.png
"""
    path = write(shot_dir, "shot.yaml", text)
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    assert "shot.yaml:18:15: an edit renders one frame: guidance must be a number, not a " \
           "schedule" in err


def test_an_edit_inherits_the_shot_s_schedule_at_frame_zero(shot_dir: Path) -> None:
    text = SHOT.format(guidance='"0:(4), 100:(8)"', sampling="inverted") + """
edits:
  - name: still
    image: images/start.png
    prompt: the ball
    output: renders/still.png
"""
    shot = load(write(shot_dir, "shot.yaml", text)).shots[0]
    assert shot.edits[0].sampling.guidance == 4.0
    assert shot.sections[1].sampling.guidance == snap(4 + 4 * 73 / 100)  # its first window


def test_validate_and_plan_evaluate_schedules_without_torch(shot_dir: Path) -> None:
    path = write(shot_dir, "shot.yaml", SHOT.format(guidance='"0:(10), 2s:(6+sin(t))"',
                                                    sampling="inverted"))
    result = run_without(HEAVY, """
        code = main(['validate', sys.argv[1]])
        code += main(['plan', '--json', '--cache', sys.argv[2], sys.argv[1]])
        sys.exit(code)
    """, path, shot_dir / "cache")
    assert result.returncode == 0, result.stderr


def test_a_render_samples_each_window_with_its_values_and_an_edit_renders_one_window(
        folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from framepack_render.run.executor import Session
    from framepack_render.store import LocalStore

    from .conftest import png_frames, shot_text

    three = ("[{prompt: a red ball rolls, frames: 12}, {prompt: the ball bounces, frames: 12}, "
             "{prompt: the ball stops, frames: 12}]")
    session = Session(LocalStore(tmp_path_factory.mktemp("cache")))

    def render(guidance: str, output: str):
        text = shot_text(window="3", sections=three, output=f"{output}/", guidance=guidance)
        plan = build_plan(load(write(folder, "shot.yaml", text)).shots[0])
        return plan, session.render(plan), png_frames(folder / output)

    # 36 frames asked, 37 rendered: the first is trimmed, so the windows start at frames 0,
    # 12 and 24 of the video written. Only window 0 (generated last) changes.
    plan, _, constant = render("8", "constant")
    scheduled, result, frames = render('"0:(5), 12:(8)"', "scheduled")
    assert [w.scheduled.frame for w in scheduled.windows] == [0, 12, 24]
    assert [w.sampling.guidance for w in scheduled.windows] == [5.0, 8.0, 8.0]
    assert [a.key == b.key for a, b in zip(plan.windows, scheduled.windows)] == \
        [False, True, True]
    assert (result.windows_rendered, result.windows_cached) == (1, 2)
    assert not np.array_equal(frames, constant)
