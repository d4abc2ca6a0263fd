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
                                MissingWeights, UnsafeWeights, _given, _home_path, _hub_folder,
                                _noun, check_folder, default_models_file, hub_cache_dir,
                                located, read_models_file)

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
    paths = dict(paths or {})
    models_file = Path(models_file) if models_file is not None else default_models_file()
    source = hub_source(profile, component)
    noun = _noun(component)
    download = f"download {source.describe()} ({source.command()})"

    def at(path: Path, origin: str, where: str) -> Location:
        return located(profile, component, path, origin, where, *check_path(path, component),
                       download)

    file_paths = read_models_file(models_file).get(profile, {})
    for origin, mapping in (("the shot's model: mapping", paths),
                            (_home_path(models_file), file_paths)):
        given = _given(component, mapping)
        if given is None:
            continue
        path, own = given
        where = (f"{component}: in the shot's model: mapping" + (f" at {mark}" if mark else "")
                 if mapping is paths else f"{component}: under {profile}: in {origin}") if own \
            else f"path: in {origin}"
        location = at(path, origin, where)
        if own or location.found or isinstance(location.error, UnsafeWeights):
            return location

    kind = KINDS[component]
    folder = _hub_folder(source, kind)
    if folder is not None:
        state, why = check_folder(folder, kind)
        if state == "ok":
            return Location(component, folder, f"Hugging Face cache ({source.describe()})")
        detail = f"incomplete in the Hugging Face cache: {why}"
    else:
        detail = f"not found in the Hugging Face cache ({_home_path(hub_cache_dir())})"
    return Location(component, None, f"missing: {source.describe()} ({source.command()})",
                    MissingWeights(
                        f"{profile}: {component} {noun} {detail}; download {source.describe()} "
                        f"({source.command()}), or set {component}: under {profile}: in "
                        f"{_home_path(models_file)} or in the shot's model: mapping"))


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
