"""Configs of the shipped model's components: the same classes Stable Diffusion uses, only small.

Each builder returns an untrained diffusers / transformers object; `explainer.train` trains them.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig, PreTrainedTokenizerFast

from ..shapes import IMAGE_SIZE, vocabulary

BOS, EOS, PAD, UNK = "<|startoftext|>", "<|endoftext|>", "<pad>", "<unk>"
MAX_TOKENS = 24  # bos + up to 22 words + eos; our longest caption has 21 tokens
TEXT_DIM = 128


def build_tokenizer(words: list[str] | None = None, max_tokens: int = MAX_TOKENS) -> PreTrainedTokenizerFast:
    """A word-level tokenizer (one token per word, so attention maps read as words) over `words` (default: the
    shapes world's vocabulary)."""
    # EOS must not get id 2: transformers' CLIP reads a config with eos_token_id 2 as the pre-2023 convention and
    # pools the sentence at the highest token id (here the alphabetically last word) instead of at the end token.
    specials = [PAD, BOS, UNK, EOS]
    vocab = {w: i for i, w in enumerate(specials + (vocabulary() if words is None else list(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=max_tokens, padding_side="right",
    )


def build_clip(tokenizer: PreTrainedTokenizerFast) -> CLIPModel:
    """A tiny CLIP: a text transformer and a ViT over 4x4 patches, trained contrastively."""
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=64,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE, patch_size=4, num_channels=3, hidden_size=128, intermediate_size=256,
        num_hidden_layers=3, num_attention_heads=4, projection_dim=64,
    )
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=64))


def build_vae():
    from diffusers import AutoencoderKL

    # Two downsamplings: 32x32x3 pixels -> 8x8x4 latents (a 12x compression of the values).
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    # Three levels on the 8x8 latent: 8x8 -> 4x4 -> 2x2 and back, with skip connections.
    # Every level has self-attention (objects see each other) and cross-attention to the prompt.
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(64, 128, 128),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=4, norm_num_groups=16,
    )
