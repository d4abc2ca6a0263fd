"""``framepack models --scan DIR``: FramePack weight files under a folder, as models file entries.

Every ``.safetensors`` file under DIR is recognised by its header's key names and shapes (no
tensor is read, nothing is imported from torch), so ComfyUI's ``models/`` folders
(``diffusion_models``, ``unet``, ``text_encoders``, ``clip``, ``clip_vision``, ``vae``...) and
musubi-tuner's folders of single files are found whatever the files are called. Files holding
the released FramePack's shapes become entries of the ``framepack`` and ``framepack-f1``
profiles (the transformer's profile is the one thing read from its name: FramePack and
FramePack-F1 share every shape); other files are listed as comments, never written. ``--write``
merges the entries into the models file, keeping what is already there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .single_files import WEIGHTED, NotWeights, inspect_file, release_mismatch

PROFILES = ("framepack", "framepack-f1")
KEY_ORDER = ("path", "transformer", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
             "image_encoder", "feature_extractor", "vae")
PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
F1_NAME = re.compile(r"(^|[^a-z0-9])f1([^a-z0-9]|$)", re.IGNORECASE)
EXIT_OK, EXIT_INVALID = 0, 2


@dataclass(frozen=True)
class Found:
    """One recognised file: what it holds, and why it cannot be used when it cannot."""

    path: Path
    component: str
    names: str  # its key layout in words
    fp8: bool
    mismatch: str  # '' when it has the released FramePack's shapes

    @property
    def description(self) -> str:
        return f"{self.component}, {self.names}"

    @property
    def profiles(self) -> tuple[str, ...]:
        if self.mismatch:
            return ()
        if self.component != "transformer":
            return PROFILES
        return ("framepack-f1",) if F1_NAME.search(self.path.stem) else ("framepack",)


@dataclass
class Scan:
    folder: Path
    found: list[Found] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    pickles: list[Path] = field(default_factory=list)
    files: int = 0  # .safetensors files read

    def chosen(self) -> dict[str, dict[str, Found]]:
        """{profile: {component: file}}: per component the full-precision file first (it is
        upcast to the same dtype anyway), then the shortest path."""
        result: dict[str, dict[str, Found]] = {}
        for profile in PROFILES:
            for component in WEIGHTED:
                candidates = [f for f in self.found
                              if f.component == component and profile in f.profiles]
                if candidates:
                    best = min(candidates, key=lambda f: (f.fp8, len(str(f.path)), str(f.path)))
                    result.setdefault(profile, {})[component] = best
        return result

    def entries(self) -> dict[str, dict[str, str]]:
        """The models file entries: {profile: {component: absolute path}}."""
        return {profile: {c: str(f.path) for c, f in files.items()}
                for profile, files in self.chosen().items()}


def _safetensors(folder: Path) -> tuple[list[Path], list[Path]]:
    """(.safetensors files, pickled weight files) under ``folder``, following links once."""
    seen: set[str] = set()
    found: list[Path] = []
    pickles: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            suffix = os.path.splitext(name)[1].lower()
            if suffix == ".safetensors":
                found.append(Path(root) / name)
            elif suffix in PICKLES:
                pickles.append(Path(root) / name)
    return found, pickles


def scan(folder: str | os.PathLike[str]) -> Scan:
    """Every FramePack weight file under ``folder``, recognised from its header alone."""
    folder = Path(folder).expanduser().resolve()
    files, pickles = _safetensors(folder)
    result = Scan(folder, pickles=pickles, files=len(files))
    for path in files:
        try:
            header, recognised = inspect_file(path)
        except NotWeights as exc:
            result.unreadable.append((path, str(exc)))
            continue
        if recognised is None:
            continue  # LoRAs, other models' weights: not ours
        result.found.append(Found(path, recognised.component, recognised.names(),
                                  recognised.fp8, release_mismatch(header, recognised)))
    return result


# --- YAML ---------------------------------------------------------------------------------------

PLAIN = re.compile(r"[A-Za-z0-9_./~+@=-][A-Za-z0-9_./~+@=, ()-]*")


def _scalar(text: str) -> str:
    """A path as a YAML scalar: plain when that reads back the same, else double-quoted."""
    if PLAIN.fullmatch(text) and not text.endswith(" ") and text.lower() not in (
            "null", "true", "false", "yes", "no", "on", "off", "~"):
        return text
    return json.dumps(text, ensure_ascii=False)


def render(entries: dict[str, dict[str, str]], notes: dict[tuple[str, str], str] | None = None,
           header: list[str] | None = None) -> str:
    """Models file YAML: profiles in a fixed order, keys in the components' order, a comment
    after an entry where ``notes`` has one."""
    notes = notes or {}
    lines = [f"# {line}" if line else "#" for line in (header or [])]
    ordered = [p for p in (*PROFILES, "tiny") if p in entries] + \
        sorted(p for p in entries if p not in (*PROFILES, "tiny"))
    for profile in ordered:
        lines.append(f"{profile}:")
        keys = [k for k in KEY_ORDER if k in entries[profile]] + \
            sorted(k for k in entries[profile] if k not in KEY_ORDER)
        for key in keys:
            note = notes.get((profile, key))
            comment = f"  # {note}" if note else ""
            lines.append(f"  {key}: {_scalar(entries[profile][key])}{comment}")
    return "\n".join(lines) + "\n"


def _comments(result: Scan) -> list[str]:
    """What was found but is not written, as comment lines."""
    chosen = {id(f) for files in result.chosen().values() for f in files.values()}
    lines = []
    for item in result.found:
        if item.mismatch:
            lines.append(f"# skipped {item.path}: {item.description}, not the released "
                         f"shapes ({item.mismatch})")
        elif id(item) not in chosen:
            lines.append(f"# also found {item.path}: {item.description}")
    for path, why in result.unreadable:
        lines.append(f"# unreadable {path}: {why}")
    if result.pickles:
        lines.append(f"# {len(result.pickles)} pickled weight files left alone (never loaded; "
                     f"first: {result.pickles[0]})")
    return lines


def report(result: Scan) -> str:
    """The entries ``--write`` would write, as YAML, with comments on everything else."""
    entries = result.entries()
    notes = {(profile, component): item.names
             for profile, files in result.chosen().items() for component, item in files.items()}
    found = sum(len(v) for v in entries.values())
    head = [f"framepack models --scan {result.folder}",
            f"{result.files} .safetensors files read, {len(result.found)} FramePack weight files "
            f"recognised" + ("" if found else "; no models file entries")]
    text = render(entries, notes, head) if entries else "".join(f"# {h}\n" for h in head)
    comments = _comments(result)
    return text + "".join(line + "\n" for line in comments)


# --- writing the models file --------------------------------------------------------------------


def _read_raw(path: Path) -> tuple[dict[str, dict[str, str]], str]:
    """The models file as written (values unresolved) and its text; checked as it is read."""
    import yaml

    from .lookup import read_models_file

    read_models_file(path)  # a broken file stops here, with its own one-line message
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    data = yaml.safe_load(text) or {}
    return {str(p): {str(k): str(v) for k, v in (entry or {}).items()}
            for p, entry in data.items()}, text


def _same(written: str, path: str, base: Path) -> bool:
    local = Path(os.path.expandvars(written.strip())).expanduser()
    local = local if local.is_absolute() else base / local
    return os.path.realpath(local) == os.path.realpath(path)


def merge(existing: dict[str, dict[str, str]], entries: dict[str, dict[str, str]], base: Path
          ) -> tuple[dict[str, dict[str, str]], list[str]]:
    """(merged entries, one line per scanned entry): added where absent, kept where the file
    already names a component (it may be deliberate), unchanged where it names the same file."""
    merged = {profile: dict(values) for profile, values in existing.items()}
    changes = []
    for profile, values in entries.items():
        target = merged.setdefault(profile, {})
        for component, path in values.items():
            if component not in target:
                target[component] = path
                changes.append(f"added {profile}.{component}: {path}")
            elif _same(target[component], path, base):
                changes.append(f"unchanged {profile}.{component}")
            else:
                changes.append(f"kept {profile}.{component}: {target[component]} (the scan found "
                               f"{path}; edit the file to use it)")
    return merged, changes


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: a reader sees the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                         prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write(result: Scan, models_file: Path) -> list[str]:
    """Merge the scan's entries into ``models_file``; the lines say what changed."""
    existing, old_text = _read_raw(models_file)
    merged, changes = merge(existing, result.entries(), models_file.parent)
    if not any(line.startswith("added ") for line in changes):
        return changes
    head = ["framepack-render models file: component paths per profile",
            f"entries added by framepack models --scan {result.folder}"]
    write_atomically(models_file, render(merged, header=head))
    if re.search(r"(^|\s)#", old_text):
        changes.append("note: the comments of the old file were not kept")
    return changes


# --- the command --------------------------------------------------------------------------------


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scan DIR`` and ``--write`` for ``framepack models``."""
    parser.add_argument("--scan", metavar="DIR",
                        help="find FramePack weight files under DIR (a ComfyUI folder, "
                             "musubi-tuner's files...) by their keys, reading headers only, and "
                             "print the models file entries they make")
    parser.add_argument("--write", action="store_true",
                        help="with --scan: add those entries to the models file "
                             "($FRAMEPACK_MODELS, else the user config folder's "
                             "framepack-render/models.yaml), keeping the entries it has")


def run_scan(args: argparse.Namespace) -> int:
    """``framepack models --scan DIR [--write] [--json]``; the exit status. Scanning imports
    no torch; ``--write`` reads the models file with the checks ``models`` applies to it."""
    folder = Path(args.scan).expanduser()
    if not folder.is_dir():
        print(f"error: {args.scan}: not a folder", file=sys.stderr)
        return EXIT_INVALID
    result = scan(folder)
    changes: list[str] = []
    models_file = None
    if getattr(args, "write", False):
        from .lookup import ModelError, default_models_file

        models_file = default_models_file()
        try:
            changes = write(result, models_file)
        except ModelError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_INVALID
        except OSError as error:
            print(f"error: cannot write {models_file}: {error.strerror or error}",
                  file=sys.stderr)
            return EXIT_INVALID
    if getattr(args, "json", False):
        json.dump(_as_json(result, changes, models_file), sys.stdout, indent=2)
        print()
        return EXIT_OK
    if models_file is None:
        sys.stdout.write(report(result))
        return EXIT_OK
    added = sum(line.startswith("added ") for line in changes)
    print(f"models file {models_file}: " + (f"{added} entries added" if added else
                                            "nothing to add") + f" from {result.folder}")
    for line in changes:
        print(f"  {line}")
    return EXIT_OK


def _as_json(result: Scan, changes: list[str], models_file: Path | None) -> dict[str, Any]:
    return {
        "folder": str(result.folder),
        "found": [{"path": str(f.path), "component": f.component, "layout": f.names,
                   "fp8": f.fp8, "released_shapes": not f.mismatch,
                   "mismatch": f.mismatch or None, "profiles": list(f.profiles)}
                  for f in result.found],
        "entries": result.entries(),
        "unreadable": [{"path": str(p), "why": why} for p, why in result.unreadable],
        "pickles": [str(p) for p in result.pickles],
        "models_file": str(models_file) if models_file else None,
        "changes": changes,
    }
