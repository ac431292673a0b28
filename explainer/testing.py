"""Config-built tiny pipelines and locally built tokenizers, shaped like the real ones (random weights, no hub).

One copy shared by the tests, the benchmarks and the lessons:

* `word_tokenizer()`: a word-level tokenizer (one token per word), like the shipped shapes model's;
* `clip_bpe_tokenizer()`: Stable Diffusion's real tokenizer format (transformers' `CLIPTokenizer`: byte-level BPE,
  `</w>` marks the end of a word, `<|startoftext|>` / `<|endoftext|>`) with a small vocabulary whose merges split some
  words into several pieces: "autumn" -> "aut", "umn</w>", "sitting" -> "sit", "ting</w>";
* `build_tiny_sd()` / `build_tiny_sdxl()`: the word-level tiny pipelines the unit tests use;
* `build_sd1()`, `build_sd2_v()`, `build_sdxl()`: SD 1.x, SD 2.x (v-prediction) and SDXL laid out like the real
  checkpoints (CLIP BPE tokenizers, PNDM / DDIM / Euler schedulers set on the pipeline, a VAE that downsamples 8x,
  SDXL's two tokenizers and text encoders, its VAE's `force_upcast`), only tiny.

The shipped model's own tokenizer builder stays in `explainer.train.components` (it is part of that model's recipe).
"""

from __future__ import annotations

from typing import Any

import torch

WORDS = ("a red green blue yellow circle square triangle star left right of above below the and big small "
         "with on in photo dog cat").split()
MAX_TOKENS = 16
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# word -> its BPE pieces (space-separated; the last piece gets "</w>"). Words not listed fall back to smaller pieces
# or single bytes, as a real CLIP tokenizer does with rare words.
BPE_WORDS: dict[str, str] = {
    "a": "a", "an": "an", "the": "the", "of": "of", "in": "in", "on": "on", "and": "and", "with": "with",
    "red": "red", "blue": "blue", "green": "green", "yellow": "yellow", "white": "white", "black": "black",
    "fox": "fox", "cat": "cat", "dog": "dog", "horse": "horse", "circle": "circle", "square": "square",
    "star": "star", "triangle": "tri angle", "left": "left", "right": "right", "above": "above", "below": "below",
    "big": "big", "small": "small", "photo": "photo", "sitting": "sit ting", "autumn": "aut umn",
    "leaves": "lea ves", "astronaut": "astro naut", "riding": "rid ing", "photograph": "photo graph",
    "mountain": "moun tain", "castle": "castle", "sunset": "sun set",
}


def word_tokenizer(pad: str | None = "<pad>", max_tokens: int = MAX_TOKENS, words: tuple[str, ...] = tuple(WORDS)):
    """Word-level tokenizer; pad=None pads with the end-of-text token, as Stable Diffusion 1.x's CLIP tokenizer does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    unk = "<unk>"
    specials = [BOS, EOS, unk] + ([pad] if pad else [])
    vocab = {w: i for i, w in enumerate(specials + list(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=pad or EOS,
                                   unk_token=unk, model_max_length=max_tokens, padding_side="right")


def _byte_alphabet() -> list[str]:
    """GPT-2 / CLIP's printable stand-ins for the 256 bytes, in CLIP's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(
        range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _piece_merges(pieces: str) -> list[tuple[str, str]]:
    out, parts = [], pieces.split()
    for k, p in enumerate(parts):
        syms = list(p)
        if k == len(parts) - 1:
            syms[-1] += "</w>"
        cur = syms[0]
        for s in syms[1:]:
            out.append((cur, s))
            cur += s
    return out


def _bpe_pieces_of(tok: Any, word: str) -> list[str]:
    return tok.convert_ids_to_tokens(tok(word)["input_ids"])[1:-1]


_BPE_CACHE: dict = {}


def clip_bpe_tokenizer(words: dict[str, str] | None = None, max_length: int = 77, pad_token: str = EOS):
    """Stable Diffusion's tokenizer format with a small vocabulary: transformers' `CLIPTokenizer` (byte-level BPE,
    lower-casing, `</w>` end-of-word suffix, bos/eos template), vocabulary = the 256 byte symbols, the same with
    `</w>`, the merges that spell `words` (word -> space-separated pieces), then `<|startoftext|>`, `<|endoftext|>`.

    pad_token: "<|endoftext|>" as SD 1.x and SDXL's first tokenizer; "!" as SD 2.x and SDXL's tokenizer_2.
    Every listed word is checked to split exactly into its pieces (merge order is adjusted until it does).
    """
    from transformers import CLIPTokenizer

    words = dict(BPE_WORDS if words is None else words)
    key = (tuple(words.items()), max_length, pad_token)
    if key in _BPE_CACHE:  # the merge order found once; a fresh tokenizer object each call
        vocab, merges = _BPE_CACHE[key]
        return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=max_length, pad_token=pad_token)
    per_word = {w: _piece_merges(p) for w, p in words.items()}
    order = list(words)
    alphabet = _byte_alphabet()
    for _ in range(len(order) + 1):
        merges: list[tuple[str, str]] = []
        for w in order:
            merges.extend(m for m in per_word[w] if m not in merges)
        vocab_list = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges] + [BOS, EOS]
        vocab = {t: i for i, t in enumerate(dict.fromkeys(vocab_list))}
        tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length, pad_token=pad_token)
        wrong = []
        for w, p in words.items():
            want = p.split()
            want[-1] += "</w>"
            if _bpe_pieces_of(tok, w) != want:
                wrong.append(w)
        if not wrong:
            _BPE_CACHE[key] = (vocab, merges)
            return tok
        order = wrong + [w for w in order if w not in wrong]  # the failing words' merges take priority
    raise ValueError(f"could not order BPE merges so that these words split as asked: {wrong}")


# --------------------------------------------------------------------------------------------- shared parts
def _text_config(tokenizer: Any, hidden: int, projection: int = 32, max_positions: int = MAX_TOKENS,
                 hidden_act: str = "quick_gelu"):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=max_positions,
                          projection_dim=projection, bos_token_id=tokenizer.bos_token_id, hidden_act=hidden_act,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _vae(factor: int = 2, sample_size: int = 16, force_upcast: bool = True, scaling_factor: float = 0.18215):
    """AutoencoderKL with 4 latent channels; factor 2 (two blocks) or 8 (four blocks, as Stable Diffusion's)."""
    from diffusers import AutoencoderKL

    blocks = {2: (8, 16), 4: (8, 16, 16), 8: (8, 8, 16, 16)}[factor]
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=blocks,
                         down_block_types=("DownEncoderBlock2D",) * len(blocks),
                         up_block_types=("UpDecoderBlock2D",) * len(blocks), layers_per_block=1, norm_num_groups=4,
                         sample_size=sample_size, force_upcast=force_upcast, scaling_factor=scaling_factor)


# Stable Diffusion's training schedule, as its scheduler_config.json files give it
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                   steps_offset=1)
SCHEDULERS = {  # what the real folders ship (SD 1.x: PNDM; SD 2.x: DDIM / Euler; SDXL: Euler)
    "pndm": ("PNDMScheduler", dict(skip_prk_steps=True, set_alpha_to_one=False)),
    "ddim": ("DDIMScheduler", dict(clip_sample=False, set_alpha_to_one=False)),
    "euler": ("EulerDiscreteScheduler", dict(interpolation_type="linear", timestep_spacing="leading")),
    "dpm++2m": ("DPMSolverMultistepScheduler", dict(algorithm_type="dpmsolver++", solver_order=2)),
}


def make_real_scheduler(name: str = "pndm", prediction_type: str = "epsilon"):
    """The scheduler a real SD folder ships, built from Stable Diffusion's training schedule."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"name must be one of {list(SCHEDULERS)}, got {name!r}")
    cls, extra = SCHEDULERS[name]
    return getattr(diffusers, cls)(**SD_SCHEDULE, **extra, prediction_type=prediction_type)


# --------------------------------------------------------------------------------------------- word-level tiny
def build_tiny_sd(prediction_type: str = "epsilon", seed: int = 0):
    """Word-level tokenizer, 16x16 images, 8x8x4 latents (VAE factor 2); cross-attention at 8x8, 4x4 and the mid
    block; DPM++ 2M."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = word_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            steps_offset=1, prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=CLIPTextModel(_text_config(tokenizer, 32)).eval(),
                                   tokenizer=tokenizer, unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_sdxl(seed: int = 0):
    """Word-level SDXL layout (two text encoders, text_time micro-conditioning), 16x16 images, cross-attention at
    4x4; Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok1, tok2 = word_tokenizer(pad=None), word_tokenizer(pad="!")
    unet = _sdxl_unet()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(tok1, 32)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok2, 32, projection=32)).eval(),
        tokenizer=tok1, tokenizer_2=tok2, unet=unet, scheduler=scheduler, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sdxl_unet(sample_size: int = 8):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8)


# --------------------------------------------------------------------------------------------- like the real ones
def build_sd1(scheduler: str = "pndm", seed: int = 0, sample_size: int = 8):
    """SD 1.x laid out like the real folder: CLIP BPE tokenizer (77 tokens, pads with <|endoftext|>), a CLIP text
    encoder (quick_gelu), a cross-attention U-Net on every level, a VAE that downsamples 8x (so 64x64 images from
    8x8 latents by default), the scheduler the folder ships (PNDM; or "ddim", "euler", "dpm++2m")."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = clip_bpe_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    text = CLIPTextModel(_text_config(tokenizer, 32, max_positions=77)).eval()
    pipe = StableDiffusionPipeline(vae=_vae(8, 8 * sample_size, force_upcast=True), text_encoder=text,
                                   tokenizer=tokenizer, unet=unet, scheduler=make_real_scheduler(scheduler),
                                   safety_checker=None, feature_extractor=None, image_encoder=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_sd2_v(scheduler: str = "ddim", seed: int = 0, sample_size: int = 12):
    """SD 2.x (768-v) laid out like the real folder: v-prediction scheduler (DDIM, or "euler"), a BPE tokenizer that
    pads with "!", a gelu CLIP text encoder, linear projections in the U-Net's transformers, heads sized by
    attention_head_dim per level, 8x VAE (96x96 images from 12x12 latents: 768/8 = 96 at real size)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = clip_bpe_tokenizer(pad_token="!")
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), use_linear_projection=True,
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=8)
    text = CLIPTextModel(_text_config(tokenizer, 32, max_positions=77, hidden_act="gelu")).eval()
    pipe = StableDiffusionPipeline(vae=_vae(8, 8 * sample_size), text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=make_real_scheduler(scheduler, "v_prediction"), safety_checker=None,
                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_sdxl(seed: int = 0, sample_size: int = 8):
    """SDXL laid out like the real folder: two CLIP BPE tokenizers (tokenizer pads with <|endoftext|>, tokenizer_2
    with "!"), CLIPTextModel + CLIPTextModelWithProjection, text_time micro-conditioning, Euler, an 8x VAE with
    force_upcast and SDXL's scaling factor 0.13025, force_zeros_for_empty_prompt."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok1, tok2 = clip_bpe_tokenizer(), clip_bpe_tokenizer(pad_token="!")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(8, 8 * sample_size, force_upcast=True, scaling_factor=0.13025),
        text_encoder=CLIPTextModel(_text_config(tok1, 32, max_positions=77)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok2, 32, projection=32, max_positions=77,
                                                                hidden_act="gelu")).eval(),
        tokenizer=tok1, tokenizer_2=tok2, unet=_sdxl_unet(sample_size), scheduler=make_real_scheduler("euler"),
        add_watermarker=False, force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# =============================================================================================================
# Transformer (DiT) pipelines — section owned by the "seam" helper (issue 15): SD3, Flux, PixArt-alpha/-sigma built
# from tiny configs with the real classes, a T5 Unigram tokenizer built locally with `tokenizers`. Every module is
# put in eval mode (config-built modules start in training mode, and T5's dropout would make two runs differ).
# =============================================================================================================
T5_WORDS = (*WORDS, "autumn", "leaves", "fox", "castle")


def t5_unigram_tokenizer(words: tuple[str, ...] = T5_WORDS, max_length: int = 512):
    """T5's tokenizer format: SentencePiece Unigram with "▁" marking a word start, "</s>" appended, "<pad>" id 0,
    "<unk>" id 2. `words` get whole pieces ("▁circle"); other words fall back to single letters, and "autumn" /
    "leaves" are spelled from two pieces ("▁aut" "umn", "▁lea" "ves") so multi-piece words exist."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    split = {"autumn": ("▁aut", "umn"), "leaves": ("▁lea", "ves")}
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    for w in words:
        pieces += [(p, -2.0) for p in split[w]] if w in split else [("▁" + w, -1.0)]
    pieces += [("▁", -3.0)] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    pieces = list(dict(pieces).items())
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                   model_max_length=max_length, padding_side="right")


def _t5(tokenizer: Any, d_model: int):
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_ff=2 * d_model, d_kv=8, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, dropout_rate=0.1, pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(cfg).eval()


def _flow_vae(scaling_factor: float = 1.5035, shift_factor: float = 0.0609, latent_channels: int = 4):
    """SD3/Flux-style VAE (no quant convs, a shift factor), 2x downsampling."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=4, sample_size=16, scaling_factor=scaling_factor,
                         shift_factor=shift_factor, use_quant_conv=False, use_post_quant_conv=False).eval()


def build_tiny_sd3(t5: bool = False, seed: int = 0, shift: float = 3.0, qk_norm: str | None = None):
    """StableDiffusion3Pipeline: SD3Transformer2DModel (2 joint blocks, patch 2), CLIP-L + CLIP-G (32 wide each,
    projections 32 -> pooled 64), joint_attention_dim 64 (>= the CLIP widths together, else SD3 silently crops them),
    T5 (d_model 64) or text_encoder_3=None (zeros, as our shapes-dit), FlowMatchEuler with `shift`. 16x16 images,
    8x8x4 latents, a 4x4 grid of image tokens. qk_norm="rms_norm" is SD3.5's layout (normalised queries and keys)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok1, tok2 = word_tokenizer(pad=None), word_tokenizer(pad="!")
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
        joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64, out_channels=4,
        pos_embed_max_size=16, qk_norm=qk_norm).eval()
    tok3 = t5_unigram_tokenizer() if t5 else None
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=shift), vae=_flow_vae(),
        text_encoder=CLIPTextModelWithProjection(_text_config(tok1, 32, projection=32)).eval(), tokenizer=tok1,
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok2, 32, projection=32)).eval(), tokenizer_2=tok2,
        text_encoder_3=_t5(tok3, 64) if t5 else None, tokenizer_3=tok3)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_flux(seed: int = 0, guidance_embeds: bool = True):
    """FluxPipeline: FluxTransformer2DModel with 2 double-stream and 2 single-stream blocks, guidance embedding,
    RoPE axes (4, 4, 8); CLIP (pooled, 32) + T5 (d_model 32, 512 positions as the pipeline pads); packed 2x2 latents;
    FlowMatchEuler with dynamic shifting. Pass height=width=16 (Flux's default size is 128 * VAE factor)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tok1, tok2 = word_tokenizer(pad=None), t5_unigram_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8)).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=_flow_vae(0.3611, 0.1159),
                        text_encoder=CLIPTextModel(_text_config(tok1, 32)).eval(), tokenizer=tok1,
                        text_encoder_2=_t5(tok2, 32), tokenizer_2=tok2, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_pixart(sigma: bool = False, seed: int = 0):
    """PixArtAlphaPipeline (or PixArtSigmaPipeline): Transformer2DModel (2 blocks, adaLN-single, patch 2, learned
    sigma: 8 output channels for 4 latent ones), T5 (d_model 32) with its attention mask, DPM++ 2M. 16x16 images."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        PixArtAlphaPipeline,
        PixArtSigmaPipeline,
        PixArtTransformer2DModel,
    )

    torch.manual_seed(seed)
    tok = t5_unigram_tokenizer()
    transformer = PixArtTransformer2DModel(
        sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=3, caption_channels=32,
        in_channels=4, cross_attention_dim=24, out_channels=8, attention_bias=True, activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6).eval()
    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    cls = PixArtSigmaPipeline if sigma else PixArtAlphaPipeline
    vae = _vae()
    vae.eval()
    pipe = cls(tokenizer=tok, text_encoder=_t5(tok, 32), vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
