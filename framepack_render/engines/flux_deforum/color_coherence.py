"""Deforum's colour coherence: a frame's histograms matched to a reference frame's, channel by
channel in CIELAB, HSV or RGB (sd-webui-deforum uses ``skimage.exposure.match_histograms``;
this is the same cumulative-distribution matching in numpy, so it needs no extra package).
"""

from __future__ import annotations

import numpy as np

# sRGB (D65) to CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0


def match_colors(frame: np.ndarray, reference: np.ndarray, space: str = "lab") -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with each channel's histogram matched to ``reference``'s in
    ``space`` (lab, hsv or rgb); uint8 again."""
    to_space, from_space = _SPACES[space]
    source, target = to_space(frame.astype(np.float64) / 255.0), \
        to_space(reference.astype(np.float64) / 255.0)
    matched = np.stack([match_channel(source[..., c], target[..., c]) for c in range(3)], -1)
    return (np.clip(from_space(matched), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def match_channel(source: np.ndarray, template: np.ndarray) -> np.ndarray:
    """``source``'s values moved so their cumulative distribution is ``template``'s."""
    _, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    template_values, template_counts = np.unique(template.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    template_quantiles = np.cumsum(template_counts) / template.size
    return np.interp(quantiles, template_quantiles, template_values)[inverse].reshape(
        source.shape)


# ---------------------------------------------------------------- colour spaces ([0, 1] RGB)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _DELTA ** 3, np.cbrt(xyz), xyz / (3 * _DELTA ** 2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4.0 / 29.0)) * _WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, None)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * linear ** (1 / 2.4) - 0.055)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    high, low = rgb.max(-1), rgb.min(-1)
    spread = high - low
    safe = np.where(spread > 0, spread, 1.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.select([high == r, high == g], [(g - b) / safe % 6, (b - r) / safe + 2],
                    (r - g) / safe + 4)
    hue = np.where(spread > 0, hue / 6.0, 0.0)
    saturation = np.where(high > 0, spread / np.where(high > 0, high, 1.0), 0.0)
    return np.stack([hue, saturation, high], -1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    hue, saturation, value = hsv[..., 0] % 1.0 * 6.0, hsv[..., 1], hsv[..., 2]
    sector = np.floor(hue).astype(int) % 6
    part = hue - np.floor(hue)
    p, q = value * (1 - saturation), value * (1 - saturation * part)
    t = value * (1 - saturation * (1 - part))
    table = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value),
             (value, p, q)]
    return np.stack([np.choose(sector, [row[c] for row in table]) for c in range(3)], -1)


_SPACES = {
    "lab": (rgb_to_lab, lab_to_rgb),
    "hsv": (rgb_to_hsv, hsv_to_rgb),
    "rgb": (lambda x: x, lambda x: x),
}
