"""`--output-root URL`: outputs and their sidecars on object storage (a real S3 API on
127.0.0.1, s3fs as the client), each uploaded whole with its sidecar last, and the up-to-date
check answered from the bucket."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .conftest import png_frames, run, shot_text, write
from .s3_server import bucket, s3  # noqa: F401 (fixtures)

TWO_OUTPUTS = "\n  - out/\n  - clip.mp4"


def options(s3) -> list[str]:
    return ["--storage-option", f"endpoint_url={s3.endpoint}"]


def remote_frames(s3, prefix: str, into: Path) -> np.ndarray:
    fs = s3.fs()
    names = sorted(p for p in fs.ls(prefix) if p.endswith(".png"))
    into.mkdir(parents=True, exist_ok=True)
    for name in names:
        fs.get(name, str(into / Path(name).name))
    return np.stack([np.array(Image.open(into / Path(n).name)) for n in names])


def test_outputs_go_to_the_bucket_whole_and_an_unchanged_shot_is_up_to_date(
        folder, capsys, tmp_path, s3, bucket):
    shot = write(folder, "shot.yaml", shot_text(output=TWO_OUTPUTS))
    root = f"s3://{bucket}/renders"
    cache = tmp_path / "cache"
    code, out, err = run(capsys, "render", shot, "--output-root", root, "--cache", cache,
                         *options(s3), "--json", "--no-preview")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["outputs"] == [f"{root}/out", f"{root}/clip.mp4"]
    fs = s3.fs()
    listed = {p.rpartition("/")[2] for p in fs.ls(f"{bucket}/renders")}
    assert listed == {"out", "clip.mp4", "clip.mp4.json"}
    sidecar = json.loads(fs.cat(f"{bucket}/renders/out/render.json"))
    assert sidecar["frames"] == len([p for p in fs.ls(f"{bucket}/renders/out")
                                     if p.endswith(".png")])
    assert fs.cat(f"{bucket}/renders/clip.mp4")[4:8] == b"ftyp"
    assert not list(folder.glob("out*")) and not list(folder.glob("*.mp4"))

    # The same frames as a render beside the shot.
    code, _, err = run(capsys, "render", shot, "--cache", cache, "--no-preview")
    assert code == 0, err
    assert np.array_equal(remote_frames(s3, f"{bucket}/renders/out", tmp_path / "got"),
                          png_frames(folder / "out"))

    # Unchanged: answered from the bucket's sidecars, nothing rendered or uploaded.
    stamp = fs.info(f"{bucket}/renders/clip.mp4")["LastModified"]
    code, out, err = run(capsys, "render", shot, "--output-root", root, "--cache", cache,
                         *options(s3), "--json")
    assert code == 0, err
    again = json.loads(out)["shots"][0]
    assert again["outputs_up_to_date"] == 2 and again["windows_rendered"] == 0
    assert fs.info(f"{bucket}/renders/clip.mp4")["LastModified"] == stamp


def test_a_shorter_render_replaces_the_frames_folder_and_its_sidecar_last(
        folder, capsys, tmp_path, s3, bucket):
    root = f"s3://{bucket}/renders"
    shot = write(folder, "shot.yaml", shot_text(steps="2"))
    args = ("--output-root", root, "--cache", tmp_path / "cache", *options(s3), "--no-preview")
    assert run(capsys, "render", shot, *args)[0] == 0
    fs = s3.fs()
    before = [p for p in fs.ls(f"{bucket}/renders/out") if p.endswith(".png")]
    write(folder, "shot.yaml", shot_text(steps="2", prompt="a ball", duration="1.2s"))
    code, out, err = run(capsys, "render", shot, *args)
    assert code == 0, err
    after = [p for p in fs.ls(f"{bucket}/renders/out") if p.endswith(".png")]
    sidecar = json.loads(fs.cat(f"{bucket}/renders/out/render.json"))
    assert len(after) == sidecar["frames"] < len(before)  # the older frames are gone


def test_a_missing_bucket_is_one_line_before_anything_renders(folder, capsys, tmp_path, s3):
    shot = write(folder, "shot.yaml", shot_text())
    code, out, err = run(capsys, "render", shot, "--output-root", "s3://no-such-bucket/r",
                         "--cache", tmp_path / "cache", *options(s3))
    assert code == 2 and out == ""
    assert err.strip() == ("error: output root s3://no-such-bucket/r: bucket 'no-such-bucket' "
                           "does not exist")
    assert not (tmp_path / "cache").exists()


def test_an_output_outside_a_url_root_names_the_url(folder, capsys, tmp_path):
    shot = write(folder, "shot.yaml", shot_text(output="../up.mp4"))
    code, out, err = run(capsys, "plan", shot, "--output-root", "s3://bucket/renders",
                         "--cache", tmp_path / "cache")
    assert code == 2 and out == ""
    assert "output '../up.mp4' is outside --output-root (s3://bucket/renders)" in err
    assert len(err.strip().splitlines()) == 1


def test_plan_shows_where_outputs_go_without_touching_the_bucket(folder, capsys, tmp_path):
    shot = write(folder, "shot.yaml", shot_text(output="renders/a.mp4"))
    code, out, err = run(capsys, "plan", "--json", shot, "--output-root",
                         "s3://user:hunter22@bucket/x", "--cache", tmp_path / "cache")
    assert code == 0, err
    assert json.loads(out)["plans"][0]["outputs"][0]["path"] == "s3://user@bucket/x/renders/a.mp4"
    assert "hunter22" not in out


def test_a_file_url_root_is_a_folder(folder, capsys, tmp_path):
    shot = write(folder, "shot.yaml", shot_text(output="a.mp4"))
    code, out, err = run(capsys, "plan", "--json", shot, "--output-root",
                         f"file://{tmp_path / 'there'}", "--cache", tmp_path / "cache")
    assert code == 0, err
    assert json.loads(out)["plans"][0]["outputs"][0]["path"] == str(tmp_path / "there" / "a.mp4")
