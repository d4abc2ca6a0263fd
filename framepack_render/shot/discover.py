"""Which shot files a set of paths names: files as given, folders searched for shots.

A folder stands for every ``*.yaml`` / ``*.yml`` file under it (hidden folders skipped), less
the templates: files that another file there ``extends``. Used by ``watch`` and ``cache gc``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import Mark, ShotError, display_path, suggest_file
from .files import FileProblem, check_regular, resolve
from .yaml_loader import load_yaml

SHOT_SUFFIXES = (".yaml", ".yml")


def is_shot_name(path: Path) -> bool:
    return path.suffix.lower() in SHOT_SUFFIXES and not path.name.startswith(".")


def shot_files(paths: list[Path], *, csv: bool = False) -> list[Path]:
    """Resolved shot files, in a stable order. ``csv``: folders also yield ``*.csv`` job files
    (with ``--template``). A missing path raises ShotError."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            candidates = [p for p in sorted(path.rglob("*")) if p.is_file()
                          and not any(part.startswith(".") for part in p.relative_to(path).parts)
                          and (is_shot_name(p) or (csv and p.suffix.lower() == ".csv"))]
            templates = extended(candidates)
            found.update((resolve(p), None) for p in candidates if resolve(p) not in templates)
            continue
        try:
            check_regular(path, "a shot file")
        except FileProblem as problem:
            message = ("no such file or folder" + suggest_file(path)) if problem.missing \
                else str(problem)
            raise ShotError.at(Mark(display_path(path)), message) from None
        found[resolve(path)] = None
    return list(found)


def extended(files: list[Path]) -> set[Path]:
    """The files that some file in ``files`` names in ``extends`` (unreadable files name none)."""
    parents = set()
    for path in files:
        if not is_shot_name(path):
            continue
        try:
            doc = load_yaml(path)
        except ShotError:
            continue
        node = doc.value.get("extends") if doc.is_map else None
        if node is not None and isinstance(node.value, str) and node.value.strip():
            parents.add(resolve(Path(node.base) / node.value))
    return parents
