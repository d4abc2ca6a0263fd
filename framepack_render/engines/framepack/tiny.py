"""The ``tiny`` model: FramePack's real classes with tiny configs and seeded random weights.

Every component is the class the real profiles load (diffusers' FramePack transformer and
HunyuanVideo VAE, transformers' Llama, CLIP text and SigLIP vision models), so the whole render
path runs unchanged on a laptop or a CI box: no weights, no network, float32 on the CPU.

Weights are not the libraries' default initialisation. After construction every parameter is
overwritten from a ``torch.Generator`` seeded from ``seed`` and the component's name, so builds are
bit-identical on every machine and process, one component can be built without the others (the
model pool builds them lazily), and the caller's global RNG is left untouched.

The tokenizers are built in code with the ``tokenizers`` library: a WordPiece vocabulary of common
words with a fallback to single ASCII letters, digits and punctuation, after lower-casing and
folding accents, so any text tokenizes (a word holding a character outside that, such as "猫",
becomes ``[UNK]``).
"""

from __future__ import annotations

import math
import string
import zlib
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .models import Components

# --- configs ------------------------------------------------------------------------------------

LLAMA_HIDDEN = 32
CLIP_HIDDEN = 32
SIGLIP_HIDDEN = 16
SIGLIP_IMAGE_SIZE = 32
SIGLIP_PATCH_SIZE = 8
LLAMA_MAX_LENGTH = 1024  # positions and tokenizer limit: 256 prompt tokens + the template
CLIP_MAX_LENGTH = 77

TRANSFORMER_CONFIG: dict[str, Any] = dict(
    in_channels=16,
    out_channels=16,
    num_attention_heads=2,
    attention_head_dim=8,
    num_layers=1,
    num_single_layers=1,
    num_refiner_layers=1,
    mlp_ratio=4.0,
    patch_size=2,
    patch_size_t=1,
    qk_norm="rms_norm",
    guidance_embeds=True,
    text_embed_dim=LLAMA_HIDDEN,
    pooled_projection_dim=CLIP_HIDDEN,
    rope_theta=256.0,
    rope_axes_dim=(2, 2, 4),  # time, y, x: sums to the head dim, each even
    image_condition_type=None,
    has_image_proj=True,
    image_proj_dim=SIGLIP_HIDDEN,
    has_clean_x_embedder=True,
)

VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    down_block_types=("HunyuanVideoDownBlock3D",) * 4,
    up_block_types=("HunyuanVideoUpBlock3D",) * 4,
    block_out_channels=(8, 8, 16, 16),
    layers_per_block=1,
    act_fn="silu",
    norm_num_groups=4,
    scaling_factor=0.476986,
    spatial_compression_ratio=8,
    temporal_compression_ratio=4,
    mid_block_add_attention=False,  # attention over every latent voxel dominates CPU decode
)

# The prompt template: HunyuanVideo's layout (a system block, then the user block holding the
# prompt, Llama-3 header markers), with a shorter system text to keep the tiny encoder quick.
TINY_PROMPT_TEMPLATE: dict[str, Any] = {
    "template": (
        "<|start_header_id|>system<|end_header_id|>\n\n"
        "Describe the video: the main subject, its motion, the camera and the light.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    ),
    # <|begin_of_text|> + the tokens before "{}" (checked by the tests).
    "crop_start": 25,
}

# --- tokenizers ---------------------------------------------------------------------------------

PAD, UNK = "[PAD]", "[UNK]"
LLAMA_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>")
CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")

# Whole words the vocabulary knows; anything else is spelled out character by character.
_WORDS = """
a an the and or but of to in on at by for with from into onto over under near behind between
through across along around up down out off away back as is are was be been being it its this that
these those he she they his her their him them we you i my your our one two three some many few
all each every no not very more most less slowly quickly gently softly suddenly still then while
system user describe video main subject motion camera light content theme color colour shape size
texture quantity text spatial relationships objects actions events behaviors temporal physical
movement changes background environment style atmosphere angles movements transitions used
man woman person people girl boy child baby face eyes hair hand hands arm arms head smile smiles
cat dog bird horse fish animal tree trees flower flowers grass forest field garden sky cloud clouds
sun moon star stars rain snow wind water sea ocean river lake wave waves beach sand mountain
mountains hill road street city building house room window door table chair car train boat fire
smoke night day morning evening sunset sunrise dark bright red green blue yellow white black
orange purple pink brown gray grey gold silver small large big tall long short old young new
beautiful soft warm cold wet dry calm quiet close wide slow fast walks walking runs running sits
sitting stands standing jumps jumping dances dancing looks looking turns turning moves moving
flies flying swims swimming falls falling rises rising holds holding opens opening closes
closing waves waving talks talking sings singing plays playing eats eating drinks drinking
sleeps sleeping laughs laughing cries crying nods blinks breathes breathing spins spinning
zoom zooms pan pans tilt tracking shot scene frame view portrait landscape cinematic realistic
detailed dramatic lighting shadow shadows reflection reflections dress shirt coat hat glasses
""".split()


def _vocabulary(specials: tuple[str, ...]) -> dict[str, int]:
    tokens = [PAD, UNK, *specials]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    for word in [*_WORDS, *chars, *("##" + c for c in chars)]:
        if word not in tokens:
            tokens.append(word)
    return {token: index for index, token in enumerate(tokens)}


def _tokenizer(specials: tuple[str, ...], bos: str, eos: str | None, max_length: int):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = _vocabulary(specials)
    tok = Tokenizer(WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=100))
    # Lower case, accents folded to their base letters ("Café" -> "cafe"): more text stays in the
    # vocabulary of whole words.
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([PAD, UNK, *specials])
    single = f"{bos} $A" + (f" {eos}" if eos else "")
    pair = f"{single} $B:1" + (f" {eos}:1" if eos else "")
    ids = [(bos, vocab[bos])] + ([(eos, vocab[eos])] if eos else [])
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=ids)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos or bos, unk_token=UNK, pad_token=PAD,
        model_max_length=max_length, padding_side="right", truncation_side="right",
    )


def build_tokenizer():
    """The Llama-side tokenizer: ``<|begin_of_text|>`` + tokens, right padding, no EOS."""
    return _tokenizer(LLAMA_SPECIALS, "<|begin_of_text|>", None, LLAMA_MAX_LENGTH)


def build_tokenizer_2():
    """The CLIP-side tokenizer: ``<|startoftext|>`` + tokens + ``<|endoftext|>``, 77 tokens."""
    return _tokenizer(CLIP_SPECIALS, "<|startoftext|>", "<|endoftext|>", CLIP_MAX_LENGTH)


LLAMA_VOCAB = len(_vocabulary(LLAMA_SPECIALS))
CLIP_VOCAB = len(_vocabulary(CLIP_SPECIALS))

# --- weights ------------------------------------------------------------------------------------


def _component_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Overwrite every parameter from a generator seeded with ``seed``; freeze; eval; float32.

    Norm weights are drawn near 1 and their biases near 0; every other tensor with two or more
    dimensions is drawn with a standard deviation of 1/sqrt(fan-in), vectors with 0.02. The walk is
    in ``named_parameters`` order, which is fixed by the module's code, so the draw is reproducible.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if any(p.dtype != torch.float32 for p in module.parameters()):
        module.to(torch.float32)
    norm_params = set()
    for mod in module.modules():
        if "norm" in type(mod).__name__.lower():
            norm_params.update(id(p) for p in mod.parameters(recurse=False))
    for name, param in module.named_parameters():
        shape = tuple(param.shape)
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if id(param) in norm_params:
            value = (1.0 + 0.1 * noise) if name.endswith("weight") else 0.05 * noise
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            value = noise / math.sqrt(max(fan_in, 1))
        else:
            value = 0.02 * noise
        param.copy_(value)
        param.requires_grad_(False)
    return module.eval()


# --- components ---------------------------------------------------------------------------------


def _built(name: str, seed: int, make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    # Construction draws from the global RNG (default initialisation); keep the caller's intact.
    with torch.random.fork_rng(devices=[]):
        module = make()
    return randomize(module, _component_seed(seed, name))


def build_transformer(seed: int = 0):
    from diffusers import HunyuanVideoFramepackTransformer3DModel

    return _built("transformer", seed,
                  lambda: HunyuanVideoFramepackTransformer3DModel(**TRANSFORMER_CONFIG))


def build_vae(seed: int = 0):
    from diffusers import AutoencoderKLHunyuanVideo

    vae = _built("vae", seed, lambda: AutoencoderKLHunyuanVideo(**VAE_CONFIG))
    # Decode a chunk in one pass, not in overlapping 5-latent tiles. With 8 channels, PyTorch's
    # CPU convolution picks oneDNN only when batch x channels x frames x height exceeds 20480;
    # a 5-latent tile (19 frames) stays under that and falls back to the slow reference conv3d,
    # a whole chunk (37+ frames) does not. About 5x faster decoding; a chunk is at most two
    # windows, so memory stays flat as videos grow. The real VAE keeps framewise decoding.
    vae.use_framewise_decoding = False
    return vae


def build_text_encoder(seed: int = 0):
    from transformers import LlamaConfig, LlamaModel

    config = LlamaConfig(
        vocab_size=LLAMA_VOCAB, hidden_size=LLAMA_HIDDEN, intermediate_size=64,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        max_position_embeddings=LLAMA_MAX_LENGTH, rms_norm_eps=1e-5, pad_token_id=0,
        bos_token_id=_vocabulary(LLAMA_SPECIALS)["<|begin_of_text|>"],
        eos_token_id=_vocabulary(LLAMA_SPECIALS)["<|eot_id|>"], tie_word_embeddings=False,
    )
    return _built("text_encoder", seed, lambda: LlamaModel(config))


def build_text_encoder_2(seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = _vocabulary(CLIP_SPECIALS)
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB, hidden_size=CLIP_HIDDEN, intermediate_size=64,
        projection_dim=CLIP_HIDDEN,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_act="quick_gelu", pad_token_id=vocab[PAD], bos_token_id=vocab["<|startoftext|>"],
        # Not 2: CLIP then pools at the first EOS position (2 selects the legacy argmax rule).
        eos_token_id=vocab["<|endoftext|>"],
    )
    assert config.eos_token_id != 2
    return _built("text_encoder_2", seed, lambda: CLIPTextModel(config))


def build_image_encoder(seed: int = 0):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(
        hidden_size=SIGLIP_HIDDEN, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_channels=3, image_size=SIGLIP_IMAGE_SIZE, patch_size=SIGLIP_PATCH_SIZE,
        hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
    )
    return _built("image_encoder", seed, lambda: SiglipVisionModel(config))


def image_processor_class():
    """``SiglipImageProcessor``, or its PIL twin when torchvision is missing (no warning)."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        from transformers import SiglipImageProcessor

        return SiglipImageProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    return SiglipImageProcessorPil


def build_feature_extractor():
    from transformers.image_utils import PILImageResampling

    return image_processor_class()(
        size={"height": SIGLIP_IMAGE_SIZE, "width": SIGLIP_IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        resample=PILImageResampling.BICUBIC, do_resize=True, do_rescale=True,
        do_normalize=True, do_convert_rgb=True,
    )


# Component name -> builder(seed). Tokenizers and the image processor have no weights.
BUILDERS: dict[str, Callable[[int], Any]] = {
    "transformer": build_transformer,
    "vae": build_vae,
    "text_encoder": build_text_encoder,
    "text_encoder_2": build_text_encoder_2,
    "image_encoder": build_image_encoder,
    "tokenizer": lambda seed: build_tokenizer(),
    "tokenizer_2": lambda seed: build_tokenizer_2(),
    "feature_extractor": lambda seed: build_feature_extractor(),
    "prompt_template": lambda seed: dict(TINY_PROMPT_TEMPLATE),
}


def build_tiny(seed: int = 0) -> "Components":
    """Every tiny component, float32 on the CPU, eval mode, gradients off."""
    from .models import Components

    parts = {name: build(seed) for name, build in BUILDERS.items()}
    return Components(**parts, transformer_dtype=torch.float32, encoder_dtype=torch.float32,
                      vae_dtype=torch.float32)
