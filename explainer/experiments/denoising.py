"""Lesson 4: noise in, picture out. Does structure come first and detail later?

`structure_then_detail` generates several one-object scenes with a trace, decodes the predicted clean image x0 at
every step, and measures two things:

* frequency bands: how far each step's decoded x0 still is from the final image, split into coarse structure (a
  4x4-pixel blur: where the blobs are and what colour) and fine detail (what the blur removes: edges and corners);
  the step at which each band's error falls below 10 % of where it started;
* judged attributes: the step from which the judge's reading of x0 (position, colour, shape of the largest object)
  no longer changes until the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import judge as J
from .. import shapes
from ..generation import run_pipeline
from ..shapes import EVAL_SEED  # noqa: E402 (one definition, in the shapes world: never used in training)
from ..trace import trace_batch
from .latents import decode


def one_object_prompts(n: int, seed: int = EVAL_SEED + 3000) -> list[str]:
    """Canonical captions of n random one-object scenes (colour, shape, size and position all named)."""
    return [shapes.caption_for(shapes.sample_scene(seed + i, two_object_p=0.0)) for i in range(n)]


def band_errors(frames: np.ndarray, blur: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """frames (steps, h, w, 3) uint8, the last one final. Returns (coarse, fine) RMS error to the final frame per step:
    coarse = difference blurred with a blur x blur box filter; fine = the rest of the difference."""
    x = torch.from_numpy(frames.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    d = x - x[-1:]
    low = F.interpolate(F.avg_pool2d(d, blur), scale_factor=blur, mode="nearest")
    high = d - low
    rms = lambda t: t.pow(2).mean(dim=(1, 2, 3)).sqrt().numpy()  # noqa: E731
    return rms(low), rms(high)


def settle_step(curve: np.ndarray, frac: float = 0.1) -> int:
    """First step (1-based) from which the error stays below `frac` of its value at step 1."""
    thresh = frac * curve[0]
    above = np.nonzero(curve > thresh)[0]
    return int(above[-1] + 2) if len(above) else 1


def lock_step(readings: list[Any]) -> int:
    """First step (1-based) from which the reading equals the final one until the end."""
    final = readings[-1]
    k = len(readings)
    while k > 0 and readings[k - 1] == final:
        k -= 1
    return k + 1


@dataclass
class StructureResult:
    prompts: list[str]
    seeds: list[int]
    steps: int
    x0_frames: np.ndarray  # (n, steps, h, w, 3) decoded predicted x0, one row per prompt
    coarse: np.ndarray  # (n, steps) RMS error to the final image, coarse band
    fine: np.ndarray  # (n, steps) fine band
    coarse_settle: float  # mean step at which the coarse error is below 10 % of its start
    fine_settle: float
    lock: dict[str, float]  # attribute -> mean step from which the judged attribute stops changing
    lock_each: dict[str, list[int]]
    adherence: float  # share of final images the judge says follow the prompt entirely
    traces: list[Any]


def decoded_x0(pipe: Any, traces: list[Any]) -> np.ndarray:
    """The predicted clean image of every step of every trace, decoded by the VAE: uint8 (n, steps, h, w, 3)."""
    x0 = torch.stack([torch.stack([s.x0 for s in tr.steps]) for tr in traces])  # (n, S, C, h, w)
    n_, s_ = x0.shape[:2]
    decoded = decode(pipe, x0.flatten(0, 1))
    return decoded.reshape(n_, s_, *decoded.shape[1:])


def structure_then_detail(pipe: Any, n: int = 8, steps: int = 25, cfg: float = 7.5, seed: int = 0,
                          prompts: list[str] | None = None) -> StructureResult:
    prompts = prompts or one_object_prompts(n)
    seeds = [seed + i for i in range(len(prompts))]
    traces = trace_batch(pipe, prompts, seeds, steps=steps, cfg=cfg, attention=False)
    frames = decoded_x0(pipe, traces)
    coarse, fine = zip(*(band_errors(f) for f in frames), strict=True)
    coarse, fine = np.stack(coarse), np.stack(fine)
    lock_each: dict[str, list[int]] = {"position": [], "colour": [], "shape": []}
    for f in frames:
        reads = [J.judge(im) for im in f]
        top = [r.objects[0] if r.objects else None for r in reads]
        lock_each["position"].append(lock_step([o.position if o else None for o in top]))
        lock_each["colour"].append(lock_step([o.color if o else None for o in top]))
        lock_each["shape"].append(lock_step([o.shape if o else None for o in top]))
    adherence = float(np.mean([bool(J.judge_against(tr.image, p)["all"]) for tr, p in zip(traces, prompts,
                                                                                              strict=True)]))
    return StructureResult(
        prompts, seeds, steps, frames, coarse, fine,
        float(np.mean([settle_step(c) for c in coarse])), float(np.mean([settle_step(c) for c in fine])),
        {k: float(np.mean(v)) for k, v in lock_each.items()}, lock_each, adherence, traces)


def half_step(curve: np.ndarray, frac: float = 0.5) -> int:
    """First step (1-based) at which the error is at or below `frac` of its value at step 1."""
    below = np.nonzero(curve <= frac * curve[0])[0]
    return int(below[0] + 1) if len(below) else len(curve)


def halving_steps(res: StructureResult, frac: float = 0.5) -> dict[str, list[int]]:
    """Per image, the step at which each band's error first falls to `frac` of its start (coarse, fine)."""
    return {"coarse": [half_step(c, frac) for c in res.coarse], "fine": [half_step(c, frac) for c in res.fine]}


def structure_verdicts(res: StructureResult) -> list[Any]:
    """Lesson 4's claims as Verdicts, each a paired bootstrap over the images."""
    from .. import verdicts as vd

    h = halving_steps(res)
    unit = f"images ({res.steps} steps each)"
    out = [vd.compare("structure first: the coarse error halves before the fine error does (step of halving)",
                      h["fine"], h["coarse"], labels=("fine", "coarse"), digits=1, unit=unit,
                      note="coarse halves at step " + ", ".join(map(str, h["coarse"])) + "; fine at "
                           + ", ".join(map(str, h["fine"]))),
           vd.compare("structure first: the coarse band settles (below 10 % of its start) before the fine band",
                      [settle_step(c) for c in res.fine], [settle_step(c) for c in res.coarse],
                      labels=("fine", "coarse"), digits=1, unit=unit)]
    for attr in ("colour", "shape"):
        out.append(vd.compare(f"where before what: the judged position is fixed before the {attr}",
                              res.lock_each[attr], res.lock_each["position"], labels=(attr, "position"), digits=1,
                              unit=unit))
    return out


# ------------------------------------------------------------------------------------------- swap the prompt
@dataclass
class PromptSwap:
    pairs: list[tuple[str, str]]  # (first prompt A, second prompt B): they differ in colour, shape and position
    seeds: list[int]
    ks: list[int]  # A for the first k steps, B for the rest (k = 0: B throughout; k = steps: A throughout)
    steps: int
    follows: dict[int, dict[str, list[bool | None]]]  # k -> attribute -> per image: True = like A, False = like B,
    #                                                   None = neither (or no object found)
    images: dict[int, list[Any]]

    def share(self, k: int, attr: str, of: str = "A") -> float:
        """Share of the images whose judged `attr` (position, colour, shape) is prompt `of`'s ("A" or "B")."""
        want = of == "A"
        v = self.follows[k][attr]
        return sum(x is want for x in v) / len(v)

    def first_k(self, attr: str, at_least: float = 0.5) -> int:
        """The smallest k (of `ks`) from which at least `at_least` of the images take `attr` from prompt A."""
        for k in self.ks:
            if all(self.share(kk, attr, "A") >= at_least for kk in self.ks if kk >= k):
                return k
        return self.ks[-1]

    def table(self) -> str:
        head = f"{'swap after step k':<18}" + "".join(f"{a + ' from A':>16}{a + ' from B':>16}"
                                                       for a in ("position", "colour", "shape"))
        lines = [f"{len(self.pairs)} prompt pairs; A for the first k of {self.steps} steps, then B", head]
        for k in self.ks:
            lines.append(f"k = {k:<14}" + "".join(f"{self.share(k, a, 'A'):>16.0%}{self.share(k, a, 'B'):>16.0%}"
                                                  for a in ("position", "colour", "shape")))
        return "\n".join(lines)


def swap_pairs(n: int = 8, seed: int = 0) -> list[tuple[str, str]]:
    """n pairs of one-object prompts that differ in colour, shape and position (opposite sides), same size."""
    import random

    rng = random.Random(seed)
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    out: list[tuple[str, str]] = []
    while len(out) < n:
        (c1, c2), (s1, s2) = rng.sample(list(shapes.COLORS), 2), rng.sample(list(shapes.SHAPES), 2)
        if (c1, s1) in shapes.HELD_OUT or (c2, s2) in shapes.HELD_OUT:
            continue
        p1 = rng.choice(list(opposite))
        out.append((f"a large {c1} {s1} on the {p1}", f"a large {c2} {s2} on the {opposite[p1]}"))
    return out


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


@torch.no_grad()
def swap_prompt(pipe: Any, pairs: list[tuple[str, str]] | None = None, ks: tuple[int, ...] = (0, 2, 4, 8, 12, 25),
                steps: int = 25, cfg: float = 7.5, seed: int = 0) -> PromptSwap:
    """Generate with prompt A for the first k steps and prompt B for the rest (the conditional text embeddings are
    swapped through the pipeline's step callback), and judge which prompt the final picture's position, colour and
    shape follow."""
    pairs = pairs or swap_pairs()
    seeds = [seed + i for i in range(len(pairs))]
    follows: dict[int, dict[str, list[bool | None]]] = {}
    images = swap_images(pipe, [a for a, _ in pairs], [b for _, b in pairs], seeds, ks, steps, cfg)
    for k, ims in images.items():
        row: dict[str, list[bool | None]] = {"position": [], "colour": [], "shape": []}
        for im, (a, b) in zip(ims, pairs, strict=True):
            j = J.judge(im)
            o = j.objects[0] if j.objects else None
            sa, sb = J.parse_prompt(a).objects[0], J.parse_prompt(b).objects[0]
            for attr, name in (("position", "position"), ("colour", "color"), ("shape", "shape")):
                seen = getattr(o, name) if o is not None else None
                row[attr].append(True if seen == getattr(sa, name) else False if seen == getattr(sb, name) else None)
        follows[k] = row
    return PromptSwap(list(pairs), seeds, list(ks), steps, follows, images)


def swap_verdicts(sw: PromptSwap, early: int | None = None) -> list[Any]:
    """The lesson-4 question answered: after a swap at step `early`, does the layout stay A's while colour and shape
    follow B? Wilson intervals over the prompt pairs."""
    from .. import verdicts as vd

    early = early if early is not None else min(k for k in sw.ks if 0 < k < sw.steps)
    n = len(sw.pairs)
    pos_a = sum(x is True for x in sw.follows[early]["position"])
    col_b = sum(x is False for x in sw.follows[early]["colour"])
    shp_b = sum(x is False for x in sw.follows[early]["shape"])
    unit = "prompt pairs"
    return [
        vd.proportion(f"swapped after step {early} of {sw.steps}: the position stays the first prompt's", pos_a, n,
                      threshold=0.5, what="position from A", unit=unit),
        vd.proportion(f"swapped after step {early}: the colour follows the second prompt", col_b, n, threshold=0.5,
                      what="colour from B", unit=unit),
        vd.proportion(f"swapped after step {early}: the shape follows the second prompt", shp_b, n, threshold=0.5,
                      what="shape from B", unit=unit),
    ]


# ------------------------------------------------------------------------------------------- image to image
@dataclass
class ImageToImage:
    pairs: list[tuple[str, str]]  # (prompt the source picture was made with, prompt B the picture is pushed to)
    strengths: list[float]
    steps: int
    sources: list[Any]  # the source pictures (prompt A, generated)
    noised: dict[float, list[Any]]  # strength -> the noised starting latents, decoded (the forward process)
    results: dict[float, list[Any]]  # strength -> the denoised pictures (the reverse process, prompt B)
    follows: dict[float, dict[str, list[bool | None]]]  # strength -> attribute -> per image: True = like the source
    denoise_steps: dict[float, int]  # strength -> how many of the `steps` steps actually run

    def share(self, strength: float, attr: str, of: str = "source") -> float:
        want = of == "source"
        v = self.follows[strength][attr]
        return sum(x is want for x in v) / len(v)

    def table(self) -> str:
        head = f"{'strength':<9}{'steps run':>10}" + "".join(f"{a + ' kept':>15}{a + ' from B':>15}"
                                                            for a in ("position", "colour", "shape"))
        lines = [f"{len(self.pairs)} source pictures, each pushed towards another prompt B", head]
        for s in self.strengths:
            lines.append(f"{s:<9g}{self.denoise_steps[s]:>10}" + "".join(
                f"{self.share(s, a):>15.0%}{self.share(s, a, 'B'):>15.0%}" for a in ("position", "colour", "shape")))
        return "\n".join(lines)


@torch.no_grad()
def image_to_image(pipe: Any, pairs: list[tuple[str, str]] | None = None,
                   strengths: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0), steps: int = 25, cfg: float = 7.5,
                   seed: int = 0) -> ImageToImage:
    """Forward and reverse process in one experiment: each source picture (generated from prompt A) is encoded,
    noised to `strength` of the schedule (the forward process), and denoised with prompt B for the remaining
    strength x steps steps (diffusers' StableDiffusionImg2ImgPipeline built from the same components). The noised
    start is captured at the U-Net's first call and decoded."""
    check_strengths(strengths)
    pairs = pairs or swap_pairs()
    a_prompts, b_prompts = [a for a, _ in pairs], [b for _, b in pairs]
    seeds = [seed + i for i in range(len(pairs))]
    sources = run_pipeline(pipe, a_prompts, seeds, steps, cfg)
    noised, results, ran = img2img_images(pipe, sources, b_prompts, seeds, strengths, steps, cfg)
    follows = {}
    for s, ims in results.items():
        row: dict[str, list[bool | None]] = {"position": [], "colour": [], "shape": []}
        for im, src, (_, b) in zip(ims, sources, pairs, strict=True):
            j, js = J.judge(im), J.judge(src)
            o, os_ = (j.objects[0] if j.objects else None), (js.objects[0] if js.objects else None)
            sb = J.parse_prompt(b).objects[0]
            for attr, name in (("position", "position"), ("colour", "color"), ("shape", "shape")):
                seen = getattr(o, name) if o is not None else None
                was = getattr(os_, name) if os_ is not None else None
                row[attr].append(True if seen is not None and seen == was else
                                 False if seen == getattr(sb, name) else None)
        follows[s] = row
    return ImageToImage(list(pairs), list(strengths), steps, sources, noised, results, follows, ran)


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


def image_to_image_verdicts(r: ImageToImage) -> list[Any]:
    """Strength is how far back along the forward process the picture is sent: low keeps the source, high follows B."""
    from .. import verdicts as vd

    lo, hi = min(r.strengths), max(r.strengths)
    n = len(r.pairs)
    unit = "source pictures"
    return [vd.proportion(f"at strength {lo:g} the picture keeps the source's position", _count(r, lo, "position",
                                                                                               True), n,
                          what="position kept", unit=unit),
            vd.proportion(f"at strength {hi:g} the picture follows prompt B's colour", _count(r, hi, "colour", False),
                          n, what="colour from B", unit=unit),
            vd.proportion(f"at strength {hi:g} the source's position is forgotten (prompt B's side)",
                          _count(r, hi, "position", False), n, what="position from B", unit=unit),
            vd.proportion(f"already at strength {lo:g} the shape follows prompt B (shape is late detail)",
                          _count(r, lo, "shape", False), n, what="shape from B", unit=unit),
            vd.compare(f"more strength, more of prompt B: colour from B at strength {hi:g} vs {lo:g}",
                       [x is False for x in r.follows[hi]["colour"]], [x is False for x in r.follows[lo]["colour"]],
                       labels=(f"strength {hi:g}", f"strength {lo:g}"), percent=True, unit=unit + " (paired)")]


def _count(r: ImageToImage, s: float, attr: str, value: bool) -> int:
    return sum(x is value for x in r.follows[s][attr])
