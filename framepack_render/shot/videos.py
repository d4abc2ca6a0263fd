"""``input_video``: the video a shot extends, checked against the shot at validate time.

The video is probed from its container header (PyAV, imported only when a shot names a video;
a folder of PNG frames, as the ``frames`` output writes it, needs no PyAV) and hashed, never
decoded whole. Its size and frame rate must be the shot's: the new frames continue its pixels,
so a mismatch is an error naming both rather than a silent resize.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import Mark, Report, suggest_file
from .files import FileProblem, check_regular, resolve
from .model import IMAGE_FORMATS, ImageRef, InputVideo
from .yaml_loader import Node

SIDES = (64, 2048)  # a shot's sides, multiples of 16
FPS_TOLERANCE = 1e-3  # relative: 29.97 is not 30, 30000/1001 read as a float is 29.97


class VideoProblem(Exception):
    """Why ``input_video`` cannot be used, as words that follow its name; ``missing`` when
    nothing is there at all."""

    def __init__(self, message: str, *, missing: bool = False):
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class VideoProbe:
    sha256: str
    width: int
    height: int
    fps: float
    frames: int


_MEMO: dict[tuple[str, int, int], VideoProbe] = {}


def default_extend(sampling: str) -> str:
    """The side on which the sampling order reads its history: forward (FramePack-F1) reads the
    frames before a window, inverted orders read the frames after it."""
    return "forward" if sampling == "forward" else "backward"


def probe_video(path: Path) -> VideoProbe:
    """Size, rate, frame count and content hash of a video file or a frames folder. Files are
    memoised on (path, size, mtime): `watch` validates again on every save."""
    from ..evaluate.video import VideoError, content_hash, is_frames_folder, probe

    folder = path.is_dir()
    if folder and not is_frames_folder(path):
        raise VideoProblem("is a folder without PNG frames")
    memo_key = None
    if not folder:
        try:
            stat = check_regular(path, "a video")
        except FileProblem as problem:
            raise VideoProblem(str(problem), missing=problem.missing) from None
        memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo_key in _MEMO:
            return _MEMO[memo_key]
    try:
        info = probe(path)
        found = VideoProbe(content_hash(path), info.width, info.height, info.fps, info.frames)
    except VideoError as error:
        raise VideoProblem(str(error)) from None
    except OSError as error:
        raise VideoProblem(f"cannot be read ({error.strerror or error})") from None
    if memo_key is not None:
        _MEMO[memo_key] = found
    return found


def read_input_video(doc: Node, report: Report, sampling: str) -> InputVideo | None:
    """The shot's ``input_video`` with its ``extend`` and ``keep_input``, checked; None when
    there is none (or it is unusable: the error says why)."""
    node = doc.get("input_video")
    if node is None:
        for key in ("extend", "keep_input"):
            if doc.get(key) is not None:
                report.warn(doc.get(key).mark, f"{key} has no effect without input_video")
        return None
    extend_node = doc.get("extend")
    extend = extend_node.value if extend_node is not None else default_extend(sampling)
    if extend == "backward" and sampling == "forward":
        why = "is forward" if doc.get("sampling") is not None else "of framepack-f1 is forward"
        report.error((extend_node or node).mark,
                     f"extend: backward needs inverted or endpoints-first sampling: the sampling "
                     f"{why} and reads only the frames before each window; set extend: forward")
        return None
    path = (Path(node.base) / node.value).expanduser()
    if path.suffix.lower() in IMAGE_FORMATS and not path.is_dir():
        report.error(node.mark, f"input_video '{node.value}' is an image, not a video; a start "
                                "image goes in image")
        return None
    try:
        probed = probe_video(path)
    except VideoProblem as problem:
        said = f"not found{suggest_file(path)}" if problem.missing else str(problem)
        report.error(node.mark, f"input_video '{node.value}' {said}")
        return None
    if probed.frames < 1:
        report.error(node.mark, f"input_video '{node.value}' has no frames")
        return None
    keep = doc.get("keep_input")
    return InputVideo(path=resolve(path), sha256=probed.sha256, width=probed.width,
                      height=probed.height, fps=probed.fps, frames=probed.frames, extend=extend,
                      keep=True if keep is None else bool(keep.value), mark=node.mark,
                      text=node.value)


def start_image(video: InputVideo, image: ImageRef | None, doc: Node, report: Report,
                sampling: str) -> ImageRef | None:
    """The start image of an extension. Forward: the video's last frame (a start image of
    one's own would break the continuation). Backward: the shot's image, where the new frames
    begin before they lead into the video."""
    if video.extend == "forward":
        if image is not None:
            report.error(image.mark, "image cannot be used with a forward extension: the new "
                                     "frames start from input_video's last frame; remove image "
                                     "(or set extend: backward)")
        return ImageRef(video.mark, text=f"{video.text} (last frame)", video=video)
    if image is None and doc.get("image") is None:
        said = "extend: backward" if doc.get("extend") is not None else \
            f"input_video extends backward by default under {sampling} sampling, which"
        report.error(_extend_mark(doc, video), f"{said} needs 'image', the frame the new "
                                               "frames start from before they lead into the "
                                               "video; or set extend: forward to continue "
                                               "from its last frame")
    return image


def video_size(video: InputVideo, size: tuple[int, int] | None, report: Report
               ) -> tuple[int, int] | None:
    """The shot's size: the video's with ``size: auto``, else ``size`` when it matches."""
    own = (video.width, video.height)
    if size is None:
        low, high = SIDES
        if any(side % 16 or not low <= side <= high for side in own):
            report.error(video.mark, f"input_video '{video.text}' is {own[0]}x{own[1]}: a shot's "
                                     f"sides are multiples of 16 from {low} to {high}; resize "
                                     "the video")
            return None
        return own
    if size != own:
        report.error(video.mark, f"input_video '{video.text}' is {own[0]}x{own[1]} but the "
                                 f"shot's size is {size[0]}x{size[1]}; set size: "
                                 f"{own[0]}x{own[1]} (or auto), or resize the video")
        return None
    return size


def video_fps(video: InputVideo, fps_node: Node | None, report: Report) -> float:
    """The shot's rate: the video's unless the shot sets one, which must then match."""
    if fps_node is None:
        return video.fps
    fps = float(fps_node.value)
    if abs(fps - video.fps) > FPS_TOLERANCE * max(fps, video.fps):
        report.error(video.mark, f"input_video '{video.text}' is {video.fps:g} fps but the "
                                 f"shot's fps is {fps:g}; set fps: {video.fps:g} (or leave it "
                                 "out), or convert the video")
    return fps


def check_extension(video: InputVideo, doc: Node, report: Report,
                    end_image: ImageRef | None) -> None:
    """Combinations an extension cannot honour, each one line."""
    if video.extend == "backward" and end_image is not None:
        report.error(end_image.mark, "end_image cannot be used with extend: backward: the new "
                                     "frames lead into input_video, which is their end")
    post = doc.get("post")
    loop = post.get("loop") if post is not None and post.is_map else None
    if video.keep and loop is not None and loop.value == "pingpong":
        report.error(loop.mark, "loop: pingpong cannot keep input_video's frames (the video "
                                "would be read backwards); set keep_input: false or loop: none")


def _extend_mark(doc: Node, video: InputVideo) -> Mark:
    node = doc.get("extend")
    return node.mark if node is not None else video.mark
