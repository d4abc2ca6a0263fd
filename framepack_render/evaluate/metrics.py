"""Offline video metrics: small pure functions over frames, numbers and lists of numbers.

Frames are uint8 RGB (H, W, 3) at analysis size (see ``video.ANALYSIS_SIDE``); luma is BT.709
``Y = 0.2126 R + 0.7152 G + 0.0722 B`` on the 0-255 scale. Each metric has a version in
``VERSIONS``: bump it when its formula changes, and cached scores made with the old one are
never read again. numpy, scipy and scikit-image are imported where they are used, so importing
this module is cheap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

VERSIONS = {
    "sharpness": "1",
    "colorfulness": "1",
    "brisque": "1",
    "color_drift": "1",
    "ssim_to_first": "1",
    "delta_e_to_first": "1",
    "frame_change": "1",
    "latency": "1",
    "ghosting": "1",
}

EDGE_FRACTION = 0.15  # the paper's drift compares the first and last 15% of frames
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)
COLOR_SIDE = 64  # the mean colour of a frame barely changes below this size
SSIM_SIDE = 256  # structure is compared at this size: half the cost of SSIM at 512 per frame
BRISQUE_SAMPLES = 5  # frames scored with BRISQUE in each 15% edge (it takes ~0.1 s a frame)
SETTLE_FLOOR = 1.0  # grey levels: below this a frame-to-frame change is codec noise
SETTLE_MADS = 3.0  # robust standard deviations above the median change
SETTLE_HOLD = 3  # frames the change must stay below the threshold to count as settled


# ---------------------------------------------------------------- per frame


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.709 luma of an RGB frame, float32 on the 0-255 scale."""
    return (frame.astype(np.float32) @ np.asarray(LUMA_WEIGHTS, np.float32)).astype(np.float32)


def sharpness(y: np.ndarray) -> float:
    """Variance of the Laplacian of luma: ``var(∇²Y)`` with the 4-neighbour kernel
    [[0,1,0],[1,-4,1],[0,1,0]] (edges reflected). Higher is sharper; it falls as a video blurs
    or loses detail, and depends on the analysis size, so compare videos of one size."""
    from scipy import ndimage

    return float(ndimage.laplace(y.astype(np.float64), mode="reflect").var())


def colorfulness(frame: np.ndarray) -> float:
    """Hasler and Süsstrunk's colourfulness (2003) on 0-255 RGB: with ``rg = R - G`` and
    ``yb = (R + G) / 2 - B``, ``C = sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)``.
    0 is grey; about 15 is slightly, 45 moderately and 80+ extremely colourful."""
    rgb = frame.reshape(-1, 3).astype(np.float64)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def mean_lab(frame: np.ndarray) -> np.ndarray:
    """The frame's mean colour in CIELAB (sRGB, D65), averaged over the pixels of a copy at
    most COLOR_SIDE pixels on its longer side."""
    from skimage.color import rgb2lab

    from .video import shrink

    small = shrink(frame, COLOR_SIDE)
    return rgb2lab(small).reshape(-1, 3).mean(axis=0)


def delta_e(lab_a: np.ndarray, lab_b: np.ndarray) -> float:
    """CIEDE2000 colour difference (Sharma et al. 2005) of two Lab colours. About 1 is a just
    noticeable difference; 2-10 is visible at a glance."""
    from skimage.color import deltaE_ciede2000

    return float(deltaE_ciede2000(np.asarray(lab_a, np.float64), np.asarray(lab_b, np.float64)))


def ssim(y_a: np.ndarray, y_b: np.ndarray) -> float:
    """Structural similarity of two luma images (Wang et al. 2004): scikit-image's mean SSIM
    with a 7x7 uniform window, K1 = 0.01, K2 = 0.03 and L = 255, on luma box-filtered to at
    most SSIM_SIDE pixels on its longer side (``structure``). 1 is identical; unrelated
    pictures score near 0 (smooth ones up to about 0.2)."""
    from skimage.metrics import structural_similarity

    side = min(y_a.shape)
    window = min(7, side if side % 2 else side - 1)
    if window < 3:  # too small for a window: fall back to equality
        return 1.0 if np.array_equal(y_a, y_b) else 0.0
    return float(structural_similarity(y_a, y_b, data_range=255.0, win_size=window))


def structure(y: np.ndarray) -> np.ndarray:
    """Luma at the size SSIM compares it."""
    from .video import shrink

    return shrink(y, SSIM_SIDE)


def frame_change(y_previous: np.ndarray, y: np.ndarray) -> float:
    """Frame-to-frame change (flicker): the mean absolute luma difference between a frame and
    the one before it, in grey levels (0-255). Linear in how far a cross-fade moves per frame,
    unlike 1 - SSIM, which barely sees a slow fade."""
    return float(np.abs(y - y_previous).mean())


# ---------------------------------------------------------------- drift


def edge_count(frames: int, fraction: float = EDGE_FRACTION) -> int:
    """Frames in each edge of the drift comparison: ``round(fraction × frames)``, at least 1."""
    return max(1, min(frames, round(fraction * frames)))


def drift(values: Sequence[float], fraction: float = EDGE_FRACTION) -> float:
    """The FramePack paper's drift (arXiv 2504.12626, Eq. 7) of a per-frame measure M:
    ``ΔM = |mean M(first 15% of frames) - mean M(last 15%)|``. 0 for a still video."""
    count = edge_count(len(values), fraction)
    return edge_drift(values[:count], values[len(values) - count:])


def edge_drift(first: Sequence[float], last: Sequence[float]) -> float:
    """``|mean(first) - mean(last)|``, for measures taken on a sample of each edge."""
    return abs(float(np.mean(first)) - float(np.mean(last)))


def color_drift(labs: Sequence[np.ndarray], fraction: float = EDGE_FRACTION) -> float:
    """Mean-colour drift: with M(t) = CIEDE2000(mean Lab of frame t, mean Lab of the first 15%
    of frames), ``ΔM = |mean M(first 15%) - mean M(last 15%)|``: how far, in ΔE00, the
    video's overall colour has wandered by its end."""
    count = edge_count(len(labs), fraction)
    reference = np.mean(np.asarray(labs[:count]), axis=0)
    return drift([delta_e(lab, reference) for lab in labs], fraction)


def brisque_frames(frames: int, fraction: float = EDGE_FRACTION,
                   samples: int = BRISQUE_SAMPLES) -> tuple[list[int], list[int]]:
    """The frames BRISQUE scores: up to ``samples`` evenly spaced in each 15% edge."""
    count = edge_count(frames, fraction)
    first = sorted({round(i) for i in np.linspace(0, count - 1, min(samples, count))})
    return first, [frames - count + i for i in first]


class BrisqueUnavailable(Exception):
    """BRISQUE cannot be computed here; the message says why, in one line."""


@lru_cache(maxsize=1)
def _brisque_model():
    try:
        with warnings.catch_warnings():  # its module imports a deprecated scipy alias
            warnings.simplefilter("ignore")
            from brisque import BRISQUE

            return BRISQUE(url=False)
    except Exception as error:  # noqa: BLE001 - any failure means "not available here"
        raise BrisqueUnavailable(f"BRISQUE cannot load ({error}); "
                                 "pip install 'framepack-render[evaluate]'") from None


def brisque(frame: np.ndarray) -> float:
    """BRISQUE (Mittal et al. 2012), with the SVM model bundled in the ``brisque`` package:
    natural-scene statistics of the luma's MSCN coefficients at full and half size, scaled and
    regressed to a score. Lower is better; about 0-100, where clean photos score 10-30.

    The package's own ``score()`` fails under numpy 2 (some features it computes are
    one-element arrays, which numpy 2 will not turn into floats), so its feature functions
    are called here and each feature flattened before its scaler and SVM."""
    model = _brisque_model()
    try:
        import cv2
        from skimage.color import rgb2gray

        gray = rgb2gray(frame)
        half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            features = [*model.calculate_brisque_features(gray, kernel_size=7, sigma=7 / 6),
                        *model.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)]
            flat = [float(np.asarray(f, dtype=np.float64).reshape(-1)[0]) for f in features]
            score = float(model.calculate_image_quality_score(flat))
    except Exception as error:  # noqa: BLE001
        raise BrisqueUnavailable(f"BRISQUE failed ({type(error).__name__}: {error})") from None
    if not math.isfinite(score):
        raise BrisqueUnavailable("BRISQUE gave no finite score (a flat frame?)")
    return score


# ---------------------------------------------------------------- transitions


def settle_threshold(changes: Sequence[float]) -> float:
    """The frame-to-frame change below which a video counts as settled, chosen per video from
    its own changes: ``τ = max(1 grey level, median + 3 × 1.4826 × MAD)`` (MAD: the median
    absolute deviation; 1.4826 × MAD estimates a standard deviation robustly). Transitions
    are a minority of frames, so the median is the video's ordinary motion; the floor keeps
    codec noise in a still video from counting as change."""
    values = np.asarray([c for c in changes if c is not None], np.float64)
    if values.size == 0:
        return SETTLE_FLOOR
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    return max(SETTLE_FLOOR, median + SETTLE_MADS * 1.4826 * mad)


@dataclass(frozen=True)
class Latency:
    frames: int  # from the prompt change until the video settles
    settle_frame: int  # the first settled frame
    responded: bool  # the change rose above the threshold soon after the prompt change
    settled: bool  # False: still changing when the section (or video) ended


def transition_latency(changes: Sequence[float | None], frame: int, end: int, *,
                       threshold: float, reaction: int, hold: int = SETTLE_HOLD) -> Latency:
    """Transition latency of a prompt change at ``frame`` in a section ending at ``end``
    (exclusive), from per-frame changes (``changes[t]``: frame t against frame t - 1).

    The response is the first frame within ``reaction`` frames of the change whose change
    exceeds ``threshold``; the video settles at the first later frame from which the change
    stays at or below it for ``hold`` frames. Latency = settle frame - change frame: a hard
    cut at the change takes 1 frame, a cross-fade over F frames about F. No response: 0
    (``responded`` False). Never settling: the frames to the section's end (``settled``
    False)."""
    def quiet(t: int) -> bool:
        return all((changes[u] or 0.0) <= threshold for u in range(t, min(t + hold, end)))

    response = next((t for t in range(frame, min(end, frame + reaction))
                     if (changes[t] or 0.0) > threshold), None)
    if response is None:
        return Latency(0, frame, responded=False, settled=True)
    settle = next((t for t in range(response + 1, end) if quiet(t)), None)
    if settle is None:
        return Latency(end - frame, end, responded=True, settled=False)
    return Latency(settle - frame, settle, responded=True, settled=True)


def ghosting(similarities: Sequence[float]) -> tuple[float, int] | None:
    """Ghosting: the highest similarity (luma SSIM) of the frames after a transition has
    settled to the previous section's representative frame (its middle frame), with the
    offset of the frame where it peaks. A clean change to new content scores near 0; a
    lingering ghost of the previous scene scores high where it lingers."""
    if not similarities:
        return None
    index = int(np.argmax(similarities))
    return float(similarities[index]), index
