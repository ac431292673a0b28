"""What lesson 14 and benchmarks/controlnet.py measure about ControlNet: does the output follow the map?

Layout agreement is read from the outside, from pixels: the foreground of a generated image (pixels far from its
background colour) against the regions the control map marks (`shapes.object_masks` of the scene the map was drawn
from), as an IoU; and, per object, whether the judge finds an object of the asked colour near the map's object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .. import shapes
from ..shapes import Scene

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


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def layout_iou(image: Image.Image | np.ndarray, scene: Scene) -> float:
    """IoU of the image's foreground against the union of the scene's object regions (what the map marks)."""
    return mask_iou(foreground_mask(image), shapes.object_masks(scene).any(0))


def placement(image: Image.Image | np.ndarray, scene: Scene, tolerance: float = 3.0) -> dict[str, float]:
    """Judged placement of each of the scene's objects: the judge's object of that colour (or, failing that, the
    nearest judged object) - is its centre within `tolerance` pixels of the map's, and does its size word agree?

    Returns {'position': share of objects placed within tolerance, 'size': share with the right size word,
    'distance': mean centre distance in pixels (the image diagonal when nothing was found)}.
    """
    from ..judge import judge

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


# ------------------------------------------------------------------------------------------------ the mechanism
def anatomy(pipe) -> dict:
    """Which parts of the U-Net the ControlNet copies, what it adds, and where its residuals enter.

    Returns {'copied': [(name, params)], 'added': [(name, params)], 'residuals': [(name, channels, (h, w))],
    'copied_params', 'added_params', 'unet_params', 'identical_copy': share of copied tensors that still equal the
    U-Net's (1.0 for a fresh `from_unet`, lower once trained)}.
    """
    cn, unet = pipe.controlnet, pipe.unet
    unet_sd = unet.state_dict()
    copied, added, same, total = {}, {}, 0, 0
    for name, p in cn.state_dict().items():
        top = name.split(".")[0] if not name.startswith(("down_blocks", "controlnet_down_blocks")) else \
            ".".join(name.split(".")[:2])
        if name in unet_sd and unet_sd[name].shape == p.shape:
            copied[top] = copied.get(top, 0) + p.numel()
            total += 1
            same += int(bool((unet_sd[name].float() == p.float()).all()))
        else:
            added[top] = added.get(top, 0) + p.numel()
    sizes, channels = [], []
    h = w = int(unet.config.sample_size)
    chans = list(unet.config.block_out_channels)
    sizes.append((h, w))
    channels.append(chans[0])
    for i, c in enumerate(chans):
        for _ in range(unet.config.layers_per_block):
            sizes.append((h, w))
            channels.append(c)
        if i < len(chans) - 1:
            h, w = -(-h // 2), -(-w // 2)
            sizes.append((h, w))
            channels.append(c)
    sizes.append((h, w))
    channels.append(chans[-1])
    names = [f"down {k}" for k in range(len(sizes) - 1)] + ["mid"]
    return {"copied": sorted(copied.items()), "added": sorted(added.items()),
            "residuals": list(zip(names, channels, sizes, strict=True)),
            "copied_params": sum(copied.values()), "added_params": sum(added.values()),
            "unet_params": sum(p.numel() for p in unet.parameters()), "identical_copy": same / max(1, total)}


def zero_convolutions(controlnet) -> dict[str, float]:
    """Largest |weight| and |bias| of each output ("zero") convolution: exactly 0 before training."""
    mods = {f"down {k}": m for k, m in enumerate(controlnet.controlnet_down_blocks)}
    mods["mid"] = controlnet.controlnet_mid_block
    return {k: float(max(m.weight.detach().abs().max(), m.bias.detach().abs().max())) for k, m in mods.items()}


def fresh_controlnet_changes_nothing(pipe, condition: str = "edges", seed: int = 0) -> dict[str, float]:
    """Build a ControlNet from the pipeline's U-Net (as training starts) and compare the U-Net's noise prediction
    with and without its residuals on one noisy latent: the zero convolutions make them identical."""
    import torch

    from ..train.controlnet import build_controlnet, control_tensor

    cn = build_controlnet(pipe.unet).to(pipe.unet.device, pipe.unet.dtype).eval()
    scene = shapes.sample_scene(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((1, 4, *([pipe.unet.config.sample_size] * 2)), generator=g).to(pipe.unet.device, pipe.unet.dtype)
    ids = pipe.tokenizer([scene.caption], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids.to(pipe.unet.device)
    t = torch.tensor([500], device=pipe.unet.device)
    with torch.no_grad():
        emb = pipe.text_encoder(ids)[0]
        cond = control_tensor([shapes.render_condition(scene, condition)]).to(pipe.unet.device, pipe.unet.dtype)
        down, mid = cn(x, t, emb, controlnet_cond=cond, return_dict=False)
        plain = pipe.unet(x, t, emb).sample
        added = pipe.unet(x, t, emb, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    return {"max_residual": float(max(r.abs().max() for r in [*down, mid])),
            "max_output_change": float((plain - added).abs().max()),
            "largest_zero_conv": max(zero_convolutions(cn).values())}


# ------------------------------------------------------------------------------------------------ generation
def generate(pipe, scenes: list[Scene], condition: str, scale: float = 1.0, seeds: list[int] | None = None,
             prompts: list[str] | None = None, steps: int = 12, cfg: float = 5.0, guess_mode: bool = False,
             batch: int = 16) -> list[Image.Image]:
    """Images from each scene's control map (`condition`) and its layout prompt (or `prompts`), one seed each."""
    import torch

    if condition not in shapes.CONDITIONS:
        raise ValueError(f"condition must be one of {shapes.CONDITIONS}, got {condition!r}")
    seeds = list(range(len(scenes))) if seeds is None else list(seeds)
    prompts = [layout_prompt(s) for s in scenes] if prompts is None else list(prompts)
    if not (len(seeds) == len(prompts) == len(scenes)):
        raise ValueError("scenes, seeds and prompts must have the same length")
    out = []
    for i in range(0, len(scenes), batch):
        sl = slice(i, i + batch)
        gens = [torch.Generator().manual_seed(s) for s in seeds[sl]]
        out += pipe(prompts[sl], image=[shapes.render_condition(s, condition) for s in scenes[sl]],
                    num_inference_steps=steps, guidance_scale=cfg, controlnet_conditioning_scale=float(scale),
                    guess_mode=guess_mode, generator=gens).images
    return out


def generate_without(pipe, scenes: list[Scene], seeds: list[int] | None = None, steps: int = 12,
                     cfg: float = 5.0, batch: int = 16) -> list[Image.Image]:
    """The same prompts and seeds through the plain U-Net (the ControlNet pipeline's own parts, no ControlNet)."""
    import torch
    from diffusers import StableDiffusionPipeline

    plain = StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                    unet=pipe.unet, scheduler=pipe.scheduler, safety_checker=None,
                                    feature_extractor=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    seeds = list(range(len(scenes))) if seeds is None else list(seeds)
    out = []
    for i in range(0, len(scenes), batch):
        gens = [torch.Generator().manual_seed(s) for s in seeds[i:i + batch]]
        out += plain([layout_prompt(s) for s in scenes[i:i + batch]], num_inference_steps=steps, guidance_scale=cfg,
                     generator=gens).images
    return out


SCALES = (0.0, 0.25, 0.5, 1.0, 1.5)


def scale_sweep(pipe, condition: str, scenes: list[Scene] | None = None, scales=SCALES, steps: int = 12,
                cfg: float = 5.0) -> dict:
    """Layout agreement without the ControlNet and at each conditioning scale, on the same scenes and seeds.

    Returns {'without': LayoutScore, 'scales': {scale: LayoutScore}, 'ious': {label: per-image IoUs}}."""
    scenes = validation_scenes(12) if scenes is None else scenes
    res, ious = {}, {}
    base = generate_without(pipe, scenes, steps=steps, cfg=cfg)
    without = score_layout(base, scenes)
    ious["without"] = [layout_iou(im, s) for im, s in zip(base, scenes, strict=True)]
    images = {"without": base}
    for sc in scales:
        ims = generate(pipe, scenes, condition, scale=sc, steps=steps, cfg=cfg)
        res[float(sc)] = score_layout(ims, scenes)
        ious[float(sc)] = [layout_iou(im, s) for im, s in zip(ims, scenes, strict=True)]
        images[float(sc)] = ims
    return {"without": without, "scales": res, "ious": ious, "images": images, "scenes": scenes}


def conflict(pipe, condition: str = "edges", map_shape: str = "square", prompt_shape: str = "circle",
             color: str = "red", scales=SCALES, n: int = 8, steps: int = 12, cfg: float = 5.0) -> dict:
    """Map and prompt disagree: the map is a `map_shape`'s, the prompt asks for a `color` `prompt_shape`.

    For n placements (one large object, each anchor plus jitter), per scale: the share of images the judge reads as
    the map's shape, as the prompt's shape, and as the prompt's colour; plus mean layout IoU against the map."""
    from ..judge import judge

    scenes = []
    for i in range(n):
        pos = shapes.POSITIONS[i % len(shapes.POSITIONS)]
        ax, ay = shapes.ANCHORS[pos]
        obj = shapes.ShapeObject(color, map_shape, "large", ax + (i // 5) * 0.8, ay - (i // 5) * 0.8)
        scenes.append(Scene((obj,), "black"))
    prompt = f"a {color} {prompt_shape}"
    out = {"prompt": prompt, "map_shape": map_shape, "n": n, "scales": {}, "images": {}}
    for sc in scales:
        ims = generate(pipe, scenes, condition, scale=sc, prompts=[prompt] * n, steps=steps, cfg=cfg)
        js = [judge(im) for im in ims]
        big = [j.objects[0] if j.objects else None for j in js]
        out["scales"][float(sc)] = {
            "map_shape": float(np.mean([o is not None and o.shape == map_shape for o in big])),
            "prompt_shape": float(np.mean([o is not None and o.shape == prompt_shape for o in big])),
            "prompt_color": float(np.mean([o is not None and o.color == color for o in big])),
            "iou": float(np.mean([layout_iou(im, s) for im, s in zip(ims, scenes, strict=True)])),
        }
        out["images"][float(sc)] = ims
    return out


def residual_profile(trace) -> dict:
    """From a ControlNet trace: residual norm per step and residual, and how much of it comes in the first half.

    Returns {'names', 'norm' (steps, residuals) array, 'timesteps', 'early_share': per residual, share of the summed
    norm over the first half of the steps (0.5 = even), 'relative': per step, norm / its first-step value}."""
    norm = trace._t["controlnet.norm"].float().numpy()
    names = trace.settings["controlnet_residuals"]
    half = norm.shape[0] // 2
    early = norm[:half].sum(0) / np.maximum(norm.sum(0), 1e-12)
    return {"names": names, "norm": norm, "timesteps": trace._t["timesteps"].numpy(),
            "early_share": dict(zip(names, early.tolist(), strict=True)),
            "relative": norm / np.maximum(norm[:1], 1e-12)}


# ------------------------------------------------------------------------------------------------ the training
def training_curve(condition: str) -> dict:
    """The shipped ControlNet's training log: steps and loss, and every measurement of map-following."""
    import json

    from ..models import CONTROLNETS

    if condition not in CONTROLNETS:
        raise ValueError(f"condition must be one of {sorted(CONTROLNETS)}, got {condition!r}")
    path = CONTROLNETS[condition] / "training_log.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    ev = [(r["step"], r["eval"]) for r in rows if "eval" in r]
    return {"loss_steps": [s for s, _ in loss], "loss": [v for _, v in loss],
            "eval_steps": [s for s, _ in ev], "iou": [e["iou"] for _, e in ev],
            "iou_se": [e["iou_se"] for _, e in ev], "position": [e["position"] for _, e in ev],
            "n": ev[0][1]["n"] if ev else 0}


def convergence_step(curve: dict, fraction: float = 0.5) -> int | None:
    """First measured step where the IoU has covered `fraction` of its way from the first to the best value."""
    iou = curve["iou"]
    if len(iou) < 2:
        return None
    target = iou[0] + fraction * (max(iou) - iou[0])
    return next(s for s, v in zip(curve["eval_steps"], iou, strict=True) if v >= target)


def live_training(pipe, condition: str = "edges", steps: int = 30, batch: int = 4, lr: float = 1e-3,
                  n_images: int = 256, seed: int = 0) -> dict:
    """A short training run you can watch: a fresh ControlNet from the pipeline's U-Net, the same loss as the
    shipped run. Returns per step the loss and the largest zero-convolution weight (0 at the start)."""
    import random

    import torch
    from diffusers import DDPMScheduler
    from tqdm.auto import tqdm

    from ..train.controlnet import build_controlnet, control_tensor

    torch.manual_seed(seed)
    dev, unet = pipe.unet.device, pipe.unet
    cn = build_controlnet(unet).to(dev, torch.float32).train()
    images, _, scenes = shapes.make_dataset(n_images, start_seed=seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(dev, pipe.vae.dtype)
    with torch.no_grad():
        z_all = pipe.vae.encode(x).latent_dist.mean.float() * pipe.vae.config.scaling_factor
    conds = control_tensor(np.stack([np.asarray(shapes.render_condition(s, condition)) for s in scenes]))
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    opt = torch.optim.AdamW(cn.parameters(), lr=lr, weight_decay=0.0)
    gen, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    losses, zero = [], [max(zero_convolutions(cn).values())]
    frozen = [(p, p.requires_grad) for m in (unet, pipe.text_encoder) for p in m.parameters()]
    for p, _ in frozen:  # the U-Net and text encoder stay frozen: gradients flow through them, not into them
        p.requires_grad_(False)
    try:
        _live_loop(cn, unet, pipe, sched, opt, gen, rng, scenes, z_all, conds, steps, batch, n_images, dev, losses,
                   zero, tqdm)
    finally:
        for p, req in frozen:
            p.requires_grad_(req)
    return {"loss": losses, "zero_conv_max": zero, "steps": steps, "batch": batch}


def _live_loop(cn, unet, pipe, sched, opt, gen, rng, scenes, z_all, conds, steps, batch, n_images, dev, losses, zero,
               tqdm) -> None:
    import torch

    from ..train.controlnet import controlnet_loss

    for _ in tqdm(range(steps), desc="live ControlNet training"):
        idx = torch.randint(0, n_images, (batch,), generator=gen)
        ids = pipe.tokenizer([shapes.caption_for(scenes[i], rng) for i in idx.tolist()], padding="max_length",
                             max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids.to(dev)
        z0 = z_all[idx]
        noise = torch.randn(z0.shape, generator=gen).to(dev)
        t = torch.randint(0, 1000, (batch,), generator=gen).to(dev)
        loss = controlnet_loss(cn, unet, pipe.text_encoder, sched, z0, noise, t, ids, conds[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        zero.append(max(zero_convolutions(cn).values()))


# ------------------------------------------------------------------------------------------------ lesson 14
def structure_early(pipe, condition: str, scenes: list[Scene], steps: int = 8, cfg: float = 5.0) -> dict:
    """Trace one run per scene and measure, per run, the share of the ControlNet's summed residual norm (all
    residuals) that comes in the first half of the steps (0.5 = spread evenly)."""
    from ..trace import trace

    shares, profiles = [], []
    for i, s in enumerate(scenes):
        tr = trace(pipe, layout_prompt(s), seed=i, steps=steps, cfg=cfg, attention=False,
                   control_image=shapes.render_condition(s, condition))
        prof = residual_profile(tr)
        half = prof["norm"].shape[0] // 2
        shares.append(float(prof["norm"][:half].sum() / max(prof["norm"].sum(), 1e-12)))
        profiles.append(prof)
    return {"shares": shares, "profiles": profiles, "last_trace": tr}


def lesson_findings(pipe, condition: str = "edges", n: int = 6, steps: int = 8, scales=(0.0, 0.5, 1.0, 1.5),
                    conflict_n: int = 5) -> dict:
    """Everything lesson 14 prints a verdict on, measured on `n` validation scenes (seed = scene index):
    the fresh-ControlNet no-op, scale 0 == no ControlNet, layout IoU with vs without, map vs prompt, structure early.
    Returns the numbers and a VerdictTable."""
    from .. import verdicts as V

    scenes = validation_scenes(n)
    fresh = fresh_controlnet_changes_nothing(pipe, condition)
    sweep = scale_sweep(pipe, condition, scenes, scales=scales, steps=steps)
    same0 = all(np.array_equal(np.asarray(a), np.asarray(b))
                for a, b in zip(sweep["images"]["without"], sweep["images"][0.0], strict=True))
    conf = conflict(pipe, condition, n=conflict_n, scales=(0.0, 1.0, max(scales)), steps=steps)
    early = structure_early(pipe, condition, scenes[: max(3, n // 2)], steps=steps)
    top = max(scales)
    k_map = round(conf["scales"][float(top)]["map_shape"] * conflict_n)
    k_red = round(conf["scales"][float(top)]["prompt_color"] * conflict_n)
    table = V.table([
        V.exact("A fresh ControlNet (zero convolutions) leaves the U-Net's prediction unchanged",
                fresh["max_output_change"] == 0.0,
                f"largest residual {fresh['max_residual']:g}, largest change of the noise prediction "
                f"{fresh['max_output_change']:g}", "1 noisy latent"),
        V.exact("Scale 0 gives exactly the plain U-Net's images", same0,
                f"{n} images compared pixel by pixel", f"{n} scenes"),
        V.compare(f"With the {condition} ControlNet (scale 1) the output follows the map better than without",
                  sweep["ious"][1.0], sweep["ious"]["without"], labels=("IoU with", "IoU without"),
                  unit="scenes"),
        V.compare(f"Scale {top:g} follows the map at least as well as scale 0.5",
                  sweep["ious"][float(top)], sweep["ious"][0.5], labels=(f"IoU at {top:g}", "IoU at 0.5"),
                  unit="scenes"),
        V.proportion(f"Map vs prompt at scale {top:g}: the map's shape ({conf['map_shape']}) wins", k_map, conflict_n,
                     what="judged square", unit="placements"),
        V.proportion(f"Map vs prompt at scale {top:g}: the prompt's colour survives", k_red, conflict_n,
                     what="judged red", unit="placements"),
        V.from_interval("Structure early: most of the residual norm comes in the first half of the steps",
                        V.bootstrap_mean(early["shares"]), f"{len(early['shares'])} traced runs",
                        "first-half share", threshold=0.5),
    ], title=f"Lesson 14 verdicts ({condition} ControlNet, {steps} steps, CFG 5)")
    return {"fresh": fresh, "sweep": sweep, "scale0_equals_without": same0, "conflict": conf, "early": early,
            "table": table}
