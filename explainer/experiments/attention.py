"""Lesson 6: inside the U-Net. Where each word looks, what a pixel looks at, and how text and time get in.

* `word_lands_on_object`: over many seeds, does the cross-attention map of "circle" peak on the circle (its
  attention-weighted centre lies nearer the judged circle than the judged square)? And "square" on the square?
* `self_attention_at`: self-attention probabilities of one layer, recorded with a small attention processor that
  leaves the layer's output untouched; the map of one query position.
* `text_effect_per_step`: how much the text changes the U-Net's prediction at each step, ||eps_cond - eps_uncond|| /
  ||eps_uncond||, from a trace.
* `text_for_first_k`: give the U-Net the prompt only for the first k steps (the empty prompt afterwards); judged
  adherence against k.
* `timestep_sweep`: noise real latents to a true timestep, tell the U-Net another timestep; its noise prediction is best
  when it is told the truth.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import judge as J
from .. import shapes
from ..hooks import cross_attention_probs
from ..trace import trace_batch

EVAL_SEED = 10_000_000


# ------------------------------------------------------------------------------------------- cross-attention
def two_object_prompts(n: int, seed: int = 0) -> list[str]:
    """'a red circle left of a blue square' with random colours and relations (no held-out combinations)."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        c1, c2 = rng.sample(list(shapes.COLORS), 2)
        if (c1, "circle") in shapes.HELD_OUT or (c2, "square") in shapes.HELD_OUT:
            continue
        rel = rng.choice(shapes.RELATIONS)
        out.append(f"a {c1} circle {rel} a {c2} square")
    return out


def attention_centroid(amap: torch.Tensor | np.ndarray, image_size: int = shapes.IMAGE_SIZE) -> tuple[float, float]:
    """Attention-weighted centre (x, y) of an (h, w) map, in image pixels."""
    a = torch.as_tensor(amap, dtype=torch.float64)
    h, w = a.shape
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) * image_size / h, (torch.arange(w) + 0.5) * image_size / w,
                            indexing="ij")
    total = a.sum()
    return float((a * xs).sum() / total), float((a * ys).sum() / total)


@dataclass
class WordHits:
    prompts: list[str]
    seeds: list[int]
    judged: int  # images in which the judge found both named objects
    circle_hits: int  # of those, images where the "circle" map's centre is nearer the circle than the square
    square_hits: int
    circle_rate: float
    square_rate: float
    centroids: list[dict]  # per image: prompt, circle/square centroid, judged circle/square centre (or None)
    traces: list[Any]


def word_lands_on_object(pipe: Any, n: int = 8, seed: int = 0, steps: int = 20, cfg: float = 7.5,
                         level: str | int | None = None) -> WordHits:
    prompts = two_object_prompts(n, seed)
    seeds = [seed + i for i in range(n)]
    traces = trace_batch(pipe, prompts, seeds, steps=steps, cfg=cfg)
    judged = ch = sh = 0
    rows = []
    for tr, p in zip(traces, prompts, strict=True):
        c1 = p.split()[1]
        c2 = p.split()[-2]
        j = J.judge(tr.image)
        circ, sq = j.find(color=c1), j.find(color=c2)
        cc = attention_centroid(tr.attention("circle", level=level))
        sc = attention_centroid(tr.attention("square", level=level))
        row = dict(prompt=p, circle_map=cc, square_map=sc, circle=None, square=None)
        if circ is not None and sq is not None:
            judged += 1
            pc, ps = np.array([circ.x, circ.y]), np.array([sq.x, sq.y])
            row.update(circle=(circ.x, circ.y), square=(sq.x, sq.y))
            ch += np.linalg.norm(np.array(cc) - pc) < np.linalg.norm(np.array(cc) - ps)
            sh += np.linalg.norm(np.array(sc) - ps) < np.linalg.norm(np.array(sc) - pc)
        rows.append(row)
    return WordHits(prompts, seeds, judged, int(ch), int(sh), ch / max(judged, 1), sh / max(judged, 1), rows, traces)


# ------------------------------------------------------------------------------------------- self-attention
class _SelfAttentionProbe:
    """Wraps one self-attention layer's processor: the output comes from the original processor (unchanged); the
    probabilities softmax(QK^T / sqrt(d)) of the last `n` batch rows (the conditional half under CFG) are kept."""

    def __init__(self, original: Any, n: int):
        self.original, self.n, self.calls = original, n, []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                            attention_mask=attention_mask, temb=temb, **kwargs)
        if encoder_hidden_states is None:  # self-attention: queries and keys both come from the image
            if attn.group_norm is not None or attn.spatial_norm is not None:
                raise ValueError("this probe handles self-attention layers without group/spatial norm "
                                 "(the attn1 of a transformer block)")
            hs = hidden_states[-self.n:]
            self.calls.append(cross_attention_probs(attn, hs, hs).cpu())
        return out


@contextmanager
def record_self_attention(unet: Any, layer: str, n: int):
    """Install the probe on `layer` (a module name inside the U-Net, e.g.
    'up_blocks.2.attentions.0.transformer_blocks.0.attn1'); restore the original processor afterwards."""
    attn = unet.get_submodule(layer)
    original = attn.processor
    probe = _SelfAttentionProbe(original, n)
    attn.set_processor(probe)
    try:
        yield probe
    finally:
        attn.set_processor(original)


def self_attention_layers(unet: Any) -> list[str]:
    """Names of the U-Net's self-attention layers (attn1 of every transformer block)."""
    return [name for name, _ in unet.named_modules() if name.endswith("attn1")]


@dataclass
class SelfAttention:
    prompt: str
    seed: int
    layer: str
    size: tuple[int, int]  # (h, w) of the layer's grid
    query: tuple[int, int]  # (row, col) of the query position
    maps: torch.Tensor  # (steps, h, w): attention of the query position over every position, per step
    image: Any
    own_object_share: float  # attention mass (mean over steps) on positions covered by the query's object
    own_object_area: float  # share of positions covered by that object (what uniform attention would give)
    other_object_share: float
    other_object_area: float
    far_share: float  # mass more than 2 positions away from the query (Chebyshev distance)


def _object_mask(obj: Any, h: int, w: int, grow: float = 1.0) -> torch.Tensor:
    """Positions of an (h, w) grid whose cell centre lies within the judged object's radius (plus `grow` pixels)."""
    r = (obj.area / np.pi) ** 0.5 + grow
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) * shapes.IMAGE_SIZE / h,
                            (torch.arange(w) + 0.5) * shapes.IMAGE_SIZE / w, indexing="ij")
    return ((xs - obj.x) ** 2 + (ys - obj.y) ** 2).sqrt() <= r


def self_attention_at(pipe: Any, prompt: str = "a red circle left of a blue square", seed: int = 0, steps: int = 20,
                      cfg: float = 7.5, layer: str | None = None,
                      query: tuple[int, int] | None = None) -> SelfAttention:
    """Self-attention of one layer at one query position. query None: the position at the centre of the first named
    object (as the judge finds it in the final image)."""
    unet = pipe.unet
    layer = layer or self_attention_layers(unet)[0]
    with record_self_attention(unet, layer, 1) as probe:
        image = pipe(prompt, num_inference_steps=steps, guidance_scale=cfg,
                     generator=torch.Generator().manual_seed(seed)).images[0]
    probs = torch.stack([c[0] for c in probe.calls])  # (calls, N, N)
    npos = probs.shape[-1]
    h = w = int(round(npos ** 0.5))
    spec = J.parse_prompt(prompt)
    j = J.judge(image)
    first = j.find(color=spec.objects[0].color) if spec.objects else None
    second = j.find(color=spec.objects[1].color) if len(spec.objects) > 1 else None
    if query is None:
        if first is None:
            query = (h // 2, w // 2)
        else:
            query = (min(h - 1, int(first.y * h / shapes.IMAGE_SIZE)), min(w - 1, int(first.x * w / shapes.IMAGE_SIZE)))
    qi = query[0] * w + query[1]
    maps = probs[:, qi, :].reshape(-1, h, w)
    mean = maps.mean(0)
    own = _object_mask(first, h, w) if first is not None else torch.zeros(h, w, dtype=torch.bool)
    other = _object_mask(second, h, w) if second is not None else torch.zeros(h, w, dtype=torch.bool)
    other &= ~own
    rr, cc = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    far = torch.maximum((rr - query[0]).abs(), (cc - query[1]).abs()) > 2
    return SelfAttention(prompt, seed, layer, (h, w), query, maps, image, float(mean[own].sum()),
                         float(own.float().mean()), float(mean[other].sum()), float(other.float().mean()),
                         float(mean[far].sum()))


# ------------------------------------------------------------------------------------------- conditioning
def text_effect_per_step(tr: Any) -> np.ndarray:
    """||eps_cond - eps_uncond|| / ||eps_uncond|| at every step of a trace made with cfg > 1."""
    return np.array([float(s.cfg_delta.norm() / s.noise_uncond.norm()) for s in tr.steps])


@dataclass
class TextAblation:
    prompts: list[str]
    ks: list[int]
    steps: int
    adherence: dict[int, dict[str, float]]  # k -> attribute -> share of images judged right
    images: dict[int, list[Any]]


@torch.no_grad()
def text_for_first_k(pipe: Any, n: int = 8, ks: tuple[int, ...] = (0, 2, 5, 10, 20), steps: int = 20,
                     cfg: float = 7.5, seed: int = 0, prompts: list[str] | None = None) -> TextAblation:
    """The prompt for the first k steps, then the empty prompt: the U-Net loses the text mid-way.
    k = 0 is the empty prompt throughout; k = steps the normal run."""
    prompts = prompts or [shapes.caption_for(shapes.sample_scene(EVAL_SEED + 6000 + i, two_object_p=0.0))
                          for i in range(n)]
    adherence, images = {}, {}
    for k in ks:
        gens = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]

        def drop_text(p, i, t, kw, k=k):
            if i + 1 == k:  # after step k the conditional half of the embeddings becomes the unconditional one
                e = kw["prompt_embeds"]
                half = e.shape[0] // 2
                return {"prompt_embeds": torch.cat([e[:half], e[:half]])}
            return {}

        call_prompts = prompts if k > 0 else [""] * len(prompts)
        ims = pipe(call_prompts, num_inference_steps=steps, guidance_scale=cfg, generator=gens,
                   callback_on_step_end=drop_text if 0 < k < steps else None,
                   callback_on_step_end_tensor_inputs=["prompt_embeds"]).images
        js = [J.judge_against(im, p) for im, p in zip(ims, prompts, strict=True)]
        adherence[k] = {a: float(np.mean([bool(j[a]) for j in js])) for a in ("color", "shape", "position", "all")}
        images[k] = ims
    return TextAblation(prompts, list(ks), steps, adherence, images)


@dataclass
class TimestepSweep:
    true_ts: list[int]
    told_ts: list[int]
    loss: np.ndarray  # (len(true_ts), len(told_ts)) mean squared error of the predicted noise
    best_told: list[int]  # per true t, the told t with the lowest error


@torch.no_grad()
def timestep_sweep(pipe: Any, true_ts: tuple[int, ...] = (100, 400, 700), told_ts: tuple[int, ...] | None = None,
                   n: int = 16, seed: int = 0) -> TimestepSweep:
    """Noise `n` real scenes' latents to each true t; ask the U-Net for the noise while telling it t'."""
    from diffusers import DDPMScheduler

    from .latents import encode

    told = list(told_ts) if told_ts is not None else list(range(0, 1000, 100)) + [999]
    images, _, scenes = shapes.make_dataset(n, start_seed=EVAL_SEED + 7000)
    z0 = encode(pipe, images)
    ids = pipe.tokenizer([s.caption for s in scenes], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    cond = pipe.text_encoder(ids.to(pipe.device))[0]
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    g = torch.Generator().manual_seed(seed)
    loss = np.zeros((len(true_ts), len(told)))
    for a, t in enumerate(true_ts):
        noise = torch.randn(z0.shape, generator=g)
        xt = sched.add_noise(z0, noise, torch.full((n,), t))
        x = xt.repeat(len(told), 1, 1, 1).to(pipe.device, pipe.unet.dtype)
        tt = torch.tensor(told).repeat_interleave(n).to(pipe.device)
        pred = pipe.unet(x, tt, encoder_hidden_states=cond.repeat(len(told), 1, 1)).sample.float().cpu()
        err = F.mse_loss(pred, noise.repeat(len(told), 1, 1, 1), reduction="none").mean(dim=(1, 2, 3))
        loss[a] = err.view(len(told), n).mean(1).numpy()
    return TimestepSweep(list(true_ts), told, loss, [told[int(i)] for i in loss.argmin(1)])
