"""The mechanics of lesson 4 (noise in, picture out), shared by its studies (`scenes_denoising`) and lesson 9's
(`scenes_samplers`): the predicted clean image x0 of every step decoded, swapping the prompt part-way through the
step callback (`swap_images`), and image-to-image with the same components (`img2img_images`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import shapes
from ..generation import run_pipeline
from ..shapes import EVAL_SEED  # noqa: E402 (one definition, in the shapes world: never used in training)
from .latents import decode


def one_object_prompts(n: int, seed: int = EVAL_SEED + 3000) -> list[str]:
    """Canonical captions of n random one-object scenes (colour, shape, size and position all named)."""
    return [shapes.caption_for(shapes.sample_scene(seed + i, two_object_p=0.0)) for i in range(n)]


def decoded_x0(pipe: Any, traces: list[Any]) -> np.ndarray:
    """The predicted clean image of every step of every trace, decoded by the VAE: uint8 (n, steps, h, w, 3)."""
    x0 = torch.stack([torch.stack([s.x0 for s in tr.steps]) for tr in traces])  # (n, S, C, h, w)
    n_, s_ = x0.shape[:2]
    decoded = decode(pipe, x0.flatten(0, 1))
    return decoded.reshape(n_, s_, *decoded.shape[1:])


@torch.no_grad()
def swap_images(pipe: Any, a_prompts: list[str], b_prompts: list[str], seeds: list[int], ks: tuple[int, ...],
                steps: int, cfg: float) -> dict[int, list[Any]]:
    """k -> the pictures (PIL) drawn with prompt A for the first k steps and prompt B for the rest: after step k the
    conditional half of the text embeddings becomes B's, through the pipeline's step callback (k = 0: B throughout;
    k = steps: A throughout). Image i of every k comes from seeds[i]."""
    if any(not 0 <= k <= steps for k in ks):
        raise ValueError(f"ks must lie in 0..steps={steps}, got {list(ks)}")
    cond_b, _ = pipe.encode_prompt(list(b_prompts), pipe.device, 1, False)
    images: dict[int, list[Any]] = {}
    for k in ks:
        def to_b(p, i, t, kw, k=k):
            if i + 1 == k:
                e = kw["prompt_embeds"]
                half = e.shape[0] // 2
                return {"prompt_embeds": torch.cat([e[:half], cond_b.to(e.dtype)])}
            return {}

        images[k] = run_pipeline(pipe, list(a_prompts) if k > 0 else list(b_prompts), list(seeds), steps, cfg,
                                 callback_on_step_end=to_b if 0 < k < steps else None,
                                 callback_on_step_end_tensor_inputs=["prompt_embeds"])
    return images


def check_strengths(strengths: tuple[float, ...]) -> None:
    if any(not 0 < s <= 1 for s in strengths):
        raise ValueError(f"strengths must lie in (0, 1], got {list(strengths)}")


@torch.no_grad()
def img2img_images(pipe: Any, sources: list[Any], b_prompts: list[str], seeds: list[int],
                   strengths: tuple[float, ...], steps: int, cfg: float
                   ) -> tuple[dict[float, list[Any]], dict[float, list[Any]], dict[float, int]]:
    """The forward process, then the reverse: each source picture (PIL) is encoded, noised to `strength` of the
    schedule and denoised with its prompt B for the remaining strength x steps steps (diffusers'
    StableDiffusionImg2ImgPipeline built from the same components). Returns, per strength, the noised starts (captured
    at the U-Net's first call, decoded, PIL), the results (PIL) and the number of U-Net calls that ran."""
    from diffusers import StableDiffusionImg2ImgPipeline

    check_strengths(strengths)
    i2i = StableDiffusionImg2ImgPipeline(**{k: v for k, v in pipe.components.items()
                                            if k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler",
                                                     "safety_checker", "feature_extractor", "image_encoder")},
                                         requires_safety_checker=False)
    i2i.set_progress_bar_config(disable=True)
    noised, results, ran = {}, {}, {}
    for s in strengths:
        first: list[torch.Tensor] = []
        calls = [0]

        def grab(module, args, kwargs, first=first, calls=calls):
            calls[0] += 1
            if not first:
                x = args[0] if args else kwargs["sample"]
                first.append(x[x.shape[0] // 2:].detach().float().cpu())  # the conditional half under CFG

        h = pipe.unet.register_forward_pre_hook(grab, with_kwargs=True)
        try:
            results[s] = run_pipeline(i2i, list(b_prompts), list(seeds), steps, cfg, image=list(sources), strength=s)
        finally:
            h.remove()
        if not first:
            raise RuntimeError(f"strength {s:g} x {steps} steps ran no denoising step: raise the strength or the steps")
        ran[s] = calls[0]
        noised[s] = [shapes_image(f) for f in decode(pipe, first[0])]
    return noised, results, ran


def shapes_image(frame: np.ndarray) -> Any:
    """An (h, w, 3) uint8 frame as a PIL image."""
    from PIL import Image

    return Image.fromarray(np.asarray(frame, dtype=np.uint8))
