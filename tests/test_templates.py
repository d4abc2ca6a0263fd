"""Templates and batches: extends, vars, --set, matrix and CSV jobs, through spec.load()."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from framepack_render.cli import main
from framepack_render.shot import ShotError, load

ONE_LINE = re.compile(r"^[^:\n]+:\d+:\d+: [^\n]+$")


@pytest.fixture
def tpl_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (also the working directory) with a start image."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "images" / "start.png")
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _error(path: Path | str, **kwargs) -> ShotError:
    with pytest.raises(ShotError) as info:
        load(path, **kwargs)
    for line in str(info.value).splitlines():
        assert "Traceback" not in line
    return info.value


def _only_error(path: Path | str, **kwargs) -> str:
    error = _error(path, **kwargs)
    assert len(error.diagnostics) == 1, str(error)
    return str(error.diagnostics[0])


SHOT = """\
    version: 1
    model: tiny
    image: images/start.png
    output: renders/out.mp4
    size: 256x256
    prompt: a cat
    duration: 1s
    """


# ================================================================== extends


def _template_project(root: Path) -> None:
    """tpl/base.yaml <- mid.yaml <- shot.yaml; the template has its own image folder."""
    (root / "tpl" / "images").mkdir(parents=True)
    Image.new("RGB", (96, 48), (0, 90, 0)).save(root / "tpl" / "images" / "tstart.png")
    _write(root / "tpl" / "base.yaml", """\
        version: 1
        model: tiny
        image: images/tstart.png
        output: out/${name}.mp4
        size: 256x256
        steps: 8
        guidance: 6
        flow_shift: {preset: subtle, detail: high}
        post: {color_match: first, crf: 20}
        sections:
          - prompt: template first
            duration: 1s
          - prompt: template second
            duration: 1s
        vars:
          name: base
        """)
    _write(root / "mid.yaml", """\
        extends: tpl/base.yaml
        steps: 9
        flow_shift: {detail: extreme}
        post: {crf: 10}
        """)
    _write(root / "shot.yaml", """\
        extends: mid.yaml
        seed: 5
        sections:
          - prompt: mine
            duration: 2s
        vars:
          name: child
        """)


def test_extends_chain_of_three_merges_mappings_deeply(tpl_dir: Path) -> None:
    _template_project(tpl_dir)
    (shot,) = load(tpl_dir / "shot.yaml").shots
    sampling = shot.sections[0].sampling
    assert sampling.seed == 5          # from the shot
    assert sampling.steps == 9         # mid overrides the template
    assert sampling.guidance == 6.0    # only in the template
    # flow_shift: the template's preset survives, the mid file's detail wins
    assert (sampling.flow_shift.preset, sampling.flow_shift.detail) == ("subtle", "extreme")
    assert (shot.post.color_match, shot.post.crf) == ("first", 10)
    assert shot.vars["name"] == "child"


def test_extends_lists_replace(tpl_dir: Path) -> None:
    _template_project(tpl_dir)
    (shot,) = load(tpl_dir / "shot.yaml").shots
    assert [s.prompt for s in shot.sections] == ["mine"]
    assert shot.sections[0].frames == 60  # 2 s at 30 fps, not the template's 1 s


def test_template_paths_resolve_against_the_template_folder(tpl_dir: Path) -> None:
    _template_project(tpl_dir)
    (shot,) = load(tpl_dir / "shot.yaml").shots
    assert shot.image.info is not None
    assert shot.image.info.path.resolve() == (tpl_dir / "tpl" / "images" / "tstart.png")
    assert (shot.image.info.width, shot.image.info.height) == (96, 48)
    # Outputs, even when written in a template, resolve inside the shot file's folder.
    assert [o.path for o in shot.outputs] == [tpl_dir / "out" / "child.mp4"]


def test_template_image_is_not_looked_up_in_the_shot_folder(tpl_dir: Path) -> None:
    # images/start.png exists next to the shot but not next to the template.
    _write(tpl_dir / "tpl" / "t.yaml", SHOT)
    _write(tpl_dir / "shot.yaml", "extends: tpl/t.yaml\n")
    text = _only_error(tpl_dir / "shot.yaml")
    assert text.startswith("tpl/t.yaml:3:8: image 'images/start.png' not found")


def test_path_written_in_the_shot_overrides_template_and_resolves_locally(tpl_dir: Path) -> None:
    _template_project(tpl_dir)
    with (tpl_dir / "shot.yaml").open("a") as f:
        f.write("image: images/start.png\n")
    (shot,) = load(tpl_dir / "shot.yaml").shots
    assert shot.image.info.path.resolve() == tpl_dir / "images" / "start.png"


def test_error_in_a_template_value_points_into_the_template(tpl_dir: Path) -> None:
    _write(tpl_dir / "tpl" / "t.yaml", """\
        version: 1
        steps: 0
        """)
    _write(tpl_dir / "shot.yaml", """\
        extends: tpl/t.yaml
        model: tiny
        image: images/start.png
        output: renders/out.mp4
        prompt: a
        duration: 1s
        """)
    assert _only_error(tpl_dir / "shot.yaml") == \
        "tpl/t.yaml:2:8: steps must be at least 1, not 0"


def test_extends_cycle_names_the_files(tpl_dir: Path) -> None:
    _write(tpl_dir / "a.yaml", "extends: b.yaml\n")
    _write(tpl_dir / "b.yaml", "version: 1\nextends: c.yaml\n")
    _write(tpl_dir / "c.yaml", "# c\n\nextends: a.yaml\n")
    text = _only_error(tpl_dir / "a.yaml")
    assert text == "c.yaml:3:10: extends cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml"


def test_extends_itself_is_a_cycle(tpl_dir: Path) -> None:
    _write(tpl_dir / "self.yaml", "extends: ./self.yaml\n")
    assert _only_error(tpl_dir / "self.yaml") == \
        "self.yaml:1:10: extends cycle: self.yaml -> self.yaml"


def test_missing_template_suggests_near_name(tpl_dir: Path) -> None:
    _write(tpl_dir / "tpl" / "base.yaml", SHOT)
    _write(tpl_dir / "shot.yaml", "version: 1\nextends: tpl/bsae.yaml\n")
    assert _only_error(tpl_dir / "shot.yaml") == \
        "shot.yaml:2:10: template tpl/bsae.yaml not found; did you mean 'base.yaml'?"


def test_missing_template_without_near_name(tpl_dir: Path) -> None:
    _write(tpl_dir / "shot.yaml", "extends: nowhere/at/all.yaml\n")
    text = _only_error(tpl_dir / "shot.yaml")
    assert text == "shot.yaml:1:10: template nowhere/at/all.yaml not found"


def test_extends_a_folder_says_it_is_a_folder(tpl_dir: Path) -> None:
    (tpl_dir / "tpl").mkdir()
    _write(tpl_dir / "shot.yaml", "extends: tpl\n")
    text = _only_error(tpl_dir / "shot.yaml")
    assert text == "shot.yaml:1:10: template tpl is a folder, not a shot file"


def test_extends_must_be_a_path(tpl_dir: Path) -> None:
    _write(tpl_dir / "shot.yaml", "extends: 5\n")
    assert _only_error(tpl_dir / "shot.yaml") == \
        "shot.yaml:1:10: extends must be the path of a template file"


# ================================================================== vars


def _vars_shot(root: Path, extra: str = "", prompt: str = "a ${animal} for ${price} on $${HOME}",
               **overrides: str) -> Path:
    lines = {
        "version": "1",
        "model": "tiny",
        "image": "images/start.png",
        "output": "renders/${animal}-${seed}.mp4",
        "size": "256x256",
        "seed": "${seed}",
        "steps": "${steps}",
        "teacache": "${fast}",
        "prompt": prompt,
        "duration": "1s",
    }
    lines.update(overrides)
    text = "".join(f"{k}: {v}\n" for k, v in lines.items())
    text += "vars:\n  seed: 7\n  steps: 12\n  animal: cat\n  price: 1.5\n  fast: true\n"
    return _write(root / "shot.yaml", text + extra)


def test_whole_string_var_keeps_its_type(tpl_dir: Path) -> None:
    (shot,) = load(_vars_shot(tpl_dir)).shots
    sampling = shot.sections[0].sampling
    assert sampling.seed == 7 and isinstance(sampling.seed, int)
    assert sampling.steps == 12
    assert sampling.teacache == 0.15  # true: the default threshold, not the text 'true'


def test_partial_substitution_writes_text_and_dollar_dollar_is_literal(tpl_dir: Path) -> None:
    (shot,) = load(_vars_shot(tpl_dir)).shots
    assert shot.sections[0].prompt == "a cat for 1.5 on ${HOME}"
    assert shot.outputs[0].path == tpl_dir / "renders" / "cat-7.mp4"


def test_typed_var_error_points_at_the_var_definition(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, steps="${animal}")
    # steps: ${animal} is the text 'cat': the error points where 'cat' was written (line 14).
    assert _only_error(path) == "shot.yaml:14:11: steps must be a whole number, not 'cat'"


def test_undefined_var_has_did_you_mean(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, prompt="a ${animl}")
    assert _only_error(path) == "shot.yaml:9:9: undefined var 'animl'; did you mean 'animal'?"


def test_undefined_var_without_vars_says_where_to_define_it(tpl_dir: Path) -> None:
    _write(tpl_dir / "shot.yaml", SHOT.replace("a cat", "a ${animal}"))
    assert _only_error(tpl_dir / "shot.yaml") == \
        "shot.yaml:6:9: undefined var 'animal'; define it under vars:"


def test_undefined_whole_string_var(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, seed="${sede}")
    assert _only_error(path) == "shot.yaml:6:7: undefined var 'sede'; did you mean 'seed'?"


def test_unclosed_var_reference(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, prompt="a ${animal at home")
    text = _only_error(path)
    assert text.startswith("shot.yaml:9:9: unclosed '${' in 'a ${animal at home'")
    assert "$${" in text  # tells how to write a literal ${


def test_var_reference_that_is_not_a_name(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, prompt="price ${1x}")
    text = _only_error(path)
    assert text.startswith("shot.yaml:9:9: '${1x}' is not a var reference")


def test_bad_var_name_in_vars(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, extra="  2fast: x\n")
    assert _only_error(path).startswith("shot.yaml:17:3: '2fast' is not a var name")


def test_var_must_be_a_scalar(tpl_dir: Path) -> None:
    path = _vars_shot(tpl_dir, extra="  pair: [1, 2]\n")
    assert _only_error(path) == "shot.yaml:17:9: var 'pair' must be text, a number or true/false"


def test_vars_defined_in_a_template_are_used_by_the_shot(tpl_dir: Path) -> None:
    _write(tpl_dir / "tpl" / "t.yaml", "vars:\n  animal: owl\n  n: 3\n")
    _write(tpl_dir / "shot.yaml", "extends: tpl/t.yaml\n" + textwrap.dedent(SHOT).replace(
        "a cat", "an ${animal}") + "steps: ${n}\n")
    (shot,) = load(tpl_dir / "shot.yaml").shots
    assert shot.sections[0].prompt == "an owl"
    assert shot.sections[0].sampling.steps == 3


# ================================================================== --set


def test_set_overrides_vars_with_yaml_typing(tpl_dir: Path) -> None:
    (shot,) = load(_vars_shot(tpl_dir), sets=["seed=9", "animal=dog", "fast=false"]).shots
    sampling = shot.sections[0].sampling
    assert sampling.seed == 9
    assert sampling.teacache is None
    assert shot.sections[0].prompt == "a dog for 1.5 on ${HOME}"
    assert shot.outputs[0].path == tpl_dir / "renders" / "dog-9.mp4"


def test_set_unknown_name_suggests(tpl_dir: Path) -> None:
    error = _error(_vars_shot(tpl_dir), sets=["sede=9"])
    assert str(error) == ("shot.yaml:1:1: --set sede=...: this shot has no var 'sede'; "
                          "did you mean 'seed'?")


def test_set_value_error_points_where_the_var_is_used(tpl_dir: Path) -> None:
    error = _error(_vars_shot(tpl_dir), sets=["seed=-1"])
    assert str(error) == "shot.yaml:6:7: seed must be at least 0, not -1"


@pytest.mark.parametrize("item", ["seed", "=3", "1x=3"])
def test_set_malformed_item_on_the_command_line(
        tpl_dir: Path, capsys: pytest.CaptureFixture[str], item: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate", str(_vars_shot(tpl_dir)), "--set", item])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --set: '{item}' is not NAME=VALUE" in err
    assert "Traceback" not in err


def test_set_malformed_item_through_load_is_a_shot_error(tpl_dir: Path) -> None:
    with pytest.raises(ShotError):
        load(_vars_shot(tpl_dir), sets=["seed"])


def test_set_gives_a_var_that_is_used_but_not_declared(tpl_dir: Path) -> None:
    _write(tpl_dir / "shot.yaml", SHOT.replace("a cat", "a ${animal}"))
    (shot,) = load(tpl_dir / "shot.yaml", sets=["animal=fox"]).shots
    assert shot.sections[0].prompt == "a fox"


def test_set_path_resolves_from_the_working_directory(
        tpl_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tpl_dir / "project"
    _write(project / "shot.yaml", SHOT.replace("images/start.png", "${img}"))
    (tpl_dir / "pics").mkdir()
    Image.new("RGB", (48, 96)).save(tpl_dir / "pics" / "tall.png")
    (shot,) = load(project / "shot.yaml", sets=["img=pics/tall.png"]).shots
    assert shot.image.info.path.resolve() == tpl_dir / "pics" / "tall.png"


def test_set_through_the_cli(tpl_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _vars_shot(tpl_dir)
    assert main(["validate", str(path), "--set", "animal=cow", "--set", "seed=3"]) == 0
    assert "renders/cow-3.mp4" in capsys.readouterr().out


# ================================================================== matrix


MATRIX = """\
    version: 1
    model: tiny
    image: images/start.png
    output: out/${animal}-${seed}.mp4
    size: 256x256
    seed: ${seed}
    prompt: a ${animal}
    duration: 1s
    matrix:
      seed: [1, 2, 3]
      animal: [cat, dog]
    """


def test_matrix_expands_to_the_cartesian_product(tpl_dir: Path) -> None:
    shots = load(_write(tpl_dir / "m.yaml", MATRIX)).shots
    assert len(shots) == 6
    combos = {(s.sections[0].sampling.seed, s.sections[0].prompt) for s in shots}
    assert combos == {(seed, f"a {animal}") for seed in (1, 2, 3) for animal in ("cat", "dog")}
    assert [s.label for s in shots] == [
        f"m.yaml [seed={seed}, animal={animal}]" for seed in (1, 2, 3) for animal in ("cat", "dog")]
    assert len({s.outputs[0].path for s in shots}) == 6


def test_set_overrides_a_matrix_axis(tpl_dir: Path) -> None:
    shots = load(_write(tpl_dir / "m.yaml", MATRIX), sets=["seed=42"]).shots
    assert len(shots) == 2
    assert {s.sections[0].sampling.seed for s in shots} == {42}
    assert {s.outputs[0].path.name for s in shots} == {"cat-42.mp4", "dog-42.mp4"}


def test_matrix_output_collision(tpl_dir: Path) -> None:
    path = _write(tpl_dir / "m.yaml", MATRIX.replace("-${seed}.mp4", ".mp4"))
    error = _error(path)
    lines = str(error).splitlines()
    assert lines, "no error"
    for line in lines:
        assert ONE_LINE.match(line), line
        assert line.startswith("m.yaml:4:9: output out/")
        assert "is also written by m.yaml [seed=1, animal=" in line
    assert any("out/cat.mp4" in line for line in lines)


def test_matrix_axis_must_be_a_list(tpl_dir: Path) -> None:
    path = _write(tpl_dir / "m.yaml", MATRIX.replace("[1, 2, 3]", "5"))
    assert _only_error(path) == "m.yaml:10:9: matrix.seed must be a non-empty list of values"


def test_matrix_through_the_cli_prints_one_line_per_shot(
        tpl_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tpl_dir / "m.yaml", MATRIX)
    assert main(["validate", str(path)]) == 0
    ok_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ok ")]
    assert len(ok_lines) == 6


# ================================================================== CSV jobs


JOB_TEMPLATE = """\
    version: 1
    model: tiny
    image: images/start.png
    output: out/${name}.mp4
    size: 256x256
    seed: ${seed}
    steps: ${steps}
    prompt: a ${animal}
    duration: 1s
    vars:
      steps: 10
    """


@pytest.fixture
def job_template(tpl_dir: Path) -> Path:
    return _write(tpl_dir / "tpl" / "job.yaml", JOB_TEMPLATE.replace(
        "images/start.png", "../images/start.png"))


def _csv(root: Path, text: str, name: str = "jobs.csv") -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_column_the_template_never_uses_warns(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal,colour\njob1,1,cat,red\n")
    loaded = load(jobs, template=job_template)
    assert len(loaded.shots) == 1
    assert [str(w) for w in loaded.warnings] == [
        "jobs.csv:1:18: warning: column 'colour' is not used by the template"]


def test_csv_one_shot_per_row(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, 'name,seed,animal\njob1,1,cat\njob2,2,"dog, big"\n\njob3,3,owl\n')
    shots = load(jobs, template=job_template).shots
    assert [s.label.split(" ")[0] for s in shots] == ["jobs.csv:2", "jobs.csv:3", "jobs.csv:5"]
    assert [s.sections[0].prompt for s in shots] == ["a cat", "a dog, big", "a owl"]
    assert [s.sections[0].sampling.seed for s in shots] == [1, 2, 3]  # numbers stay numbers
    assert [s.sections[0].sampling.steps for s in shots] == [10, 10, 10]  # template's var
    # Outputs resolve next to the CSV, not next to the template.
    assert [o.path for s in shots for o in s.outputs] == [
        tpl_dir / "out" / f"job{i}.mp4" for i in (1, 2, 3)]


def test_csv_column_overrides_template_var(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal,steps\na,1,cat,30\n")
    (shot,) = load(jobs, template=job_template).shots
    assert shot.sections[0].sampling.steps == 30


def test_csv_semicolon_delimiter(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, "name;seed;animal\na;1;cat\nb;2;dog\n")
    shots = load(jobs, template=job_template).shots
    assert [s.sections[0].prompt for s in shots] == ["a cat", "a dog"]


def test_csv_error_points_at_the_cell(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\njob1,1,cat\njob2,-5,dog\n")
    assert _only_error(jobs, template=job_template) == \
        "jobs.csv:3:6: seed must be at least 0, not -5"


def test_csv_error_column_after_a_quoted_cell(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, 'name,animal,seed\njob1,"dog, big",x\n')
    assert _only_error(jobs, template=job_template) == \
        "jobs.csv:2:17: seed must be a whole number, not 'x'"


def test_csv_collision_between_rows(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\njob1,1,cat\njob1,2,dog\n")
    text = _only_error(jobs, template=job_template)
    assert ONE_LINE.match(text)
    assert "output out/job1.mp4 is also written by jobs.csv:2" in text


def test_csv_collision_names_the_colliding_row(tpl_dir: Path, job_template: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\njob1,1,cat\njob1,2,dog\n")
    text = _only_error(jobs, template=job_template)
    assert "jobs.csv:3" in text


@pytest.mark.parametrize("text, message", [
    ("name,seed,animal\njob1,1,cat\njob2,2\n", "jobs.csv:3:1: row has 2 values for 3 columns"),
    ("name,seed,animal\njob1,1,cat,x\n", "jobs.csv:2:1: row has 4 values for 3 columns"),
])
def test_csv_wrong_column_count(tpl_dir: Path, job_template: Path, text: str,
                                message: str) -> None:
    assert _only_error(_csv(tpl_dir, text), template=job_template) == message


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_csv_empty(tpl_dir: Path, job_template: Path, text: str) -> None:
    assert _only_error(_csv(tpl_dir, text), template=job_template) == \
        "jobs.csv:1:1: the CSV is empty; its first row names the vars"


def test_csv_header_only(tpl_dir: Path, job_template: Path) -> None:
    assert _only_error(_csv(tpl_dir, "name,seed,animal\n"), template=job_template) == \
        "jobs.csv:1:1: the CSV has a header but no jobs"


def test_csv_bad_column_name(tpl_dir: Path, job_template: Path) -> None:
    text = _only_error(_csv(tpl_dir, "name,seed,1animal\na,1,cat\n"), template=job_template)
    assert text.startswith("jobs.csv:1:11: column '1animal' is not a var name")


def test_csv_duplicate_column(tpl_dir: Path, job_template: Path) -> None:
    text = _only_error(_csv(tpl_dir, "name,seed,name\na,1,b\n"), template=job_template)
    assert text == "jobs.csv:1:11: duplicate column 'name'"


def test_csv_without_template(tpl_dir: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\na,1,cat\n")
    text = _only_error(jobs)
    assert text.startswith("jobs.csv:1:1: a CSV of jobs needs --template")


def test_csv_missing_template_file(tpl_dir: Path) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\na,1,cat\n")
    assert _only_error(jobs, template=tpl_dir / "nope.yaml") == "nope.yaml:1:1: no such file"


def test_csv_through_the_cli(tpl_dir: Path, job_template: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\njob1,1,cat\njob2,2,dog\n")
    assert main(["validate", str(jobs), "--template", str(job_template)]) == 0
    out = capsys.readouterr().out
    assert "ok jobs.csv:2" in out and "out/job1.mp4" in out
    assert "ok jobs.csv:3" in out and "out/job2.mp4" in out


def test_csv_error_through_the_cli(tpl_dir: Path, job_template: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    jobs = _csv(tpl_dir, "name,seed,animal\njob1,1,cat\njob2,1,dog\njob3,3,owl,x\n")
    assert main(["validate", str(jobs), "--template", str(job_template)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "jobs.csv:4:1: row has 4 values for 3 columns"
    assert "ok " not in captured.out
