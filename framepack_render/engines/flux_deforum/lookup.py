"""Where FLUX.1's weights are: the same places and rules as FramePack's (``framepack.lookup``),
no torch.

Each component is looked up in the shot's ``model:`` mapping (its own key, then ``path/<name>``
in diffusers' layout), then the models file under ``flux-schnell:`` or ``flux-dev:``, then the
Hugging Face cache (``black-forest-labs/FLUX.1-schnell`` or ``-dev``, one subfolder per
component). Never downloaded; pickles refused. ``transformer`` and ``vae`` may also be single
``.safetensors`` files in Black Forest Labs' layout (``flux1-dev.safetensors``,
``ae.safetensors``, ComfyUI's copies with a ``model.diffusion_model.`` prefix), recognised by
their key names.
"""

from __future__ import annotations

from pathlib import Path

from ...profiles import PROFILES
from ...shot.errors import Mark
from ..framepack import single_files
from ..framepack.lookup import (BUILT_IN, KINDS, PICKLE_SUFFIXES, HubSource, Location,
                                _home_path, check_folder, located, search)

COMPONENTS = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer",
              "tokenizer_2")
SINGLE_FILES = {  # component -> a key every such file holds (after any prefix)
    "transformer": "double_blocks.0.img_attn.qkv.weight",
    "vae": "decoder.conv_in.weight",
}


def hub_source(profile: str, component: str) -> HubSource:
    repository = PROFILES[profile].repository
    assert repository is not None, profile
    return HubSource(repository, component)


def check_single_file(path: Path, component: str) -> tuple[str, str]:
    """Does a single file hold this FLUX component? Reads its header only."""
    if component not in SINGLE_FILES:
        return "missing", (f"{_home_path(path)} is a file; {component} is read from a folder "
                           "in diffusers' layout")
    try:
        names = set(single_files.read_header(path))
    except single_files.NotWeights as exc:
        return "missing", f"{_home_path(path)} is {exc}" if str(exc).startswith("not ") \
            else f"{_home_path(path)}: {exc}"
    core = SINGLE_FILES[component]
    if not any(name == core or name.endswith("." + core) for name in names):
        return "missing", (f"{_home_path(path)} holds no FLUX.1 {component} in Black Forest "
                           f"Labs' layout (no {core})")
    return "ok", "single file, Black Forest Labs' layout"


def check_path(path: Path, component: str) -> tuple[str, str]:
    """A user-given location: a folder, or for the transformer and VAE a .safetensors file."""
    if path.suffix.lower() in PICKLE_SUFFIXES and not path.is_dir():
        return "pickle", f"{_home_path(path)} is a pickle file"
    if path.is_file():
        return check_single_file(path, component)
    return check_folder(path, KINDS[component])


def locate(profile: str, component: str, paths: dict[str, str] | None = None,
           models_file: Path | None = None, mark: Mark | None = None) -> Location:
    """Find one component of flux-schnell or flux-dev; checks files exist, loads nothing."""
    source = hub_source(profile, component)
    download = f"download {source.describe()} ({source.command()})"
    return search(profile, component, paths, models_file, mark, source=source,
                  at=lambda path, origin, where: located(
                      profile, component, path, origin, where, *check_path(path, component),
                      download))


def availability(profile: str, paths: dict[str, str] | None = None, *,
                 models_file: Path | None = None) -> list[tuple[str, bool, str]]:
    """(component, available, where found or what is missing), as `framepack models` shows."""
    if PROFILES[profile].repository is None:  # tiny-flux
        return [(name, True, BUILT_IN) for name in COMPONENTS]
    rows = []
    for name in COMPONENTS:
        location = locate(profile, name, paths, models_file)
        rows.append((name, location.found,
                     _home_path(location.path) + f" ({location.origin})" if location.found
                     else location.origin))
    return rows
