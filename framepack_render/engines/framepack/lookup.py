"""Where each model component's weights are: no torch, so `plan`, `models --scan` and score's
CLIP lookup answer without loading it.

Each component of a profile is looked up, in order, in:

1. the shot's ``model:`` mapping (``ModelSpec.paths``): the component's own key (a folder, or
   for a weighted component a single ``.safetensors`` file as ComfyUI and musubi-tuner users
   hold it, see ``single_files``), then ``path/<component>`` (a folder in diffusers' pipeline
   layout);
2. the user's models file, YAML mapping a profile name to the same keys: ``$FRAMEPACK_MODELS``,
   else ``models.yaml`` in the platform's user config folder (``~/.config/framepack-render``);
   relative paths there are relative to the file;
3. the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), for the repositories named in ``HUB_SOURCES``.

A component's own key is authoritative: when it names something that is not there, that is the
error (no quiet fall-back to another copy). A ``path`` folder lacking a component falls through.
Nothing is ever downloaded, and pickled weights (``.bin``, ``.pt``, ``.ckpt``...) are refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...profiles import PROFILES
from ...run.events import ModelError
from ...shot.errors import Mark, suggest
from . import single_files
from .single_files import WEIGHTED

COMPONENTS = ("transformer", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
              "image_encoder", "feature_extractor", "vae")
POOL_ITEMS = COMPONENTS + ("prompt_template",)
MODEL_KEYS = ("path",) + COMPONENTS  # keys of a shot's model: mapping and of the models file

HUNYUAN_REPO = "hunyuanvideo-community/HunyuanVideo"
REDUX_REPO = "lllyasviel/flux_redux_bfl"
TRANSFORMER_REPOS = {
    "framepack": "lllyasviel/FramePackI2V_HY",
    "framepack-f1": "lllyasviel/FramePack_F1_I2V_HY_20250503",
}
# Profiles the models file may set: FramePack's, and other engines' that have weights to find.
MODELS_FILE_PROFILES = (*TRANSFORMER_REPOS,
                        *(name for name, p in PROFILES.items() if p.repository is not None))
MODELS_ENV = "FRAMEPACK_MODELS"
BUILT_IN = "built in code (tiny random weights)"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

# The released FramePack transformer's config, used to build the model for a single-file
# checkpoint, which carries no config.
FRAMEPACK_TRANSFORMER_CONFIG: dict[str, Any] = dict(single_files.FRAMEPACK_TRANSFORMER_CONFIG)


# --- errors -------------------------------------------------------------------------------------


class MissingWeights(ModelError):
    """A component's weights are not where they are looked for; the message says how to fix it."""


class UnsafeWeights(MissingWeights):
    """Only pickled weights were found: they are refused (unpickling runs arbitrary code)."""


class ModelsFileError(ModelError):
    """The models file cannot be read or has a mistake."""


# --- components ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSource:
    repo: str
    subfolder: str | None  # None: the repository root

    def describe(self) -> str:
        return f"{self.repo} subfolder {self.subfolder}" if self.subfolder else self.repo

    def command(self) -> str:
        include = f" --include '{self.subfolder}/*'" if self.subfolder else ""
        return f"hf download {self.repo}{include}"


def hub_source(profile: str, component: str) -> HubSource:
    if component == "transformer":
        return HubSource(TRANSFORMER_REPOS[profile], None)
    if component in ("image_encoder", "feature_extractor"):
        return HubSource(REDUX_REPO, component)
    return HubSource(HUNYUAN_REPO, component)


# What a component folder must hold: "diffusers" / "transformers" models (config and safetensors
# weights), a tokenizer, or an image processor.
KINDS = {
    "transformer": "diffusers", "vae": "diffusers",
    "text_encoder": "transformers", "text_encoder_2": "transformers",
    "image_encoder": "transformers",
    "tokenizer": "tokenizer", "tokenizer_2": "tokenizer", "feature_extractor": "processor",
}
WEIGHT_NAMES = {"diffusers": "diffusion_pytorch_model", "transformers": "model"}
MARKERS = {"diffusers": "config.json", "transformers": "config.json",
           "tokenizer": "tokenizer_config.json", "processor": "preprocessor_config.json"}


def _noun(component: str) -> str:
    return "files" if KINDS[component] in ("tokenizer", "processor") else "weights"


# --- the models file ----------------------------------------------------------------------------


def default_models_file() -> Path:
    """``$FRAMEPACK_MODELS``, else ``models.yaml`` in the platform's user config folder."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("framepack-render", appauthor=False)) / "models.yaml"


def _home_path(path: Path | str) -> str:
    """A path with the home folder written as ``~``, for messages."""
    text = str(path)
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home):]
    return text


def read_models_file(path: Path) -> dict[str, dict[str, str]]:
    """{profile: {key: absolute path}}; {} when the file does not exist."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModelsFileError(f"{_home_path(path)}: cannot read the models file: "
                              f"{exc.strerror or exc}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        pos = f":{where.line + 1}:{where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ModelsFileError(f"{_home_path(path)}{pos}: {problem}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ModelsFileError(f"{_home_path(path)}: expected a mapping of profile names "
                              f"({', '.join(MODELS_FILE_PROFILES)}) to component paths")
    base = path.parent
    result: dict[str, dict[str, str]] = {}
    for profile, entry in data.items():
        profile = str(profile)
        if profile not in MODELS_FILE_PROFILES:
            raise ModelsFileError(f"{_home_path(path)}: unknown profile '{profile}'"
                                  f"{suggest(profile, MODELS_FILE_PROFILES)}")
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise ModelsFileError(f"{_home_path(path)}: {profile}: expected a mapping of "
                                  f"components ({', '.join(MODEL_KEYS)}) to paths")
        paths = {}
        for key, value in entry.items():
            key = str(key)
            if key not in MODEL_KEYS:
                raise ModelsFileError(f"{_home_path(path)}: {profile}: unknown key '{key}'"
                                      f"{suggest(key, MODEL_KEYS)}")
            if not isinstance(value, str) or not value.strip():
                raise ModelsFileError(f"{_home_path(path)}: {profile}.{key}: expected a path")
            local = Path(os.path.expandvars(value.strip())).expanduser()
            paths[key] = str(local if local.is_absolute() else (base / local).resolve())
        result[profile] = paths
    return result


# --- finding weights ----------------------------------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    if os.environ.get("HF_HOME"):
        home = Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        home = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"
    return home / "hub"


def _pickles(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    except OSError:
        return []


def check_folder(folder: Path, kind: str) -> tuple[str, str]:
    """("ok" | "missing" | "pickle", detail) for a component folder. Checks files only."""
    if not folder.is_dir():
        return "missing", f"{_home_path(folder)} does not exist"
    marker = MARKERS[kind]
    if kind == "tokenizer":
        if not (folder / "tokenizer.json").is_file() and not (folder / marker).is_file():
            return "missing", f"no tokenizer.json in {_home_path(folder)}"
        return "ok", ""
    if not (folder / marker).is_file():
        return "missing", f"no {marker} in {_home_path(folder)}"
    if kind == "processor":
        return "ok", ""
    name = WEIGHT_NAMES[kind]
    if (folder / f"{name}.safetensors").is_file():
        return "ok", ""
    index = folder / f"{name}.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return "missing", f"{_home_path(index)} is not a valid index"
        absent = [s for s in shards if not (folder / s).is_file()]
        if absent:
            return "missing", (f"{len(absent)} of {len(shards)} weight files missing in "
                               f"{_home_path(folder)} (first: {absent[0]})")
        return "ok", ""
    pickles = _pickles(folder)
    if pickles:
        return "pickle", f"{_home_path(folder)} holds only pickled weights ({pickles[0]})"
    return "missing", f"no {name}.safetensors in {_home_path(folder)}"


def check_path(path: Path, component: str) -> tuple[str, str]:
    """A user-given location: a folder, or for a weighted component a single .safetensors file
    (then the detail of an "ok" says what the file holds)."""
    if path.suffix.lower() in PICKLE_SUFFIXES and not path.is_dir():
        return "pickle", f"{_home_path(path)} is a pickle file"
    if component in WEIGHTED and path.suffix.lower() == ".safetensors" and not path.is_dir():
        if not path.is_file():
            return "missing", f"{_home_path(path)} does not exist"
        return check_single_file(path, component)
    if path.is_file():
        expected = "a folder or a .safetensors file" if component in WEIGHTED else "a folder"
        return "missing", f"{_home_path(path)} is a file; expected {expected}"
    return check_folder(path, KINDS[component])


def check_single_file(path: Path, component: str) -> tuple[str, str]:
    """Does a single file hold ``component``? Reads its header only."""
    try:
        _, found = single_files.inspect_file(path)
    except single_files.NotWeights as exc:
        return "missing", f"{_home_path(path)} is {exc}" if str(exc).startswith("not ") \
            else f"{_home_path(path)}: {exc}"
    if found is None:
        return "missing", (f"{_home_path(path)} holds no {component} in a layout framepack-render "
                           f"knows (ComfyUI's, musubi-tuner's or the released names)")
    if found.component != component:
        return "missing", f"{_home_path(path)} holds a {found.describe()}, not a {component}"
    return "ok", f"single file, {found.names()}"


def _released_mismatch(path: Path) -> str:
    """For a single file found where a released profile wants it: how its shapes differ."""
    try:
        header, found = single_files.inspect_file(path)
    except single_files.NotWeights:
        return ""
    return single_files.release_mismatch(header, found, FRAMEPACK_TRANSFORMER_CONFIG) \
        if found is not None else ""


def _hub_folder(source: HubSource, kind: str) -> Path | None:
    """The component's folder in the newest cached snapshot of its repository, if any."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir()
    marker = MARKERS[kind]
    relative = f"{source.subfolder}/{marker}" if source.subfolder else marker
    found = try_to_load_from_cache(source.repo, relative, cache_dir=str(cache))
    if isinstance(found, str):
        return Path(found).parent
    # A snapshot without refs/main (downloaded at a pinned revision): take the newest one.
    snapshots = cache / ("models--" + source.repo.replace("/", "--")) / "snapshots"
    try:
        candidates = [p for p in snapshots.iterdir() if p.is_dir()]
    except OSError:
        return None
    candidates.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for snapshot in candidates:
        folder = snapshot / source.subfolder if source.subfolder else snapshot
        if (folder / marker).exists():
            return folder
    return None


TRANSFORMER_CLASS_NAMES = ("HunyuanVideoFramepackTransformer3DModel",
                           "HunyuanVideoTransformer3DModelPacked")


def _is_transformer(folder: Path) -> bool:
    """Does ``folder`` hold a FramePack transformer's config.json (as its repository root does)?"""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("_class_name") in TRANSFORMER_CLASS_NAMES


@dataclass(frozen=True)
class Location:
    """Where a component was found (``path``) or why not (``error``); ``origin`` says which."""

    component: str
    path: Path | None
    origin: str
    error: ModelError | None = None

    @property
    def found(self) -> bool:
        return self.path is not None and self.error is None


def _at(profile: str, component: str, path: Path, origin: str, where: str) -> Location:
    """The component at a path the user gave (``where`` says where they gave it)."""
    source = hub_source(profile, component) if profile in TRANSFORMER_REPOS else None
    download = f"download {source.describe()} ({source.command()})" if source else \
        f"remove {component}: from the mapping to use tiny's built-in weights"
    state, detail = check_path(path, component)
    if state == "ok" and profile in TRANSFORMER_REPOS and path.is_file():
        mismatch = _released_mismatch(path)
        if mismatch:
            state, detail = "missing", (f"{_home_path(path)} does not hold the released "
                                        f"{component}'s shapes: {mismatch}")
    return located(profile, component, path, origin, where, state, detail, download)


def located(profile: str, component: str, path: Path, origin: str, where: str, state: str,
            detail: str, download: str) -> Location:
    """A user-given path's check (``check_path``'s state and detail) as a Location: found,
    refused (a pickle) or missing, with the one line that says what to do."""
    noun = _noun(component)
    if state == "ok":
        return Location(component, path, f"{origin}; {detail}" if detail else origin)
    if state == "pickle":
        return Location(component, None, f"refused: {detail}", UnsafeWeights(
            f"{profile}: refusing to load {component} {noun}: {detail}; only .safetensors "
            f"are loaded (pickles can run code): {download} or convert them, and fix {where}"))
    return Location(component, None, f"missing: {detail}", MissingWeights(
        f"{profile}: {component} {noun} not found: {detail} (set by {where}); fix that "
        f"path, or {download}"))


def _given(component: str, mapping: dict[str, str]) -> tuple[Path, bool] | None:
    """Where a mapping (a shot's or a profile's in the models file) puts ``component``:
    (path, True) for its own key, (path/<component>, False) for a ``path`` folder holding it."""
    if component in mapping:
        return Path(mapping[component]), True
    if "path" in mapping:
        base = Path(mapping["path"])
        candidate = base / component
        if component == "transformer" and not candidate.exists() and _is_transformer(base):
            candidate = base  # `path` is the transformer's own folder (a repo snapshot)
        if candidate.exists():
            return candidate, False
    return None


def tiny_location(component: str, paths: dict[str, str] | None = None,
                  mark: Mark | None = None) -> Location | None:
    """Where the shot's ``model:`` mapping puts one of tiny's components, or None when it is
    built in code. Only the shot's mapping counts: see the module's docstring."""
    if component not in COMPONENTS:
        return None
    given = _given(component, dict(paths or {}))
    if given is None:
        return None
    path, own = given
    where = (f"{component}: in the shot's model: mapping" if own else
             "path: in the shot's model: mapping") + (f" at {mark}" if mark else "")
    return _at("tiny", component, path, "the shot's model: mapping", where)


def locate(profile: str, component: str, paths: dict[str, str] | None = None,
           models_file: Path | None = None, mark: Mark | None = None) -> Location:
    """Find one component of a real profile. Checks files exist (and reads single files'
    headers); loads nothing.

    ``paths`` is the shot's model mapping, ``mark`` where the shot wrote it (for messages).
    """
    if profile not in TRANSFORMER_REPOS:
        raise ValueError(f"profile {profile!r} has no weights to find")
    return search(profile, component, paths, models_file, mark,
                  source=hub_source(profile, component),
                  at=lambda path, origin, where: _at(profile, component, path, origin, where))


def search(profile: str, component: str, paths: dict[str, str] | None,
           models_file: Path | None, mark: Mark | None, *, source: HubSource,
           at: Callable[[Path, str, str], Location]) -> Location:
    """The lookup every engine's real profiles share: ``at(path, origin, where)`` checks a
    path the user gave; ``source`` is the component's place in the Hugging Face cache."""
    paths = dict(paths or {})
    models_file = Path(models_file) if models_file is not None else default_models_file()
    noun = _noun(component)
    settings = f"set {component}: under {profile}: in {_home_path(models_file)}"

    # 1 and 2: the shot, then the models file. A component's own key decides; a `path` folder
    # that lacks the component (or holds an incomplete copy) falls through to the next source.
    file_paths = read_models_file(models_file).get(profile, {})
    for origin, mapping in (("the shot's model: mapping", paths),
                            (_home_path(models_file), file_paths)):
        given = _given(component, mapping)
        if given is None:
            continue
        path, own = given
        if own:
            where = (f"{component}: in the shot's model: mapping" + (f" at {mark}" if mark else "")
                     if mapping is paths else f"{component}: under {profile}: in {origin}")
            return at(path, origin, where)
        location = at(path, origin, f"path: in {origin}")
        if location.found or isinstance(location.error, UnsafeWeights):
            return location

    # 3: the Hugging Face cache.
    kind = KINDS[component]
    folder = _hub_folder(source, kind)
    detail = f"not found in the Hugging Face cache ({_home_path(hub_cache_dir())})"
    if folder is not None:
        state, why = check_folder(folder, kind)
        if state == "ok":
            return Location(component, folder, f"Hugging Face cache ({source.describe()})")
        if state == "pickle":
            return Location(component, None, f"refused: {why}", UnsafeWeights(
                f"{profile}: refusing to load {component} {noun}: {why}; only .safetensors are "
                f"loaded: download {source.describe()} ({source.command()}) or {settings}"))
        detail = f"incomplete in the Hugging Face cache: {why}"
    short = f"missing: {source.describe()} ({source.command()})"
    if folder is not None:
        short = f"incomplete: {detail.split(': ', 1)[1]}; {source.command()}"
    return Location(component, None, short, MissingWeights(
        f"{profile}: {component} {noun} {detail}; download {source.describe()} "
        f"({source.command()}), or {settings} or in the shot's model: mapping"))


def availability(profile: str, paths: dict[str, str] | None = None, *,
                 models_file: Path | None = None) -> list[tuple[str, bool, str]]:
    """(component, available, where found or what is missing) for each component.

    Only checks that files exist (and reads single files' headers); nothing is loaded, so it
    is fast. For ``tiny`` what the shot's mapping does not name is built in code.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown model profile {profile!r}{suggest(profile, PROFILES)}")
    rows = []
    for name in COMPONENTS:
        if profile == "tiny":
            location = tiny_location(name, paths)
            if location is None:
                rows.append((name, True, BUILT_IN))
                continue
        else:
            location = locate(profile, name, paths, models_file)  # a broken models file raises
        rows.append((name, location.found,
                     _home_path(location.path) + f" ({location.origin})" if location.found
                     else location.origin))
    return rows


# --- loading ------------------------------------------------------------------------------------
