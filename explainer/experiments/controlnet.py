"""What lesson 14 and benchmarks/controlnet.py measure about ControlNet: does the output follow the map?

Layout agreement is read from the outside, from pixels: the foreground of a generated image (pixels far from its
background colour) against the regions the control map marks (`shapes.object_masks` of the scene the map was drawn
from), as an IoU; and, per object, whether the judge finds an object of the asked colour near the map's object.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .. import shapes
from .. import validation as V
from ..controlnet_world import (  # noqa: F401 (shared with training; re-exported for the lesson)
    FOREGROUND_THRESHOLD,
    LayoutScore,
    build_controlnet,
    control_tensor,
    controlnet_loss,
    foreground_mask,
    layout_iou,
    layout_prompt,
    mask_iou,
    placement,
    score_layout,
    validation_scenes,
)
from ..generation import run_pipeline, seed_generator
from ..latents import to_pixels
from ..shapes import Scene


# ------------------------------------------------------------------------------------------------ the mechanism
def anatomy(pipe) -> dict:
    """Which parts of the U-Net the ControlNet copies, what it adds, and where its residuals enter.

    Returns {'copied': [(name, params)], 'added': [(name, params)], 'residuals': [(name, channels, (h, w))],
    'copied_params', 'added_params', 'unet_params', 'identical_copy': share of copied tensors that still equal the
    U-Net's (1.0 for a fresh `from_unet`, lower once trained)}.
    """
    check_controlnet_pipe(pipe)
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
    if not hasattr(controlnet, "controlnet_down_blocks") or not hasattr(controlnet, "controlnet_mid_block"):
        raise ValueError(f"controlnet must be a diffusers ControlNetModel (pipe.controlnet), got "
                         f"{type(controlnet).__name__}")
    mods = {f"down {k}": m for k, m in enumerate(controlnet.controlnet_down_blocks)}
    mods["mid"] = controlnet.controlnet_mid_block
    return {k: float(max(m.weight.detach().abs().max(), m.bias.detach().abs().max())) for k, m in mods.items()}


def fresh_controlnet_changes_nothing(pipe, condition: str = "edges", seed: int = 0) -> dict[str, float]:
    """Build a ControlNet from the pipeline's U-Net (as training starts) and compare the U-Net's noise prediction
    with and without its residuals on one noisy latent: the zero convolutions make them identical."""
    import torch

    if getattr(pipe, "unet", None) is None or getattr(pipe, "text_encoder", None) is None:
        raise ValueError(f"pipe must be a Stable Diffusion pipeline with a U-Net (a ControlNet is built from it), got "
                         f"{type(pipe).__name__}")
    V.check_choice(condition, shapes.CONDITIONS, "condition")
    seed = V.check_seed(seed)
    cn = build_controlnet(pipe.unet).to(pipe.unet.device, pipe.unet.dtype).eval()
    scene = shapes.sample_scene(seed)
    g = seed_generator(seed)
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
def check_controlnet_pipe(pipe: object, name: str = "pipe") -> object:
    """A pipeline with a ControlNet (explainer.load_pipeline(controlnet="edges") or "segmentation")."""
    if getattr(pipe, "controlnet", None) is None or getattr(pipe, "unet", None) is None:
        raise ValueError(f"{name} must be a ControlNet pipeline (explainer.load_pipeline(controlnet='edges') or "
                         f"'segmentation'), got {type(pipe).__name__}: without a ControlNet the map would be ignored")
    return pipe


def check_scenes(scenes: object, name: str = "scenes") -> list[Scene]:
    """A non-empty list of shapes.Scene (e.g. validation_scenes(), shapes.sample_scene(seed))."""
    if isinstance(scenes, Scene):
        raise ValueError(f"{name} must be a list of scenes, got one Scene (write [scene])")
    if not isinstance(scenes, (list, tuple)) or not scenes:
        raise ValueError(f"{name} must be a non-empty list of explainer.shapes.Scene, got {scenes!r:.60}")
    for i, s in enumerate(scenes):
        if not isinstance(s, Scene):
            raise ValueError(f"{name}[{i}] must be an explainer.shapes.Scene, got {type(s).__name__}")
    return list(scenes)


def _check_run(scenes: object, seeds: object, steps: object, cfg: object, batch: object
               ) -> tuple[list[Scene], list[int], int, float, int]:
    scenes = check_scenes(scenes)
    seeds = list(range(len(scenes))) if seeds is None else V.check_seeds(seeds, "seeds", single=False)
    V.check_same_length("scenes", scenes, "seeds", seeds)
    steps, cfg = V.check_steps(steps), V.check_cfg(cfg)
    return scenes, seeds, steps, cfg, V.check_positive_int(batch, "batch", 1024)


def generate(pipe, scenes: list[Scene], condition: str, scale: float = 1.0, seeds: list[int] | None = None,
             prompts: list[str] | None = None, steps: int = 12, cfg: float = 5.0, guess_mode: bool = False,
             batch: int = 16) -> list[Image.Image]:
    """Images from each scene's control map (`condition`) and its layout prompt (or `prompts`), one seed each.
    Checked before any image as `trace` checks a ControlNet run: a ControlNet pipeline, scale a finite number from 0
    to 10, each map the image's size."""
    from ..adapters.controlnet import ControlNetAdapter

    check_controlnet_pipe(pipe)
    V.check_choice(condition, shapes.CONDITIONS, "condition")
    scenes, seeds, steps, cfg, batch = _check_run(scenes, seeds, steps, cfg, batch)
    prompts = [layout_prompt(s) for s in scenes] if prompts is None else V.check_prompts(prompts, single=False)
    V.check_same_length("scenes", scenes, "prompts", prompts)
    maps = [shapes.render_condition(s, condition) for s in scenes]
    control = ControlNetAdapter(pipe).check_control(
        {"control_image": maps, "controlnet_conditioning_scale": scale, "guess_mode": guess_mode}, len(scenes))
    images = control["image"] if isinstance(control["image"], list) else [control["image"]]
    out = []
    for i in range(0, len(scenes), batch):
        sl = slice(i, i + batch)
        out += run_pipeline(pipe, prompts[sl], seeds[sl], steps, cfg, image=images[sl],
                            controlnet_conditioning_scale=control["controlnet_conditioning_scale"],
                            guess_mode=control["guess_mode"])
    return out


def generate_without(pipe, scenes: list[Scene], seeds: list[int] | None = None, steps: int = 12,
                     cfg: float = 5.0, batch: int = 16) -> list[Image.Image]:
    """The same prompts and seeds through the plain U-Net (the ControlNet pipeline's own parts, no ControlNet)."""
    from diffusers import StableDiffusionPipeline

    check_controlnet_pipe(pipe)
    scenes, seeds, steps, cfg, batch = _check_run(scenes, seeds, steps, cfg, batch)
    plain = StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                    unet=pipe.unet, scheduler=pipe.scheduler, safety_checker=None,
                                    feature_extractor=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    out = []
    for i in range(0, len(scenes), batch):
        out += run_pipeline(plain, [layout_prompt(s) for s in scenes[i:i + batch]], seeds[i:i + batch], steps, cfg)
    return out


SCALES = (0.0, 0.25, 0.5, 1.0, 1.5)


def scale_sweep(pipe, condition: str, scenes: list[Scene] | None = None, scales=SCALES, steps: int = 12,
                cfg: float = 5.0) -> dict:
    """Layout agreement without the ControlNet and at each conditioning scale, on the same scenes and seeds.

    Returns {'without': LayoutScore, 'scales': {scale: LayoutScore}, 'ious': {label: per-image IoUs}}."""
    check_controlnet_pipe(pipe)
    V.check_choice(condition, shapes.CONDITIONS, "condition")
    scenes = validation_scenes(12) if scenes is None else check_scenes(scenes)
    scales = V.check_numbers(scales, "scales", *V.CONTROL_RANGE)
    steps, cfg = V.check_steps(steps), V.check_cfg(cfg)
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
    return {"without": without, "scales": res, "ious": ious, "images": images, "scenes": scenes, "steps": steps,
            "cfg": cfg}


def conflict(pipe, condition: str = "edges", map_shape: str = "square", prompt_shape: str = "circle",
             color: str = "red", scales=SCALES, n: int = 8, steps: int = 12, cfg: float = 5.0) -> dict:
    """Map and prompt disagree: the map is a `map_shape`'s, the prompt asks for a `color` `prompt_shape`.

    For n placements (one large object, each anchor plus jitter), per scale: the share of images the judge reads as
    the map's shape, as the prompt's shape, and as the prompt's colour; plus mean layout IoU against the map."""
    from ..judge import judge

    check_controlnet_pipe(pipe)
    V.check_choice(condition, shapes.CONDITIONS, "condition")
    V.check_choice(map_shape, shapes.SHAPES, "map_shape")
    V.check_choice(prompt_shape, shapes.SHAPES, "prompt_shape")
    V.check_choice(color, list(shapes.COLORS), "color")
    scales = V.check_numbers(scales, "scales", *V.CONTROL_RANGE)
    n, steps, cfg = V.check_positive_int(n, "n", 1000), V.check_steps(steps), V.check_cfg(cfg)
    scenes = []
    for i in range(n):
        pos = shapes.POSITIONS[i % len(shapes.POSITIONS)]
        ax, ay = shapes.ANCHORS[pos]
        obj = shapes.ShapeObject(color, map_shape, "large", ax + (i // 5) * 0.8, ay - (i // 5) * 0.8)
        scenes.append(Scene((obj,), "black"))
    prompt = f"a {color} {prompt_shape}"
    out = {"prompt": prompt, "map_shape": map_shape, "n": n, "scales": {}, "images": {}, "steps": steps, "cfg": cfg}
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
    if "controlnet.norm" not in getattr(trace, "_t", {}):
        raise ValueError(f"trace must be a Trace of a ControlNet pipeline (explainer.trace(pipe, prompt, "
                         f"control_image=...)), got {type(trace).__name__} without ControlNet residuals")
    norm = trace._t["controlnet.norm"].float().numpy()
    names = trace.settings["controlnet_residuals"]
    half = norm.shape[0] // 2
    early = norm[:half].sum(0) / np.maximum(norm.sum(0), 1e-12)
    return {"names": names, "norm": norm, "timesteps": trace._t["timesteps"].numpy(),
            "early_share": dict(zip(names, early.tolist(), strict=True)),
            "relative": norm / np.maximum(norm[:1], 1e-12)}


# ------------------------------------------------------------------------------------------------ the training
def training_curve(condition: str) -> dict:
    """The shipped ControlNet's training log: steps and loss, and every measurement of map-following; with the
    validation's steps and CFG (the training stage's `evaluate` settings) and why the run stopped (its card)."""
    import inspect
    import json

    from ..models import CONTROLNETS
    from ..train.controlnet import evaluate

    if condition not in CONTROLNETS:
        raise ValueError(f"condition must be one of {sorted(CONTROLNETS)}, got {condition!r}")
    path = CONTROLNETS[condition] / "training_log.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    card_path = CONTROLNETS[condition] / "training.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    ev = [(r["step"], r["eval"]) for r in rows if "eval" in r]
    return {"loss_steps": [s for s, _ in loss], "loss": [v for _, v in loss],
            "eval_steps": [s for s, _ in ev], "iou": [e["iou"] for _, e in ev],
            "iou_se": [e["iou_se"] for _, e in ev], "position": [e["position"] for _, e in ev],
            "n": ev[0][1]["n"] if ev else 0, "val_steps": inspect.signature(evaluate).parameters["steps"].default,
            "val_cfg": inspect.signature(evaluate).parameters["cfg"].default, "stopped": card.get("stopped", "")}


def convergence_step(curve: dict, fraction: float = 0.5) -> int | None:
    """First measured step where the IoU has covered `fraction` of its way from the first to the best value."""
    fraction = V.check_number(fraction, "fraction", 0.0, 1.0)
    if not isinstance(curve, dict) or not {"iou", "eval_steps"} <= set(curve):
        raise ValueError("curve must be what training_curve(condition) returns (a dict with 'iou' and 'eval_steps')")
    iou = curve["iou"]
    if len(iou) < 2:
        return None
    target = iou[0] + fraction * (max(iou) - iou[0])
    return next(s for s, v in zip(curve["eval_steps"], iou, strict=True) if v >= target)


def live_training(pipe, condition: str = "edges", steps: int = 30, batch: int = 4, lr: float = 1e-3,
                  n_images: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """A short training run you can watch: a fresh ControlNet from the pipeline's U-Net, the same loss as the
    shipped run. Returns per step the loss and the largest zero-convolution weight (0 at the start)."""
    import random

    import torch
    from tqdm.auto import tqdm

    from ..train.common import sd_noise_schedule

    if getattr(pipe, "unet", None) is None or getattr(pipe, "vae", None) is None:
        raise ValueError(f"pipe must be a Stable Diffusion pipeline with a U-Net and a VAE, got {type(pipe).__name__}")
    V.check_choice(condition, shapes.CONDITIONS, "condition")
    steps, batch = V.check_positive_int(steps, "steps", 100_000), V.check_positive_int(batch, "batch", 1024)
    lr = V.check_number(lr, "lr", 0.0, 1.0, low_open=True)
    n_images, seed = V.check_positive_int(n_images, "n_images", 1_000_000), V.check_seed(seed)
    progress = V.check_bool(progress, "progress")
    torch.manual_seed(seed)
    dev, unet = pipe.unet.device, pipe.unet
    cn = build_controlnet(unet).to(dev, torch.float32).train()
    images, _, scenes = shapes.make_dataset(n_images, start_seed=seed)
    x = to_pixels(images).to(dev, pipe.vae.dtype)
    with torch.no_grad():
        z_all = pipe.vae.encode(x).latent_dist.mean.float() * pipe.vae.config.scaling_factor
    conds = control_tensor(np.stack([np.asarray(shapes.render_condition(s, condition)) for s in scenes]))
    sched = sd_noise_schedule()  # the schedule the U-Net was trained with (the one definition training uses)
    opt = torch.optim.AdamW(cn.parameters(), lr=lr, weight_decay=0.0)
    gen, rng = seed_generator(seed), random.Random(seed)
    losses, zero = [], [max(zero_convolutions(cn).values())]
    frozen = [(p, p.requires_grad) for m in (unet, pipe.text_encoder) for p in m.parameters()]
    for p, _ in frozen:  # the U-Net and text encoder stay frozen: gradients flow through them, not into them
        p.requires_grad_(False)
    try:
        _live_loop(cn, unet, pipe, sched, opt, gen, rng, scenes, z_all, conds, steps, batch, n_images, dev, losses,
                   zero, tqdm, progress)
    finally:
        for p, req in frozen:
            p.requires_grad_(req)
    return {"loss": losses, "zero_conv_max": zero, "steps": steps, "batch": batch}


def _live_loop(cn, unet, pipe, sched, opt, gen, rng, scenes, z_all, conds, steps, batch, n_images, dev, losses, zero,
               tqdm, progress=False) -> None:
    import torch

    for _ in tqdm(range(steps), desc="live ControlNet training", disable=not progress):
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

    check_controlnet_pipe(pipe)
    V.check_choice(condition, shapes.CONDITIONS, "condition")
    scenes = check_scenes(scenes)
    steps, cfg = V.check_int(steps, "steps (two halves)", 2, V.MAX_STEPS), V.check_cfg(cfg)
    shares, profiles = [], []
    for i, s in enumerate(scenes):
        tr = trace(pipe, layout_prompt(s), seed=i, steps=steps, cfg=cfg, attention=False,
                   control_image=shapes.render_condition(s, condition))
        prof = residual_profile(tr)
        half = prof["norm"].shape[0] // 2
        shares.append(float(prof["norm"][:half].sum() / max(prof["norm"].sum(), 1e-12)))
        profiles.append(prof)
    return {"shares": shares, "profiles": profiles, "last_trace": tr}


def lesson_findings(pipe, condition: str = "edges", n: int = 8, steps: int = 8, scales=(0.0, 0.5, 1.0, 1.5),
                    conflict_n: int = 8) -> dict:
    """Everything lesson 14 prints a verdict on, measured on `n` validation scenes (seed = scene index):
    the fresh-ControlNet no-op, scale 0 == no ControlNet, layout IoU with vs without, map vs prompt, structure early.
    Returns the numbers and a VerdictTable."""
    from .. import verdicts as V
    from ..validation import CONTROL_RANGE, check_choice, check_int, check_numbers, check_positive_int

    check_controlnet_pipe(pipe)
    check_choice(condition, shapes.CONDITIONS, "condition")
    n, conflict_n = check_int(n, "n (paired intervals)", 2, 1000), check_positive_int(conflict_n, "conflict_n", 1000)
    steps = check_int(steps, "steps (two halves)", 2, 1000)
    scales = check_numbers(scales, "scales", *CONTROL_RANGE)
    if not {0.5, 1.0} <= set(scales):
        raise ValueError(f"scales must include 0.5 and 1.0 (the verdicts compare them), got {scales}")
    scenes = validation_scenes(n)
    fresh = fresh_controlnet_changes_nothing(pipe, condition)
    sweep = scale_sweep(pipe, condition, scenes, scales=scales, steps=steps)
    same0 = all(np.array_equal(np.asarray(a), np.asarray(b))
                for a, b in zip(sweep["images"]["without"], sweep["images"][0.0], strict=True))
    conf = conflict(pipe, condition, n=conflict_n, scales=(0.0, 1.0, max(scales)), steps=steps)
    early = structure_early(pipe, condition, scenes, steps=steps)  # n runs: 8 or more give an interval
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
    ], title=f"Lesson 14 verdicts ({condition} ControlNet, {steps} steps, CFG {sweep['cfg']:g})")
    return {"fresh": fresh, "sweep": sweep, "scale0_equals_without": same0, "conflict": conf, "early": early,
            "table": table}
