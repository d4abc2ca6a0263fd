"""Whatever a user writes, the answer is a plan or one-line errors: never a traceback."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from framepack_render.plan import build_plan
from framepack_render.report import plan_json, print_plan
from framepack_render.spec import ShotError, load
from framepack_render.spec.schema import load_schema

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
