"""Streaming, atomic video writers.

Frames arrive a few dozen at a time as uint8 RGB arrays of shape (T, H, W, 3) and go straight
into the encoder, so memory stays flat however long the video is. Every output is written to a
hidden temporary file (or folder) next to its final path and only renamed into place by
``close()``: a render that fails, is aborted or is killed never leaves a partial file at the
final path, and an older output stays untouched until the new one is complete.

Formats and what they become:

========  =================================================================================
mp4       H.264 (libx264), yuv420p, ``crf``, moov atom at the front (``+faststart``)
webm      VP9 (libvpx-vp9), yuv420p, ``crf`` with bitrate 0 (constant quality), Matroska tags
mov       ProRes 422 HQ (prores_ks profile 3), yuv422p10le; ``crf`` does not apply
gif       PyAV's gif encoder from pal8 frames, one adaptive palette per frame (Pillow octree
          quantizer, Floyd-Steinberg dither), loops forever, at most 50 fps (faster input keeps
          every n-th frame); ``crf`` and metadata do not apply
frames    a folder of ``000000.png``, ``000001.png``, ... plus ``render.json``
========  =================================================================================

Colour: RGB is converted with the BT.709 matrix to limited-range YUV and the stream is tagged
BT.709 (matrix, primaries, transfer, range), so players and decoders convert it back the same way.

Metadata: mp4 keeps iTunes-style keys (title, comment, description, ...) as they are; when any
other key is present every key is written as a QuickTime ``mdta`` tag instead (ffmpeg's
``use_metadata_tags``), which is also how mov always stores it, so no key is silently dropped.
Matroska upper-cases tag names (``comment`` reads back as ``COMMENT``; ``title`` stays).
FFmpeg writes its own ``encoder`` key.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Callable, Protocol, runtime_checkable

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc, Interpolation
from PIL import Image

from .record import FRAME_FORMATS, FRAMES_JSON, sidecar_path  # open_sink writes FRAME_FORMATS

__all__ = [
    "FRAME_FORMATS",
    "FrameSink",
    "as_frame_rate",
    "open_sink",
    "sidecar_path",
    "write_image",
    "write_sidecar",
]

FRAME_NAME = "{:06d}.png"

# GIF delays are whole centiseconds and browsers replace delays under 2 cs with 10 cs, so a GIF
# faster than 50 fps would play far too slowly. Faster input is decimated (every n-th frame).
GIF_MAX_FPS = 50

_AVCOL_SPC_BT709 = 1  # AVColorSpace; PyAV exposes no enum for the codec context's field
_TO_YUV = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP

# Keys the mp4 muxer writes as iTunes-style atoms (checked against this PyAV/FFmpeg build).
_MP4_ITUNES_KEYS = frozenset({
    "title", "comment", "description", "synopsis", "artist", "album_artist", "album",
    "composer", "date", "genre", "copyright", "grouping", "keywords", "lyrics", "show",
})


@runtime_checkable
class FrameSink(Protocol):
    """Where rendered frames go. Sinks from ``open_sink`` are also context managers: leaving the
    ``with`` block normally closes, leaving it by an exception aborts."""

    def write(self, frames: np.ndarray) -> None:
        """Encode uint8 RGB frames of shape (T, H, W, 3)."""
        ...

    def close(self) -> Path:
        """Finish encoding, then atomically put the output in place; returns the final path."""
        ...

    def abort(self) -> None:
        """Drop the temporary output; an existing old output stays untouched."""
        ...


# --------------------------------------------------------------------------------------------
# frame rate


def as_frame_rate(fps: float | int | Fraction) -> Fraction:
    """The exact frame rate for ``fps``.

    Integers and Fractions are taken as they are. A float near an NTSC rate (n * 1000/1001,
    e.g. 23.976, 29.97, 59.94) becomes that exact rate; any other float becomes the nearest
    fraction with a denominator of at most 1001.
    """
    if isinstance(fps, bool):
        raise TypeError("fps must be a number, not a bool")
    if isinstance(fps, Fraction):
        rate = fps
    elif isinstance(fps, int):
        rate = Fraction(fps)
    else:
        value = float(fps)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"fps must be a positive finite number, got {fps!r}")
        if value.is_integer():
            rate = Fraction(int(value))
        else:
            ntsc = round(value * 1.001)
            if ntsc > 0 and abs(value - ntsc / 1.001) <= 2e-4 * value:
                rate = Fraction(ntsc * 1000, 1001)
            else:
                rate = Fraction(value).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


# --------------------------------------------------------------------------------------------
# temporary outputs


def _temp_sibling(final: Path, tag: str = "tmp") -> Path:
    """A fresh hidden name next to ``final``: ``.<name>.<tag>-<random>``."""
    return final.with_name(f".{final.name}.{tag}-{secrets.token_hex(4)}")


def _create_temp_file(final: Path) -> Path:
    """Create an empty temporary file next to ``final`` (mode 0666 less the umask, so the
    renamed output gets the same permissions as any other new file)."""
    while True:
        tmp = _temp_sibling(final)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _create_temp_dir(final: Path) -> Path:
    while True:
        tmp = _temp_sibling(final)
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp


def _remove(path: Path) -> None:
    """Remove a file or folder if it exists; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable where the platform allows it (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Staging:
    """A temporary file or folder that becomes ``final`` on ``commit()``.

    If it is neither committed nor discarded (the sink was dropped without ``close()`` or
    ``abort()``), it is removed when garbage-collected or at interpreter exit. Only a hard kill
    leaves it behind, as a hidden ``.<name>.tmp-<random>`` entry.
    """

    def __init__(self, final: Path, *, folder: bool) -> None:
        self.final = final
        self.folder = folder
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _create_temp_dir(final) if folder else _create_temp_file(final)
        self._finalizer = weakref.finalize(self, _remove, self.tmp)

    def commit(self) -> Path:
        final = self.final
        if not self.folder:
            _fsync_file(self.tmp)
            os.replace(self.tmp, final)
        elif not os.path.lexists(final):
            os.rename(self.tmp, final)
        else:
            # A folder cannot be replaced atomically: move the old one aside, move the new one
            # in, then delete the old one. Should the second rename fail, the old one goes back.
            old = _temp_sibling(final, "tmp-old")
            os.rename(final, old)
            try:
                os.rename(self.tmp, final)
            except BaseException:
                os.rename(old, final)
                raise
            _remove(old)
        self._finalizer.detach()
        _fsync_dir(final.parent)
        return final

    def discard(self) -> None:
        self._finalizer()  # removes the temporary output (once)


# --------------------------------------------------------------------------------------------
# sinks


class _Sink:
    """The parts every sink shares: checks, the temporary output and its life cycle."""

    format = ""
    _folder = False

    def __init__(self, path: Path, *, width: int, height: int, rate: Fraction,
                 metadata: dict[str, str]) -> None:
        self.path = Path(path)
        self.width = width
        self.height = height
        self.fps = rate  # the output's exact frame rate
        self.metadata = metadata
        self.frame_count = 0  # frames stored in the output so far
        self._frames_in = 0  # frames passed to write()
        self._state = "open"  # open | broken | closed | aborted
        self._staging = _Staging(self.path, folder=self._folder)

    # public API ------------------------------------------------------------------------------

    @property
    def temp_path(self) -> Path:
        """Where the output is being written until ``close()``."""
        return self._staging.tmp

    def write(self, frames: np.ndarray) -> None:
        if self._state != "open":
            raise RuntimeError(f"cannot write to a sink that is {self._state}: {self.path}")
        frames = self._check_frames(frames)
        try:
            for frame in frames:
                self._write_frame(np.ascontiguousarray(frame), self._frames_in)
                self._frames_in += 1
        except BaseException:
            self._state = "broken"  # the output would lack frames: it can only be aborted
            raise

    def close(self) -> Path:
        if self._state == "closed":
            return self.path
        if self._state != "open":
            state = self._state
            self.abort()  # a broken sink's partial output goes; an aborted one is gone already
            raise RuntimeError(f"cannot close a sink that is {state}: {self.path}")
        try:
            if self._frames_in == 0:
                raise ValueError(f"no frames were written to {self.path}")
            self._finish()
            self._staging.commit()
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        if self._state in ("closed", "aborted"):
            return
        self._state = "aborted"
        try:
            self._release()
        except Exception:
            pass
        finally:
            self._staging.discard()

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.format} {self.width}x{self.height} @ {self.fps} fps"
                f" {self.frame_count} frames, {self._state}: {self.path}>")

    # for subclasses ---------------------------------------------------------------------------

    def _write_frame(self, frame: np.ndarray, index: int) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush everything into the temporary output, which must then be complete."""

    def _release(self) -> None:
        """Free resources after a failure or abort; the temporary output is then deleted."""

    def _check_frames(self, frames: np.ndarray) -> np.ndarray:
        if not isinstance(frames, np.ndarray):
            raise TypeError(f"frames must be a numpy array, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must be uint8, got {frames.dtype}")
        expected = (self.height, self.width, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected:
            raise ValueError(f"frames must have shape (T, {self.height}, {self.width}, 3) "
                             f"for {self.path}, got {frames.shape}")
        return frames


@dataclass(frozen=True)
class _Codec:
    container: str  # FFmpeg muxer name
    codec: str
    pix_fmt: str
    even_width: bool
    even_height: bool
    options: Callable[[int], dict[str, str]]  # crf -> encoder options
    container_options: Callable[[dict[str, str]], dict[str, str]]
    crf_range: tuple[int, int] | None = None  # None: crf does not apply


def _mp4_container_options(metadata: dict[str, str]) -> dict[str, str]:
    flags = "+faststart"
    if not set(metadata) <= _MP4_ITUNES_KEYS:
        flags += "+use_metadata_tags"
    return {"movflags": flags}


_CODECS = {
    "mp4": _Codec("mp4", "libx264", "yuv420p", True, True,
                  lambda crf: {"crf": str(crf)}, _mp4_container_options, (0, 51)),
    "webm": _Codec("webm", "libvpx-vp9", "yuv420p", True, True,
                   lambda crf: {"crf": str(crf), "b": "0", "row-mt": "1"},
                   lambda metadata: {}, (0, 63)),
    "mov": _Codec("mov", "prores_ks", "yuv422p10le", True, False,
                  lambda crf: {"profile": "3", "vendor": "apl0"},
                  lambda metadata: {"movflags": "use_metadata_tags"}),
    # gifflags: FFmpeg crops/masks a frame by comparing its palette indices with the previous
    # frame's whenever the frame's palette equals the first one, even if the previous frame
    # had a palette of its own; with a palette per frame that shows wrong colours, so it is off.
    "gif": _Codec("gif", "gif", "pal8", False, False,
                  lambda crf: {"gifflags": "-offsetting-transdiff"},
                  lambda metadata: {"loop": "0"}),  # loop 0: forever
}


class _VideoSink(_Sink):
    """mp4, webm, mov and gif through PyAV: each frame is converted and encoded as it comes."""

    def __init__(self, path: Path, format: str, *, width: int, height: int, rate: Fraction,
                 crf: int, metadata: dict[str, str]) -> None:
        spec = _CODECS[format]
        if (spec.even_width and width % 2) or (spec.even_height and height % 2):
            need = "width and height" if spec.even_height else "width"
            raise ValueError(f"{format} ({spec.codec}, {spec.pix_fmt}) needs an even {need}; "
                             f"got {width}x{height} for {path}")
        if spec.crf_range is not None and not spec.crf_range[0] <= crf <= spec.crf_range[1]:
            low, high = spec.crf_range
            raise ValueError(f"crf for {format} must be in {low}..{high}, got {crf}")
        self.format = format
        self._spec = spec
        self._container: Any = None
        super().__init__(path, width=width, height=height, rate=rate, metadata=metadata)
        try:
            self._open(crf)
        except BaseException:
            self.abort()
            raise

    def _open(self, crf: int) -> None:
        spec = self._spec
        container = av.open(str(self.temp_path), mode="w", format=spec.container,
                            options=spec.container_options(self.metadata))
        self._container = container
        container.metadata.update(self.metadata)
        stream = container.add_stream(spec.codec, rate=self.fps)
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = spec.pix_fmt
        stream.time_base = 1 / self.fps  # a hint: muxers may pick a finer one
        stream.options = spec.options(crf)
        context = stream.codec_context
        context.time_base = 1 / self.fps  # frame i has pts i
        if spec.pix_fmt.startswith("yuv"):
            context.colorspace = _AVCOL_SPC_BT709
            context.color_primaries = int(ColorPrimaries.BT709)
            context.color_trc = int(ColorTrc.BT709)
            context.color_range = int(ColorRange.MPEG)
        self._stream = stream

    def _convert(self, frame: np.ndarray) -> av.VideoFrame:
        rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
        return rgb.reformat(format=self._spec.pix_fmt, dst_colorspace="ITU709",
                            src_color_range="JPEG", dst_color_range="MPEG",
                            interpolation=_TO_YUV)

    def _write_frame(self, frame: np.ndarray, index: int) -> None:
        video_frame = self._convert(frame)
        video_frame.pts = self.frame_count
        video_frame.time_base = self._stream.codec_context.time_base
        self._container.mux(self._stream.encode(video_frame))
        self.frame_count += 1

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))  # flush delayed frames
        container, self._container = self._container, None
        container.close()  # writes the trailer (and, for mp4, moves the moov to the front)

    def _release(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()


class _GifSink(_VideoSink):
    """GIF through PyAV's gif encoder. Each frame gets its own 256-colour palette (Pillow's
    octree quantizer with Floyd-Steinberg dithering): far better than the fixed rgb8 palette,
    and it needs no look at later frames. Above 50 fps only every n-th frame is kept."""

    def __init__(self, path: Path, *, width: int, height: int, rate: Fraction,
                 metadata: dict[str, str]) -> None:
        self._step = max(1, math.ceil(rate / GIF_MAX_FPS))
        super().__init__(path, "gif", width=width, height=height, rate=rate / self._step,
                         crf=0, metadata=metadata)

    def _write_frame(self, frame: np.ndarray, index: int) -> None:
        if index % self._step == 0:
            super()._write_frame(frame, index)

    def _convert(self, frame: np.ndarray) -> av.VideoFrame:
        quantized = Image.fromarray(frame).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG)
        indices, palette = _unique_palette(np.asarray(quantized), quantized.getpalette("RGB"))
        return av.VideoFrame.from_ndarray((indices, palette), format="pal8")


def _unique_palette(indices: np.ndarray, flat_rgb: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices and a (256, 4) ARGB palette without repeated colours.

    Pillow's quantizer can return a palette that holds one colour twice. FFmpeg's gif encoder
    compacts each frame's palette and maps every repeat of a colour to entry 0, so pixels
    using a repeat come out in the wrong colour. Here every colour appears once; the unused
    tail repeats the first colour, which no pixel refers to.
    """
    rgb = np.asarray(flat_rgb, dtype=np.uint8).reshape(-1, 3)[:256]
    colors, inverse = np.unique(rgb, axis=0, return_inverse=True)
    indices = inverse.reshape(-1).astype(np.uint8)[indices]
    palette = np.empty((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque
    palette[: len(colors), 1:] = colors
    palette[len(colors):, 1:] = colors[0]
    return indices, palette


class _FramesSink(_Sink):
    """A folder of PNG frames (Pillow, fast compression) plus ``render.json``."""

    format = "frames"
    _folder = True

    def _write_frame(self, frame: np.ndarray, index: int) -> None:
        name = self.temp_path / FRAME_NAME.format(self.frame_count)
        Image.fromarray(frame).save(name, format="PNG", compress_level=1)
        self.frame_count += 1

    def _finish(self) -> None:
        write_sidecar(self.temp_path / FRAMES_JSON, {
            "format": "frames",
            "pattern": "%06d.png",
            "frame_count": self.frame_count,
            "width": self.width,
            "height": self.height,
            "fps": float(self.fps),
            "fps_rational": f"{self.fps.numerator}/{self.fps.denominator}",
            "metadata": self.metadata,
        })


def open_sink(path: Path, format: str, *, width: int, height: int, fps: float, crf: int = 16,
              metadata: dict[str, str] | None = None) -> FrameSink:
    """Start writing ``format`` to a temporary output next to ``path`` (parents are created).

    ``crf`` applies to mp4 (x264, 0..51) and webm (VP9, 0..63). ``metadata`` goes into the
    container for mp4, webm and mov, into ``render.json`` for frames, and nowhere for gif (use
    a sidecar). A gif faster than 50 fps keeps every n-th frame so browsers play it at speed;
    ``sink.fps`` and ``sink.frame_count`` tell what was stored.
    """
    if format not in FRAME_FORMATS:
        hint = " (latents are not written as frames)" if format == "safetensors" else ""
        raise ValueError(f"unknown frame format {format!r}{hint}; "
                         f"expected one of {', '.join(FRAME_FORMATS)}")
    for name, value in (("width", width), ("height", height), ("crf", crf)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    width, height, crf = int(width), int(height), int(crf)
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    rate = as_frame_rate(fps)
    meta = _check_metadata(metadata)
    path = Path(path)
    if format == "frames":
        return _FramesSink(path, width=width, height=height, rate=rate, metadata=meta)
    if format == "gif":
        return _GifSink(path, width=width, height=height, rate=rate, metadata=meta)
    return _VideoSink(path, format, width=width, height=height, rate=rate, crf=crf,
                      metadata=meta)


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"bad metadata key {key!r}")
        if not isinstance(value, str):
            raise TypeError(f"metadata value for {key!r} must be a string, got {value!r}")
        if "\0" in value:
            raise ValueError(f"metadata value for {key!r} contains a NUL character")
        result[key] = value
    return result


# --------------------------------------------------------------------------------------------
# sidecars


def _json_default(value: Any) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def write_sidecar(path: Path, data: dict) -> Path:
    """Write ``data`` as pretty JSON to ``path`` atomically (temporary file, then os.replace);
    parent folders are created. Paths, Fractions and numpy values are converted; NaN and
    infinity are refused (they are not JSON). Returns ``path``."""
    path = Path(path)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False,
                      default=_json_default) + "\n"
    staging = _Staging(path, folder=False)
    try:
        with open(staging.tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        return staging.commit()
    except BaseException:
        staging.discard()
        raise


def write_image(path: Path, frame: np.ndarray, metadata: dict[str, str]) -> Path:
    """Write one (H, W, 3) uint8 frame atomically; PNG by default, JPEG or WebP by suffix
    (both at quality 95). PNGs carry ``metadata`` as text chunks."""
    from PIL import PngImagePlugin

    path = Path(path)
    suffix = path.suffix.lower()
    staging = _Staging(path, folder=False)
    try:
        image = Image.fromarray(frame)
        if suffix in (".jpg", ".jpeg"):
            image.save(staging.tmp, format="JPEG", quality=95)
        elif suffix == ".webp":
            image.save(staging.tmp, format="WEBP", quality=95)
        else:
            info = PngImagePlugin.PngInfo()
            for key, value in metadata.items():
                info.add_itxt(key, value)
            image.save(staging.tmp, format="PNG", pnginfo=info)
        return staging.commit()
    except BaseException:
        staging.discard()
        raise
