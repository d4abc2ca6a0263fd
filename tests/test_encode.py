"""Streaming encoders: every format decodes back to the frames, size, rate and metadata that went
in; outputs appear atomically (abort, exceptions and SIGKILL leave the old output untouched);
sidecars are named apart and written atomically."""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from framepack_render.output.encode import (
    FrameSink,
    as_frame_rate,
    open_sink,
    sidecar_path,
    write_sidecar,
)

REPO = Path(__file__).resolve().parents[1]
META = {"title": "The cat", "comment": "seed 5, 25 steps", "description": "a cat turns"}


def gradient(count: int, height: int, width: int) -> np.ndarray:
    """Smooth colour ramps that drift a little from frame to frame."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.empty((count, height, width, 3), np.uint8)
    for t in range(count):
        frames[t, ..., 0] = np.clip(30 + x * 180 / max(width - 1, 1) + t, 0, 255)
        frames[t, ..., 1] = np.clip(20 + y * 200 / max(height - 1, 1), 0, 255)
        frames[t, ..., 2] = np.clip(160 - t + 20 * np.sin(x / 9 + y / 13), 0, 255)
    return frames


def write_all(path: Path, fmt: str, frames: np.ndarray, *, fps: float = 30,
              chunks: tuple[int, ...] = (10, 1, 16), metadata: dict[str, str] | None = None,
              ) -> FrameSink:
    """Write ``frames`` in several write() calls of the given sizes (the rest in the last)."""
    _, height, width, _ = frames.shape
    sink = open_sink(path, fmt, width=width, height=height, fps=fps, metadata=metadata)
    start = 0
    for size in chunks:
        sink.write(frames[start:start + size])
        start += size
    sink.write(frames[start:])
    assert sink.close() == path
    return sink


def decode(path: Path) -> tuple[np.ndarray, dict, dict[str, str]]:
    """Decoded frames, stream facts and container metadata (read while the file is open:
    PyAV objects must not outlive their container)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        context = stream.codec_context
        info = {"width": stream.width, "height": stream.height,
                "guessed_rate": stream.guessed_rate, "average_rate": stream.average_rate,
                "codec": context.name, "pix_fmt": context.pix_fmt, "codec_tag": stream.codec_tag}
        metadata = dict(container.metadata)
    return np.stack(frames), info, metadata


def snapshot(path: Path) -> dict[str, bytes] | bytes:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return path.read_bytes()


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize(("fmt", "fps", "size"), [
    ("mp4", 30, (48, 64)),
    ("mp4", 24, (48, 64)),
    ("mp4", 29.97, (48, 64)),
    ("mp4", 30, (256, 256)),
    ("webm", 30, (48, 64)),
    ("mov", 30, (48, 64)),
    ("gif", 30, (48, 64)),
])
def test_video_round_trip(tmp_path: Path, fmt: str, fps: float, size: tuple[int, int]) -> None:
    height, width = size
    frames = gradient(37, height, width)
    path = tmp_path / "renders" / f"cat.{fmt}"  # the folder does not exist yet
    sink = write_all(path, fmt, frames, fps=fps, metadata=None if fmt == "gif" else META)
    assert sink.frame_count == 37
    assert os.listdir(path.parent) == [path.name]

    decoded, info, metadata = decode(path)
    assert decoded.shape == (37, height, width, 3)
    assert (info["width"], info["height"]) == (width, height)
    assert abs(float(info["guessed_rate"]) - fps) < 0.01
    if fmt != "gif":  # GIF delays are whole centiseconds, so only the guessed rate is exact
        assert abs(float(info["average_rate"]) - fps) < 0.01
    if fmt in ("mp4", "webm", "mov"):
        folded = {key.lower(): value for key, value in metadata.items()}  # Matroska upper-cases
        for key, value in META.items():
            assert folded[key] == value, (key, metadata)
    error = np.abs(decoded.astype(np.int16) - frames).mean()
    assert error < {"mp4": 3.0, "webm": 3.0, "mov": 2.0, "gif": 6.0}[fmt], error


def test_mp4_codec_rate_colour_and_pixels(tmp_path: Path) -> None:
    frames = gradient(37, 64, 96)
    path = write_all(tmp_path / "a.mp4", "mp4", frames, fps=29.97).path
    decoded, info, _ = decode(path)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["average_rate"] == Fraction(30000, 1001)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        assert (first.colorspace, first.color_range) == (1, 1)  # BT.709, limited range
    error = np.abs(decoded.astype(np.int16) - frames)
    assert error.mean() < 2.5 and np.percentile(error, 99) <= 8, (error.mean(), error.max())


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def test_mp4_faststart(tmp_path: Path) -> None:
    path = write_all(tmp_path / "a.mp4", "mp4", gradient(12, 48, 64)).path
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes


@pytest.mark.parametrize("fmt", ["mp4", "mov", "webm"])
def test_any_metadata_key_survives(tmp_path: Path, fmt: str) -> None:
    metadata = {"title": "T", "framepack_seed": "42", "framepack_prompt": "a cat, ünïcode"}
    path = write_all(tmp_path / f"a.{fmt}", fmt, gradient(4, 48, 64), metadata=metadata).path
    _, _, read = decode(path)
    folded = {key.lower(): value for key, value in read.items()}
    for key, value in metadata.items():
        assert folded[key] == value


def test_webm_and_mov_codecs(tmp_path: Path) -> None:
    webm = write_all(tmp_path / "a.webm", "webm", gradient(5, 48, 64)).path
    mov = write_all(tmp_path / "a.mov", "mov", gradient(5, 48, 64)).path
    info = decode(webm)[1]
    assert (info["codec"], info["pix_fmt"]) == ("vp9", "yuv420p")
    info = decode(mov)[1]
    assert (info["codec"], info["pix_fmt"]) == ("prores", "yuv422p10le")
    assert info["codec_tag"] == "apch"  # ProRes 422 HQ


def test_gif_loops_forever_and_opens_in_pillow(tmp_path: Path) -> None:
    path = write_all(tmp_path / "a.gif", "gif", gradient(37, 48, 64)).path
    assert path.read_bytes()[:6] == b"GIF89a"
    with Image.open(path) as image:
        assert image.n_frames == 37
        assert image.size == (64, 48)
        assert image.info.get("loop") == 0
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
    assert set(durations) <= {30, 40}  # 3 or 4 centiseconds: 30 fps on average
    assert abs(sum(durations) / 37 - 1000 / 30) < 1


def quantized(frames: np.ndarray) -> np.ndarray:
    """What the GIF sink stores: Pillow's per-frame octree palette with Floyd-Steinberg."""
    return np.stack([np.asarray(Image.fromarray(f).quantize(
        256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG).convert("RGB"))
        for f in frames])


def test_gif_frames_decode_to_exactly_the_quantized_frames(tmp_path: Path) -> None:
    # 64x96 gradients get palettes that repeat a colour; flat frames share palettes with the
    # first frame but not with their neighbours. FFmpeg's encoder got both wrong when used
    # naively (wrong colours, stale regions from the previous frame).
    flat = np.zeros((6, 48, 96, 3), np.uint8)
    flat[:, 10:20] = 255
    flat[2:, :, 30:] = (0, 0, 0)
    flat[3] = (12, 200, 3)
    flat[5, :, :50] = (250, 10, 10)
    for name, frames in (("gradient", gradient(37, 64, 96)), ("flat", flat)):
        path = write_all(tmp_path / f"{name}.gif", "gif", frames, chunks=(4,)).path
        decoded = decode(path)[0]
        assert np.array_equal(decoded, quantized(frames)), name


def test_fast_gif_is_decimated_to_a_rate_browsers_play(tmp_path: Path) -> None:
    frames = gradient(37, 48, 64)
    sink = write_all(tmp_path / "a.gif", "gif", frames, fps=60)
    assert sink.frame_count == 19 and sink.fps == 30
    decoded, info, _ = decode(sink.path)
    assert len(decoded) == 19
    assert abs(float(info["guessed_rate"]) - 30) < 0.05
    assert np.abs(decoded[1].astype(np.int16) - frames[2]).mean() < 6


def test_frames_folder(tmp_path: Path) -> None:
    frames = gradient(37, 48, 64)
    metadata = {"title": "T", "seed": "5"}
    sink = write_all(tmp_path / "out" / "cat", "frames", frames, fps=29.97, metadata=metadata)
    folder = sink.path
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(37)] + ["render.json"]
    for index in (0, 17, 36):
        with Image.open(folder / f"{index:06d}.png") as image:
            assert image.size == (64, 48) and image.mode == "RGB"
            assert np.array_equal(np.asarray(image), frames[index])  # PNG is lossless
    info = json.loads((folder / "render.json").read_text())
    assert info["frame_count"] == 37 and (info["width"], info["height"]) == (64, 48)
    assert abs(info["fps"] - 29.97) < 0.01 and info["fps_rational"] == "30000/1001"
    assert info["metadata"] == metadata
    assert hidden(folder.parent) == []


# -------------------------------------------------------------------------------------------
# atomic replacement


FORMATS = ["mp4", "webm", "mov", "gif", "frames"]


def output_path(folder: Path, fmt: str) -> Path:
    return folder / ("cat" if fmt == "frames" else f"cat.{fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_abort_keeps_the_old_output(tmp_path: Path, fmt: str) -> None:
    path = output_path(tmp_path, fmt)
    write_all(path, fmt, gradient(9, 48, 64))
    before = snapshot(path)

    sink = open_sink(path, fmt, width=64, height=48, fps=30)
    sink.write(gradient(20, 48, 64)[::-1].copy())
    assert snapshot(path) == before  # nothing at the final path changes while writing
    temp = sink.temp_path
    assert temp.parent == tmp_path and temp.name.startswith(".") and "tmp" in temp.name
    assert temp.exists()
    sink.abort()
    sink.abort()  # twice is harmless

    assert snapshot(path) == before
    assert hidden(tmp_path) == []
    with pytest.raises(RuntimeError):
        sink.write(gradient(1, 48, 64))


@pytest.mark.parametrize("fmt", FORMATS)
def test_exception_in_with_block_keeps_the_old_output(tmp_path: Path, fmt: str) -> None:
    path = output_path(tmp_path, fmt)
    write_all(path, fmt, gradient(9, 48, 64))
    before = snapshot(path)

    with pytest.raises(KeyError, match="boom"):
        with open_sink(path, fmt, width=64, height=48, fps=30) as sink:
            sink.write(gradient(12, 48, 64)[::-1].copy())
            raise KeyError("boom")

    assert snapshot(path) == before
    assert hidden(tmp_path) == []
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_close_replaces_the_old_output(tmp_path: Path, fmt: str) -> None:
    path = output_path(tmp_path, fmt)
    write_all(path, fmt, gradient(20, 48, 64))
    before = snapshot(path)
    with open_sink(path, fmt, width=64, height=48, fps=30) as sink:
        sink.write(gradient(6, 48, 64))
    assert snapshot(path) != before
    assert hidden(tmp_path) == []
    if fmt == "frames":  # swapped, not merged: the old frames 6..19 are gone
        assert len(list(path.glob("*.png"))) == 6
    else:
        assert len(decode(path)[0]) == 6


def test_a_failed_write_breaks_the_sink_and_keeps_the_old_output(tmp_path: Path) -> None:
    path = write_all(tmp_path / "cat.mp4", "mp4", gradient(9, 48, 64)).path
    before = path.read_bytes()
    sink = open_sink(path, "mp4", width=64, height=48, fps=30)
    assert isinstance(sink, FrameSink)
    sink.write(gradient(5, 48, 64))
    calls = []

    def failing(frame: np.ndarray) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return type(sink)._convert(sink, frame)

    sink._convert = failing  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        sink.write(gradient(6, 48, 64))
    with pytest.raises(RuntimeError, match="broken"):
        sink.write(gradient(1, 48, 64))
    with pytest.raises(RuntimeError, match="broken"):
        sink.close()  # an output missing frames is never put in place
    assert path.read_bytes() == before
    assert hidden(tmp_path) == []


def test_unclosed_sink_removes_its_temp_file_when_collected(tmp_path: Path) -> None:
    for fmt in ("mp4", "frames"):
        sink = open_sink(output_path(tmp_path, fmt), fmt, width=64, height=48, fps=30)
        sink.write(gradient(3, 48, 64))
        assert hidden(tmp_path)
        del sink
        gc.collect()
        assert hidden(tmp_path) == []
    assert os.listdir(tmp_path) == []


CRASH = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from framepack_render.output.encode import open_sink

    path, fmt = Path(sys.argv[1]), sys.argv[2]
    sink = open_sink(path, fmt, width=64, height=48, fps=30)
    for i in range(4):
        sink.write(np.full((10, 48, 64, 3), 40 * i, np.uint8))
    print("written", flush=True)
    time.sleep(60)
    sink.close()
""")


@pytest.mark.parametrize(("fmt", "old"), [("mp4", False), ("mp4", True), ("frames", True)])
def test_sigkill_before_close_leaves_no_partial_output(tmp_path: Path, fmt: str,
                                                       old: bool) -> None:
    path = output_path(tmp_path / "renders", fmt)
    if old:
        write_all(path, fmt, gradient(9, 48, 64))
        before = snapshot(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-c", CRASH, str(path), fmt],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = process.stdout.readline()
        assert line.strip() == b"written", process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()

    if old:
        assert snapshot(path) == before
    else:
        assert not path.exists()
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert leftovers, "the killed writer's temporary output should still be there"
    assert all(p.name.startswith(".") and "tmp" in p.name for p in leftovers), leftovers


# -------------------------------------------------------------------------------------------
# checks


def test_bad_arguments_are_refused_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        open_sink(tmp_path / "a.mp4", "mp4", width=63, height=48, fps=30)
    with pytest.raises(ValueError, match="even"):
        open_sink(tmp_path / "a.webm", "webm", width=64, height=47, fps=30)
    with pytest.raises(ValueError, match="safetensors"):
        open_sink(tmp_path / "a.safetensors", "safetensors", width=64, height=48, fps=30)
    with pytest.raises(ValueError, match="fps"):
        open_sink(tmp_path / "a.mp4", "mp4", width=64, height=48, fps=0.0)
    with pytest.raises(ValueError, match="crf"):
        open_sink(tmp_path / "a.mp4", "mp4", width=64, height=48, fps=30, crf=70)
    assert os.listdir(tmp_path) == []


def test_odd_sizes_where_the_format_allows_them(tmp_path: Path) -> None:
    for fmt in ("gif", "frames"):
        path = write_all(output_path(tmp_path, fmt), fmt, gradient(3, 47, 63)).path
        if fmt == "gif":
            assert decode(path)[0].shape == (3, 47, 63, 3)


def test_bad_frames_are_refused_and_the_sink_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    with open_sink(path, "mp4", width=64, height=48, fps=30) as sink:
        with pytest.raises(ValueError, match="shape"):
            sink.write(np.zeros((2, 64, 48, 3), np.uint8))
        with pytest.raises(ValueError, match="shape"):
            sink.write(np.zeros((48, 64, 3), np.uint8))
        with pytest.raises(TypeError, match="uint8"):
            sink.write(np.zeros((2, 48, 64, 3), np.float32))
        sink.write(gradient(4, 48, 64)[:, :, :, :])
        sink.write(np.zeros((0, 48, 64, 3), np.uint8))
        sink.write(gradient(4, 48, 128)[:, :, ::2])  # not contiguous
    assert len(decode(path)[0]) == 8
    assert sink.close() == path  # closing again just answers the path


def test_closing_without_frames_fails_and_leaves_nothing(tmp_path: Path) -> None:
    for fmt in FORMATS:
        sink = open_sink(output_path(tmp_path, fmt), fmt, width=64, height=48, fps=30)
        with pytest.raises(ValueError, match="no frames"):
            sink.close()
    assert os.listdir(tmp_path) == []


def test_frame_rates() -> None:
    assert as_frame_rate(30) == 30
    assert as_frame_rate(24.0) == 24
    assert as_frame_rate(29.97) == Fraction(30000, 1001)
    assert as_frame_rate(23.976) == Fraction(24000, 1001)
    assert as_frame_rate(59.94) == Fraction(60000, 1001)
    assert as_frame_rate(12.5) == Fraction(25, 2)
    assert as_frame_rate(100 / 3) == Fraction(100, 3)
    assert as_frame_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            as_frame_rate(bad)


# -------------------------------------------------------------------------------------------
# sidecars


def test_sidecar_paths(tmp_path: Path) -> None:
    assert sidecar_path(tmp_path / "cat.mp4", "mp4") == tmp_path / "cat.mp4.json"
    assert sidecar_path(tmp_path / "cat.gif", "gif") == tmp_path / "cat.gif.json"
    assert sidecar_path(tmp_path / "cat.safetensors", "safetensors") == (
        tmp_path / "cat.safetensors.json")
    assert sidecar_path(tmp_path / "cat", "frames") == tmp_path / "cat" / "render.json"
    paths = {sidecar_path(tmp_path / f"cat.{fmt}", fmt) for fmt in ("mp4", "webm", "gif", "mov")}
    assert len(paths) == 4
    with pytest.raises(ValueError):
        sidecar_path(tmp_path / "cat.avi", "avi")


def test_write_sidecar_is_atomic_and_pretty(tmp_path: Path) -> None:
    path = sidecar_path(tmp_path / "deep" / "cat.mp4", "mp4")
    data = {"seed": 5, "prompt": "a cat ✓", "fps": Fraction(30000, 1001),
            "image": tmp_path / "start.png", "steps": np.int64(25)}
    assert write_sidecar(path, data) == path
    text = path.read_text(encoding="utf-8")
    assert text.startswith("{\n  ") and text.endswith("}\n") and "✓" in text
    loaded = json.loads(text)
    assert loaded["image"] == str(tmp_path / "start.png") and loaded["steps"] == 25
    assert abs(loaded["fps"] - 29.97) < 0.01

    write_sidecar(path, {"seed": 6})
    assert json.loads(path.read_text()) == {"seed": 6}
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_sidecar(path, {"bad": object()})
    with pytest.raises(ValueError):
        write_sidecar(path, {"bad": math.nan})
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["cat.mp4.json"]


def test_sidecar_of_a_frames_folder_replaces_render_json(tmp_path: Path) -> None:
    folder = write_all(tmp_path / "cat", "frames", gradient(3, 48, 64)).path
    write_sidecar(sidecar_path(folder, "frames"), {"shot": "cat"})
    assert json.loads((folder / "render.json").read_text()) == {"shot": "cat"}
    assert sorted(p.name for p in folder.iterdir()) == [
        "000000.png", "000001.png", "000002.png", "render.json"]
