"""Opening the files a shot names (the shot itself, templates, CSVs, images, masks, LoRAs).

A path may name anything: a folder, a device such as /dev/zero, a named pipe that blocks
whoever opens it, a socket, a broken symbolic link or a loop of them. Each is reported for
what it is, and only regular files are ever opened (opening some devices has effects of its
own): checked before, opened without blocking, checked again on the open descriptor (in case
something was swapped in between), and read to a bounded size.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_BINARY", 0)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a device file"),
    (stat.S_ISBLK, "a device file"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


class FileProblem(Exception):
    """Why a path cannot be read, as words that follow its name. ``missing`` when nothing is
    there at all (callers have their own wording for that, often with a suggestion)."""

    def __init__(self, message: str, *, missing: bool = False, too_big: bool = False):
        super().__init__(message)
        self.missing = missing
        self.too_big = too_big


def resolve(path: str | os.PathLike[str]) -> Path:
    """An absolute path with symbolic links followed; unlike ``Path.resolve`` it never raises
    on a loop of links (the file's own check then says what is wrong)."""
    return Path(os.path.realpath(os.fspath(path)))


def kind_of(mode: int) -> str | None:
    """'a folder', 'a device file', ... for anything that is not a regular file, else None."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def check_regular(path: Path, noun: str) -> os.stat_result:
    """The stat of ``path`` when it is a regular file (links followed), else FileProblem
    saying what it is instead; ``noun`` is what it should be ('an image')."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _stat_problem(path, exc) from None
    _require_regular(info, noun)
    return info


def open_regular(path: Path, noun: str) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading when it is a regular file; never blocks on a FIFO."""
    check_regular(path, noun)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _stat_problem(path, exc) from None
    try:
        info = os.fstat(fd)
        _require_regular(info, noun)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb"), info


def read_regular(path: Path, noun: str, limit: int) -> bytes:
    """The bytes of a regular file; FileProblem for anything else or for more than ``limit``
    bytes (read no further than that, whatever the file claims its size is)."""
    handle, info = open_regular(path, noun)
    with handle:
        if info.st_size > limit:
            raise FileProblem(f"is {_size(info.st_size)}; {_plural(noun)} are limited to "
                              f"{_size(limit)}", too_big=True)
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileProblem(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew since fstat
        raise FileProblem(f"is larger than {_size(limit)}; {_plural(noun)} are limited "
                          f"to {_size(limit)}", too_big=True)
    return data


def _plural(noun: str) -> str:
    """'an image' -> 'images', 'a shot file' -> 'shot files'."""
    word = noun.split(" ", 1)[1] if noun.startswith(("a ", "an ")) else noun
    return word + "s"


def _require_regular(info: os.stat_result, noun: str) -> None:
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise FileProblem(f"is {kind}, not {noun}")


def _stat_problem(path: Path, exc: OSError) -> FileProblem:
    if exc.errno == errno.ELOOP:
        return FileProblem("is a loop of symbolic links")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        try:
            return FileProblem(f"is a broken symbolic link (to '{os.readlink(path)}')")
        except OSError:  # not a link: nothing is there
            return FileProblem("not found", missing=True)
    if isinstance(exc, PermissionError):
        return FileProblem("permission denied")
    return FileProblem(f"cannot be read: {exc.strerror or exc}")


def _size(count: int) -> str:
    """'4 MiB', '5.2 MiB', '37 KiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value >= 10 or value.is_integer() \
                else f"{value:.1f} {unit}"
    return f"{count} bytes"
