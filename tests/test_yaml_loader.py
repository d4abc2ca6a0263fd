"""The position-keeping YAML loader: marks, and every way a file can be rejected.

Every error must be a ShotError whose text is one line, ``FILE:LINE:COL: message`` (1:1 for
problems with the file as a whole), never a PyYAML or Python exception.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml

from framepack_render.shot import yaml_loader
from framepack_render.shot.errors import Mark, ShotError
from framepack_render.shot.yaml_loader import (MAX_ALIAS_VALUES, MAX_DEPTH, MAX_FILE_BYTES,
                                               MAX_VALUES, load_yaml, parse_scalar)

ONE_LINE = re.compile(r"^[^:\n]+:\d+:\d+: [^\n]+$")


@pytest.fixture
def yl_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch folder that is also the working directory, so marks show bare file names."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(folder: Path, data: bytes | str, name: str = "shot.yaml") -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _error(path: Path) -> str:
    """The single diagnostic line the loader raises for ``path``."""
    with pytest.raises(ShotError) as info:
        load_yaml(path)
    text = str(info.value)
    assert "\n" not in text, f"error is more than one line: {text!r}"
    assert len(info.value.diagnostics) == 1
    return text


def _positioned_error(path: Path) -> str:
    text = _error(path)
    assert ONE_LINE.match(text), text
    assert "Traceback" not in text
    return text


PARSERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])


@pytest.fixture(params=PARSERS, ids=lambda p: p.__name__)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Runs a test with PyYAML's own parser and, where PyYAML has it, libyaml's."""
    monkeypatch.setattr(yaml_loader, "_PARSER", request.param)
    return request.param


# ------------------------------------------------------------------ marks


def test_marks_of_keys_and_values_are_one_based(yl_dir: Path, parser: type) -> None:
    path = _write(yl_dir, (
        "version: 1\n"
        "# a comment line\n"
        "sections:\n"
        "  - prompt: a cat\n"
        "    duration: 2.4s\n"
        "flow_shift: {preset: subtle, detail: high}\n"
        "output: [a.mp4, b.gif]\n"
    ))
    root = load_yaml(path)
    assert root.mark == Mark("shot.yaml", 1, 1)
    assert root.key_mark("version") == Mark("shot.yaml", 1, 1)
    assert root.value["version"].mark == Mark("shot.yaml", 1, 10)
    assert root.key_mark("sections") == Mark("shot.yaml", 3, 1)

    first = root.value["sections"].value[0]
    assert first.mark == Mark("shot.yaml", 4, 5)
    assert first.key_mark("prompt") == Mark("shot.yaml", 4, 5)
    assert first.value["prompt"].mark == Mark("shot.yaml", 4, 13)
    assert first.key_mark("duration") == Mark("shot.yaml", 5, 5)
    assert first.value["duration"].mark == Mark("shot.yaml", 5, 15)

    flow = root.value["flow_shift"]
    assert flow.mark == Mark("shot.yaml", 6, 13)
    assert flow.key_mark("detail") == Mark("shot.yaml", 6, 30)
    assert flow.value["detail"].mark == Mark("shot.yaml", 6, 38)

    outputs = root.value["output"].value
    assert [o.mark for o in outputs] == [Mark("shot.yaml", 7, 10), Mark("shot.yaml", 7, 17)]
    assert str(outputs[1].mark) == "shot.yaml:7:17"


def test_values_are_plain_yaml_types(yl_dir: Path) -> None:
    path = _write(yl_dir, (
        "steps: 25\n"
        "cfg: 1.5\n"
        "teacache: false\n"
        "prompt: a cat\n"
        "empty:\n"
        "quoted: '30'\n"
        "date: 2024-01-02\n"
    ))
    assert load_yaml(path).plain() == {
        "steps": 25, "cfg": 1.5, "teacache": False, "prompt": "a cat", "empty": None,
        "quoted": "30", "date": "2024-01-02",  # a shot has no dates: the text is kept
    }


def test_columns_count_characters_not_bytes(yl_dir: Path, parser: type) -> None:
    path = _write(yl_dir, "prompt: café\nsizes: [ü, x]\n")
    root = load_yaml(path)
    assert root.value["prompt"].value == "café"
    assert root.value["sizes"].value[1].mark == Mark("shot.yaml", 2, 12)


def test_utf8_bom_is_accepted_and_marks_start_after_it(yl_dir: Path) -> None:
    path = _write(yl_dir, b"\xef\xbb\xbfsteps: 4\n")
    root = load_yaml(path)
    assert root.plain() == {"steps": 4}
    assert root.value["steps"].mark == Mark("shot.yaml", 1, 8)


def test_mark_names_file_relative_to_working_directory(yl_dir: Path) -> None:
    (yl_dir / "shots").mkdir()
    path = _write(yl_dir / "shots", "a: 1\nb: [1, 2\n", name="x.yaml")
    text = _positioned_error(path)
    assert text.startswith("shots/x.yaml:3:1: ")


def test_values_remember_the_folder_of_their_file(yl_dir: Path) -> None:
    (yl_dir / "sub").mkdir()
    root = load_yaml(_write(yl_dir / "sub", "image: images/a.png\n", name="s.yaml"))
    assert Path(root.value["image"].base) == (yl_dir / "sub").resolve()


def test_yaml_syntax_error_has_a_position(yl_dir: Path) -> None:
    text = _positioned_error(_write(yl_dir, "a: 1\nb: [1, 2\n"))
    assert text.startswith("shot.yaml:3:1: ")
    assert "expected ',' or ']'" in text


# ------------------------------------------------------------------ duplicate keys


def test_duplicate_top_level_key_names_first_line(yl_dir: Path) -> None:
    text = _positioned_error(_write(yl_dir, "prompt: a\nsteps: 3\nprompt: b\n"))
    assert text == "shot.yaml:3:1: duplicate key 'prompt' (first at line 1)"


def test_duplicate_nested_key_names_first_line(yl_dir: Path) -> None:
    path = _write(yl_dir, "sections:\n  - prompt: a\n    duration: 1s\n    prompt: b\n")
    assert _positioned_error(path) == "shot.yaml:4:5: duplicate key 'prompt' (first at line 2)"


def test_duplicate_key_in_flow_mapping(yl_dir: Path) -> None:
    path = _write(yl_dir, "x: 1\nflow_shift: {preset: a, preset: b}\n")
    assert _positioned_error(path) == "shot.yaml:2:25: duplicate key 'preset' (first at line 2)"


# ------------------------------------------------------------------ tags


@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.check_call [['touch', '{marker}']]",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
])
def test_python_tags_are_rejected_and_never_run(yl_dir: Path, payload: str) -> None:
    marker = yl_dir / "PWNED"
    path = _write(yl_dir, "version: 1\nprompt: " + payload.format(marker=marker) + "\n")
    text = _positioned_error(path)
    assert text.startswith("shot.yaml:2:9: unsupported YAML tag 'tag:yaml.org,2002:python/")
    assert "plain values only" in text
    assert not marker.exists(), "the payload ran"


def test_python_name_tag_is_rejected(yl_dir: Path) -> None:
    text = _positioned_error(_write(yl_dir, "a: !!python/name:os.system\n"))
    assert text.startswith("shot.yaml:1:4: unsupported YAML tag")


@pytest.mark.parametrize("doc, mark, tag", [
    ("image: !include other.yaml\n", "1:8", "!include"),
    ("sections:\n  - !section {prompt: a}\n", "2:5", "!section"),
    ("a: !!binary aGVsbG8=\n", "1:4", "tag:yaml.org,2002:binary"),
    ("a: !!set {x, y}\n", "1:4", "tag:yaml.org,2002:set"),
])
def test_custom_and_non_plain_tags_are_rejected(yl_dir: Path, doc: str, mark: str,
                                                tag: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text.startswith(f"shot.yaml:{mark}: unsupported YAML tag '{tag}'")


def test_explicit_plain_tags_are_fine(yl_dir: Path) -> None:
    root = load_yaml(_write(yl_dir, "seed: !!str 42\nsteps: !!int '8'\n"))
    assert root.plain() == {"seed": "42", "steps": 8}


# ------------------------------------------------------------------ aliases


def _alias_bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_with_expansion_limit(yl_dir: Path, parser: type) -> None:
    text = _positioned_error(_write(yl_dir, _alias_bomb()))
    assert "expands to more than 50000 values through aliases" in text


def test_alias_bomb_of_mappings_fails_too(yl_dir: Path) -> None:
    keys = ", ".join(f"k{i}: {i}" for i in range(10))
    doc = f"a: &a {{{keys}}}\n"
    for prev, name in zip("abcd", "bcde"):
        doc += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    text = _positioned_error(_write(yl_dir, doc))
    assert "through aliases" in text


def test_ordinary_aliases_are_expanded(yl_dir: Path) -> None:
    path = _write(yl_dir, "x-base: &base {preset: subtle}\na: *base\nb: *base\n")
    root = load_yaml(path)
    assert root.plain()["a"] == {"preset": "subtle"}
    assert root.plain()["b"] == {"preset": "subtle"}


@pytest.mark.parametrize("doc, mark", [
    ("a: &x\n  b: *x\n", "1:4"),
    ("&x [1, *x]\n", "1:1"),
    ("a: &x\n  - c: 1\n  - d: [*x]\n", "1:4"),
])
def test_self_referencing_alias_fails(yl_dir: Path, parser: type, doc: str, mark: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text == f"shot.yaml:{mark}: an alias refers to a value that contains it"


def test_nesting_depth_is_bounded(yl_dir: Path) -> None:
    doc = "a: " + "[" * 80 + "]" * 80 + "\n"
    text = _positioned_error(_write(yl_dir, doc))
    assert "nested more than 64 levels deep" in text


# ------------------------------------------------------------------ encodings


def test_non_utf8_byte_reports_line_and_column(yl_dir: Path) -> None:
    path = _write(yl_dir, b"version: 1\nprompt: caf\xe9 au lait\n")
    text = _positioned_error(path)
    assert text == ("shot.yaml:2:12: file is not UTF-8 text (byte 0xe9); save it as UTF-8")


def test_non_utf8_byte_on_first_column(yl_dir: Path) -> None:
    path = _write(yl_dir, b"a: 1\nb: 2\n\xff: 3\n")
    assert _positioned_error(path).startswith("shot.yaml:3:1: file is not UTF-8 text (byte 0xff)")


def test_non_utf8_column_counts_characters_like_other_marks(yl_dir: Path) -> None:
    path = _write(yl_dir, "prompt: éé".encode("utf-8") + b"\xff\n")
    # 'prompt: éé' is 10 characters: the bad byte is the 11th character of the line.
    assert _positioned_error(path).startswith("shot.yaml:1:11: ")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le-bom", "utf-16-be-bom"])
def test_utf16_file_with_bom_is_rejected(yl_dir: Path, encoding: str) -> None:
    text = "version: 1\nprompt: a cat\n"
    if encoding == "utf-16":
        data = text.encode("utf-16")
    elif encoding == "utf-16-le-bom":
        data = b"\xff\xfe" + text.encode("utf-16-le")
    else:
        data = b"\xfe\xff" + text.encode("utf-16-be")
    message = _positioned_error(_write(yl_dir, data))
    assert message == "shot.yaml:1:1: file is UTF-16 text; save it as UTF-8"


def test_utf32_file_is_named_as_such(yl_dir: Path) -> None:
    message = _positioned_error(_write(yl_dir, "version: 1\n".encode("utf-32")))
    assert message == "shot.yaml:1:1: file is UTF-32 text; save it as UTF-8"


# ------------------------------------------------------------------ layout mistakes


@pytest.mark.parametrize("doc, mark", [
    ("sections:\n\t- prompt: a\n", "2:1"),
    ("a:\n  b: 1\n\tc: 2\n", "3:1"),
])
def test_tab_indentation_gives_the_tab_message(yl_dir: Path, parser: type, doc: str,
                                               mark: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text == f"shot.yaml:{mark}: a tab character; YAML indents with spaces only"


@pytest.mark.parametrize("doc, mark", [
    ("a: 1\n---\nb: 2\n", "2:1"),
    ("---\na: 1\n---\nb: 2\n", "3:1"),
])
def test_multiple_documents_are_rejected(yl_dir: Path, parser: type, doc: str, mark: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text == (f"shot.yaml:{mark}: more than one YAML document ('---'); "
                    "a shot file holds one")


def test_one_document_with_explicit_markers_is_fine(yl_dir: Path) -> None:
    root = load_yaml(_write(yl_dir, "---\na: 1\n...\n"))
    assert root.plain() == {"a": 1}
    assert root.value["a"].mark == Mark("shot.yaml", 2, 4)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"# only a comment\n", b"   \n# x\n"])
def test_empty_file(yl_dir: Path, data: bytes) -> None:
    assert _positioned_error(_write(yl_dir, data)) == "shot.yaml:1:1: file is empty"


# ------------------------------------------------------------------ merge keys


def test_merge_key_fills_missing_keys_and_explicit_keys_win(yl_dir: Path, parser: type) -> None:
    path = _write(yl_dir, (
        "x-defaults: &defaults\n"
        "  steps: 8\n"
        "  cfg: 1.0\n"
        "  seed: 1\n"
        "sections:\n"
        "  - <<: *defaults\n"
        "    seed: 7\n"
        "    prompt: a\n"
        "  - seed: 9\n"
        "    <<: *defaults\n"
    ))
    first, second = load_yaml(path).value["sections"].value
    assert first.plain() == {"seed": 7, "prompt": "a", "steps": 8, "cfg": 1.0}
    assert second.plain() == {"seed": 9, "steps": 8, "cfg": 1.0}  # explicit wins before '<<' too
    # An explicit key keeps its own position; a merged one points at the anchor's definition.
    assert first.key_mark("seed") == Mark("shot.yaml", 7, 5)
    assert first.key_mark("steps") == Mark("shot.yaml", 2, 3)
    assert first.value["steps"].mark == Mark("shot.yaml", 2, 10)


def test_merge_of_several_mappings_earlier_wins(yl_dir: Path) -> None:
    path = _write(yl_dir, "a: &a {steps: 1}\nb: &b {steps: 2, cfg: 3}\nc:\n  <<: [*a, *b]\n")
    assert load_yaml(path).plain()["c"] == {"steps": 1, "cfg": 3}


def test_merge_of_a_scalar_is_rejected(yl_dir: Path) -> None:
    text = _positioned_error(_write(yl_dir, "a: &a 5\nb:\n  <<: *a\n"))
    assert text == "shot.yaml:1:4: '<<' merges mappings only"


def test_duplicate_key_still_caught_next_to_merge(yl_dir: Path) -> None:
    path = _write(yl_dir, "a: &a {x: 1}\nb:\n  <<: *a\n  y: 1\n  y: 2\n")
    assert _positioned_error(path) == "shot.yaml:5:3: duplicate key 'y' (first at line 4)"


# ------------------------------------------------------------------ keys and numbers


@pytest.mark.parametrize("doc, mark, shown", [
    ("prompt: a\n3: x\n", "2:1", "3"),
    ("1.5: x\n", "1:1", "1.5"),
    ("~: x\n", "1:1", "~"),
    ("a: 1\nsections:\n  - true: 1\n", "3:5", "true"),
    ("yes: 1\n", "1:1", "yes"),  # YAML 1.1 reads yes/on as true: the key is not 'yes'
])
def test_non_string_keys_are_rejected(yl_dir: Path, doc: str, mark: str, shown: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    # The key is shown as the user wrote it, not as Python's repr of what YAML made of it.
    assert text == f"shot.yaml:{mark}: key '{shown}' must be text; quote it"


def test_quoted_number_key_is_text(yl_dir: Path) -> None:
    assert load_yaml(_write(yl_dir, "'3': x\n")).plain() == {"3": "x"}


@pytest.mark.parametrize("doc", ["? [1, 2]\n: x\n", "? {a: 1}\n: x\n"])
def test_collection_key_is_rejected_in_plain_words(yl_dir: Path, doc: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text == "shot.yaml:1:3: a list or mapping cannot be a key; keys are text"
    assert "Node(" not in text and "Mark(" not in text


@pytest.mark.parametrize("doc, mark, shown", [
    ("cfg: .nan\n", "1:6", ".nan"),
    ("cfg: .NaN\n", "1:6", ".NaN"),
    ("guidance: .inf\n", "1:11", ".inf"),
    ("a:\n  b: -.Inf\n", "2:6", "-.Inf"),
    ("sizes: [1, +.inf]\n", "1:12", "+.inf"),
])
def test_nan_and_inf_are_rejected(yl_dir: Path, doc: str, mark: str, shown: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text == f"shot.yaml:{mark}: '{shown}' is not a finite number"


def test_quoted_inf_is_text(yl_dir: Path) -> None:
    assert load_yaml(_write(yl_dir, "prompt: '.inf'\n")).plain() == {"prompt": ".inf"}


# ------------------------------------------------------------------ the file itself


def test_missing_file_is_one_line(yl_dir: Path) -> None:
    assert _positioned_error(yl_dir / "nope.yaml") == "nope.yaml:1:1: no such file"


def test_directory_is_one_line(yl_dir: Path) -> None:
    (yl_dir / "shots").mkdir()
    assert _positioned_error(yl_dir / "shots") == "shots:1:1: is a folder, not a shot file"


def test_oversized_file_is_rejected_before_parsing(yl_dir: Path) -> None:
    path = _write(yl_dir, b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    text = _positioned_error(path)
    assert text.startswith("shot.yaml:1:1: file is ")
    assert "limited to 4 MiB" in text


# ------------------------------------------------------------------ structural extremes
# Each bound holds with either parser, fails at the first value past it, and quickly.

DEEP = 10_000


@pytest.mark.parametrize("doc, mark", [
    # The 65th '[' is the first value 65 levels below the top-level mapping.
    pytest.param("a: " + "[" * DEEP + "]" * DEEP + "\n", "1:68", id="flow-sequences"),
    # The key of the 64th mapping is the first value 65 levels down.
    pytest.param("a: " + "{b: " * DEEP + "1" + "}" * DEEP + "\n", "1:257", id="flow-mappings"),
    pytest.param("a:\n  " + "- " * DEEP + "1\n", "2:131", id="block-sequences"),
    # Block mappings need a line and an indent per level: 2000 levels is 2 MB already.
    pytest.param("".join(" " * i + "a:\n" for i in range(2000)), "65:65", id="block-mappings"),
    pytest.param("a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
                 "2:34", id="through-an-alias"),
])
def test_deep_nesting_fails_where_it_passes_the_limit(yl_dir: Path, parser: type, doc: str,
                                                      mark: str) -> None:
    started = time.perf_counter()
    text = _positioned_error(_write(yl_dir, doc))
    assert text == f"shot.yaml:{mark}: values nested more than {MAX_DEPTH} levels deep"
    assert time.perf_counter() - started < 10


def test_deepest_allowed_nesting_loads(yl_dir: Path, parser: type) -> None:
    root = load_yaml(_write(yl_dir, "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"))
    node, depth = root.value["a"], 1
    while node.value:
        node, depth = node.value[0], depth + 1
    assert depth == MAX_DEPTH


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="libyaml's own nesting limit")
def test_libyaml_nesting_limit_far_into_a_file_still_names_our_limit(yl_dir: Path) -> None:
    # libyaml refuses 1000 levels of flow nesting before handing any over; so far into a big
    # file the error stays at libyaml's position, in our words.
    doc = "x: '" + "y" * 300_000 + "'\nz: " + "[" * 2000 + "]" * 2000 + "\n"
    text = _positioned_error(_write(yl_dir, doc))
    assert text.startswith("shot.yaml:2:")
    assert text.endswith(f"values nested more than {MAX_DEPTH} levels deep")


def test_written_values_are_bounded_without_talk_of_aliases(
        yl_dir: Path, parser: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_loader, "MAX_VALUES", 1000)
    # The mapping, its key, the list and 997 items are 1000 values.
    load_yaml(_write(yl_dir, "a: [" + ", ".join(["1"] * 997) + "]\n"))
    text = _positioned_error(_write(yl_dir, "a: [" + ", ".join(["1"] * 998) + "]\n"))
    assert text == ("shot.yaml:1:2996: the file holds more than 1000 values; a shot file is "
                    "far smaller")


def test_the_real_value_limit_is_quick_and_says_what_it_counts(yl_dir: Path) -> None:
    started = time.perf_counter()
    text = _positioned_error(_write(yl_dir, "a: [" + "1," * MAX_VALUES + "1]\n"))
    assert f"holds more than {MAX_VALUES} values" in text and "alias" not in text
    assert time.perf_counter() - started < 10


def test_a_large_file_without_aliases_is_no_alias_expansion(yl_dir: Path) -> None:
    count = MAX_ALIAS_VALUES + 5000
    root = load_yaml(_write(yl_dir, "a: [" + "1," * count + "1]\n"))
    assert len(root.value["a"].value) == count + 1


def test_only_what_aliases_add_counts_toward_their_limit(
        yl_dir: Path, parser: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_loader, "MAX_ALIAS_VALUES", 100)
    written = "w: [" + ", ".join(["1"] * 500) + "]\n"  # 500 written values cost nothing here
    item = "a: &a [" + ", ".join(["1"] * 49) + "]\n"  # 50 values: the list and 49 items
    root = load_yaml(_write(yl_dir, written + item + "b: [*a, *a]\n"))
    assert len(root.value["b"].value) == 2
    text = _positioned_error(_write(yl_dir, written + item + "b: [*a, *a, *a]\n"))
    assert text == ("shot.yaml:3:13: the document expands to more than 100 values through "
                    "aliases; a shot file is far smaller")


@pytest.mark.parametrize("doc, mark, words", [
    pytest.param("a: 1\nb: x\x00y\n", "2:5", "NUL byte", id="nul"),
    pytest.param("a: 1\nb: x\x07y\n", "2:5", "control character U+0007", id="bell"),
    pytest.param("a: 1\rb: x\x1by\r", "2:5", "control character U+001B", id="after-a-bare-cr"),
    pytest.param("a: 1\r\nb: \ufffe\r\n", "2:4", "control character U+FFFE", id="after-crlf"),
])
def test_characters_yaml_forbids_are_named_where_they_are(yl_dir: Path, parser: type, doc: str,
                                                           mark: str, words: str) -> None:
    text = _positioned_error(_write(yl_dir, doc))
    assert text.startswith(f"shot.yaml:{mark}: ") and words in text


def test_lone_surrogate_escape_is_refused(yl_dir: Path, parser: type) -> None:
    text = _positioned_error(_write(yl_dir, 'a: 1\nb: "x\\ud800y"\n'))
    assert text.startswith("shot.yaml:2:")
    # PyYAML reads the escape and it is refused as half a character; libyaml refuses it.
    assert "lone surrogate escape (\\ud800)" in text or "invalid Unicode character escape" in text


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_crlf_and_bare_cr_line_breaks_keep_marks(yl_dir: Path, parser: type,
                                                 newline: str) -> None:
    root = load_yaml(_write(yl_dir, f"a: 1{newline}b:{newline}  c: 2{newline}"))
    assert root.plain() == {"a": 1, "b": {"c": 2}}
    assert root.value["b"].value["c"].mark == Mark("shot.yaml", 3, 6)


@pytest.mark.parametrize("doc, mark, message", [
    ("a: *nope\n", "1:4", "found undefined alias 'nope'"),
    ("a: &x 1\nb: &x 2\n", "2:4", "anchor '&x' is defined twice (first at line 1)"),
    ("a: 1\nb: " + "9" * 5000 + "\n", "2:4", "number of 5000 characters is too long to read"),
])
def test_other_composer_errors_are_one_line(yl_dir: Path, parser: type, doc: str, mark: str,
                                            message: str) -> None:
    assert _positioned_error(_write(yl_dir, doc)) == f"shot.yaml:{mark}: {message}"


def test_either_parser_names_the_character_that_cannot_start_a_token(
        yl_dir: Path, parser: type) -> None:
    text = _positioned_error(_write(yl_dir, "a: 1\nb: `x\n"))
    assert text == ("shot.yaml:2:4: found character '`' that cannot start any token (while "
                    "scanning for the next token)")


@pytest.mark.parametrize("special, message", [
    ("/dev/null", "is a device file, not a shot file"),
    ("fifo", "is a named pipe (FIFO), not a shot file"),
    ("dangling", "is a broken symbolic link (to 'nowhere.yaml')"),
    ("loop", "is a loop of symbolic links"),
])
def test_special_files_are_named_and_never_read(yl_dir: Path, special: str,
                                                message: str) -> None:
    if special == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no named pipes here")
        os.mkfifo(yl_dir / "fifo")  # opened for reading, it would block
    elif special == "dangling":
        (yl_dir / "dangling").symlink_to("nowhere.yaml")
    elif special == "loop":
        (yl_dir / "loop").symlink_to("loop2")
        (yl_dir / "loop2").symlink_to("loop")
    elif not Path(special).exists():
        pytest.skip(f"no {special} here")
    assert _positioned_error(Path(special)) == f"{special}:1:1: {message}"


def test_command_line_values_are_read_by_the_same_loader() -> None:
    deep = "[" * DEEP + "]" * DEEP
    assert parse_scalar(deep) == deep  # text, not a stack overflow
    assert parse_scalar("30") == 30 and parse_scalar("") is None and parse_scalar("nan") == "nan"
