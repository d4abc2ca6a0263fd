"""Shared fixtures: a shot folder with small images, and helpers to write shots and run the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from framepack_render.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"


@pytest.fixture
def shot_dir(tmp_path: Path) -> Path:
    """A folder holding images/start.png, middle.png and end.png (256x256)."""
    shutil.copytree(QUICKSTART / "images", tmp_path / "images")
    return tmp_path


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real weights anywhere: an empty Hugging Face cache, offline, and no models file
    (``$FRAMEPACK_MODELS`` names config/models.yaml under the returned folder, not made)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("FRAMEPACK_MODELS", str(tmp_path / "config" / "models.yaml"))
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


def run_without(modules: tuple[str, ...], body: str, *argv: object,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (Python, with ``main`` imported from the CLI and ``sys.argv[1:]`` =
    ``argv``) in a fresh interpreter where importing any of ``modules`` fails."""
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {tuple(modules)!r}:
                    raise ImportError('blocked import of ' + name)
        sys.meta_path.insert(0, Block())
        from framepack_render.cli import main
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script, *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


HEAVY = ("torch", "diffusers", "transformers", "av")
SIZE = 64


@pytest.fixture(scope="module")
def pool():
    """The tiny model, shared by a module's tests (built once, loaded lazily)."""
    from framepack_render.engines.framepack.models import ModelPool
    from framepack_render.shot.errors import Mark
    from framepack_render.shot.model import ModelSpec

    return ModelPool(ModelSpec("tiny", Mark("test")), "cpu")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for name in ("start", "middle", "end"):
        Image.open(QUICKSTART / "images" / f"{name}.png").resize((SIZE, SIZE)).save(
            tmp_path / "images" / f"{name}.png")
    return tmp_path


def shot_text(**extra: str) -> str:
    lines = {"model": "tiny", "image": "images/start.png", "output": "out/", "size":
             f"{SIZE}x{SIZE}", "steps": "3", "seed": "7"}
    lines.update(extra)
    body = "".join(f"{k}: {v}\n" for k, v in lines.items())
    if "sections" not in extra and "prompt" not in extra:
        body += ("sections:\n  - {prompt: a red ball rolls, duration: 2.4s}\n"
                 "  - {prompt: the ball stops, duration: 1.2s}\n")
    return body


def png_frames(folder: Path) -> np.ndarray:
    return np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="session")
def ray_cluster():
    """One private Ray cluster for the session: 2 CPUs and 2 fake GPUs (GPU placement without
    a GPU), every port on 127.0.0.1, no dashboard; shut down by its handle at the end."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed: pip install 'framepack-render[farm]'")
    from framepack_render.run.farm import start_local_cluster

    start_local_cluster(num_cpus=2, num_gpus=2)
    import ray

    yield ray
    ray.shutdown()
