"""CLIP metrics at prompt changes, when CLIP weights are on this machine.

Weights are looked up like the FramePack models' (``engines.framepack.models``), never
downloaded: ``--clip FOLDER`` (a transformers CLIP folder: config.json, model.safetensors, the
tokenizer and preprocessor_config.json), else ``--clip OWNER/NAME`` or by default
``openai/clip-vit-large-patch14`` in the Hugging Face cache. Only safetensors are loaded. When
none are found the CLIP metrics are reported unavailable, with the line saying what to download.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
VERSIONS = {"clip_fidelity": "1", "clip_ghosting": "1"}
REPO_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
BATCH = 16


@dataclass(frozen=True)
class ClipWeights:
    """Where CLIP weights were found (``folder``), or why not (``reason``, one line)."""

    name: str  # as asked: a folder or a Hub repository
    folder: Path | None
    reason: str | None = None

    @property
    def found(self) -> bool:
        return self.folder is not None

    def identity(self) -> dict[str, str | None]:
        """What a cached score records of the weights it used."""
        return {"name": self.name, "folder": str(self.folder) if self.folder else None}


def download_hint(repo: str = DEFAULT_CLIP) -> str:
    return (f"hf download {repo} --include '*.json' --include '*.txt' "
            "--include model.safetensors")


def find_clip(name: str | None = None) -> ClipWeights:
    """CLIP weights by folder or Hub repository name (default ``openai/clip-vit-large-patch14``).
    Checks files only; loads nothing."""
    name = name or DEFAULT_CLIP
    local = Path(name).expanduser()
    if local.exists() or not REPO_NAME.match(name):
        return _check(name, local, f"{name} (--clip)")
    from ..engines.framepack.lookup import HubSource, _hub_folder, hub_cache_dir

    folder = _hub_folder(HubSource(name, None), "transformers")
    if folder is None:
        return ClipWeights(name, None, f"no CLIP weights: {name} is not in the Hugging Face "
                                       f"cache ({hub_cache_dir()}); `{download_hint(name)}`, "
                                       "or --clip FOLDER")
    return _check(name, folder, f"{name} in the Hugging Face cache")


def _check(name: str, folder: Path, where: str) -> ClipWeights:
    from ..engines.framepack.lookup import check_folder

    if not folder.exists():
        return ClipWeights(name, None, f"no CLIP weights: {folder} does not exist")
    for kind in ("transformers", "tokenizer", "processor"):
        state, detail = check_folder(folder, kind)
        if state == "pickle":
            return ClipWeights(name, None, f"CLIP weights refused: {detail}; only .safetensors "
                                           "are loaded")
        if state != "ok":
            hint = f"`{download_hint(name)}`" if REPO_NAME.match(name) else "a complete folder"
            return ClipWeights(name, None, f"CLIP weights incomplete for {where}: {detail}; "
                                           f"download {hint}")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if model_type != "clip":
        return ClipWeights(name, None, f"{where}: not a CLIP model (model_type {model_type!r})")
    return ClipWeights(name, folder)


class ClipModel:
    """A CLIP model, its tokenizer and image processor, loaded from a local folder."""

    def __init__(self, weights: ClipWeights, device: str | None = None):
        import torch
        from transformers import AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging

        assert weights.folder is not None
        folder = str(weights.folder)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a bar per load would bury the score table
        try:
            self.model = CLIPModel.from_pretrained(folder, local_files_only=True,
                                                   use_safetensors=True, dtype=dtype)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.model = self.model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.processor = _processor_class().from_pretrained(folder, local_files_only=True)

    def images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length image embeddings, one row per RGB frame."""
        rows = []
        for start in range(0, len(frames), BATCH):
            batch = self.processor(images=list(frames[start:start + BATCH]),
                                   return_tensors="pt")
            pixels = batch["pixel_values"].to(self.device, self.model.dtype)
            rows.append(self._unit(self.model.get_image_features(pixel_values=pixels)))
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)

    def texts(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit-length text embeddings, one row per prompt (truncated to CLIP's 77 tokens)."""
        tokens = self.tokenizer(list(prompts), padding=True, truncation=True,
                                max_length=self._max_length(), return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()
                  if k in ("input_ids", "attention_mask")}
        return self._unit(self.model.get_text_features(**tokens))

    def _max_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @staticmethod
    def _unit(features: Any) -> np.ndarray:
        features = getattr(features, "pooler_output", features)  # a model output or a tensor
        data = features.float().cpu().numpy()
        return data / np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)


def _processor_class():
    """``CLIPImageProcessor``, or its PIL twin where torchvision is missing."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil


@dataclass(frozen=True)
class ClipTransition:
    fidelity: float | None  # mean cosine of the settled frames to the new prompt
    margin: float | None  # ... minus their mean cosine to the previous prompt
    ghosting: float  # highest cosine of a settled frame to the previous section's middle frame


def transition_scores(model: ClipModel, after: Sequence[np.ndarray], previous: np.ndarray,
                      prompt: str | None, previous_prompt: str | None) -> ClipTransition:
    """CLIP scores of one prompt change, from frames after it has settled (``after``) and the
    previous section's representative frame (``previous``).

    - semantic transition fidelity = mean over ``after`` of cos(CLIP image, CLIP text of the
      new prompt); the margin subtracts the same mean for the previous prompt (> 0: the video
      now shows the new prompt more than the old one);
    - CLIP ghosting = max over ``after`` of cos(CLIP image, CLIP image of ``previous``)."""
    images = model.images([*after, previous])
    frames, reference = images[:-1], images[-1]
    ghost = float((frames @ reference).max())
    if prompt is None:
        return ClipTransition(None, None, ghost)
    texts = model.texts([prompt] + ([previous_prompt] if previous_prompt else []))
    fidelity = float((frames @ texts[0]).mean())
    margin = fidelity - float((frames @ texts[1]).mean()) if previous_prompt else None
    return ClipTransition(fidelity, margin, ghost)
