"""Fixtures: config-built tiny Stable Diffusion / SDXL pipelines with random weights (no hub), and the shipped model.

Built the way diffusers' own tests build theirs: the real classes (UNet2DConditionModel, AutoencoderKL,
CLIPTextModel[WithProjection]) from tiny configs, and a word-level tokenizer made locally with `tokenizers`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

WORDS = ("a red green blue yellow circle square triangle star left right of above below the and big small "
         "with on in photo dog cat").split()
MAX_TOKENS = 16
SHIPPED = Path(__file__).resolve().parents[1] / "explainer" / "assets" / "shapes-sd"


def make_tokenizer(pad: str | None = "<pad>", max_tokens: int = MAX_TOKENS):
    """Word-level tokenizer; pad=None pads with the end-of-text token, as Stable Diffusion 1.x's CLIP tokenizer does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    bos, eos, unk = "<|startoftext|>", "<|endoftext|>", "<unk>"
    specials = [bos, eos, unk] + ([pad] if pad else [])
    vocab = {w: i for i, w in enumerate(specials + list(WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad or eos,
                                   unk_token=unk, model_max_length=max_tokens, padding_side="right")


def _text_config(tokenizer, hidden: int, projection: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
                          projection_dim=projection, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=4, sample_size=16)


def build_tiny_sd(prediction_type: str = "epsilon", seed: int = 0):
    """16x16 images, 8x8x4 latents (VAE factor 2); cross-attention at 8x8, 4x4 and the 4x4 mid block."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
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
    """SDXL layout (two text encoders, text_time micro-conditioning), 16x16 images, cross-attention at 4x4."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok1, tok2 = make_tokenizer(pad=None), make_tokenizer(pad="!")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(tok1, 32)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok2, 32, projection=32)).eval(),
        tokenizer=tok1, tokenizer_2=tok2, unet=unet, scheduler=scheduler, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_sd():
    return build_tiny_sd("epsilon")


@pytest.fixture(scope="session")
def tiny_sd_v():
    return build_tiny_sd("v_prediction", seed=1)


@pytest.fixture(scope="session")
def tiny_sdxl():
    return build_tiny_sdxl()


@pytest.fixture(scope="session")
def shipped_pipe():
    if not (SHIPPED / "model_index.json").exists():
        pytest.skip("the shipped model (explainer/assets/shapes-sd) is not there yet")
    import explainer

    return explainer.load_pipeline()
