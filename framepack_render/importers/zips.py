"""Reading ZIP archives that users bring (FP-Studio queue exports, eichi section exports).

Nothing is ever extracted by a member's own name: members are read into memory, bounded,
and the importers decide where (under the output folder) their bytes go. An archive that
looks hostile is refused whole, before any member is read: absolute names or names that
climb out with '..', symbolic links, encrypted or duplicated members, too many members,
or a "ZIP bomb" (a member that inflates far beyond its compressed size, or members that
together inflate past a total cap).
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..shot.errors import Mark, ShotError, display_path
from ..shot.files import FileProblem, open_regular

MAX_MEMBERS = 4096
MAX_TOTAL_BYTES = 1024 * 1024 * 1024  # all members inflated
MAX_RATIO = 100  # inflated / compressed, for members large enough to matter
RATIO_FLOOR = 1024 * 1024  # small members (text) may compress better than any image does


@dataclass(frozen=True)
class Member:
    name: str  # as written in the archive, with '/' separators
    size: int  # inflated size, as declared

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name


class Archive:
    """A checked, open ZIP file; ``read`` returns one member's bytes. Close it (or use it in a
    ``with`` block) when done."""

    def __init__(self, path: Path, shown: str, handle: BinaryIO, archive: zipfile.ZipFile):
        self.path = path
        self.shown = shown
        self._handle = handle
        self._zip = archive
        self.members = [Member(i.filename, i.file_size) for i in archive.infolist()
                        if not i.is_dir()]

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._handle.close()

    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def find(self, basename: str) -> Member | None:
        """The first member (in archive order) whose file name is ``basename``."""
        return next((m for m in self.members if m.basename == basename), None)

    def shown_member(self, member: Member) -> str:
        return f"{self.shown}:{member.name}"

    def read(self, member: Member) -> bytes:
        try:
            with self._zip.open(member.name) as handle:
                data = handle.read(member.size + 1)
        except Exception as exc:  # noqa: BLE001 - CRC errors, zlib.error, truncated data...
            raise ShotError.at(Mark(self.shown), f"member {member.name} cannot be read "
                                                 f"({exc})") from None
        if len(data) != member.size:  # zipfile checks CRCs; a lying size is caught here
            raise ShotError.at(Mark(self.shown), f"member {member.name} is not the size the "
                                                 "archive declares; refusing the archive")
        return data


def open_archive(path: Path) -> Archive:
    """Open and check ``path``; ShotError (one line naming the archive) when it is refused."""
    shown = display_path(path)
    try:
        handle, _ = open_regular(path, "a ZIP archive")
    except FileProblem as problem:
        raise ShotError.at(Mark(shown), "no such file" if problem.missing else str(problem)) \
            from None
    try:
        archive = zipfile.ZipFile(handle)
        problem = archive_problem(archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        handle.close()
        raise ShotError.at(Mark(shown), f"not a readable ZIP archive ({exc})") from None
    if problem:
        archive.close()
        handle.close()
        raise ShotError.at(Mark(shown), f"refusing the archive: {problem}")
    return Archive(path, shown, handle, archive)


def archive_problem(infos: list[zipfile.ZipInfo]) -> str | None:
    """Why an archive with these members must not be read, or None."""
    if len(infos) > MAX_MEMBERS:
        return f"it holds {len(infos)} members (at most {MAX_MEMBERS})"
    seen: set[str] = set()
    total = 0
    for info in infos:
        problem = member_problem(info)
        if problem:
            return f"member {info.filename!r} {problem}"
        key = info.filename.replace("\\", "/").rstrip("/")
        if key in seen:
            return f"member {info.filename!r} appears twice"
        seen.add(key)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            return (f"its members inflate to more than {MAX_TOTAL_BYTES // (1024 * 1024)} MiB "
                    "(a ZIP bomb?)")
    return None


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why one member is unsafe, or None."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if "\x00" in name:
        return "has a NUL character in its name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute name"
    if ".." in parts:
        return "climbs out of the archive with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return (f"inflates {info.file_size // max(info.compress_size, 1)} times its compressed "
                f"size (at most {MAX_RATIO}; a ZIP bomb?)")
    return None
