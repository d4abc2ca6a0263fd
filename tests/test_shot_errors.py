"""End to end: malformed shots through the `framepack` command line.

For every malformed shot the user must see exit status 2, only one-line ``FILE:LINE:COL:
message`` diagnostics on stderr (with the right position and wording), no traceback, and
nothing written next to the shot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from framepack_render.cli import main
from framepack_render.shot import load

DIAGNOSTIC = re.compile(r"^[^:\n]+:\d+:\d+: ")
REPO = Path(__file__).resolve().parents[1]

# Lines 1-5 of most shots below.
HEAD = """\
version: 1
model: tiny
image: images/start.png
output: renders/out.mp4
size: 256x256
"""
ONE = HEAD + "prompt: a cat\nduration: 1s\n"  # lines 6-7; case lines start at 8


def _png(path: Path, size: tuple[int, int] = (64, 48), color=(200, 30, 30), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


@pytest.fixture
def err_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/project with images; the working directory is tmp, so files show as project/..."""
    project = tmp_path / "project"
    images = project / "images"
    _png(images / "start.png")
    _png(images / "end.png", color=(0, 0, 200))
    _png(images / "middle.png", color=(0, 200, 0))
    (images / "notes.png").write_text("these are my notes, not a picture\n")
    full = images / "full.png"
    Image.effect_noise((128, 128), 64).convert("RGB").save(full)
    data = full.read_bytes()
    (images / "broken.png").write_bytes(data[: len(data) // 2])
    full.unlink()
    monkeypatch.chdir(tmp_path)
    return project


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_diagnostics(err: str) -> list[str]:
    lines = err.splitlines()
    assert lines, "no diagnostic on stderr"
    for line in lines:
        assert DIAGNOSTIC.match(line), f"not FILE:LINE:COL: message: {line!r}"
    return lines


@dataclass
class Case:
    id: str
    text: str
    line: int
    col: int
    message: str
    args: tuple[str, ...] = ()


CASES = [
    Case("section-without-duration", HEAD + "sections:\n  - {prompt: a, duration: 1s}\n  - {}\n",
         8, 5, "section 2 needs a duration"),
    # ---------------------------------------------------------- unknown keys
    Case("unknown-top-level-key", HEAD + "promt: a cat\nduration: 1s\n", 6, 1,
         "unknown key 'promt'; did you mean 'prompt'?"),
    Case("unknown-section-key", HEAD + "sections:\n  - prompt: a\n    duraton: 1s\n", 8, 5,
         "unknown key 'duraton' in sections[0]; did you mean 'duration'?"),
    Case("unknown-edit-key", ONE + "edits:\n  - name: look\n"
         "    image: images/start.png\n    prompt: x\n    target_idx: 3\n", 12, 5,
         "unknown key 'target_idx' in edits[0]; did you mean 'target_index'?"),
    Case("unknown-flow-shift-key", ONE + "flow_shift: {preset: subtle, detial: high}\n", 8, 30,
         "unknown key 'detial' in flow_shift; did you mean 'detail'?"),
    Case("unknown-post-key", ONE + "post:\n  colour_match: first\n", 9, 3,
         "unknown key 'colour_match' in post; did you mean 'color_match'?"),
    # ---------------------------------------------------------- wrong types
    Case("steps-not-a-number", ONE + "steps: many\n", 8, 8,
         "steps must be a whole number, not 'many'"),
    Case("prompt-is-a-list", HEAD + "prompt: [a, b]\nduration: 1s\n", 6, 9,
         "prompt must be text, not a list"),
    Case("sections-is-text", HEAD + "sections: a cat walks\n", 6, 11,
         "sections must be a list, not 'a cat walks'"),
    Case("teacache-is-text", ONE + "teacache: fast\n", 8, 11,
         "teacache must be true, false or a threshold such as 0.15, not 'fast'"),
    Case("shot-is-a-list", "- prompt: a\n- duration: 1s\n", 1, 1,
         "a shot file is a mapping"),
    # ---------------------------------------------------------- enum typos
    Case("model-typo", HEAD.replace("model: tiny", "model: framepak") + "prompt: a\nduration: 1s\n",
         2, 8, "unknown model 'framepak'; did you mean 'framepack'?"),
    Case("sampling-typo", ONE + "sampling: invertd\n", 8, 11,
         "unknown sampling 'invertd'; did you mean 'inverted'?"),
    Case("sampler-typo", ONE + "sampler: eular\n", 8, 10,
         "unknown sampler 'eular'; did you mean 'euler'?"),
    Case("flow-shift-preset-typo", ONE + "flow_shift: balnced\n", 8, 13,
         "unknown flow_shift 'balnced'; did you mean 'balanced'?"),
    Case("flow-shift-detail-typo", ONE + "flow_shift: {preset: subtle, detail: hihg}\n", 8, 38,
         "unknown flow_shift.detail 'hihg'; did you mean 'high'?"),
    Case("section-flow-shift-preset-typo",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n    flow_shift: dnace\n", 9, 17,
         "unknown sections[0].flow_shift 'dnace'; did you mean 'dance'?"),
    # ---------------------------------------------------------- out of range
    Case("steps-zero", ONE + "steps: 0\n", 8, 8, "steps must be at least 1, not 0"),
    Case("steps-too-many", ONE + "steps: 500\n", 8, 8, "steps must be at most 200, not 500"),
    Case("fps-zero", ONE + "fps: 0\n", 8, 6, "fps must be greater than 0, not 0"),
    Case("window-too-big", ONE + "window: 40\n", 8, 9, "window must be at most 33, not 40"),
    Case("cfg-below-one", ONE + "cfg: 0.5\n", 8, 6, "cfg must be at least 1, not 0.5"),
    Case("guidance-negative", ONE + "guidance: -1\n", 8, 11,
         "guidance must be at least 0, not -1"),
    Case("end-image-strength", ONE + "end_image: images/end.png\nend_image_strength: 1.5\n",
         9, 21, "end_image_strength must be at most 1, not 1.5"),
    Case("teacache-threshold", ONE + "teacache: 1.5\n", 8, 11,
         "teacache must be at most 1, not 1.5"),
    Case("section-seed-negative",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n    seed: -1\n", 9, 11,
         "sections[0].seed must be at least 0, not -1"),
    # ---------------------------------------------------------- durations
    Case("duration-words", HEAD + "prompt: a\nduration: 2.4 sec\n", 7, 11,
         "duration '2.4 sec' is not valid here (write seconds such as \"2.4s\""),
    Case("duration-negative", HEAD + "prompt: a\nduration: -1\n", 7, 11,
         "duration must be greater than 0, not -1"),
    Case("duration-zero-frames", HEAD + "prompt: a\nduration: {frames: 0}\n", 7, 20,
         "duration.frames must be at least 1, not 0"),
    Case("section-duration-words",
         HEAD + "sections:\n  - prompt: a\n    duration: two seconds\n", 8, 15,
         "sections[0].duration 'two seconds' is not valid here"),
    Case("blend-words",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n  - prompt: b\n    duration: 1s\n"
         "    blend: soon\n", 11, 12, "sections[1].blend 'soon' is not valid here"),
    Case("duration-and-frames", HEAD + "prompt: a\nduration: 1s\nframes: 30\n", 8, 1,
         "give either duration or frames, not both"),
    Case("section-duration-and-frames",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n    frames: 30\n", 9, 5,
         "give either duration or frames, not both"),
    # ---------------------------------------------------------- missing keys
    Case("missing-image", HEAD.replace("image: images/start.png\n", "") +
         "prompt: a\nduration: 1s\n", 1, 1,
         "the shot needs 'image' (the start image: FramePack animates an image)"),
    Case("missing-output", HEAD.replace("output: renders/out.mp4\n", "") +
         "prompt: a\nduration: 1s\n", 1, 1, "the shot needs 'output'"),
    Case("missing-duration", HEAD + "prompt: a cat\n", 1, 1, "the shot needs a duration"),
    Case("missing-section-duration",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n  - prompt: b\n", 9, 5,
         "section 2 needs a duration"),
    Case("missing-prompt", HEAD + "sections:\n  - duration: 1s\n", 7, 5,
         "the first section needs a prompt"),
    Case("missing-prompt-and-sections", HEAD + "duration: 1s\n", 1, 1,
         "the shot needs 'sections' or a top-level 'prompt'"),
    Case("edit-missing-prompt", ONE + "edits:\n  - name: look\n    image: images/start.png\n",
         9, 5, "edits[0] needs 'prompt'"),
    # ---------------------------------------------------------- image files
    Case("image-typo", HEAD.replace("start.png", "strat.png") + "prompt: a\nduration: 1s\n",
         3, 8, "image 'images/strat.png' not found; did you mean 'start.png'?"),
    Case("image-not-an-image", HEAD.replace("start.png", "notes.png") +
         "prompt: a\nduration: 1s\n", 3, 8,
         "image 'images/notes.png' is not an image Pillow can read"),
    Case("image-truncated", HEAD.replace("start.png", "broken.png") +
         "prompt: a\nduration: 1s\n", 3, 8, "image 'images/broken.png' does not decode"),
    Case("image-is-a-folder", HEAD.replace("images/start.png", "images") +
         "prompt: a\nduration: 1s\n", 3, 8, "image 'images' is a folder, not an image"),
    Case("end-image-typo", ONE + "end_image: images/edn.png\n", 8, 12,
         "image 'images/edn.png' not found; did you mean 'end.png'?"),
    Case("keyframe-missing",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n  - prompt: b\n    duration: 1s\n"
         "    image: images/midle.png\n", 11, 12,
         "image 'images/midle.png' not found; did you mean 'middle.png'?"),
    Case("control-mask-missing", ONE + "edits:\n  - name: look\n    image: images/start.png\n"
         "    prompt: x\n    output: renders/look.png\n"
         "    controls:\n      - {image: images/start.png, mask: images/mask.png}\n", 14, 41,
         "image 'images/mask.png' not found"),
    # ---------------------------------------------------------- edits
    Case("unknown-edit", HEAD.replace("images/start.png", "{edit: outfti}") +
         "prompt: a\nduration: 1s\nedits:\n  - name: outfit\n    image: images/start.png\n"
         "    prompt: red dress\n", 3, 15, "no edit named 'outfti'; did you mean 'outfit'?"),
    Case("edit-ref-without-edits", HEAD.replace("images/start.png", "{edit: outfit}") +
         "prompt: a\nduration: 1s\n", 3, 15, "no edit named 'outfit'; this shot has no edits"),
    Case("edit-cycle", HEAD.replace("images/start.png", "{edit: a}") +
         "prompt: a\nduration: 1s\nedits:\n"
         "  - name: a\n    image: {edit: b}\n    prompt: x\n"
         "  - name: b\n    image: {edit: a}\n    prompt: y\n", 13, 12,
         "edits form a cycle: a -> b -> a"),
    Case("duplicate-edit-name", ONE + "edits:\n"
         "  - name: look\n    image: images/start.png\n    prompt: x\n    output: a.png\n"
         "  - name: look\n    image: images/end.png\n    prompt: y\n    output: b.png\n", 13, 11,
         "duplicate edit name 'look' (first at line 9)"),
    Case("edit-bad-name", ONE + "edits:\n  - name: 1st look\n    image: images/start.png\n"
         "    prompt: x\n", 9, 11, "edits[0].name '1st look' is not valid here"),
    # ---------------------------------------------------------- sampling order
    Case("end-image-forward", ONE + "sampling: forward\nend_image: images/end.png\n", 9, 12,
         "end_image cannot be used when sampling is forward"),
    Case("end-image-f1", HEAD.replace("model: tiny", "model: framepack-f1") +
         "prompt: a\nduration: 1s\nend_image: images/end.png\n", 8, 12,
         "end_image cannot be used when framepack-f1 samples forward"),
    # ---------------------------------------------------------- outputs
    Case("output-avi", HEAD.replace("out.mp4", "out.avi") + "prompt: a\nduration: 1s\n", 4, 9,
         "unsupported output format '.avi'"),
    Case("output-png-as-video", HEAD.replace("out.mp4", "out.png") +
         "prompt: a\nduration: 1s\n", 4, 9,
         "unsupported output format '.png'; for PNG frames give a folder such as 'renders/out/'"),
    Case("output-mp4-typo", HEAD.replace("out.mp4", "out.mp5") + "prompt: a\nduration: 1s\n",
         4, 9, "unsupported output format '.mp5'; did you mean '.mp4'?"),
    Case("output-parent", HEAD.replace("renders/out.mp4", "../x.mp4") +
         "prompt: a\nduration: 1s\n", 4, 9,
         "output '../x.mp4' is outside the shot's folder (project); pass --output-root DIR"),
    Case("output-absolute-elsewhere", HEAD.replace("renders/out.mp4", "{elsewhere}/x.mp4") +
         "prompt: a\nduration: 1s\n", 4, 9, "is outside the shot's folder"),
    Case("output-is-the-folder", HEAD.replace("renders/out.mp4", "./") +
         "prompt: a\nduration: 1s\n", 4, 9, "output './' is outside the shot's folder"),
    Case("output-twice", HEAD.replace("renders/out.mp4", "[a.mp4, b.gif, a.mp4]") +
         "prompt: a\nduration: 1s\n", 4, 24, "output 'a.mp4' is listed twice"),
    Case("output-outside-output-root", HEAD.replace("renders/out.mp4", "../x.mp4") +
         "prompt: a\nduration: 1s\n", 4, 9, "output '../x.mp4' is outside --output-root",
         ("--output-root", "project")),
    Case("edit-output-video", ONE + "edits:\n  - name: look\n    image: images/start.png\n"
         "    prompt: x\n    output: renders/look.mp4\n", 12, 13,
         "an edit writes an image: 'renders/look.mp4' needs .png, .jpg, .jpeg or .webp"),
    Case("edit-output-outside", ONE + "edits:\n  - name: look\n    image: images/start.png\n"
         "    prompt: x\n    output: ../look.png\n", 12, 13,
         "output '../look.png' is outside the shot's folder"),
    # ---------------------------------------------------------- sections
    Case("blend-first-section",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n    blend: 0.5s\n", 9, 12,
         "the first section has no previous prompt to blend from"),
    Case("first-section-image",
         HEAD + "sections:\n  - prompt: a\n    duration: 1s\n    image: images/middle.png\n",
         9, 12, "the first section starts on the shot's start image; set the top-level 'image'"),
    Case("sections-empty", HEAD + "sections: []\n", 6, 11, "sections needs at least 1 item"),
    # ---------------------------------------------------------- size and version
    Case("size-too-small", HEAD.replace("256x256", "32x32") + "prompt: a\nduration: 1s\n", 5, 7,
         "size 32x32: each side must be 64 to 2048"),
    Case("size-too-big", HEAD.replace("256x256", "4096x256") + "prompt: a\nduration: 1s\n",
         5, 7, "size 4096x256: each side must be 64 to 2048"),
    Case("size-list-too-big", HEAD.replace("256x256", "[4096, 256]") +
         "prompt: a\nduration: 1s\n", 5, 8, "size[0] must be at most 2048, not 4096"),
    Case("size-not-wxh", HEAD.replace("256x256", "640by480") + "prompt: a\nduration: 1s\n",
         5, 7, "size '640by480' is not valid here"),
    Case("size-wrong-type", HEAD.replace("256x256", "640") + "prompt: a\nduration: 1s\n", 5, 7,
         "size must be auto, \"WIDTHxHEIGHT\" or [width, height], not 640"),
    Case("version-2", HEAD.replace("version: 1", "version: 2") + "prompt: a\nduration: 1s\n",
         1, 10, "unsupported version 2; this framepack-render reads version 1"),
    Case("post-interpolate", ONE + "post: {interpolate: 3}\n", 8, 21,
         "post.interpolate must be one of 1, 2, 4, not 3"),
    Case("model-mapping-without-profile", HEAD.replace("model: tiny", "model: {path: w}") +
         "prompt: a\nduration: 1s\n", 2, 8, "model needs 'profile'"),
    # ---------------------------------------------------------- YAML, vars, templates
    Case("yaml-tab", HEAD + "sections:\n\t- prompt: a\n", 7, 1,
         "a tab character; YAML indents with spaces only"),
    Case("yaml-duplicate-key", ONE + "prompt: again\n", 8, 1,
         "duplicate key 'prompt' (first at line 6)"),
    Case("yaml-python-tag", ONE + "seed: !!python/object/apply:os.getpid []\n", 8, 7,
         "unsupported YAML tag"),
    Case("undefined-var", HEAD + "prompt: a ${animl}\nduration: 1s\nvars: {animal: cat}\n",
         6, 9, "undefined var 'animl'; did you mean 'animal'?"),
    Case("extends-missing", "extends: tpl/bsae.yaml\n", 1, 10,
         "template project/tpl/bsae.yaml not found"),
]


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def bad_shot(request: pytest.FixtureRequest, err_project: Path) -> tuple[Path, Case]:
    case: Case = request.param
    elsewhere = err_project.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    path = err_project / "shot.yaml"
    path.write_text(case.text.replace("{elsewhere}", str(elsewhere)), encoding="utf-8")
    return path, case


def test_malformed_shot_is_reported_and_nothing_is_written(
        bad_shot: tuple[Path, Case], capsys: pytest.CaptureFixture[str]) -> None:
    path, case = bad_shot
    before = _listing(path.parent)
    before_parent = _listing(path.parent.parent)

    code, out, err = _run(["validate", "project/shot.yaml", *case.args], capsys)

    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}; stderr:\n{err}"
    lines = _assert_diagnostics(err)
    prefix = f"project/shot.yaml:{case.line}:{case.col}: "
    assert any(line.startswith(prefix) and case.message in line for line in lines), (
        f"expected {prefix}...{case.message}\ngot:\n{err}")
    assert "ok " not in out
    assert _listing(path.parent) == before
    assert _listing(path.parent.parent) == before_parent


def test_table_covers_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def test_plan_of_a_malformed_shot_fails_without_touching_the_cache(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(ONE + "steps: 0\n")
    cache = err_project.parent / "cache"
    code, out, err = _run(["plan", "project/shot.yaml", "--cache", str(cache)], capsys)
    assert code == 2
    assert _assert_diagnostics(err) == ["project/shot.yaml:8:8: steps must be at least 1, not 0"]
    assert not cache.exists()


def test_several_errors_in_one_file_are_all_reported(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(ONE + "stpes: 3\nsampler: eular\nfps: -2\n")
    code, _, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 2
    lines = _assert_diagnostics(err)
    assert len(lines) == 3
    assert lines[0].startswith("project/shot.yaml:8:1: unknown key 'stpes'")
    assert lines[1].startswith("project/shot.yaml:9:10: unknown sampler 'eular'")
    assert lines[2].startswith("project/shot.yaml:10:6: fps must be greater than 0")


def test_one_bad_file_does_not_hide_a_good_one(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "good.yaml").write_text(ONE)
    (err_project / "bad.yaml").write_text(ONE + "steps: 0\n")
    code, out, err = _run(["validate", "project/bad.yaml", "project/good.yaml"], capsys)
    assert code == 2
    assert _assert_diagnostics(err) == ["project/bad.yaml:8:8: steps must be at least 1, not 0"]
    assert "ok project/good.yaml" in out


def test_two_files_writing_one_output_collide(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "a.yaml").write_text(ONE)
    (err_project / "b.yaml").write_text(ONE)
    code, _, err = _run(["validate", "project/a.yaml", "project/b.yaml"], capsys)
    assert code == 2
    lines = _assert_diagnostics(err)
    assert lines == ["project/b.yaml:4:9: output project/renders/out.mp4 is also written by "
                     "project/a.yaml; make it differ, for example with a var such as ${seed}"]


@pytest.mark.parametrize("target", ["nope.yaml", "project"])
def test_missing_shot_file_or_folder_is_one_line(
        err_project: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    code, _, err = _run(["validate", target], capsys)
    assert code == 2
    assert "Traceback" not in err
    assert len(_assert_diagnostics(err)) == 1
    message = "no such file" if target == "nope.yaml" else "is a folder, not a shot file"
    assert err == f"{target}:1:1: {message}\n"


def test_subprocess_reports_error_and_exit_code(err_project: Path) -> None:
    (err_project / "shot.yaml").write_text(ONE + "sampler: eular\n")
    before = _listing(err_project)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "framepack_render", "validate", "project/shot.yaml"],
        capture_output=True, text=True, cwd=err_project.parent, env=env, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ("project/shot.yaml:8:10: unknown sampler 'eular'; "
                             "did you mean 'euler'?\n")
    assert _listing(err_project) == before


def test_subprocess_valid_shot_exits_zero(err_project: Path) -> None:
    (err_project / "shot.yaml").write_text(ONE)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "framepack_render", "validate", "project/shot.yaml"],
        capture_output=True, text=True, cwd=err_project.parent, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "ok project/shot.yaml" in result.stdout


# ================================================================== --output-root


def test_output_root_allows_an_output_outside_the_shot_folder(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = err_project.parent / "elsewhere"
    elsewhere.mkdir()
    (err_project / "shot.yaml").write_text(
        ONE.replace("renders/out.mp4", f"{elsewhere}/x.mp4"))
    code, out, err = _run(["validate", "project/shot.yaml", "--output-root", str(elsewhere)],
                          capsys)
    assert code == 0, err
    assert "elsewhere/x.mp4" in out
    assert list(elsewhere.iterdir()) == []  # validate writes nothing


def test_output_root_resolves_relative_outputs_under_it(err_project: Path) -> None:
    (err_project / "shot.yaml").write_text(ONE)
    shots = load(err_project / "shot.yaml", output_root=err_project.parent / "farm").shots
    assert [o.path for o in shots[0].outputs] == [
        (err_project.parent / "farm" / "renders" / "out.mp4").resolve()]


# ================================================================== warnings


def _warnings_of(err: str) -> list[str]:
    lines = _assert_diagnostics(err)
    for line in lines:
        assert ": warning: " in line, line
    return lines


def test_size_rounded_to_16_warns(err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(ONE.replace("256x256", "250x250"))
    code, out, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    assert _warnings_of(err) == ["project/shot.yaml:5:7: warning: size 250x250 rounded to "
                                 "256x256 (sides are multiples of 16)"]
    assert load(err_project / "shot.yaml").shots[0].size == (256, 256)
    assert "ok project/shot.yaml" in out


def test_negative_prompt_with_cfg_one_warns(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(
        HEAD + "sections:\n  - prompt: a\n    duration: 1s\n    negative_prompt: blurry\n")
    code, _, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    assert _warnings_of(err) == ["project/shot.yaml:9:22: warning: negative_prompt has no "
                                 "effect unless cfg > 1"]


def test_negative_prompt_with_cfg_above_one_does_not_warn(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(ONE + "negative_prompt: blurry\ncfg: 3\n")
    code, _, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    assert "warning" not in err


def test_top_level_negative_prompt_warns_once_where_it_is_written(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(
        HEAD + "negative_prompt: blurry\nsections:\n  - prompt: a\n    duration: 1s\n"
        "  - prompt: b\n    duration: 1s\n")
    code, _, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    assert _warnings_of(err) == ["project/shot.yaml:6:18: warning: negative_prompt has no "
                                 "effect unless cfg > 1"]


def test_blend_without_prompt_change_warns(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(
        HEAD + "sections:\n  - prompt: a\n    duration: 1s\n  - duration: 1s\n    blend: 0.5s\n")
    code, _, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    assert _warnings_of(err) == [
        "project/shot.yaml:10:12: warning: blend has no effect: the prompt does not change"]


def test_unused_edit_warns(err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(
        ONE + "edits:\n  - name: spare\n    image: images/start.png\n    prompt: x\n")
    code, out, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    (line,) = _warnings_of(err)
    assert line.startswith("project/shot.yaml:9:5: warning: edit 'spare' is not used")
    (ok,) = [line for line in out.splitlines() if line.startswith("ok ")]
    assert "edit" not in ok  # the unused edit is not rendered


def test_used_edit_does_not_warn(err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(
        HEAD.replace("images/start.png", "{edit: look}") + "prompt: a\nduration: 1s\n"
        "edits:\n  - name: look\n    image: images/start.png\n    prompt: x\n")
    code, out, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0, err
    assert err == ""
    assert "1 edit" in out


def test_end_image_strength_without_end_image_warns(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(ONE + "end_image_strength: 0.5\n")
    code, _, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 0
    assert _warnings_of(err) == ["project/shot.yaml:8:21: warning: end_image_strength has no "
                                 "effect without end_image"]


# ================================================================== size: auto


def _auto_size(project: Path, image_size: tuple[int, int]) -> tuple[int, int]:
    _png(project / "images" / "probe.png", image_size)
    (project / "shot.yaml").write_text(
        HEAD.replace("images/start.png", "images/probe.png").replace("256x256", "auto")
        + "prompt: a\nduration: 1s\n")
    return load(project / "shot.yaml").shots[0].size


@pytest.mark.parametrize("image_size, expected", [
    ((1280, 720), (832, 480)),   # 16:9 landscape
    ((720, 1280), (480, 832)),   # 9:16 portrait
    ((1024, 768), (704, 544)),   # 4:3 landscape
    ((768, 1024), (544, 704)),   # 3:4 portrait
    ((600, 900), (512, 768)),    # 2:3 portrait
    ((4000, 1000), (960, 416)),  # very wide: the widest bucket
])
def test_size_auto_picks_framepack_640_bucket(err_project: Path, image_size: tuple[int, int],
                                              expected: tuple[int, int]) -> None:
    assert _auto_size(err_project, image_size) == expected


def test_size_auto_is_the_default(err_project: Path) -> None:
    _png(err_project / "images" / "wide.png", (1280, 720))
    (err_project / "shot.yaml").write_text(
        "version: 1\nmodel: tiny\nimage: images/wide.png\noutput: o.mp4\nprompt: a\n"
        "duration: 1s\n")
    assert load(err_project / "shot.yaml").shots[0].size == (832, 480)


def test_size_auto_follows_an_edit_to_its_image(err_project: Path) -> None:
    _png(err_project / "images" / "tall.png", (720, 1280))
    (err_project / "shot.yaml").write_text(
        "version: 1\nmodel: tiny\nimage: {edit: look}\noutput: o.mp4\nprompt: a\n"
        "duration: 1s\nedits:\n  - name: look\n    image: images/tall.png\n    prompt: x\n")
    assert load(err_project / "shot.yaml").shots[0].size == (480, 832)


def test_size_auto_square_image_matches_framepack_tie_break(err_project: Path) -> None:
    assert _auto_size(err_project, (512, 512)) == (608, 640)


def test_zero_second_text_duration_is_rejected_like_zero(
        err_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (err_project / "shot.yaml").write_text(HEAD + "prompt: a\nduration: 0s\n")
    code, out, err = _run(["validate", "project/shot.yaml"], capsys)
    assert code == 2
    (line,) = _assert_diagnostics(err)
    assert line.startswith("project/shot.yaml:7:11: ") and "duration" in line
