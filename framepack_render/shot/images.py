"""Image files: they must exist and decode; their identity is the hash of their bytes."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from .files import FileProblem, check_regular, read_regular
from .model import ImageInfo

MAX_IMAGE_BYTES = 256 * 1024 * 1024  # far above any frame; a larger "image" is not one
_MEMO: dict[tuple[str, int, int], ImageInfo] = {}


class ImageProblem(Exception):
    """Why an image field cannot be used, as a message for the user."""


def probe_image(path: Path) -> ImageInfo:
    """Read, hash and fully decode ``path``. Memoised on (path, size, mtime) within a process.

    Only a regular file is read (a device, FIFO or socket is named as such, never opened in a
    way that blocks), and no more than MAX_IMAGE_BYTES of it."""
    try:
        stat = check_regular(path, "an image")
        memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo_key in _MEMO:
            return _MEMO[memo_key]
        data = read_regular(path, "an image", MAX_IMAGE_BYTES)
    except FileProblem as problem:
        raise ImageProblem(str(problem)) from None
    from PIL import Image, UnidentifiedImageError  # imported on first image: start-up stays quick

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # a truncated or corrupt file fails here, not at render time
                info = ImageInfo(path, hashlib.sha256(data).hexdigest(), image.width,
                                 image.height, image.mode)
    except UnidentifiedImageError:
        raise ImageProblem("is not an image Pillow can read (PNG, JPEG, WebP, ...)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageProblem("is too large to be a frame (decompression-bomb limit)") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for broken files
        raise ImageProblem(f"does not decode: {exc}") from None
    _MEMO[memo_key] = info
    return info
