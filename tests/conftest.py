"""Shared fixtures: a shot folder with small images, and helpers to write shots and run the CLI."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from framepack_render.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"


@pytest.fixture
def shot_dir(tmp_path: Path) -> Path:
    """A folder holding images/start.png, middle.png and end.png (256x256)."""
    shutil.copytree(QUICKSTART / "images", tmp_path / "images")
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
