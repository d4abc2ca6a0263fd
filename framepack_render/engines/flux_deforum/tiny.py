"""``tiny-flux``: FLUX.1's real classes with tiny configs and seeded random weights.

diffusers' ``FluxTransformer2DModel`` and a 16-channel ``AutoencoderKL`` (scale factor 8, the
FLUX VAE's shift and scaling factors), transformers' ``CLIPTextModel`` and ``T5EncoderModel``,
and their tokenizers built in code (a byte-level CLIP BPE without merges, a T5 unigram of
common words and single characters), so the whole render path runs offline on a CPU. Every
parameter is overwritten from a generator seeded with the component's name (FramePack's tiny
model does the same), so builds are identical on every machine and the caller's RNG is left
alone.
"""

from __future__ import annotations

import string
from typing import Any, Callable

import torch

from ..framepack.tiny import _WORDS, _built

CLIP_HIDDEN = 32  # = the transformer's pooled_projection_dim
T5_HIDDEN = 32  # = the transformer's joint_attention_dim
T5_VOCAB = 1000
CLIP_MAX_LENGTH = 77  # CLIP's positions; the pipeline pads every prompt to it
CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")

TRANSFORMER_CONFIG: dict[str, Any] = dict(
    patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
    num_attention_heads=2, joint_attention_dim=T5_HIDDEN, pooled_projection_dim=CLIP_HIDDEN,
    guidance_embeds=True, axes_dims_rope=(4, 4, 8))

VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=16,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(4, 4, 4, 4), layers_per_block=1, norm_num_groups=2,
    shift_factor=0.1159, scaling_factor=0.3611, use_quant_conv=False,
    use_post_quant_conv=False)


# --- tokenizers ---------------------------------------------------------------------------------


def _clip_vocabulary() -> dict[str, int]:
    """Byte-level BPE without merges: every byte, alone and word-final, then the specials."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), *CLIP_SPECIALS]
    return {token: index for index, token in enumerate(tokens)}


def build_tokenizer():
    """CLIP's tokenizer (77 tokens, as the pipeline's pooled prompt needs)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_clip_vocabulary(), merges=[], model_max_length=CLIP_MAX_LENGTH)


def _t5_pieces() -> list[tuple[str, float]]:
    """A unigram vocabulary: the specials, common words, then single characters (so any
    ASCII text tokenizes; other characters become <unk>)."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -8.0)]
    pieces += [("\u2581" + word, -5.0) for word in dict.fromkeys(_WORDS)]
    for char in string.ascii_letters + string.digits + string.punctuation:
        pieces += [("\u2581" + char, -9.0), (char, -10.0)]
    assert len(pieces) <= T5_VOCAB
    return pieces


def build_tokenizer_2():
    """T5's tokenizer; the pipeline pads prompts to max_sequence_length."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=_t5_pieces(), extra_ids=0)


# --- components ---------------------------------------------------------------------------------


def build_transformer(seed: int = 0):
    from diffusers import FluxTransformer2DModel

    return _built("flux_transformer", seed, lambda: FluxTransformer2DModel(**TRANSFORMER_CONFIG))


def build_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    return _built("flux_vae", seed, lambda: AutoencoderKL(**VAE_CONFIG))


def build_text_encoder(seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = _clip_vocabulary()
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=CLIP_HIDDEN, intermediate_size=37,
        projection_dim=CLIP_HIDDEN, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=CLIP_MAX_LENGTH, hidden_act="quick_gelu",
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"])  # not 2: CLIP then pools at the first EOS
    return _built("flux_text_encoder", seed, lambda: CLIPTextModel(config))


def build_text_encoder_2(seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=T5_VOCAB, d_model=T5_HIDDEN, d_kv=8, d_ff=37, num_layers=2,
                      num_heads=4, relative_attention_num_buckets=8, pad_token_id=0,
                      eos_token_id=1, decoder_start_token_id=0)
    return _built("flux_text_encoder_2", seed, lambda: T5EncoderModel(config))


# Component name -> builder(seed). Tokenizers have no weights.
BUILDERS: dict[str, Callable[[int], Any]] = {
    "transformer": build_transformer,
    "vae": build_vae,
    "text_encoder": build_text_encoder,
    "text_encoder_2": build_text_encoder_2,
    "tokenizer": lambda seed: build_tokenizer(),
    "tokenizer_2": lambda seed: build_tokenizer_2(),
}


def build_tiny(seed: int = 0) -> dict[str, Any]:
    """Every tiny-flux component, float32 on the CPU, eval mode, gradients off."""
    with torch.no_grad():
        return {name: build(seed) for name, build in BUILDERS.items()}
