"""Measure rendered videos (`framepack score`) and show a batch (`framepack report`).

Importing this package loads nothing heavy: numpy, PyAV, scikit-image, BRISQUE and CLIP load
when a video is scored.
"""

from __future__ import annotations

from typing import Any

__all__ = ["score_outputs", "score_paths", "score_video"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import score

        return getattr(score, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
