"""`framepack import deforum`: Deforum settings files and Parseq manifests as flux-deforum shots
(the YAML written, the schedules' values frame for frame, the warnings, the refusals)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from framepack_render import importers
from framepack_render.cli import main
from framepack_render.importers.schedule_text import complement, curve
from framepack_render.shot.schedules import parse_schedule

from .conftest import run_without
from .test_importers import _import

WARNING = re.compile(r"^[^\n]+:\d+: warning: [^\n]+$")
STRENGTH = "0: (0.65), 60: (0.5), 90: (0.55+0.05*sin(t/10))"
SETTINGS = {
    "W": 500, "H": 512, "seed": 1234, "sampler": "Euler a", "steps": 20,
    "seed_behavior": "iter", "seed_iter_N": 1, "use_init": False, "strength": 0.8,
    "prompts": {"0": " a swamp bunny, detailed --neg nsfw",
                "30": "a clean cat",
                "max_f-20": "a coconut --neg photo"},
    "positive_prompts": "masterpiece,", "negative_prompts": "blurry",
    "animation_mode": "3D", "max_frames": 120, "border": "replicate",
    "angle": "0: (0)", "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
    "translation_x": "0: (0), 60: (2)", "translation_y": "0: (0)",
    "translation_z": "0: (1.75)", "noise_schedule": "0: (0.065)",
    "strength_schedule": STRENGTH, "contrast_schedule": "0: (1.0)",
    "cfg_scale_schedule": "0: (7)", "color_coherence": "HSV", "diffusion_cadence": 2,
    "use_depth_warping": True, "cn_1_enabled": True, "cn_1_model": "control_v11p_canny",
    "parseq_manifest": "", "fps": 15, "sd_model_name": "revAnimated_v122.safetensors",
}


def _settings_file(folder: Path, **changes: object) -> Path:
    path = folder / "20240101_settings.txt"
    path.write_text(json.dumps({**SETTINGS, **changes}, indent=4), encoding="utf-8")
    return path


def _manifest(frames: int = 40) -> dict:
    rendered = [{
        "frame": f, "zoom": 1.0 + 0.01 * f, "zoom_delta": 1.01 if f < 20 else 1 + 0.0005 * (f - 20),
        "angle": 0.5 * f, "angle_delta": 0.5 * f if f < 10 else 5.0,
        "translation_x_delta": 2 * math.sin(f / 5), "translation_y_delta": 0,
        "rotation_3d_y": 0.1 * f, "strength": 0.6 + 0.005 * f, "scale": 7, "seed": 100 + f,
        "deforum_prompt": "a forest --neg blurry" if f < 20 else "a desert",
    } for f in range(frames)]
    return {"meta": {"generated_by": "sd_parseq"}, "options": {"output_fps": 24},
            "keyframes": [{"frame": 0, "zoom": 1}], "rendered_frames": rendered}


def _written(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _values(value: object, frames: int, seed: int = 0) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * frames
    return parse_schedule(str(value), fps=24).values(frames, seed)


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-9 for x, y in zip(a, b))


# ---------------------------------------------------------------- Deforum settings


def test_settings_become_a_flux_deforum_shot(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = _settings_file(tmp_path)
    code, out, err = _import(capsys, "deforum", source, "-o", tmp_path / "shots")
    assert code == 0, err
    shot = Path(out.strip())
    doc = _written(shot)
    assert list(doc)[:4] == ["version", "engine", "model", "output"]
    assert doc["engine"] == "flux-deforum" and doc["model"] == "flux-dev"
    assert doc["size"] == "496x512" and doc["fps"] == 15.0 and doc["frames"] == 120
    assert doc["prompts"] == {0: "masterpiece, a swamp bunny, detailed --neg nsfw blurry",
                              30: "masterpiece, a clean cat --neg blurry",
                              99: "masterpiece, a coconut --neg photo blurry"}
    assert doc["steps"] == 20 and doc["guidance"] == 7.0 and doc["seed"] == 1234
    assert doc["noise_mode"] == "incremental"
    assert doc["zoom"] == SETTINGS["zoom"] and doc["translation_x"] == "0: (0), 60: (2)"
    assert doc["angle"] == 0.0 and doc["translation_y"] == 0.0
    assert doc["color_coherence"] == {"mode": "match_first", "space": "hsv"}
    assert shot.read_text().startswith("# Imported by `framepack import` from")


def test_strength_is_one_minus_deforums_on_every_frame(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    code, out, err = _import(capsys, _settings_file(tmp_path), "-o", tmp_path / "shots")
    assert code == 0, err
    strength = _written(Path(out.strip()))["strength"]
    kept = parse_schedule(STRENGTH, fps=15).values(120, 1234)
    assert _close(_values(strength, 120, 1234), [1 - v for v in kept])
    # Plain numbers stay plain numbers (interpolated), expressions stay expressions.
    assert strength == "0:(0.35), 60:(0.5), 90:(1-((0.55+0.05*sin(t/10))))"
    assert complement(parse_schedule("0:(0.7)", fps=15), 10, 0) == pytest.approx(0.3)


def test_what_does_not_carry_over_is_warned_with_its_line(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    source = _settings_file(tmp_path, noise_schedule="0: (0.02)", seed_behavior="ladder")
    code, out, err = _import(capsys, source, "-o", tmp_path / "shots")
    assert code == 0, err
    lines = err.splitlines()
    assert lines and all(WARNING.match(line) for line in lines), err
    text = source.read_text()

    def line_of(key: str) -> int:
        return text[:text.index(f'"{key}"')].count("\n") + 1

    expected = {
        "animation_mode": "3D animation (translation_z, rotation_3d_*, depth warping, fov) "
                          "does not carry over",
        "diffusion_cadence": "diffusion_cadence 2",
        "cn_1_enabled": "ControlNet unit 1 (control_v11p_canny) does not carry over",
        "sd_model_name": "model 'revAnimated_v122.safetensors' is not a FLUX.1 model",
        "noise_schedule": "noise_schedule (Deforum's added noise) does not carry over",
        "seed_behavior": "seed_behavior 'ladder' has no flux-deforum noise mode",
        "cfg_scale_schedule": "written as FLUX's distilled guidance",
        "W": "size 500x512 is rendered as 496x512",
    }
    for key, words in expected.items():
        assert any(line.startswith(f"{source}:{line_of(key)}: warning: ") and words in line
                   for line in lines), (key, err)
    assert "contrast_schedule" not in err  # at Deforum's default: nothing lost
    comment = " ".join(line.lstrip("# ") for line in Path(out.strip()).read_text().splitlines()
                       if line.startswith("#"))
    assert "warning (" in comment and "ControlNet unit 1" in comment


def test_a_random_seed_is_fixed_and_a_flux_model_is_kept(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    source = _settings_file(tmp_path, seed=-1, sd_model_name="flux1-schnell-fp8.safetensors",
                            seed_behavior="fixed", distilled_cfg_scale_schedule="0: (3.5)")
    code, out, err = _import(capsys, source, "-o", tmp_path / "a")
    assert code == 0, err
    first = _written(Path(out.strip()))
    assert first["model"] == "flux-schnell" and first["noise_mode"] == "fixed"
    assert first["guidance"] == 3.5 and "cfg_scale_schedule" not in err
    assert "the seed is random in the source; fixed to" in err
    code, out, _ = _import(capsys, source, "-o", tmp_path / "b")
    assert _written(Path(out.strip()))["seed"] == first["seed"]


def test_an_embedded_parseq_manifest_overrides_the_schedules(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    source = _settings_file(tmp_path, max_frames=40, animation_mode="2D",
                            parseq_manifest=json.dumps(_manifest()))
    code, out, err = _import(capsys, source, "-o", tmp_path / "shots")
    assert code == 0, err
    doc = _written(Path(out.strip()))
    assert doc["prompts"] == {0: "a forest --neg blurry", 20: "a desert"}
    assert _close(_values(doc["angle"], 40), [0.5 * f if f < 10 else 5.0 for f in range(40)])
    assert doc["translation_y"] == 0.0
    assert "rotation_3d_y (3D motion) does not carry over" in err


# ---------------------------------------------------------------- Parseq manifests


def test_a_parseq_manifest_gives_back_every_rendered_value(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    manifest = _manifest()
    source = tmp_path / "manifest.json"
    source.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    code, out, err = _import(capsys, source, "-o", tmp_path / "shots")
    assert code == 0, err
    doc = _written(Path(out.strip()))
    rendered = manifest["rendered_frames"]
    assert doc["engine"] == "flux-deforum" and doc["fps"] == 24.0 and doc["frames"] == 40
    assert "size" not in doc
    for key in ("zoom", "angle", "translation_x"):  # Deforum reads the deltas by default
        assert _close(_values(doc[key], 40), [f[f"{key}_delta"] for f in rendered]), key
    assert _close(_values(doc["strength"], 40), [1 - f["strength"] for f in rendered])
    assert doc["angle"] == "0:(0), 10:(5)"  # keyframes only where the curve bends
    assert len(doc["zoom"].split(",")) == 4
    assert doc["guidance"] == 7.0 and doc["seed"] == 100 and doc["noise_mode"] == "incremental"
    assert doc["prompts"] == {0: "a forest --neg blurry", 20: "a desert"}
    assert "rotation_3d_y (3D motion) does not carry over" in err


def test_curves_keep_their_values_whatever_their_shape() -> None:
    shapes = [[math.sin(f / 7) * 3 for f in range(200)], [f * 0.1 for f in range(50)],
              [1.0] * 5 + [2.0] * 5, [1e-5 * f ** 2 for f in range(30)], [0.0, 1e-7]]
    for values in shapes:
        assert _close(_values(curve(values), len(values)), values)


# ---------------------------------------------------------------- refusals and checks


def test_a_malformed_schedule_points_into_the_settings_file(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    source = _settings_file(tmp_path, zoom="0: (1.0), 30: (1.0+sine(t))")
    code, out, err = _import(capsys, source, "-o", tmp_path / "shots")
    assert code == 2 and out == ""
    line = next(n for n, text in enumerate(source.read_text().splitlines(), 1) if '"zoom"' in text)
    column = source.read_text().splitlines()[line - 1].index("sine") + 1
    assert err.strip() == f"{source}:{line}:{column}: zoom schedule: unknown function 'sine'; " \
                          "did you mean 'sin'?"
    assert not (tmp_path / "shots").exists()


def test_shapes_decide_the_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings_file(tmp_path)
    manifest = tmp_path / "parseq.json"
    manifest.write_text(json.dumps(_manifest(5)), encoding="utf-8")
    assert importers.detect(settings) == "deforum"  # JSON in a .txt: not a prompt file
    assert importers.detect(manifest) == "deforum"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"rendered_frames": [{"frame": 0}, {"frame": 2}]}))
    code, _, err = _import(capsys, broken, "-o", tmp_path / "shots")
    assert code == 2 and "rendered_frames has no frame 1" in err


def test_imported_shots_validate_without_torch(tmp_path: Path) -> None:
    settings = _settings_file(tmp_path)
    manifest = tmp_path / "parseq.json"
    manifest.write_text(json.dumps(_manifest()), encoding="utf-8")
    body = """
    import argparse
    from framepack_render import importers
    parser = argparse.ArgumentParser()
    importers.add_arguments(parser)
    args = parser.parse_args(sys.argv[1:])
    assert importers.run(args) == 0
    shots = sorted(str(p) for p in args.output.glob('*.yaml'))
    raise SystemExit(main(['validate', *shots]))
    """
    result = run_without(("torch", "diffusers", "transformers"), body, settings, manifest,
                         "-o", tmp_path / "shots")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == 2, result.stdout


def test_the_cli_imports_deforum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "deforum", str(_settings_file(tmp_path)), "-o",
                 str(tmp_path / "shots")]) == 0
    assert capsys.readouterr().out.strip().endswith("20240101_settings.yaml")
