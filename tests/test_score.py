"""`framepack score`: the JSON a user and `report` read, prompt changes from a shot's sidecar,
the score cache, CLIP when weights are present (a tiny random CLIP) and when they are not,
and the command's table, JSON and errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from framepack_render.evaluate import score as scoring
from framepack_render.evaluate.score import score_paths, score_video
from framepack_render.store import LocalStore

from .conftest import run, run_without, shot_text, write
from .test_metrics import A, B, C, FPS, no_clip, write_frames, write_video  # noqa: F401

TOP_KEYS = {"path", "frames", "fps", "metrics", "per_frame", "transitions", "unavailable"}
HEADLINE = {"sharpness", "sharpness_drift", "colorfulness", "colorfulness_drift", "brisque",
            "brisque_drift", "color_drift", "flicker", "latency_frames", "ghosting",
            "clip_fidelity", "clip_margin", "clip_ghosting"}
SERIES = {"sharpness", "colorfulness", "ssim_to_first", "delta_e_to_first", "frame_change"}


@pytest.fixture
def cut(tmp_path: Path) -> Path:
    """A frames folder: scene A for 30 frames, then B for 30."""
    return write_frames(tmp_path / "cut", [A] * 30 + [B] * 30)


def command(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="framepack score")
    scoring.add_arguments(parser)
    return parser.parse_args(list(argv))


# ---------------------------------------------------------------- the result


def test_the_result_has_the_documented_shape(cut: Path) -> None:
    result = score_video(cut, at_seconds=[1.0])
    assert set(result) == TOP_KEYS
    assert result["path"] == str(cut) and result["frames"] == 60 and result["fps"] == FPS
    assert set(result["metrics"]) == HEADLINE
    assert set(result["per_frame"]) == SERIES
    assert all(len(series) == 60 for series in result["per_frame"].values())
    assert result["per_frame"]["frame_change"][0] is None  # the first frame has no predecessor
    (transition,) = result["transitions"]
    assert {"frame", "latency_frames", "ghosting", "seconds", "settled"} <= set(transition)
    assert transition["frame"] == 30
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN or infinities


def test_unavailable_metrics_are_none_with_a_reason_never_zero(cut: Path) -> None:
    result = score_video(cut)  # no prompt changes, no CLIP weights
    metrics, reasons = result["metrics"], result["unavailable"]
    for name in ("latency_frames", "ghosting", "clip_fidelity", "clip_ghosting"):
        assert metrics[name] is None and name in reasons
    assert "--at" in reasons["latency_frames"]
    assert set(reasons) == {name for name, value in metrics.items() if value is None}


def test_without_clip_weights_the_reason_says_what_to_download(cut: Path) -> None:
    result = score_video(cut, at_seconds=[1.0])
    assert result["metrics"]["clip_fidelity"] is None
    reason = result["unavailable"]["clip_ghosting"]
    assert "hf download openai/clip-vit-large-patch14" in reason and "\n" not in reason
    missing = score_video(cut, at_seconds=[1.0], clip="/no/such/clip")
    assert "/no/such/clip does not exist" in missing["unavailable"]["clip_ghosting"]


# ---------------------------------------------------------------- shots and sidecars


def rendered_shot(folder: Path, interpolate: int = 1, loop: str = "none") -> Path:
    """A shot whose output exists with its sidecar, as if rendered: the picture cuts from A to
    B where the second section (with a keyframe) starts (and back, with a pingpong loop)."""
    from framepack_render.output.encode import sidecar_path, write_sidecar
    from framepack_render.output.record import record
    from framepack_render.plan import build_plan
    from framepack_render.plan.entries import segment_keys
    from framepack_render.shot import load

    (folder / "images").mkdir(parents=True)
    for name, picture in (("start", A), ("middle", B)):
        from PIL import Image

        Image.fromarray(picture).save(folder / "images" / f"{name}.png")
    sections = ("\n  - {prompt: a red ball rolls, duration: 1.2s}"
                "\n  - {prompt: the ball stops, duration: 1.2s, image: images/middle.png}")
    post = f"{{interpolate: {interpolate}, loop: {loop}}}"
    path = write(folder, "shot.yaml", shot_text(output="out/clip.mp4", sections=sections,
                                                post=post))
    shot = load(path).shots[0]
    plan = build_plan(shot)
    change = plan.frame_span(plan.windows[1])[0] * interpolate
    total = (plan.total_frames - 1) * interpolate + 1
    output = shot.outputs[0].path
    frames = [A] * change + [B] * (total - change)
    if loop == "pingpong":
        frames += frames[-2:0:-1]
    write_video(output, frames, fps=FPS * interpolate)
    write_sidecar(sidecar_path(output, "mp4"), record(plan, segment_keys(plan), "mp4"))
    return path


def test_a_shot_knows_its_prompt_changes_and_keyframes_from_its_sidecar(
        tmp_path: Path) -> None:
    shot = rendered_shot(tmp_path)
    (result,) = score_paths([shot])
    assert result["path"] == str(tmp_path / "out" / "clip.mp4")
    (transition,) = result["transitions"]
    assert transition["frame"] == 37  # the start frame, then one window of 36
    assert transition["prompt"] == "the ball stops"
    assert transition["previous_prompt"] == "a red ball rolls"
    assert transition["keyframe"] == "images/middle.png"
    assert transition["latency_frames"] <= 2
    assert score_paths([tmp_path]) == [result]  # a folder of shot files: the same video


def test_interpolated_outputs_are_measured_at_their_own_frames(tmp_path: Path) -> None:
    (result,) = score_paths([rendered_shot(tmp_path, interpolate=2)])
    assert result["fps"] == 2 * FPS and result["frames"] == 145
    assert result["transitions"][0]["frame"] == 74
    assert result["transitions"][0]["latency_frames"] <= 2


def test_a_pingpong_loop_is_measured_on_its_forward_half(tmp_path: Path) -> None:
    (result,) = score_paths([rendered_shot(tmp_path, loop="pingpong")])
    assert result["frames"] == 2 * 73 - 2
    (transition,) = result["transitions"]  # the change back to A on the way back is no prompt's
    assert transition["ghosting"] < 0.3  # A returning in the backward half is no ghost


def test_a_shot_not_rendered_yet_is_an_error_naming_its_output(tmp_path: Path) -> None:
    shot = rendered_shot(tmp_path)
    (tmp_path / "out" / "clip.mp4").unlink()
    errors: list[str] = []
    assert score_paths([shot], errors=errors) == []
    assert errors == [f"{tmp_path / 'out' / 'clip.mp4'}: not rendered yet; run "
                      f"`framepack render {shot}`"]
    with pytest.raises(scoring.ScoreError):
        score_paths([shot])


# ---------------------------------------------------------------- the cache


def test_an_unchanged_video_is_scored_once(cut: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "cache")
    first = score_video(cut, at_seconds=[1.0], store=store)
    assert [e.kind for e in store.entries()] == ["score"]

    def recompute(self: object) -> dict:
        raise AssertionError("scored again")

    monkeypatch.setattr(scoring._Analysis, "run", recompute)
    assert score_video(cut, at_seconds=[1.0], store=store) == first
    copy = write_frames(tmp_path / "copy", [A] * 30 + [B] * 30)  # same pictures elsewhere
    assert score_video(copy, at_seconds=[1.0], store=store)["metrics"] == first["metrics"]
    with pytest.raises(AssertionError, match="scored again"):
        score_video(cut, at_seconds=[1.5], store=store)  # other prompt changes
    write_frames(cut, [C])  # the video changed
    with pytest.raises(AssertionError, match="scored again"):
        score_video(cut, at_seconds=[1.0], store=store)


def test_cache_ls_lists_scores(cut: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    score_video(cut, store=LocalStore(tmp_path / "cache"))
    code, out, _ = run(capsys, "cache", "ls", "--cache", tmp_path / "cache", "--json")
    assert code == 0 and json.loads(out)["kinds"]["score"]["entries"] == 1


def test_gc_can_keep_the_scores_of_current_outputs(tmp_path: Path) -> None:
    from framepack_render.shot import load

    shot_file = rendered_shot(tmp_path)
    store = LocalStore(tmp_path / "cache")
    score_paths([shot_file], store=store)
    entries = {(e.kind, e.key) for e in store.entries()}
    shots = load(shot_file).shots
    assert scoring.referenced_scores(shots) == entries
    write_video(tmp_path / "out" / "clip.mp4", [C] * 73)  # re-rendered: the old score is stale
    assert scoring.referenced_scores(shots).isdisjoint(entries)


# ---------------------------------------------------------------- CLIP


def tiny_clip(folder: Path) -> Path:
    """A random CLIP with a tiny config and the project's tiny CLIP tokenizer, saved as a
    transformers folder (safetensors)."""
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from framepack_render.engines.framepack.tiny import build_tokenizer_2

    tokenizer = build_tokenizer_2()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("[PAD]", "<|startoftext|>",
                                                          "<|endoftext|>")}
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                         pad_token_id=ids["[PAD]"], bos_token_id=ids["<|startoftext|>"],
                         eos_token_id=ids["<|endoftext|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32},
                          crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_clip_scores_transitions_when_weights_are_present(tmp_path: Path) -> None:
    weights = tiny_clip(tmp_path / "clip")
    shot = rendered_shot(tmp_path / "shot")
    store = LocalStore(tmp_path / "cache")
    (without,) = score_paths([shot], store=store)  # no weights found: n/a
    assert without["metrics"]["clip_fidelity"] is None
    (scored,) = score_paths([shot], store=store, clip=str(weights))  # made again, with CLIP
    transition = scored["transitions"][0]
    for name in ("clip_fidelity", "clip_margin", "clip_ghosting"):
        assert -1 <= transition[name] <= 1 and scored["metrics"][name] == transition[name]
        assert name not in scored["unavailable"]
    assert len(list(store.entries())) == 1  # the stale score was replaced
    bare = score_video(tmp_path / "shot" / "out" / "clip.mp4", at_seconds=[1.0],
                       clip=str(weights))
    assert bare["metrics"]["clip_ghosting"] is not None  # images only: no prompt is known
    assert "no prompts known" in bare["unavailable"]["clip_fidelity"]


def test_clip_is_found_in_the_hugging_face_cache(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from framepack_render.evaluate.clip import find_clip

    hub = tmp_path / "hub"
    repo = hub / "models--someone--tiny-clip"
    tiny_clip(repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert find_clip("someone/tiny-clip").folder == repo / "snapshots" / "0123abcd"
    assert not find_clip().found  # the default is not there


# ---------------------------------------------------------------- the command


def test_the_table_shows_n_a_and_says_why(cut: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = scoring.run(command("cut", "--at", "1s", "--cache", "cache"))
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["video", "frames", "sharpness"]
    assert row.split()[:2] == ["cut", "60"] and row.split()[-2:] == ["n/a", "n/a"]
    assert "n/a clip_fidelity, clip_ghosting: no CLIP weights" in out


def test_json_lists_every_video(cut: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = scoring.run(command(str(cut), "--at", "1.0s", "--json", "--cache",
                               str(tmp_path / "cache")))
    out, _ = capsys.readouterr()
    (video,) = json.loads(out)["videos"]
    assert code == 0 and set(video) == TOP_KEYS and video["transitions"][0]["frame"] == 30


@pytest.mark.parametrize("argv, message", [
    (["missing.mp4"], "missing.mp4: no such file or folder"),
    (["notes.txt"], "notes.txt: not a video"),
    (["CUT", "--at", "9s"], "--at 9s is not inside the video (0 to 2.00 s)"),
    (["CUT", "--at", "soon"], "--at: 'soon' is not a time; write seconds such as 2.4s"),
])
def test_errors_are_one_line_and_exit_2(cut: Path, tmp_path: Path, argv: list[str],
                                        message: str, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a video")
    argv = [str(cut) if a == "CUT" else a for a in argv]
    code = scoring.run(command(*argv, "--cache", str(tmp_path / "cache")))
    _, err = capsys.readouterr()
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_bad_path_does_not_stop_the_others(cut: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = scoring.run(command("nowhere.mp4", str(cut), "--json", "--cache",
                               str(tmp_path / "cache")))
    out, err = capsys.readouterr()
    assert code == 2 and "nowhere.mp4: no such file or folder" in err
    assert [v["path"] for v in json.loads(out)["videos"]] == [str(cut)]


def test_missing_packages_say_what_to_install(cut: Path) -> None:
    body = """
        import argparse
        from framepack_render.evaluate import score
        parser = argparse.ArgumentParser()
        score.add_arguments(parser)
        raise SystemExit(score.run(parser.parse_args(sys.argv[1:])))
    """
    done = run_without(("skimage",), body, str(cut))
    assert done.returncode == 2
    assert done.stderr.strip() == ("framepack score: needs scikit-image: "
                                   "pip install 'framepack-render[evaluate]'")


def test_the_command_line_loads_no_heavy_module() -> None:
    body = """
        import argparse
        from framepack_render.evaluate import score
        score.add_arguments(argparse.ArgumentParser())
        print("ok")
    """
    done = run_without(("numpy", "av", "torch", "skimage", "scipy", "transformers"), body)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_render_score_scores_what_it_rendered_and_score_reads_the_same_from_the_cache(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shot = write(folder, "shot.yaml", shot_text(output="clip.mp4", steps="1", sections=(
        "\n  - {prompt: a red ball, duration: 1.2s}\n  - {prompt: a blue cube, duration: 1.2s}")))
    cache = tmp_path / "cache"
    code, out, err = run(capsys, "render", shot, "--cache", cache, "--score", "--json",
                         "--no-preview")
    assert code == 0, err
    scores = json.loads(out)["scores"]
    assert [Path(s["path"]).name for s in scores] == ["clip.mp4"]
    assert [t["frame"] for t in scores[0]["transitions"]] == [37]  # the prompt change
    code, out, err = run(capsys, "score", shot, "--cache", cache, "--json")
    assert code == 0, err
    assert json.loads(out)["videos"] == scores
