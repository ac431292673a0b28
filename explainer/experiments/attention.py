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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import judge as J
from .. import shapes
from ..generation import run_pipeline, seed_generator
from ..probes import SelfAttentionProbe
from ..shapes import EVAL_SEED  # noqa: E402 (one definition, in the shapes world: never used in training)
from ..trace import trace_batch


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
    # the colour words: "green" in "a green circle ..." should land on the circle, the second colour on the square
    colour_hits: int = 0  # judged images where the first colour word's map centre is nearer its object (the circle)
    colour2_hits: int = 0  # ... the second colour word's map nearer the square
    # peak-to-mean ratio of each word's mean map (1.0 = a perfectly flat map), per judged image
    contrast: dict[str, list[float]] = field(default_factory=dict)


def word_lands_on_object(pipe: Any, n: int = 8, seed: int = 0, steps: int = 20, cfg: float = 7.5,
                         level: str | int | None = None) -> WordHits:
    prompts = two_object_prompts(n, seed)
    seeds = [seed + i for i in range(n)]
    traces = trace_batch(pipe, prompts, seeds, steps=steps, cfg=cfg)
    judged = ch = sh = k1 = k2 = 0
    rows = []
    contrast: dict[str, list[float]] = {"circle": [], "square": [], "first colour": [], "second colour": []}
    for tr, p in zip(traces, prompts, strict=True):
        c1 = p.split()[1]
        c2 = p.split()[-2]
        j = J.judge(tr.image)
        circ, sq = j.find(color=c1), j.find(color=c2)
        maps = {"circle": tr.attention("circle", level=level), "square": tr.attention("square", level=level),
                "first colour": tr.attention(c1, level=level), "second colour": tr.attention(c2, level=level)}
        cen = {k: np.array(attention_centroid(m)) for k, m in maps.items()}
        row = dict(prompt=p, circle_map=tuple(cen["circle"]), square_map=tuple(cen["square"]),
                   colour_maps=(tuple(cen["first colour"]), tuple(cen["second colour"])), circle=None, square=None)
        if circ is not None and sq is not None:
            judged += 1
            pc, ps = np.array([circ.x, circ.y]), np.array([sq.x, sq.y])
            row.update(circle=(circ.x, circ.y), square=(sq.x, sq.y))
            near = lambda c, own, other: bool(np.linalg.norm(c - own) < np.linalg.norm(c - other))  # noqa: E731
            row.update(hits={"circle": near(cen["circle"], pc, ps), "square": near(cen["square"], ps, pc),
                             "first colour": near(cen["first colour"], pc, ps),
                             "second colour": near(cen["second colour"], ps, pc)})
            ch += row["hits"]["circle"]
            sh += row["hits"]["square"]
            k1 += row["hits"]["first colour"]
            k2 += row["hits"]["second colour"]
            for k, m in maps.items():
                m = m.double()
                contrast[k].append(float(m.max() / m.mean()))
        rows.append(row)
    return WordHits(prompts, seeds, judged, int(ch), int(sh), ch / max(judged, 1), sh / max(judged, 1), rows, traces,
                    int(k1), int(k2), contrast)


# ------------------------------------------------------------------------------------------- self-attention
@contextmanager
def record_self_attention(unet: Any, layer: str, n: int):
    """Install the probe on `layer` (a module name inside the U-Net, e.g.
    'up_blocks.2.attentions.0.transformer_blocks.0.attn1'); restore the original processor afterwards."""
    attn = unet.get_submodule(layer)
    original = attn.processor
    probe = SelfAttentionProbe(original, n)
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
    uniform_far_share: float = float("nan")  # what a uniform map gives: the share of positions more than 2 away


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
        image = run_pipeline(pipe, prompt, seed, steps, cfg)[0]
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
                         float(mean[far].sum()), float(far.float().mean()))


@dataclass
class SelfAttentionStudy:
    """`self_attention_at` over several prompts and seeds: each query's shares beside the uniform baseline."""

    runs: list[SelfAttention]

    def values(self, key: str) -> list[float]:
        return [float(getattr(r, key)) for r in self.runs]


def self_attention_study(pipe: Any, n: int = 6, steps: int = 20, seed: int = 0,
                         layer: str | None = None) -> SelfAttentionStudy:
    """Self-attention of the first named object's centre over `n` two-object prompts (one seed each)."""
    prompts = two_object_prompts(n, seed)
    return SelfAttentionStudy([self_attention_at(pipe, p, seed=seed + i, steps=steps, layer=layer)
                               for i, p in enumerate(prompts)])


# ------------------------------------------------------------------------------------------- conditioning
def text_effect_per_step(tr: Any) -> np.ndarray:
    """||eps_cond - eps_uncond|| / ||eps_uncond|| at every step of a trace made with cfg > 1."""
    return np.array([float(s.cfg_delta.norm() / s.noise_uncond.norm()) for s in tr.steps])


def text_push_per_step(tr: Any) -> np.ndarray:
    """How far the text moves the clean-image estimate at each step: sigma_i * ||eps_cond - eps_uncond|| (the change
    in predicted x0 that the prompt causes), normalised to sum to 1 over the steps."""
    v = np.array([float(s.sigma) * float(s.cfg_delta.norm()) for s in tr.steps])
    return v / v.sum()


@dataclass
class TextAblation:
    prompts: list[str]
    ks: list[int]
    steps: int
    adherence: dict[int, dict[str, float]]  # k -> attribute -> share of images judged right
    images: dict[int, list[Any]]
    per_image: dict[int, dict[str, list[bool]]] = field(default_factory=dict)  # k -> attribute -> per image


@torch.no_grad()
def text_for_first_k(pipe: Any, n: int = 8, ks: tuple[int, ...] = (0, 2, 5, 10, 20), steps: int = 20,
                     cfg: float = 7.5, seed: int = 0, prompts: list[str] | None = None) -> TextAblation:
    """The prompt for the first k steps, then the empty prompt: the U-Net loses the text mid-way.
    k = 0 is the empty prompt throughout; k = steps the normal run."""
    prompts = prompts or [shapes.caption_for(shapes.sample_scene(EVAL_SEED + 6000 + i, two_object_p=0.0))
                          for i in range(n)]
    adherence, images, per = {}, {}, {}
    for k in ks:

        def drop_text(p, i, t, kw, k=k):
            if i + 1 == k:  # after step k the conditional half of the embeddings becomes the unconditional one
                e = kw["prompt_embeds"]
                half = e.shape[0] // 2
                return {"prompt_embeds": torch.cat([e[:half], e[:half]])}
            return {}

        call_prompts = prompts if k > 0 else [""] * len(prompts)
        ims = run_pipeline(pipe, call_prompts, [seed + i for i in range(len(prompts))], steps, cfg,
                           callback_on_step_end=drop_text if 0 < k < steps else None,
                           callback_on_step_end_tensor_inputs=["prompt_embeds"])
        js = [J.judge_against(im, p) for im, p in zip(ims, prompts, strict=True)]
        per[k] = {a: [bool(j[a]) for j in js] for a in ("color", "shape", "position", "all")}
        adherence[k] = {a: float(np.mean(v)) for a, v in per[k].items()}
        images[k] = ims
    return TextAblation(prompts, list(ks), steps, adherence, images, per)


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
    g = seed_generator(seed)
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


def lesson6_verdicts(hits: WordHits, sa: SelfAttentionStudy, abl: TextAblation, sweep: TimestepSweep,
                     tolerance: int = 200) -> list[Any]:
    """Lesson 6's claims as Verdicts with their sample sizes and intervals (chance for "nearer its own object" is
    one half: there are two objects)."""
    from .. import verdicts as vd

    n2 = 2 * hits.judged
    out = [vd.proportion("each noun's cross-attention lands on its object (map centre nearer its own object)",
                         hits.circle_hits + hits.square_hits, n2, threshold=0.5, what="nearer",
                         unit=f"noun maps ({hits.judged} judged images x 2)", note="chance = 50 %"),
           vd.proportion("each colour word's cross-attention lands on its object",
                         hits.colour_hits + hits.colour2_hits, n2, threshold=0.5, what="nearer",
                         unit=f"colour-word maps ({hits.judged} judged images x 2)", note="chance = 50 %")]
    noun = [(a + b) / 2 for a, b in zip(hits.contrast["circle"], hits.contrast["square"], strict=True)]
    col = [(a + b) / 2 for a, b in zip(hits.contrast["first colour"], hits.contrast["second colour"], strict=True)]
    out.append(vd.compare("colour-word maps are flatter than noun maps (peak / mean of the map; 1 = flat)", noun, col,
                          labels=("nouns", "colours"), digits=2, unit="judged images"))
    out.append(vd.compare("self-attention reaches further than a uniform map would (share > 2 positions away)",
                          sa.values("far_share"), sa.values("uniform_far_share"), labels=("measured", "uniform"),
                          digits=2, unit=f"queries ({len(sa.runs)} prompts and seeds)"))
    out.append(vd.compare("self-attention spotlights the query's own object (share on it vs its share of the area)",
                          sa.values("own_object_share"), sa.values("own_object_area"), labels=("share", "area"),
                          digits=2, unit=f"queries ({len(sa.runs)} prompts and seeds)"))
    k_few = min(k for k in abl.ks if k > 0)
    k_all = max(abl.ks)
    k_mid = min((k for k in abl.ks if k >= k_all // 4), default=k_few)
    out.append(vd.compare(f"text helps: the prompt for the first {k_mid} of {abl.steps} steps beats no text",
                          abl.per_image[k_mid]["all"], abl.per_image[0]["all"], labels=(f"k = {k_mid}", "k = 0"),
                          percent=True, unit="one-object prompts (paired)", note="whole prompt judged right"))
    out.append(vd.compare(f"text matters most early: the last {k_all - k_mid} steps of text add little "
                          f"(k = {k_all} vs k = {k_mid})", abl.per_image[k_all]["all"], abl.per_image[k_mid]["all"],
                          labels=(f"k = {k_all}", f"k = {k_mid}"), percent=True, claim_above=False, margin=0.25,
                          unit="one-object prompts (paired)", note="agrees if the gain is surely under 25 points"))
    errs = [abs(b - t) for t, b in zip(sweep.true_ts, sweep.best_told, strict=True)]
    out.append(vd.exact(f"the U-Net relies on the timestep: its error is lowest when told (within {tolerance} of) the "
                        "true timestep", all(e <= tolerance for e in errs),
                        ", ".join(f"true {t} -> best told {b}" for t, b in zip(sweep.true_ts, sweep.best_told,
                                                                               strict=True)),
                        f"{len(sweep.true_ts)} noise levels x 16 latents"))
    return out
