"""Writing drafts as shot files: YAML with a leading comment, images referenced or copied.

Every file is written whole or not at all (a temporary file renamed into place), and only
after every draft is ready: an import that fails writes nothing. Images on disk are
referenced by a path relative to the output folder (or copied with ``--copy-images``); images
from archives, and images made here, are copied under ``images/`` with a content hash in their
name, so importing twice writes the same files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import yaml

from ..shot.errors import Mark, ShotError, display_path
from .draft import EDIT_OUTPUT, Caveat, Draft, Picture

IMAGES = "images"
RENDERS = "renders"
WIDTH = 95
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Characters a YAML file may not hold raw (PyYAML's printable set), and the ones it reads as
# line breaks: written as escapes inside double quotes.
_ESCAPE = re.compile("[^\x09\x20-\x7E\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]"
                     "|[\u2028\u2029]")


@dataclass(frozen=True)
class Written:
    source: str
    shot: Path
    caveats: tuple[Caveat, ...]

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "shot": str(self.shot),
                "warnings": [str(c) for c in self.caveats]}


def write_drafts(drafts: list[Draft], folder: Path, *, force: bool = False,
                 copy_images: bool = False) -> list[Written]:
    """Write one shot file per draft into ``folder``. ShotError, with nothing written, when a
    shot file exists already (unless ``force``) or the folder cannot be used."""
    if folder.exists() and not folder.is_dir():
        raise ShotError.at(Mark(display_path(folder)), "the output folder is a file")
    names = unique_names([d.name for d in drafts])
    targets = [folder / f"{name}.yaml" for name in names]
    if not force:
        for target in targets:
            if target.exists():
                raise ShotError.at(Mark(display_path(target)), "shot file exists already; "
                                   "pass --force to overwrite it")
    copies: dict[Path, bytes] = {}
    texts = [shot_text(draft, name, folder.resolve(), copies, copy_images)
             for draft, name in zip(drafts, names)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, data in copies.items():
            if not path.is_file():  # named by its hash: an existing copy is the same bytes
                atomic_write(path, data)
        for target, text in zip(targets, texts):
            atomic_write(target, text.encode("utf-8"))
    except OSError as exc:
        raise ShotError.at(Mark(display_path(folder)), f"cannot write there: "
                                                       f"{exc.strerror or exc}") from None
    return [Written(d.label, t, tuple(d.caveats)) for d, t in zip(drafts, targets)]


def unique_names(names: list[str]) -> list[str]:
    """File-system-safe stems, each used once: 'a', 'a-2', 'a-3'..."""
    taken: set[str] = set()
    out = []
    for name in names:
        base = _SAFE_NAME.sub("-", name).strip("-.") or "shot"
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{base}-{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ the YAML text


def shot_text(draft: Draft, name: str, folder: Path, copies: dict[Path, bytes],
              copy_images: bool) -> str:
    """The shot file: its leading comment, then the keys in the draft's order."""
    doc = {"version": 1, **draft.doc}
    doc = _with_output(doc, name)
    paths = _PathMaker(folder, copies, copy_images)
    lines = _comment(draft) + _block(paths.convert(doc), 0)
    return "\n".join(lines) + "\n"


def _with_output(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """``output`` right after ``model``, and the edits' PNGs named after the shot."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out[key] = value
        if key == "model":
            out["output"] = f"{RENDERS}/{name}.mp4"
    out.setdefault("output", f"{RENDERS}/{name}.mp4")
    for edit in out.get("edits", []):
        if edit.get("output") == EDIT_OUTPUT:
            edit["output"] = f"{RENDERS}/{name}.png"
    return out


def _comment(draft: Draft) -> list[str]:
    head = f"Imported by `framepack import` from {draft.label} ({draft.tool})."
    lines = _wrap(head)
    for note in draft.notes:
        lines += _wrap(note)
    for caveat in draft.caveats:
        lines += _wrap(f"warning ({caveat.file}:{caveat.line}): {caveat.message}")
    return lines


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(" ".join(text.split()), WIDTH - 2, initial_indent="# ",
                         subsequent_indent="#   ", break_long_words=False,
                         break_on_hyphens=False) or ["#"]


class _PathMaker:
    """Turns Pictures and LoRA paths into the strings the shot writes."""

    def __init__(self, folder: Path, copies: dict[Path, bytes], copy_images: bool):
        self.folder = folder
        self.copies = copies
        self.copy_images = copy_images

    def convert(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.convert(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [self.convert(v) for v in value]
        if isinstance(value, Picture):
            return self.picture(value)
        if isinstance(value, PurePath):
            return self.relative(Path(value))
        return value

    def picture(self, picture: Picture) -> str:
        if picture.data is None and not self.copy_images:
            assert picture.path is not None
            return self.relative(picture.path)
        stem, suffix = os.path.splitext(picture.name)
        stem = _SAFE_NAME.sub("-", stem).strip("-.") or "image"
        target = self.folder / IMAGES / f"{stem}-{picture.sha256[:8]}{suffix.lower() or '.png'}"
        if target not in self.copies:
            data = picture.data if picture.data is not None else picture.path.read_bytes()
            self.copies[target] = data
        return f"{IMAGES}/{target.name}"

    def relative(self, path: Path) -> str:
        try:
            return Path(os.path.relpath(path, self.folder)).as_posix()
        except ValueError:  # another drive: only an absolute path reaches it
            return path.as_posix()


def _block(value: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and not _flow(item):
            lines.append(f"{pad}{key}:")
            lines += _block(item, indent + 2)
        elif isinstance(item, list) and item:
            lines.append(f"{pad}{key}:")
            lines += _sequence(item, indent + 2)
        else:
            lines.append(f"{pad}{key}: {_inline(item)}")
    return lines


def _sequence(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for item in items:
        if isinstance(item, dict) and not _flow(item):
            inner = _block(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_inline(item)}")
    return lines


def _flow(item: dict[str, Any]) -> bool:
    """Small mappings of plain values read best on one line: {frames: 72}, {edit: a}."""
    return len(item) <= 2 and all(not isinstance(v, (dict, list)) for v in item.values())


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    return _string(str(value))


def _number(value: float) -> str:
    """A float YAML reads back as a float (PyYAML needs a dot, not just an exponent)."""
    text = repr(value)
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _string(text: str) -> str:
    """A string as written: plain when YAML reads it back unchanged, else double-quoted.
    ``${`` is doubled so that the shot's vars never touch imported text."""
    text = text.replace("${", "$${")
    if text and not _ESCAPE.search(text) and "\n" not in text:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    quoted = json.dumps(text, ensure_ascii=False)
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) <= 0xFFFF
                       else f"\\U{ord(m.group()):08x}", quoted)
