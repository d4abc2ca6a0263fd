"""Every capability's example renders with the tiny model, writing all its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import REPO, run

EXAMPLES = {  # folder: (outputs, edit images)
    "outfit-swap": (["renders/outfit-swap.mp4"], ["renders/outfit.png"]),
    "1f-mc": (["renders/1f-mc.mp4"], ["renders/1f-mc.png"]),
    "keyframes": (["renders/keyframes.mp4"], []),
    "endpoints-first": (["renders/endpoints-first.mp4"], []),
    "teacache": (["renders/teacache.mp4"], []),
    "flux-deforum": (["renders/flux-deforum.mp4"], []),
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_renders_with_the_tiny_model(name, capsys, tmp_path):
    shot = REPO / "examples" / name / "shot.yaml"
    code, out, err = run(capsys, "render", shot, "--json", "--cache", tmp_path / "cache",
                         "--output-root", tmp_path / "out", "--no-preview")
    assert code == 0, err
    result = json.loads(out)["shots"][0]
    videos, images = EXAMPLES[name]
    for relative in videos + images:
        path: Path = tmp_path / "out" / relative
        assert path.is_file() and path.stat().st_size > 0, relative
        assert path.with_name(path.name + ".json").is_file()
    assert result["edits_rendered"] == len([line for line in shot.read_text().splitlines()
                                            if line.strip().startswith("- name:")])
    if name == "teacache":
        assert 0 < result["teacache_skipped_share"] < 1
    if name == "endpoints-first":
        assert result["windows_rendered"] == 4
    if name == "flux-deforum":  # frames are its units of generation
        assert result["windows_rendered"] == 24
