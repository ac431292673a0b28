"""What ControlNet training and lesson 14 share: the layout prompts and validation scenes, how map-following is
scored, and the ControlNet itself (built from a U-Net, its control tensor, its pipeline and its training loss).

`explainer.train.controlnet` trains with these; `explainer.experiments.controlnet` measures with the same ones.
Layout agreement is read from the outside, from pixels: the foreground of a generated image (pixels far from its
background colour) against the regions the control map marks (`shapes.object_masks` of the scene the map was drawn
from), as an IoU; and, per object, whether the judge finds an object of the asked colour near the map's object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import shapes
from . import validation as V
from .arrays import mask_iou
from .shapes import Scene

FOREGROUND_THRESHOLD = 30.0  # colour distance (0..441) from the background a foreground pixel must exceed


def foreground_mask(image: Image.Image | np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """Boolean (h, w): the pixels an object covers at least half of.

    As the judge reads pixels: the background colour is the median of the border pixels; each pixel is explained as
    a blend of the background and the palette colour that fits it best; a pixel is foreground when it lies at least
    half-way along that line and more than `threshold` (colour distance, 0..441) away from the background."""
    a = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"image must be RGB (h, w, 3), got shape {a.shape}")
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = np.median(border, axis=0)
    d = a - bg  # (h, w, 3)
    pal = np.array(list(shapes.COLORS.values()), dtype=np.float32) - bg  # (k, 3)
    alpha = np.einsum("hwc,kc->hwk", d, pal) / np.maximum((pal ** 2).sum(-1), 1.0)
    resid = np.linalg.norm(d[..., None, :] - alpha[..., None] * pal, axis=-1)  # (h, w, k)
    best = resid.argmin(-1)
    a_best = np.take_along_axis(alpha, best[..., None], -1)[..., 0]
    return (a_best >= 0.45) & (np.linalg.norm(d, axis=-1) > threshold)  # 0.45: uint8 rounding at half cover


def layout_iou(image: Image.Image | np.ndarray, scene: Scene) -> float:
    """IoU of the image's foreground against the union of the scene's object regions (what the map marks)."""
    return mask_iou(foreground_mask(image), shapes.object_masks(scene).any(0))


def placement(image: Image.Image | np.ndarray, scene: Scene, tolerance: float = 3.0) -> dict[str, float]:
    """Judged placement of each of the scene's objects: the judge's object of that colour (or, failing that, the
    nearest judged object) - is its centre within `tolerance` pixels of the map's, and does its size word agree?

    Returns {'position': share of objects placed within tolerance, 'size': share with the right size word,
    'distance': mean centre distance in pixels (the image diagonal when nothing was found)}.
    """
    from .judge import judge

    j = judge(image)
    pos, size, dist = [], [], []
    for obj in scene.objects:
        seen = j.find(color=obj.color)
        if seen is None and j.objects:
            seen = min(j.objects, key=lambda o: (o.x - obj.x) ** 2 + (o.y - obj.y) ** 2)
        d = math.hypot(seen.x - obj.x, seen.y - obj.y) if seen is not None else math.hypot(32, 32)
        dist.append(d)
        pos.append(d <= tolerance)
        size.append(seen is not None and seen.size == obj.size)
    return {"position": float(np.mean(pos)), "size": float(np.mean(size)), "distance": float(np.mean(dist))}


def layout_prompt(scene: Scene) -> str:
    """A prompt that names what to draw but not where: one object without its position words; two objects
    with their relation (which leaves the exact places to the map)."""
    if len(scene.objects) == 1:
        return shapes.describe_object(scene.objects[0], None)
    return shapes.caption_for(scene)


def validation_scenes(n: int = 16, seed: int = 10_300_000) -> list[Scene]:
    """A fixed set of scenes never seen in ControlNet training (seeds above the training range): half one object,
    half two."""
    n, seed = V.check_positive_int(n, "n", 100_000), V.check_seed(seed)
    one = [shapes.sample_scene(seed + i, two_object_p=0.0) for i in range(n - n // 2)]
    two = [shapes.sample_scene(seed + 1000 + i, two_object_p=1.0) for i in range(n // 2)]
    return one + two


@dataclass
class LayoutScore:
    iou: float
    iou_se: float
    position: float
    size: float
    distance: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def score_layout(images: list[Image.Image], scenes: list[Scene]) -> LayoutScore:
    """Mean layout IoU (with its standard error), judged position/size agreement and centre distance."""
    if len(images) != len(scenes):
        raise ValueError(f"images and scenes must have the same length, got {len(images)} and {len(scenes)}")
    ious = np.array([layout_iou(im, s) for im, s in zip(images, scenes, strict=True)])
    pl = [placement(im, s) for im, s in zip(images, scenes, strict=True)]
    return LayoutScore(
        iou=float(ious.mean()), iou_se=float(ious.std(ddof=1) / math.sqrt(len(ious))) if len(ious) > 1 else 0.0,
        position=float(np.mean([p["position"] for p in pl])), size=float(np.mean([p["size"] for p in pl])),
        distance=float(np.mean([p["distance"] for p in pl])), n=len(images),
    )



# ------------------------------------------------------------------------------------------------ the model
#: conditioning embedding channels: conv_in + 2 stride-2 convolutions = 32x32 map -> 8x8 features (VAE factor 4)
COND_CHANNELS = (16, 32, 64)


def control_tensor(images) -> torch.Tensor:
    """uint8 (n, h, w, 3) or a list of PIL images -> float (n, 3, h, w) in [0, 1], as the ControlNet pipeline
    feeds it."""
    a = np.stack([np.asarray(im) for im in images]) if not isinstance(images, np.ndarray) else images
    return torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255.0)


def build_controlnet(unet, zero_hint: bool = False):
    """The ControlNet for `unet`: its encoder copied (weights and all), zero convolutions, a 4x map embedding."""
    from diffusers import ControlNetModel

    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=COND_CHANNELS,
                                   load_weights_from_unet=True)
    if not zero_hint:
        # diffusers zero-initialises the map embedding's last conv too; with the output zero convolutions also at zero,
        # each waits on the other (a saddle that takes thousands of steps to leave). A random last conv keeps the
        # promise that matters (the U-Net's output is unchanged at step 0: the output convolutions are zero) and lets
        # the map's features reach the zero convolutions' gradients from the first step.
        torch.manual_seed(0)
        cn.controlnet_cond_embedding.conv_out.reset_parameters()
    return cn


def controlnet_pipeline(base, controlnet):
    """A StableDiffusionControlNetPipeline from a StableDiffusionPipeline's parts and `controlnet`."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet, controlnet=controlnet,
        scheduler=base.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def controlnet_loss(controlnet, unet, text_encoder, noise_sched, z0, noise, t, ids, cond) -> torch.Tensor:
    """The training loss: noise z0 to step t, let the frozen U-Net predict the noise with the ControlNet's residuals
    added to its skips and mid block, mean squared error against the true noise (epsilon prediction)."""
    zt = noise_sched.add_noise(z0, noise, t)
    with torch.no_grad():
        emb = text_encoder(ids).last_hidden_state
    down, mid = controlnet(zt, t, emb, controlnet_cond=cond, return_dict=False)
    pred = unet(zt, t, emb, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    return F.mse_loss(pred, noise)
