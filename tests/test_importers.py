"""`framepack import`: musubi-tuner prompt files, FramePack-Studio queues, metadata and
timestamped prompts, FramePack-eichi section exports, and the ZIP reader's refusals.

Each import is checked the way a user would check it: the written shots load (validate) and
plan to the windows the source tool would have rendered: prompts and prefix images in time
order, seeds, sizes, lengths and settings.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from framepack_render import importers
from framepack_render.cli import main
from framepack_render.importers import fpstudio, zips
from framepack_render.importers.musubi import entry_for, section_strings
from framepack_render.plan import build_plan
from framepack_render.shot import load

from .conftest import run, run_without

DATA = Path(__file__).parent / "data" / "importers"
WARNING = re.compile(r"^[^\n]+:\d+: warning: [^\n]+$")
ERROR = re.compile(r"^[^\n]+:\d+:\d+: [^\n]+$")
JOB = "250101_120000_123_4567"
F1_JOB = "0b5c9a52-5a6e-4a8e-9d5e-1f1e3f0c9a01"
END_JOB = "7a7a7a7a-1111-4c4c-9d9d-3e3e3e3e3e03"
VIDEO_JOB = "9c9c9c9c-2222-4d4d-8e8e-4f4f4f4f4f04"
VIDEO_F1_JOB = "5d5d5d5d-3333-4e4e-8f8f-5a5a5a5a5a05"
COLORS = {"start": (200, 40, 40), "middle": (40, 200, 40), "end": (40, 40, 200),
          "dress": (200, 200, 40)}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the fixture sources and the images they name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    for name, color in COLORS.items():
        _image(tmp_path / "images" / f"{name}.png", (320, 240), color)
    for name in ("start_mask", "dress_mask"):
        Image.new("L", (320, 240), 255).save(tmp_path / "images" / f"{name}.png")
    for source in DATA.iterdir():
        shutil.copy(source, tmp_path / source.name)
    _lora(tmp_path / "loras" / "style.safetensors")
    return tmp_path


def _image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _lora(path: Path) -> Path:
    """A LoRA file in musubi-tuner's key format: a real safetensors header, zero weights."""
    module = "lora_unet_transformer_blocks_0_attn_to_q"
    header = {f"{module}.lora_down.weight": {"dtype": "F32", "shape": [2, 16],
                                              "data_offsets": [0, 128]},
              f"{module}.lora_up.weight": {"dtype": "F32", "shape": [16, 2],
                                            "data_offsets": [128, 256]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(256))
    return path


def _import(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """`framepack import ARGV...`: the exit status, stdout and stderr."""
    return run(capsys, "import", *argv)


def _windows(path: Path) -> list[tuple[str, str]]:
    """(prompt, prefix image name) of every window in time order, from the planner."""
    shots = load(path).shots
    assert len(shots) == 1
    plan = build_plan(shots[0])
    return [(w.slot.prompt, Path(w.prefix.info.path).name if w.prefix.info else
             f"edit {w.prefix.edit}") for w in plan.windows]


def _shot(path: Path):
    return load(path).shots[0]


# ------------------------------------------------------------------ musubi-tuner


def test_musubi_section_syntax_as_musubi_reads_it() -> None:
    assert section_strings("a cat: on a wall") == {0: "a cat: on a wall"}
    assert section_strings("0:a;;;1-2:b;;;-1:c") == {0: "a", 1: "b", 2: "b", -1: "c"}
    assert section_strings("2:b;;;5:c") == {2: "b", 5: "c", 0: "b"}  # 0 from the smallest
    assert section_strings("-2:b;;;-1:c") == {-2: "b", -1: "c", 0: "b"}
    assert section_strings("plain ;;;x:dropped label") == {0: "dropped label"}
    entries = {0: "a", 1: "b", -1: "c"}
    assert [entries[entry_for(entries, i, 4)] for i in range(4)] == ["a", "b", "a", "c"]


def test_musubi_prompt_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _import(capsys, "musubi", "musubi_prompts.txt", "-o", "shots")
    assert code == 0, err
    names = ["musubi_prompts-004", "musubi_prompts-005", "musubi_prompts-006",
             "musubi_prompts-007"]
    assert out.split() == [f"shots/{n}.yaml" for n in names]
    first, sections, cfg, _ = (project / "shots" / f"{n}.yaml" for n in names)

    assert first.read_text().startswith("# Imported by `framepack import` from "
                                        "musubi_prompts.txt:4")
    shot = _shot(first)
    assert shot.size == (256, 192) and shot.seed == 1234
    assert shot.sections[0].sampling.steps == 20
    assert _windows(first) == [("a red ball rolls across the grass", "start.png")] * 3

    # --vs 5: musubi's from-end index wins, then the index, then 0; images do not persist.
    assert _windows(sections) == [
        ("a cat sits on a wall", "start.png"), ("the cat yawns", "start.png"),
        ("the cat yawns", "start.png"), ("a cat sits on a wall", "middle.png"),
        ("the cat falls asleep", "start.png")]
    shot = _shot(sections)
    assert shot.end_image.info.path.name == "end.png" and shot.seed == 7
    assert shot.sections[0].sampling.flow_shift.shift == 3.0
    assert shot.sections[0].sampling.guidance == 10.0

    # --g is musubi-tuner's true CFG; the negative prompt goes with it.
    shot = _shot(cfg)
    assert shot.size == (320, 320) and len(build_plan(shot).windows) == 2
    assert shot.sections[0].sampling.cfg == 6.5
    assert shot.sections[0].sampling.negative_prompt == "low quality, blurry"
    lines = err.splitlines()
    assert all(WARNING.match(line) for line in lines)
    for wanted in ("musubi_prompts.txt:6: warning: --mcrr is a MagCache setting",
                   "musubi_prompts.txt:6: warning: --mck is a MagCache setting",
                   "musubi_prompts.txt:6: warning: --im (image masks) is ignored",
                   "musubi_prompts.txt:6: warning: unknown option --xyz",
                   "musubi_prompts.txt:6: warning: the seed is random in the source"):
        assert any(line.startswith(wanted) for line in lines), wanted
    assert "# warning (musubi_prompts.txt:6): unknown option --xyz" in cfg.read_text()


def test_musubi_one_frame_becomes_an_edit(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _import(capsys, "musubi_prompts.txt", "-o", "shots")  # format detected
    assert code == 0, err
    path = project / "shots" / "musubi_prompts-007.yaml"
    shot = _shot(path)
    (edit,) = shot.edits
    assert edit.prompt == "the girl wears the red dress" and edit.target_index == 1
    assert (edit.no_2x, edit.no_4x, edit.no_post) == (True, True, True)
    assert [(c.image.info.path.name, c.mask.info.path.name, c.index) for c in edit.controls] \
        == [("start.png", "start_mask.png", 0), ("dress.png", "dress_mask.png", 10)]
    assert edit.output == path.parent / "renders" / "musubi_prompts-007.png"
    assert edit.sampling.seed == 31337
    plan = build_plan(shot)
    assert plan.edits[0].layout is not None
    assert _windows(path) == [("the girl wears the red dress", "edit edit")]


def test_musubi_f1_and_copied_images(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _import(capsys, "musubi_prompts.txt", "--model", "framepack-f1",
                           "--copy-images", "-o", "shots")
    assert code == 0, err
    path = project / "shots" / "musubi_prompts-005.yaml"
    shot = _shot(path)
    assert shot.model.profile == "framepack-f1" and shot.end_image is None
    assert "musubi_prompts.txt:5: warning: --ei is ignored under F1 sampling" in err
    assert [name.split("-")[0] for _, name in _windows(path)] == \
        ["start", "start", "start", "middle", "start"]
    assert shot.image.info.path.parent == (project / "shots" / "images").resolve()


def test_musubi_seed_is_fixed_the_same_way_each_time(project: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(capsys, "musubi_prompts.txt", "-o", "a")[0] == 0
    assert _import(capsys, "musubi_prompts.txt", "-o", "b")[0] == 0
    text = (project / "a" / "musubi_prompts-006.yaml").read_text()
    assert text == (project / "b" / "musubi_prompts-006.yaml").read_text()
    seed = _shot(project / "a" / "musubi_prompts-006.yaml").seed
    assert f"fixed to {seed}" in text


def test_musubi_malformed_lines_write_nothing(project: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.txt").write_text("a cat --w abc --h 256\n"
                                     "  a dog --i images/nope.png\n"
                                     "a bird --s 5 --f\n", encoding="utf-8")
    code, out, err = _import(capsys, "musubi", "bad.txt", "-o", "shots")
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines == ["bad.txt:1:11: --w must be a whole number, not 'abc'",
                     "bad.txt:2:13: image 'images/nope.png' not found",
                     "bad.txt:3:14: option --f needs a value (musubi-tuner stops here)"]
    assert not (project / "shots").exists()


def test_prompts_keep_their_text(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Imported text is never read as vars, comments or YAML syntax."""
    prompt = 'say "${name}": 100% #1 yes, [really] {ok} \\ done'
    (project / "odd.txt").write_text(f"{prompt} --i images/start.png --d 1\n",
                                     encoding="utf-8")
    assert _import(capsys, "musubi", "odd.txt", "-o", "shots")[0] == 0
    assert _shot(project / "shots" / "odd-001.yaml").sections[0].prompt == prompt


# ------------------------------------------------------------------ FramePack-Studio


STAMPS = "[0s: waves hello] [2s: jumps up and down] [4s: does a spin]"


def test_fpstudio_timestamps_are_snapped_and_mirrored_as_fp_studio_does() -> None:
    timed = fpstudio.timed_prompts(STAMPS, 6, 9, mirrored=True)
    assert [(s.prompt, round(s.start, 6), round(s.end, 6)) for s in timed] == [
        ("does a spin", 0.5, 1.6), ("jumps up and down", 1.6, 3.8), ("waves hello", 3.8, 6.0)]
    assert fpstudio.window_prompts(timed, 6, 9, forward=False) == [
        "waves hello", "jumps up and down", "jumps up and down", "does a spin", "does a spin"]
    forward = fpstudio.timed_prompts(STAMPS, 6, 9, mirrored=False)
    assert fpstudio.window_prompts(forward, 6, 9, forward=True) == [
        "waves hello", "waves hello", "jumps up and down", "jumps up and down", "does a spin"]
    # Python's round: 0.55 s / 1.1 s = 0.5 snaps to 0, and 3 s is 2.5 windows, so 2.
    assert fpstudio.timed_prompts("[0.55s: a] [2.2s: b]", 6, 9, False)[0].start == 0
    assert len(fpstudio.window_prompts([fpstudio.Timed("a", 0, None)], 3, 9, False)) == 2
    # Text outside brackets is a section from 0; without brackets the text is the prompt.
    assert [s.prompt for s in fpstudio.timed_prompts("base [3s: later]", 6, 9, False)] == \
        ["base", "later"]
    assert fpstudio.timed_prompts("  just this ", 6, 9, True)[0].prompt == "just this"


def test_fpstudio_metadata(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "outputs" / "metadata").mkdir(parents=True)
    shutil.move(project / f"{JOB}.json", project / "outputs" / "metadata" / f"{JOB}.json")
    _image(project / "outputs" / f"{JOB}.png", (320, 240), (90, 90, 90))
    code, _, err = _import(capsys, f"outputs/metadata/{JOB}.json", "-o", "shots")
    assert code == 0, err
    path = project / "shots" / f"{JOB}.yaml"
    shot = _shot(path)
    assert shot.size == (704, 544)  # FP-Studio's 640 bucket for a 4:3 image
    assert shot.seed == 12345 and shot.sampling == "inverted"
    assert shot.sections[0].sampling.teacache == 0.15
    assert [(lora.path.name, lora.scale) for lora in shot.model.settings.loras] == \
        [("style.safetensors", 0.8)]
    assert [p for p, _ in _windows(path)] == [
        "The person waves hello", "The person jumps up and down",
        "The person jumps up and down", "The person does a spin", "The person does a spin"]
    assert f"outputs/metadata/{JOB}.json:39: warning: LoRA 'missing_lora'" in err
    assert f"outputs/metadata/{JOB}.json:19: warning: blend_sections 4" in err


def _queue_images(folder: Path) -> None:
    _image(folder / "queue_images" / f"{F1_JOB}_input.png", (300, 300), (10, 60, 90))
    _image(folder / "queue_images" / f"{END_JOB}_input.png", (240, 320), (90, 60, 10))
    _image(folder / "queue_images" / f"{END_JOB}_end_frame.png", (240, 320), (10, 90, 10))
    _queue_videos(folder)


def _queue_videos(folder: Path) -> None:
    """The videos queue.json's Video and Video F1 jobs extend, beside it."""
    _video(folder / "clip.mp4", (320, 240), 30)
    _video(folder / "videos" / "dog.mp4", (288, 224), 24)


def _video(path: Path, size: tuple[int, int], fps: int, frames: int = 6) -> Path:
    """A short real video written with PyAV."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            pixels = np.full((size[1], size[0], 3), index * 40, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_fpstudio_queue(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _queue_images(project)
    code, out, err = _import(capsys, "queue.json", "-o", "shots")
    assert code == 0, err
    assert out.split() == [f"shots/{F1_JOB}.yaml", f"shots/{END_JOB}.yaml",
                           f"shots/{VIDEO_JOB}.yaml", f"shots/{VIDEO_F1_JOB}.yaml"]
    assert "queue.json:40: warning: job 3f0e1d2c-0000-4b5a-8c7d-2a2b2c2d2e02 is completed" in err
    assert "uses FP-Studio's" not in err

    f1 = project / "shots" / f"{F1_JOB}.yaml"
    shot = _shot(f1)
    assert shot.model.profile == "framepack-f1" and shot.sampling == "forward"
    assert shot.size == (512, 512) and shot.sections[0].sampling.guidance == 8.0
    assert [p for p, _ in _windows(f1)] == ["A woman smiles", "She waves", "She turns around"]

    end = project / "shots" / f"{END_JOB}.yaml"
    shot = _shot(end)
    assert shot.end_image.info.path.name == f"{END_JOB}_end_frame.png"
    assert shot.end_image_strength == 0.6 and shot.size == (544, 704)
    settings = shot.sections[0].sampling
    assert (settings.cfg, settings.negative_prompt, settings.teacache) == (1.5, "ugly", None)
    assert "queue.json:86: warning: MagCache is not carried over" in err
    assert len(build_plan(shot).windows) == 2  # 3 s: 2.5 windows, rounded to even


def test_fpstudio_queue_zip_copies_its_images(project: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    export = project / "export"
    _queue_images(export)
    _queue_videos(project)  # not in the export: looked up beside it
    with zipfile.ZipFile(project / "queue_export.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(project / "queue.json", "queue.json")
        for image in sorted((export / "queue_images").iterdir()):
            archive.write(image, f"queue_images/{image.name}")
    code, out, err = _import(capsys, "queue_export.zip", "-o", "shots", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [Path(item["shot"]).name for item in listed] == [
        f"{F1_JOB}.yaml", f"{END_JOB}.yaml", f"{VIDEO_JOB}.yaml", f"{VIDEO_F1_JOB}.yaml"]
    assert listed[0]["source"] == f"queue_export.zip:queue.json job {F1_JOB}"
    assert listed[1]["warnings"][0].startswith("queue_export.zip:queue.json:86: warning: "
                                               "MagCache")
    shot = _shot(project / "shots" / f"{END_JOB}.yaml")
    assert shot.image.text.startswith("images/") and shot.image.info.path.parent == \
        (project / "shots" / "images").resolve()
    assert sorted(p.name.split("-")[-1][8:] for p in (project / "shots" / "images").iterdir()) \
        == [".png"] * 3


def test_fpstudio_video_jobs_extend_their_input_video(project: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _queue_images(project)
    code, _, err = _import(capsys, "queue.json", "-o", "shots")
    assert code == 0, err
    video = project / "shots" / f"{VIDEO_JOB}.yaml"
    text = video.read_text()
    assert "\nimage:" not in text and "input_video: ../clip.mp4\nextend: forward\n" in text
    shot = _shot(video)
    assert shot.model.profile == "framepack" and shot.sampling == "inverted"
    assert (shot.input_video.extend, shot.input_video.keep) == ("forward", True)
    assert shot.input_video.path == (project / "clip.mp4").resolve()
    assert shot.size == (320, 240) and shot.sections[0].sampling.steps == 12
    assert "queue.json:104: warning: FP-Studio resizes the 320x240 input video to 288x224" in err
    assert "queue.json:106: warning: num_cleaned_frames 5 (FP-Studio's context frames) is " \
           "not carried over: the new windows read its last frame" in err
    assert "queue.json:107: warning: combine_with_source" in err
    assert "# warning (queue.json:106): num_cleaned_frames 5" in text
    assert len(build_plan(shot).windows) == 2  # 3 s of new frames

    f1 = project / "shots" / f"{VIDEO_F1_JOB}.yaml"
    shot = _shot(f1)
    assert shot.model.profile == "framepack-f1" and shot.sampling == "forward"
    assert shot.input_video.extend == "forward" and shot.input_video.fps == 24
    assert shot.size == (288, 224) and shot.fps == 24 and shot.sections[0].sampling.teacache
    assert [p for p, _ in _windows(f1)] == ["The dog runs", "The dog stops"]
    assert "{frames: 36}" in f1.read_text()  # FP-Studio's windows, at the video's rate
    assert "queue.json:126: warning: num_cleaned_frames 5" in err and "its last 19 latents" in err
    assert "queue.json:123: warning" not in err and "queue.json:127: warning" not in err
    assert main(["validate", str(video), str(f1)]) == 0


def test_fpstudio_video_metadata_and_missing_video(project: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    meta = {"prompt": "waves roll in", "seed": 3, "steps": 10, "model_type": "Video F1",
            "total_second_length": 1.2, "resolutionW": 256, "resolutionH": 256,
            "input_video": "clips/sea.mp4"}
    (project / "outputs").mkdir()
    (project / "outputs" / "sea.json").write_text(json.dumps(meta, indent=2))
    code, out, err = _import(capsys, "outputs/sea.json", "-o", "shots")
    assert code == 2 and out == "" and not (project / "shots").exists()
    assert err.strip() == "outputs/sea.json:9:3: job sea: input video 'clips/sea.mp4' not " \
                          "found (looked beside outputs)"

    _video(project / "outputs" / "clips" / "sea.mp4", (288, 224), 30)
    code, out, err = _import(capsys, "outputs/sea.json", "-o", "shots")
    assert code == 0, err
    shot = _shot(project / "shots" / "sea.yaml")
    assert shot.input_video.extend == "forward" and shot.sampling == "forward"
    assert shot.sections[0].sampling.seed == 3 and shot.size == (288, 224)
    assert main(["validate", "shots/sea.yaml"]) == 0


def test_fpstudio_timestamped_prompt_file(project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _import(capsys, "fpstudio_timestamps.txt", "-o", "shots")
    assert code == 2
    assert err.strip() == ("fpstudio_timestamps.txt:1:1: timestamped prompts need the video's "
                           "length: pass --seconds S")
    code, out, err = _import(capsys, "fpstudio_timestamps.txt", "--seconds", "6", "--image",
                             "images/start.png", "-o", "shots")
    assert code == 0, err
    assert out.split() == [f"shots/fpstudio_timestamps-00{n}.yaml" for n in (1, 2, 4)]
    assert [p for p, _ in _windows(project / "shots" / "fpstudio_timestamps-001.yaml")] == [
        "The person waves hello", "The person jumps up and down",
        "The person jumps up and down", "The person does a spin", "The person does a spin"]
    assert _windows(project / "shots" / "fpstudio_timestamps-002.yaml") == \
        [("A cat looks out of the window", "start.png")] * 5
    assert "fpstudio_timestamps.txt:2: warning: the seed is random in the source" in err


# ------------------------------------------------------------------ FramePack-eichi


def _eichi_zip(project: Path, name: str = "section_export_20250501_120000.zip") -> Path:
    folder = project / "export" / "sections"
    for image, color in (("start", COLORS["start"]), ("end", COLORS["end"]),
                         ("000", COLORS["middle"]), ("001", COLORS["dress"])):
        _image(folder / f"{image}.png", (320, 240), color)
    shutil.copy(project / "sections.yaml", folder / "sections.yaml")
    with zipfile.ZipFile(project / name, "w") as archive:
        for item in ("sections.yaml", "000.png", "001.png", "end.png", "start.png"):
            archive.write(folder / item, f"sections/{item}")
    return project / name


def test_eichi_section_export(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _eichi_zip(project)
    code, _, err = _import(capsys, "section_export_20250501_120000.zip", "-o", "shots",
                             "--lora-dir", "loras")
    assert code == 0, err
    path = project / "shots" / "section_export_20250501_120000.yaml"
    # 4 s of 1-second sections: 3 windows. Section 0 is generated first: the last in time.
    windows = _windows(path)
    assert [p for p, _ in windows] == [
        "女の子が座る", "女の子が笑顔でこちらを見ている", "女の子が手を振る"]
    assert [name.split("-")[0] for _, name in windows] == ["start", "001", "000"]
    shot = _shot(path)
    assert shot.end_image is not None and shot.size == (704, 544)
    assert [(lora.path.name, lora.scale) for lora in shot.model.settings.loras] == \
        [("style.safetensors", 0.8)]
    shown = "section_export_20250501_120000.zip:sections/sections.yaml"
    assert f"{shown}:4: warning: LoRA 'absent.safetensors' (weight 0.5) not found" in err
    assert f"{shown}:1: warning: the seed is random in the source" in err
    assert "eichi numbers sections in generation order" in path.read_text()
    assert all(WARNING.match(line) for line in err.splitlines())


def test_eichi_sections_yaml_beside_its_images(project: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _eichi_zip(project)
    code, _, err = _import(capsys, "eichi", "export/sections", "-o", "shots")
    assert code == 0, err
    assert [Path(n).name for _, n in _windows(project / "shots" / "sections.yaml")] == \
        ["start.png", "001.png", "000.png"]
    # Without --lora-dir, loras/ in the working folder is searched too.
    shot = _shot(project / "shots" / "sections.yaml")
    assert [lora.path.name for lora in shot.model.settings.loras] == ["style.safetensors"]


def test_validate_passes_on_every_imported_shot(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _eichi_zip(project)
    _queue_images(project)
    code, out, err = _import(capsys, "musubi_prompts.txt", "queue.json",
                             "section_export_20250501_120000.zip", "-o", "shots")
    assert code == 0, err
    shots = out.split()
    assert len(shots) == 9
    assert main(["validate", *shots]) == 0
    out, err = capsys.readouterr()
    assert out.count("ok ") == 9


# ------------------------------------------------------------------ writing and refusing


def test_existing_shots_need_force(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(capsys, "musubi_prompts.txt", "-o", "shots")[0] == 0
    code, out, err = _import(capsys, "musubi_prompts.txt", "-o", "shots")
    assert code == 2 and out == ""
    assert err.strip() == "shots/musubi_prompts-004.yaml:1:1: shot file exists already; pass " \
                          "--force to overwrite it"
    assert _import(capsys, "musubi_prompts.txt", "-o", "shots", "--force")[0] == 0


def test_shapes_that_say_no_format(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "plain.txt").write_text("a cat\n", encoding="utf-8")
    (project / "other.json").write_text('{"a": 1}', encoding="utf-8")
    (project / "broken.json").write_text('{"prompt": "x",\n  "seed": }', encoding="utf-8")
    code, _, err = _import(capsys, "plain.txt", "other.json", "broken.json", "-o", "shots")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 3 and all(ERROR.match(line) for line in lines)
    assert lines[0].startswith("plain.txt:1:1: plain prompts with no musubi-tuner options")
    assert lines[1].startswith("other.json:1:1: not a JSON file this import knows")
    assert lines[2].startswith("broken.json:2:11: not valid JSON")
    assert importers.split_format(["eichi", "a.zip"]) == ("eichi", ["a.zip"])
    assert importers.split_format(["a.zip"]) == (None, ["a.zip"])


def _hostile(path: Path, build) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("queue.json", "{}")
        build(archive)
    return path


def _link(archive: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo("queue_images/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, "/etc/passwd")


@pytest.mark.parametrize("build, reason", [
    (lambda a: a.writestr("../evil.png", b"x"), "climbs out of the archive with '..'"),
    (lambda a: a.writestr("/etc/evil.png", b"x"), "has an absolute name"),
    (_link, "is a symbolic link"),
    (lambda a: a.writestr("bomb.png", bytes(3 * 1024 * 1024)), "times its compressed size"),
])
def test_hostile_archives_are_refused(project: Path, capsys: pytest.CaptureFixture[str],
                                      build, reason: str) -> None:
    _hostile(project / "bad.zip", build)
    code, out, err = _import(capsys, "fpstudio", "bad.zip", "-o", "shots")
    assert code == 2 and out == ""
    assert err.startswith("bad.zip:1:1: refusing the archive: member ") and reason in err
    assert len(err.splitlines()) == 1
    assert not (project / "shots").exists() and not (project.parent / "evil.png").exists()


def test_archive_caps(project: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    def members(archive: zipfile.ZipFile) -> None:
        for n in range(5):
            archive.writestr(f"queue_images/{n}.png", b"x" * 100)

    _hostile(project / "many.zip", members)
    monkeypatch.setattr(zips, "MAX_MEMBERS", 4)
    assert "holds 6 members (at most 4)" in _import(capsys, "many.zip", "-o", "s")[2]
    monkeypatch.setattr(zips, "MAX_MEMBERS", 100)
    monkeypatch.setattr(zips, "MAX_TOTAL_BYTES", 300)
    assert "inflate to more than" in _import(capsys, "many.zip", "-o", "s")[2]


def test_importing_never_loads_torch(project: Path) -> None:
    body = """
    import argparse
    from framepack_render import importers
    parser = argparse.ArgumentParser()
    importers.add_arguments(parser)
    raise SystemExit(importers.run(parser.parse_args(sys.argv[1:])))
    """
    result = run_without(("torch", "diffusers", "transformers"), body,
                         "musubi_prompts.txt", "-o", "shots")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 4
