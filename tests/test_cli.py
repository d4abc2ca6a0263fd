"""The command line as a user meets it: help, schema, validate and plan output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from framepack_render.store import LocalStore, default_cache_dir

from .conftest import HEAVY, QUICKSTART, REPO, run, run_without, shot_text, write

GOOD = """
model: tiny
image: images/start.png
output: renders/out.mp4
size: 256x256
sections:
  - {prompt: rolling, duration: 1.2s}
  - {prompt: stopping, duration: 1.2s}
"""


def test_help_lists_every_command_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "--help")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for verb in ("validate", "plan", "schema"):
        assert verb in out
    assert "examples:" in out and "framepack plan examples/quickstart/shot.yaml" in out


def test_schema_prints_the_shipped_json_schema(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out) == json.loads((REPO / "schemas" / "shot.schema.json").read_text())


def test_validate_prints_one_ok_line_per_shot(shot_dir, capsys):
    write(shot_dir, "shot.yaml", GOOD)
    code, out, err = run(capsys, "validate", shot_dir / "shot.yaml")
    assert code == 0 and err == ""
    assert out.startswith("ok ") and "2 windows, 73 frames" in out and "renders/out.mp4" in out


def test_validate_goes_on_after_a_bad_file_and_fails_overall(shot_dir, capsys):
    good = write(shot_dir, "good.yaml", GOOD)
    bad = write(shot_dir, "bad.yaml", GOOD.replace("steps", "x").replace("model: tiny",
                                                                          "model: tinyy"))
    code, out, err = run(capsys, "validate", bad, good)
    assert code == 2
    assert "ok " in out and "good.yaml" in out
    assert err.count("\n") == 1 and "bad.yaml:1:8: unknown model 'tinyy'" in err


def test_two_shots_writing_one_output_collide(shot_dir, capsys):
    first = write(shot_dir, "a.yaml", GOOD)
    second = write(shot_dir, "b.yaml", GOOD.replace("rolling", "sliding"))
    code, _, err = run(capsys, "validate", first, second)
    assert code == 2 and "is also written by" in err


def test_plan_shows_each_window_with_its_key_and_cache_state(shot_dir, capsys, tmp_path):
    path = write(shot_dir, "shot.yaml", GOOD)
    cache = tmp_path / "cache"
    code, out, _ = run(capsys, "plan", "--cache", cache, "--json", path)
    windows = json.loads(out)["plans"][0]["windows"]
    assert code == 0 and [w["cached"] for w in windows] == [False, False]
    assert not cache.exists()  # planning writes nothing

    LocalStore(cache).put("window", windows[1]["key"], {"latents.bin": b"\0" * 8})
    code, out, _ = run(capsys, "plan", "--cache", cache, path)
    assert code == 0
    assert windows[0]["key"][:12] in out and windows[1]["key"][:12] in out
    assert "1 of 2 nodes cached, 1 to render" in out
    assert "rolling" in out and "stopping" in out


def test_plan_json_describes_the_graph(shot_dir, capsys, tmp_path):
    text = GOOD.replace("renders/out.mp4", "renders/out-${seed}.mp4")
    path = write(shot_dir, "shot.yaml", text + "seed: ${seed}\nmatrix: {seed: [1, 2]}\n")
    code, out, _ = run(capsys, "plan", "--json", "--cache", tmp_path / "c", path)
    plans = json.loads(out)["plans"]
    assert code == 0 and len(plans) == 2
    first = plans[0]
    assert first["frames"] == 73 and first["sampling"] == "inverted"
    assert [w["order"] for w in first["windows"]] == [1, 0]
    assert first["windows"][0]["after"] == first["windows"][1]["key"]
    assert plans[0]["windows"][0]["key"] != plans[1]["windows"][0]["key"]


def test_plan_of_an_invalid_shot_exits_2_and_prints_no_table(shot_dir, capsys):
    path = write(shot_dir, "shot.yaml", GOOD.replace("1.2s}", "-1s}", 1))
    code, out, err = run(capsys, "plan", path)
    assert code == 2 and out == ""
    assert err.startswith(f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}:6:")


def test_validate_and_plan_never_import_torch(shot_dir, tmp_path):
    result = run_without(HEAVY, """
        codes = [main(['validate', sys.argv[1]]),
                 main(['plan', '--cache', sys.argv[2], sys.argv[1]])]
        sys.exit(max(codes))
    """, QUICKSTART / "shot.yaml", tmp_path / "cache", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ok " in result.stdout and "windows (time order)" in result.stdout


def test_the_console_script_is_installed_and_runs():
    script = Path(sys.executable).parent / "framepack"
    result = subprocess.run([str(script), "validate", str(QUICKSTART / "shot.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("ok ")


@pytest.mark.parametrize("shot", sorted(
    p for p in (REPO / "examples").rglob("*.yaml")), ids=lambda p: p.parent.name + "/" + p.name)
def test_every_example_validates(shot, capsys):
    code, out, err = run(capsys, "validate", shot)
    assert code == 0, err
    assert "warning" not in err


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAMEPACK_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("FRAMEPACK_CACHE")
    assert "framepack-render" in str(default_cache_dir())


def test_cache_entries_verify_and_a_corrupt_one_is_detected(tmp_path):
    store = LocalStore(tmp_path)
    folder = store.put("window", "ab" * 32, {"latents.bin": b"0123456789"})
    assert store.has("window", "ab" * 32) and store.verify("window", "ab" * 32)
    (folder / "latents.bin").write_bytes(b"0123456780")
    assert not store.verify("window", "ab" * 32)
    assert not store.verify("window", "cd" * 32)
    leftovers = [p.name for p in folder.parent.iterdir()]
    assert leftovers == ["ab" * 32]  # no staging folders left behind


def _masks(folder: Path) -> None:
    from PIL import Image

    Image.new("L", (256, 256), 255).save(folder / "images" / "person-mask.png")
    Image.new("RGB", (256, 256), (200, 30, 60)).save(folder / "images" / "dress.png")
    Image.new("L", (256, 256), 0).save(folder / "images" / "dress-mask.png")


@pytest.mark.parametrize("template,vars_", [
    ("talking-head.yaml", "{image: images/start.png, name: hello}"),
    ("dance.yaml", "{image: images/start.png, style: tango}"),
    ("outfit-swap.yaml", "{image: images/start.png, person_mask: images/person-mask.png, "
                         "outfit: images/dress.png, outfit_mask: images/dress-mask.png}"),
])
def test_every_template_makes_a_valid_shot(shot_dir, capsys, template, vars_):
    _masks(shot_dir)
    path = write(shot_dir, "shot.yaml",
                 f"extends: {REPO / 'templates' / template}\nmodel: tiny\nvars: {vars_}\n")
    code, out, err = run(capsys, "validate", path)
    assert code == 0, err
    assert err == ""
    assert "\nok " in "\n" + out and str(Path("renders")) in out


def test_a_template_without_its_required_var_names_it(shot_dir, capsys):
    path = write(shot_dir, "shot.yaml", f"extends: {REPO / 'templates' / 'dance.yaml'}\n")
    code, _, err = run(capsys, "validate", path)
    assert code == 2 and "undefined var 'image'" in err and "dance.yaml:" in err


def test_the_csv_batch_example_plans_one_shot_per_row(capsys, tmp_path):
    batch = REPO / "examples" / "batch"
    code, out, _ = run(capsys, "plan", "--json", "--cache", tmp_path, batch / "jobs.csv",
                       "--template", batch / "talking.yaml")
    plans = json.loads(out)["plans"]
    assert code == 0
    assert [Path(p["outputs"][0]["path"]).name for p in plans] == ["anna.mp4", "ben.mp4"]
    assert [len(p["windows"]) for p in plans] == [1, 2]


def test_matrix_labels_print_with_their_brackets(folder, capsys, tmp_path):
    """`[seed=1]` is a label, not console markup: both shots are told apart on the console."""
    text = shot_text(output="out-${seed}/", steps="1", prompt="a ball", duration="1.2s",
                     seed="${seed}")
    path = write(folder, "m.yaml", text + "matrix: {seed: [1, 2]}\n")
    code, _, err = run(capsys, "render", path, "--cache", tmp_path / "cache", "--no-preview")
    assert code == 0, err
    assert "m.yaml [seed=1]" in err and "m.yaml [seed=2]" in err
