"""Whatever a user writes, the answer is a plan or one-line errors: never a traceback."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from framepack_render.cli import main
from framepack_render.plan import build_plan
from framepack_render.report import plan_json, print_plan
from framepack_render.shot import ShotError, load
from framepack_render.shot import yaml_loader
from framepack_render.shot.schema import load_schema

from .conftest import QUICKSTART

SCHEMA = load_schema()
TOP_KEYS = sorted(SCHEMA["properties"])
SECTION_KEYS = sorted(SCHEMA["$defs"]["section"]["properties"])
EDIT_KEYS = sorted(SCHEMA["$defs"]["edit"]["properties"]) + ["controls"]
WORDS = ["images/start.png", "images/end.png", "images/middle.png", "images/nope.png",
         "renders/a.mp4", "renders/b.gif", "renders/frames/", "../out.mp4", "out.avi", "auto",
         "640x640", "1.2s", "0s", "2.4s", "balanced", "talking", "high", "inverted", "forward",
         "endpoints-first", "euler", "tiny", "framepack-f1", "${seed}", "${nope}", "$${x}",
         "a cat walks", "", "first", "pingpong", "x.png", "{frames: 3}"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3000), st.floats(-2, 100, allow_nan=False),
    st.sampled_from(WORDS), st.text(max_size=12))


def mapping(keys: list[str], values: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), values,
                           max_size=6)


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        mapping(SECTION_KEYS + EDIT_KEYS + ["edit", "frames", "preset", "mu", "sigma"], inner)),
    max_leaves=12)

shots = st.fixed_dictionaries(
    {"model": st.sampled_from(["tiny", "framepack", "framepack-f1", "tiyn"]),
     "image": st.sampled_from(["images/start.png", {"edit": "e"}, "images/x.png"]),
     "output": st.sampled_from(["renders/a.mp4", ["renders/a.mp4", "renders/a.gif"], "a.txt"]),
     "sections": st.lists(mapping(SECTION_KEYS, values), min_size=1, max_size=4)},
    optional={key: values for key in TOP_KEYS
              if key not in ("model", "image", "output", "sections")}
    | {"edits": st.lists(mapping(EDIT_KEYS, values), max_size=2),
       "vars": st.dictionaries(st.sampled_from(["seed", "x", "1bad"]), scalars, max_size=2)})


def check(folder: Path, text: str) -> None:
    (folder / "shot.yaml").write_text(text, encoding="utf-8")
    try:
        loaded = load(folder / "shot.yaml")
    except ShotError as error:
        assert error.diagnostics
        for line in str(error).splitlines():
            assert re.match(r"^[^\n]+:\d+:\d+: \S", line), line
        return
    console = Console(file=io.StringIO(), width=100)
    for shot in loaded.shots:
        plan = build_plan(shot)
        json.dumps(plan_json(plan))
        print_plan(console, plan)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(QUICKSTART / "images", folder / "images")
    return folder


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=shots)
def test_random_shots_give_a_plan_or_positioned_errors(fuzz_dir, doc):
    check(fuzz_dir, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@pytest.mark.parametrize("bad", ["input_video: null", "size: ''", "edits: [{prompt: x}]"])
def test_every_shot_of_a_matrix_stops_at_its_schema_errors(fuzz_dir, bad):
    """The matrix's second shot repeats the first's errors, which are listed once: it must
    still stop before the checks that trust a valid document (found by the test above)."""
    text = ("model: tiny\nimage: images/start.png\noutput: renders/a-${g}.mp4\n"
            f"{bad}\nprompt: a ball\nduration: 1.2s\nguidance: ${{g}}\n"
            "matrix: {g: [5, 6]}\n")
    (fuzz_dir / "matrix.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ShotError) as error:
        load(fuzz_dir / "matrix.yaml")
    assert all(re.match(r"^\S+matrix.yaml:\d+:\d+: \S", line)
               for line in str(error.value).splitlines())


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 6),
                               st.sampled_from(["", ":", " ", "\n", "-", "{", "[", "'", "\t",
                                                "&a", "*a", "!!", "${", "#"])),
                     min_size=1, max_size=4))
def test_mangled_quickstart_text_gives_a_plan_or_positioned_errors(fuzz_dir, cuts):
    text = (QUICKSTART / "shot.yaml").read_text()
    for position, length, insert in cuts:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + length:]
    check(fuzz_dir, text)



# ================================================================== structural extremes
# Hostile shapes rather than hostile values: nesting, counts, sizes, special files and
# encodings. `validate`, `plan` and `render` must each answer with exit 2 and one-line
# diagnostics only, quickly, writing nothing (no output, no cache).

DIAGNOSTIC = re.compile(r"^[^\n]+:\d+:\d+: \S")
VERBS = ("validate", "plan", "render")
DEEP = 10_000
HEAD = ("version: 1\nmodel: tiny\nimage: images/start.png\noutput: renders/out.mp4\n"
        "size: 256x256\n")  # lines 1-5
ONE = HEAD + "prompt: a cat\nduration: 1s\n"  # lines 6-7; additions start on line 8
SHOT = "project/shot.yaml"


@dataclass
class Extreme:
    id: str
    build: Callable[[Path], str]  # writes into the project; returns the path to check
    start: str  # how the first diagnostic starts
    words: tuple[str, ...]  # what the first diagnostic must say
    lines: int = 1
    last: str = ""  # what the last diagnostic must say, when there are several
    heavy: bool = False  # checked with `validate` only, to keep the suite quick
    args: tuple[str, ...] = ()


def _shot(content: str | bytes) -> Callable[[Path], str]:
    def build(project: Path) -> str:
        data = content.encode("utf-8") if isinstance(content, str) else content
        (project / "shot.yaml").write_bytes(data)
        return SHOT
    return build


def _special(kind: str, name: str) -> Path:
    """A FIFO, socket, dangling link or link loop named ``name`` in the working directory."""
    path = Path(name)
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no named pipes here")
        os.mkfifo(path)
    elif kind == "socket":
        if not hasattr(socket, "AF_UNIX"):
            pytest.skip("no Unix sockets here")
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))  # relative: short whatever the temporary folder's length
        server.close()  # the socket file stays
    elif kind == "dangling":
        path.symlink_to("nowhere.png")
    elif kind == "loop":
        path.symlink_to(path.name + ".2")
        path.with_name(path.name + ".2").symlink_to(path.name)
    elif not path.exists():
        pytest.skip(f"no {name} here")
    return path


def _with_special(kind: str, name: str, text: str) -> Callable[[Path], str]:
    """A shot (``text``) that names a special file: ``name`` relative to the project."""
    def build(project: Path) -> str:
        _special(kind, str(project / name) if not name.startswith("/") else name)
        return _shot(text)(project)
    return build


def _special_shot(kind: str, name: str) -> Callable[[Path], str]:
    def build(project: Path) -> str:
        return str(_special(kind, name if name.startswith("/") else f"project/{name}"))
    return build


def _lora_shot(path: str) -> str:
    return ONE.replace("model: tiny", "model: {profile: tiny, lora: [{path: " + path + "}]}")


def _edit_with_mask(mask: str) -> str:
    return (ONE + "edits:\n  - name: look\n    image: images/start.png\n    prompt: x\n"
            "    output: renders/look.png\n"
            "    controls:\n      - {image: images/start.png, mask: " + mask + "}\n")


def _jobs(rows: int) -> Callable[[Path], str]:
    def build(project: Path) -> str:
        (project / "tpl.yaml").write_text(ONE.replace("prompt: a cat", "prompt: ${animal}")
                                          .replace("out.mp4", "${animal}.mp4"))
        (project / "jobs.csv").write_text("animal\n" + "".join(f"a{i}\n" for i in range(rows)))
        return "project/jobs.csv"
    return build


def _csv_over(kind: str, name: str) -> Callable[[Path], str]:
    def build(project: Path) -> str:
        (project / "tpl.yaml").write_text(ONE.replace("prompt: a cat", "prompt: ${animal}"))
        return str(_special(kind, name))
    return build


LORA_AT = "project/shot.yaml:2:38: "  # where the path of model.lora[0] is written
SECTION = "  - {prompt: p, duration: 1s}\n"
TEN = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"

EXTREMES = [
    # ---------------------------------------------------------- depth
    Extreme("flow-sequences-10k", _shot(ONE + "x-deep: " + "[" * DEEP + "]" * DEEP + "\n"),
            f"{SHOT}:8:73: ", ("nested more than 64 levels deep",)),
    Extreme("flow-mappings-10k",
            _shot(ONE + "x-deep: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"),
            f"{SHOT}:8:262: ", ("nested more than 64 levels deep",)),
    Extreme("block-sequences-10k", _shot(ONE + "x-deep:\n  " + "- " * DEEP + "1\n"),
            f"{SHOT}:9:131: ", ("nested more than 64 levels deep",)),
    # A level of block mapping costs a line and an indent: 2000 levels are 2 MB.
    Extreme("block-mappings-2k",
            _shot(ONE + "x-deep:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(2000))),
            f"{SHOT}:72:65: ", ("nested more than 64 levels deep",)),
    Extreme("prompt-nested-10k", _shot(HEAD + "duration: 1s\nprompt: " + "[" * DEEP + "\n"),
            f"{SHOT}:7:73: ", ("nested more than 64 levels deep",)),
    # ---------------------------------------------------------- counts
    Extreme("sections-1001", _shot(HEAD + "sections:\n" + SECTION * 1001),
            f"{SHOT}:6:1: ", ("too many sections: 1001 (at most 1000)",)),
    Extreme("sections-30000-no-aliases", _shot(HEAD + "sections:\n" + SECTION * 30_000),
            f"{SHOT}:20004:14: ", ("the file holds more than 100000 values",), heavy=True),
    Extreme("edits-101", _shot(ONE + "edits:\n" + "".join(
        f"  - {{name: e{i}, image: images/start.png, prompt: x}}\n" for i in range(101))),
            f"{SHOT}:8:1: ", ("too many edits: 101 (at most 100)",)),
    Extreme("loras-17", _shot(ONE.replace("model: tiny", "model: {profile: tiny, lora: ["
                                          + ", ".join(["{path: a.safetensors}"] * 17) + "]}")),
            f"{SHOT}:2:24: ", ("too many LoRAs: 17 (at most 16)",)),
    Extreme("vars-1001", _shot(ONE + "vars:\n" + "".join(f"  v{i}: {i}\n" for i in range(1001))),
            f"{SHOT}:8:1: ", ("too many vars: 1001 (at most 1000)",)),
    Extreme("outputs-17", _shot(ONE.replace("renders/out.mp4", "[" + ", ".join(
        f"renders/o{i}.mp4" for i in range(17)) + "]")),
            f"{SHOT}:4:1: ", ("too many outputs: 17 (at most 16)",)),
    Extreme("controls-17", _shot(ONE + "edits:\n  - name: look\n    image: images/start.png\n"
                                 "    prompt: x\n    controls: [" + ", ".join(
                                     ["{image: images/start.png}"] * 17) + "]\n"),
            f"{SHOT}:12:5: ", ("too many controls in edits[0]: 17 (at most 16)",)),
    Extreme("jobs-csv-1001-rows", _jobs(1001), "project/jobs.csv:1002:1: ",
            ("the CSV expands to more than 1000 shots",), args=("--template", "project/tpl.yaml")),
    Extreme("unknown-keys-500", _shot(ONE + "".join(f"key{i}: 1\n" for i in range(500))),
            f"{SHOT}:8:1: ", ("unknown key 'key0'",), lines=51,
            last=f"{SHOT}:58:1: and 450 more unknown keys from here on"),
    Extreme("matrix-of-long-shots", _shot(
        HEAD.replace("out.mp4", "out-${a}-${b}-${c}.mp4") + f"matrix: {{a: {TEN}, b: {TEN}, "
        f"c: {TEN}}}\nsections:\n" + SECTION * 21),
            f"{SHOT}:6:1: ", ("1000 shots of 21 sections", "at most 20000")),
    # ---------------------------------------------------------- sizes
    Extreme("huge-scalar", _shot(ONE + "steps: '" + "x" * 3_000_000 + "'\n"),
            f"{SHOT}:8:8: ", ("steps must be a whole number, not 'xxx",)),
    Extreme("long-line", _shot(ONE + "# " + "x" * 1_000_000 + "\nsteps: 0\n"),
            f"{SHOT}:9:8: ", ("steps must be at least 1, not 0",)),
    Extreme("file-over-4-mib", _shot(ONE + "# " + "x" * (5 * 1024 * 1024) + "\n"),
            f"{SHOT}:1:1: ", ("file is 5.0 MiB; shot files are limited to 4 MiB",)),
    # ---------------------------------------------------------- special files
    Extreme("shot-dev-null", _special_shot("device", "/dev/null"),
            "/dev/null:1:1: ", ("is a device file, not a shot file",)),
    Extreme("shot-dev-zero", _special_shot("device", "/dev/zero"),
            "/dev/zero:1:1: ", ("is a device file, not a shot file",)),
    Extreme("shot-fifo", _special_shot("fifo", "pipe.yaml"),
            "project/pipe.yaml:1:1: ", ("is a named pipe (FIFO), not a shot file",)),
    Extreme("shot-socket", _special_shot("socket", "sock.yaml"),
            "project/sock.yaml:1:1: ", ("is a socket, not a shot file",)),
    Extreme("shot-dangling-symlink", _special_shot("dangling", "gone.yaml"),
            "project/gone.yaml:1:1: ", ("is a broken symbolic link (to 'nowhere.png')",)),
    Extreme("shot-symlink-loop", _special_shot("loop", "loop.yaml"),
            "project/loop.yaml:1:1: ", ("is a loop of symbolic links",)),
    Extreme("shot-folder", _special_shot("folder", "images"),
            "project/images:1:1: ", ("is a folder, not a shot file",)),
    Extreme("image-dev-zero", _shot(ONE.replace("images/start.png", "/dev/zero")),
            f"{SHOT}:3:8: ", ("image '/dev/zero' is a device file, not an image",)),
    Extreme("image-fifo", _with_special("fifo", "images/pipe.png",
                                        ONE.replace("start.png", "pipe.png")),
            f"{SHOT}:3:8: ", ("image 'images/pipe.png' is a named pipe (FIFO), not an image",)),
    Extreme("image-socket", _with_special("socket", "images/sock.png",
                                          ONE.replace("start.png", "sock.png")),
            f"{SHOT}:3:8: ", ("image 'images/sock.png' is a socket, not an image",)),
    Extreme("image-dangling-symlink", _with_special("dangling", "images/gone.png",
                                                    ONE.replace("start.png", "gone.png")),
            f"{SHOT}:3:8: ", ("image 'images/gone.png' is a broken symbolic link",)),
    Extreme("image-symlink-loop", _with_special("loop", "images/loop.png",
                                                ONE.replace("start.png", "loop.png")),
            f"{SHOT}:3:8: ", ("image 'images/loop.png' is a loop of symbolic links",)),
    Extreme("end-image-dev-null", _shot(ONE + "end_image: /dev/null\n"),
            f"{SHOT}:8:12: ", ("image '/dev/null' is a device file, not an image",)),
    Extreme("mask-fifo", _with_special("fifo", "images/mask.png",
                                       _edit_with_mask("images/mask.png")),
            f"{SHOT}:14:41: ", ("image 'images/mask.png' is a named pipe (FIFO)",)),
    Extreme("lora-dev-null", _shot(_lora_shot("/dev/null")),
            LORA_AT, ("LoRA '/dev/null' is a device file, not a LoRA file",)),
    Extreme("lora-fifo", _with_special("fifo", "pipe.safetensors", _lora_shot("pipe.safetensors")),
            LORA_AT, ("LoRA 'pipe.safetensors' is a named pipe (FIFO), not a LoRA file",)),
    Extreme("lora-folder", _shot(_lora_shot("images")),
            LORA_AT, ("LoRA 'images' is a folder, not a LoRA file",)),
    Extreme("lora-dangling-symlink", _with_special("dangling", "gone.safetensors",
                                                   _lora_shot("gone.safetensors")),
            LORA_AT, ("LoRA 'gone.safetensors' is a broken symbolic link",)),
    Extreme("template-fifo", _with_special("fifo", "tpl.yaml", "extends: tpl.yaml\n"),
            f"{SHOT}:1:10: ", ("template project/tpl.yaml is a named pipe (FIFO)",)),
    Extreme("template-dangling-symlink", _with_special("dangling", "tpl.yaml",
                                                       "extends: tpl.yaml\n"),
            f"{SHOT}:1:10: ", ("template project/tpl.yaml is a broken symbolic link",)),
    Extreme("jobs-csv-dev-null", _csv_over("device", "/dev/null"),
            "/dev/null:1:1: ", ("is a device file, not a CSV file",),
            args=("--template", "project/tpl.yaml")),
    # ---------------------------------------------------------- encodings
    Extreme("utf16-with-bom", _shot(ONE.encode("utf-16")),
            f"{SHOT}:1:1: ", ("file is UTF-16 text; save it as UTF-8",)),
    Extreme("utf16-without-bom", _shot(ONE.encode("utf-16-le")),
            f"{SHOT}:1:2: ", ("NUL byte",)),
    Extreme("utf8-bom", _shot(b"\xef\xbb\xbf" + (ONE + "steps: 0\n").encode()),
            f"{SHOT}:8:8: ", ("steps must be at least 1, not 0",)),
    Extreme("invalid-utf8", _shot(HEAD.encode() + b"prompt: caf\xe9\nduration: 1s\n"),
            f"{SHOT}:6:12: ", ("file is not UTF-8 text (byte 0xe9)",)),
    Extreme("nul-byte", _shot(ONE + "steps: 1\x00\n"), f"{SHOT}:8:9: ", ("NUL byte",)),
    Extreme("control-character", _shot(ONE + "seed: 1\x1b\n"), f"{SHOT}:8:8: ",
            ("control character U+001B",)),
    Extreme("lone-surrogate-escape", _shot(HEAD + 'prompt: "a\\ud800"\nduration: 1s\n'),
            f"{SHOT}:6:", ("escape",)),
    Extreme("crlf", _shot((ONE + "steps: 0\n").replace("\n", "\r\n")),
            f"{SHOT}:8:8: ", ("steps must be at least 1, not 0",)),
    Extreme("bare-cr", _shot((ONE + "steps: 0\n").replace("\n", "\r")),
            f"{SHOT}:8:8: ", ("steps must be at least 1, not 0",)),
    Extreme("empty-file", _shot(b""), f"{SHOT}:1:1: ", ("file is empty",)),
    Extreme("only-a-comment", _shot("# a shot, one day\n"), f"{SHOT}:1:1: ", ("file is empty",)),
]


@pytest.fixture
def hostile_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp/project with images; the working directory is tmp. Should anything open one of
    its FIFOs for reading (and block), a watchdog opens it for writing after 20 s so that the
    test fails on its time bound instead of hanging."""
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART / "images", project / "images")
    monkeypatch.chdir(tmp_path)
    done = threading.Event()

    def release_fifos() -> None:
        if done.wait(20):
            return
        for path in tmp_path.rglob("*"):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    watchdog = threading.Thread(target=release_fifos, daemon=True)
    watchdog.start()
    yield project
    done.set()
    watchdog.join()


def _tree(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry with its type, size and time, links not followed (some are broken)."""
    return {str(p.relative_to(folder)): (p.lstat().st_mode, p.lstat().st_size,
                                         p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _cases() -> Iterator[object]:
    for case in EXTREMES:
        for verb in VERBS[:1] if case.heavy else VERBS:
            yield pytest.param(case, verb, id=f"{case.id}-{verb}")


@pytest.mark.parametrize("case, verb", list(_cases()))
def test_structural_extremes_are_one_line_errors_and_write_nothing(
        case: Extreme, verb: str, hostile_project: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    target = case.build(hostile_project)
    cache = hostile_project.parent / "cache"
    before = _tree(hostile_project.parent)
    argv = [verb, target, *case.args] + (["--cache", str(cache)] if verb != "validate" else [])

    started = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}; stderr:\n{err[:2000]}"
    lines = err.splitlines()
    assert len(lines) == case.lines, err[:2000]
    for line in lines:
        assert DIAGNOSTIC.match(line), f"not FILE:LINE:COL: message: {line[:300]!r}"
    assert lines[0].startswith(case.start), lines[0][:300]
    for words in case.words:
        assert words in lines[0], lines[0][:300]
    assert lines[-1].startswith(case.last), lines[-1][:300]
    assert len(lines[0]) < 300  # a huge value is quoted short
    assert "alias" not in err  # none of these files has one
    assert "ok " not in out
    assert not cache.exists()
    assert _tree(hostile_project.parent) == before
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_extremes_cover_every_kind() -> None:
    ids = {case.id for case in EXTREMES}
    assert len(ids) == len(EXTREMES)
    for word in ("flow", "block", "sections", "edits", "keys", "scalar", "line", "dev-null",
                 "fifo", "socket", "dangling", "loop", "folder", "utf16", "utf8-bom",
                 "invalid-utf8", "nul", "surrogate", "crlf", "bare-cr", "empty", "comment"):
        assert any(word in i for i in ids), word


def test_hostile_files_in_one_command_line_run(hostile_project: Path) -> None:
    """The installed command with Python's own recursion limit and no test harness: every
    file gets its one line, and the run takes seconds, not minutes."""
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null here")
    shots = []
    for name, text in [("flow.yaml", ONE + "a: " + "[" * DEEP + "\n"),
                       ("map.yaml", ONE + "a: " + "{a: " * DEEP + "\n"),
                       ("block.yaml", ONE + "a:\n  " + "- " * DEEP + "1\n"),
                       ("many.yaml", HEAD + "sections:\n" + SECTION * 1001),
                       ("bomb.yaml", "a: &a [" + ", ".join(["x"] * 9) + "]\n" + "".join(
                           f"{b}: &{b} [" + ", ".join([f"*{a}"] * 9) + "]\n"
                           for a, b in zip("abcdefg", "bcdefgh")))]:
        (hostile_project / name).write_text(text)
        shots.append(f"project/{name}")
    before = _tree(hostile_project.parent)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "framepack_render", "validate", *shots,
                             "/dev/null"], capture_output=True, text=True, env=env, timeout=60)
    assert time.perf_counter() - started < 20
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == shots + ["/dev/null"]
    assert all(DIAGNOSTIC.match(line) for line in lines)
    assert "through aliases" in lines[4] and "too many sections" in lines[3]
    assert _tree(hostile_project.parent) == before


STRUCTURE = st.text(alphabet="[]{}:,-?&*!|>'\"#\n\r\t \x00\x85a1", max_size=120)


@pytest.mark.parametrize("parser", [yaml.SafeLoader] + (
    [yaml.CSafeLoader] if yaml.__with_libyaml__ else []), ids=lambda p: p.__name__)
@settings(max_examples=150, deadline=None)
@given(text=STRUCTURE)
def test_any_structure_loads_or_is_one_positioned_error(parser: type, text: str) -> None:
    saved = yaml_loader._PARSER
    yaml_loader._PARSER = parser
    try:
        yaml_loader.load_yaml_text(text * 3, "f.yaml", ".")
    except ShotError as error:
        (line,) = str(error).splitlines()
        assert re.match(r"^f\.yaml:\d+:\d+: \S", line), line
    finally:
        yaml_loader._PARSER = saved


# ================================================================== recent surfaces
# Schedules, flux-deforum shots, input videos, score, report and the Deforum import: hostile
# values there are one line (`FILE:LINE:COL: message` or `FILE: message`), exit 2, and
# nothing written, as for shots.

ANY_DIAGNOSTIC = re.compile(r"^[^\n]+?:(?:\d+:\d+:)? \S")
FLUX = ("version: 1\nengine: flux-deforum\nmodel: tiny-flux\nimage: images/start.png\n"
        "output: renders/f.mp4\nsize: 128x128\nframes: 24\n")  # lines 1-7
DIGITS = "9" * 400


@dataclass
class Surface:
    id: str
    build: Callable[[Path], list[str]]  # writes into the project; returns the command line
    start: str  # how the diagnostic starts
    words: str  # what it must say


def _command(files: dict[str, str | bytes], *argv: str) -> Callable[[Path], list[str]]:
    def build(project: Path) -> list[str]:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_bytes(data)
        return list(argv)
    return build


def _mixed_frames(*argv: str, shot: str = "") -> Callable[[Path], list[str]]:
    """A PNG frames folder whose second frame is smaller than its first."""
    def build(project: Path) -> list[str]:
        from PIL import Image

        (project / "frames").mkdir()
        Image.new("RGB", (256, 256)).save(project / "frames" / "000000.png")
        Image.new("RGB", (128, 64)).save(project / "frames" / "000001.png")
        if shot:
            (project / "shot.yaml").write_text(shot)
        return list(argv)
    return build


def _flux_prompts(prompts: str) -> Callable[[Path], list[str]]:
    return _command({"shot.yaml": FLUX + "prompts: {0: a ball, " + prompts + ": b}\n"},
                    "plan", SHOT)


EXTEND = ("version: 1\nmodel: tiny\noutput: renders/o.mp4\nsize: auto\nprompt: a cat\n"
          "duration: 1s\nsampling: forward\ninput_video: frames\n")  # input_video on line 8
SURFACES = [
    Surface("schedule-key-of-400-digits",
            _command({"shot.yaml": ONE + f'guidance: "{DIGITS}:(1)"\n'}, "plan", SHOT),
            f"{SHOT}:8:12: ", "guidance schedule: frame 99999999999999999... is too large"),
    Surface("schedule-seconds-key-of-400-digits",
            _command({"shot.yaml": FLUX + f'prompts: {{0: a}}\nzoom: "{DIGITS}s:(1)"\n'},
                     "plan", SHOT),
            f"{SHOT}:9:8: ", "zoom schedule: frame 99999999999999999... is too large"),
    Surface("schedule-arabic-indic-digits",
            _command({"shot.yaml": ONE + 'guidance: "0:(\u0661\u0662)"\n'}, "plan", SHOT),
            f"{SHOT}:8:15: ", "unexpected character '\u0661'"),
    Surface("flux-prompt-key-of-400-digits", _flux_prompts(DIGITS),
            f"{SHOT}:8:22: ", "prompt key '999999999999999999999...' is past any video"),
    Surface("flux-prompt-key-of-400-digit-seconds", _flux_prompts(DIGITS + "s"),
            f"{SHOT}:8:22: ", "is past any video"),
    Surface("flux-prompt-key-arabic-indic-digit", _flux_prompts("'\u0661'"),
            f"{SHOT}:8:22: ", "prompt key '\u0661' is not a frame or a time"),
    Surface("input-video-frames-of-two-sizes-render",
            _mixed_frames("render", SHOT, shot=EXTEND),
            f"{SHOT}:8:14: ", "frame 000001.png is 128x64, but the first is 256x256"),
    Surface("score-frames-of-two-sizes", _mixed_frames("score", "project/frames"),
            "project/frames: ", "frame 000001.png is 128x64, but the first is 256x256"),
    Surface("score-at-infinity", _mixed_frames("score", "project/frames", "--at", "1e999s"),
            "--at: ", "'1e999s' is not a finite time"),
    Surface("report-folder-without-shots", _command({"notes.txt": "x"}, "report", "project",
                                                    "-o", "r.html"),
            "project:1:1: ", "no shot files here"),
    Surface("import-deforum-integer-of-100k-digits",
            _command({"d.json": '{"max_frames": ' + "9" * 100_000 + "}"},
                     "import", "deforum", "project/d.json", "-o", "shots"),
            "project/d.json:1:1: ", "Exceeds the limit (4300 digits)"),
    Surface("import-detect-integer-of-100k-digits",
            _command({"d.json": '{"max_frames": ' + "9" * 100_000 + "}"},
                     "import", "project/d.json", "-o", "shots"),
            "project/d.json:1:1: ", "Exceeds the limit (4300 digits)"),
    Surface("import-detect-json-100k-deep",
            _command({"d.json": "[" * 100_000 + "]" * 100_000}, "import", "project/d.json",
                     "-o", "shots"),
            "project/d.json:1:1: ", "JSON nested too deeply"),
    Surface("import-parseq-manifest-as-a-mapping",
            _command({"d.json": json.dumps({"max_frames": 10, "prompts": {"0": "a"},
                                            "parseq_manifest": {"rendered_frames": 5}})},
                     "import", "deforum", "project/d.json", "-o", "shots"),
            "project/d.json:1:", "parseq_manifest must be the manifest as JSON text or a URL"),
]


@pytest.mark.parametrize("case", SURFACES, ids=lambda case: case.id)
def test_recent_surfaces_answer_hostile_values_with_one_line(
        case: Surface, hostile_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.build(hostile_project)
    cache = hostile_project.parent / "cache"
    if argv[0] in ("plan", "render", "score", "report"):
        argv += ["--cache", str(cache)]
    before = _tree(hostile_project.parent)

    started = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}; stderr:\n{err[:2000]}"
    (line,) = err.splitlines()
    assert ANY_DIAGNOSTIC.match(line), line[:300]
    assert line.startswith(case.start), line[:300]
    assert case.words in line, line[:300]
    assert len(line) < 300
    assert not cache.exists()
    assert _tree(hostile_project.parent) == before
    assert elapsed < 10, f"{elapsed:.1f} s"
