"""What a video extension reads from its input video. No torch.

The video's frames are VAE-encoded into latents that play the part of windows already
generated, on the side the sampling order reads as history:
- forward extension, forward sampling (FramePack-F1): each window reads the 19 latents before
  it, so the first windows read the video's last latents (its last 4 x 19 - 3 = 73 frames);
- backward extension, inverted orders: each window reads the 19 latents after it, so the last
  windows read the video's first latents (its first 73 frames);
- forward extension, inverted orders: windows read no latents before them; the video's last
  frame is only the clean prefix (the start image), as FramePack-Studio's Video mode does.
In every case a forward extension's start image is the video's last frame (an image entry).
"""

from __future__ import annotations

from typing import Any

from ..shot.model import InputVideo, Shot
from .layout import HISTORY_2X, HISTORY_4X

HISTORY = 1 + HISTORY_2X + HISTORY_4X  # latents of context a window reads


def history_latents(shot: Shot) -> int:
    """How many of the video's latents the windows read (0: only its last frame, or none).
    T latents are 4T - 3 frames, so a short video gives fewer."""
    video = shot.input_video
    if video is None or (video.extend == "forward") != (shot.sampling == "forward"):
        return 0
    return min(HISTORY, (video.frames + 3) // 4)


def encoded_frames(latents: int) -> int:
    """Frames the VAE encodes into ``latents`` latents (4x in time, the first frame alone)."""
    return 4 * latents - 3 if latents else 0


def reads_video(shot: Shot, index: int, count: int) -> bool:
    """Whether window ``index`` of ``count`` has the video's latents in its history."""
    if not history_latents(shot):
        return False
    assert shot.input_video is not None
    beside = index if shot.input_video.extend == "forward" else count - 1 - index
    return beside * shot.window < HISTORY  # the windows between it and the video fall short


def video_identity(video: InputVideo, latents: int) -> dict[str, Any]:
    """What a window reads from the video: which end, how many latents, of which bytes."""
    return {"sha256": video.sha256, "side": "end" if video.extend == "forward" else "start",
            "latents": latents}


def lead_frames(shot: Shot) -> int:
    """Decoded frames the output leaves out before the new ones: a forward extension decodes
    from the video's last frame (its start latent), which the video already holds."""
    video = shot.input_video
    return 1 if video is not None and video.extend == "forward" else 0
