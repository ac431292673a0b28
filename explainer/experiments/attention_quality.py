"""Is the attention map right? Every method's maps, scored against the object the word names.

Two sources of images, each with its own ground truth:

* **generated** (`generated_runs` -> `score_generated`): two-object prompts ("a large red circle left of a small blue
  square") traced with `trace_batch`; each object's mask comes from the judge's segmentation of the final image
  (`attention_scores.judged_masks`; its reliability is measured by `attention_scores.judge_mask_reliability`). An image
  counts for localisation only when the judge finds both named colours (so we know which pixels each phrase names).
* **rendered** (`render_attention`): real renders of the same kind of scene, encoded by the VAE, noised to timestep t
  and given to the U-Net once with their caption; masks are the renderer's exact pixels (`render_masks`).

Methods (all maps: cross-attention probabilities of the conditional branch, mean over heads and a level's layers):

* ``raw``: one step, one U-Net level (8x8, 4x4, 2x2), scored step by step, averaged over the step range;
* ``summed``: DAAM-style, summed over the steps of the range (a sum and a mean score alike: the scores ignore scale),
  one level or ``all`` (every level upsampled bilinearly to the image, then summed);
* ``render``: one U-Net call on a noised render at timestep t, per level or ``all``.
* ``concept`` (SD3-style transformers only, `concept_attention` / `score_concepts`): ConceptAttention -- concept
  tokens run through every joint block beside the real ones, attending to the image but never attended to, and each
  image token's attention output is compared with each concept's (softmax over concepts), per block or ``all``.

Which words count: colour and shape words, each scored against its own object; size words likewise; the relation
words ("left", "of", ...) and articles ("a") are scored against both objects together and reported apart.

Leakage (`leakage`): in a two-object image, the share of a colour word's map on the *other* object, and whether it
is higher in images the judge fails (wrong colour, swapped relation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import attention_scores as S
from .. import judge as J
from .. import shapes
from .. import validation as V
from ..generation import seed_generator
from ..probes import record_cross_attention
from ..trace import trace_batch

EVAL_SEED = shapes.EVAL_SEED + 20_000_000  # = 30,000,000: this experiment's scenes (never used in training)
METRICS = ("pointing", "mass_inside", "auc", "best_iou")
_RELATION_WORDS = {w for ps in shapes.RELATION_PHRASES.values() for p in ps for w in p.split()}
_SIZE_WORDS = {w for ws in shapes.SIZE_WORDS.values() for w in ws}
WORD_CLASSES = ("colour", "shape", "size", "relation", "article")
OBJECT_CLASSES = ("colour", "shape", "size")  # scored against their own object; the rest against both


def word_class(word: str) -> str | None:
    """'colour', 'shape', 'size', 'relation', 'article' or None (other words, special tokens)."""
    w = str(word).lower()
    if w in shapes.COLORS:
        return "colour"
    if w in shapes.SHAPES:
        return "shape"
    if w in _SIZE_WORDS:
        return "size"
    if w in _RELATION_WORDS:
        return "relation"
    if w in ("a", "an"):
        return "article"
    return None


def word_roles(tokens: Sequence[Any]) -> list[tuple[int, str, str, int | None]]:
    """(token position, word, class, object) for every classed word of a two-object prompt: object 0 for words
    before the relation phrase, 1 after it, None for the relation words themselves."""
    out, obj, seen_rel = [], 0, False
    for i, t in enumerate(tokens):
        if getattr(t, "special", False) or getattr(t, "padding", False):
            continue
        c = word_class(t)
        if c == "relation":
            seen_rel = True
            out.append((getattr(t, "index", i), str(t), c, None))
            continue
        if seen_rel:
            obj = 1
        if c is not None:
            out.append((getattr(t, "index", i), str(t), c, obj))
    return out


def scenes_for(n: int, seed: int = 0) -> list[shapes.Scene]:
    """`n` two-object scenes (no held-out colour x shape pairs) with their canonical captions."""
    n, seed = V.check_positive_int(n, "n", 100_000), V.check_seed(seed)
    out = []
    for i in range(n):
        s = shapes.sample_scene(EVAL_SEED + 1000 * seed + i, two_object_p=1.0)
        out.append(shapes.Scene(s.objects, s.background, s.relation, shapes.caption_for(s, full=True), s.meta))
    return out


def _ranges(n_steps: int, parts: int = 4) -> list[tuple[int, int]]:
    """Step ranges [a, b) (0-based): `parts` equal parts, then all steps."""
    edges = [round(k * n_steps / parts) for k in range(parts + 1)]
    return [(edges[k], edges[k + 1]) for k in range(parts) if edges[k + 1] > edges[k]] + [(0, n_steps)]


def range_label(r: tuple[int, int]) -> str:
    return f"{r[0] + 1}-{r[1]}"


# --------------------------------------------------------------------------------------------- generated images
@dataclass
class Runs:
    """Traced generations of two-object prompts, judged, with each image's object masks."""

    scenes: list[shapes.Scene]
    prompts: list[str]
    seeds: list[int]
    steps: int
    cfg: float
    traces: list[Any]
    judged: list[dict]  # judge_against per image
    objects: list[tuple[Any, Any]]  # (object matched to phrase 0, to phrase 1) as judged; None where missing
    masks: list[tuple[np.ndarray | None, np.ndarray | None]]
    usable: list[bool]  # both named colours found: the masks say which pixels each phrase names


def generated_runs(pipe: Any, n: int = 8, seed: int = 0, steps: int = 20, cfg: float = 7.5, batch: int = 16,
                   progress: bool = False) -> Runs:
    """Trace `n` two-object prompts (seeds seed..seed+n-1) in batches of `batch`; judge each image and pair the
    judge's objects with the prompt's two phrases (the judge's own matching: colour and shape, else colour, else
    shape, else the largest)."""
    steps, cfg, batch = V.check_steps(steps), V.check_cfg(cfg), V.check_positive_int(batch, "batch", 1024)
    progress = V.check_bool(progress, "progress")
    scenes = scenes_for(n, seed)
    prompts = [s.caption for s in scenes]
    seeds = [seed + i for i in range(n)]
    traces: list[Any] = []
    chunks = range(0, n, batch)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="tracing", unit="batch")
    for i in chunks:
        traces += trace_batch(pipe, prompts[i:i + batch], seeds[i:i + batch], steps=steps, cfg=cfg)
    judged, objects, masks, usable = [], [], [], []
    for tr, p in zip(traces, prompts, strict=True):
        spec = J.parse_prompt(p)
        found = S.judged_masks(tr.image)
        jd = J.Judgement([o for o, _ in found], "black")
        a = J._match(jd, spec.objects[0])
        b = J._match(jd, spec.objects[1], exclude=a)
        mask_of = {id(o): m for o, m in found}
        objects.append((a, b))
        masks.append((mask_of.get(id(a)), mask_of.get(id(b))))
        usable.append(a is not None and b is not None and a.color == spec.objects[0].color
                      and b.color == spec.objects[1].color)
        judged.append(J.judge_against(tr.image, p))
    return Runs(scenes, prompts, seeds, steps, cfg, traces, judged, objects, masks, usable)


def _level_maps(tr: Any, pos: int) -> dict[str, torch.Tensor]:
    """Per level, (steps, h, w) maps of one token position."""
    return {lv: torch.stack([tr.attention(pos, step=s, level=lv) for s in range(len(tr.steps))]).double()
            for lv in tr.levels}


def _up(m: torch.Tensor, size: int = shapes.IMAGE_SIZE) -> torch.Tensor:
    return S.upsample_maps(m, size)


@dataclass
class Scores:
    """One row per (image or scene, word, method, level, step range or timestep): the map's scores."""

    rows: list[dict] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def select(self, **where: Any) -> list[dict]:
        def ok(r: dict) -> bool:
            return all((r.get(k) in v) if isinstance(v, (set, tuple, list)) else r.get(k) == v
                       for k, v in where.items())

        return [r for r in self.rows if ok(r)]


def _score_rows(out: Scores, maps: torch.Tensor, mask: np.ndarray, base: dict, keys: list[dict]) -> None:
    sc = S.score_maps(maps, mask)
    for i, k in enumerate(keys):
        out.add(**base, **k, **{m: float(sc[m][i]) for m in (*METRICS, "area")})


def score_generated(runs: Runs) -> Scores:
    """Score every classed word of every usable image with every method, level and step range.

    raw rows average the per-step scores over the range (pointing becomes the share of steps that hit)."""
    out = Scores()
    for i, tr in enumerate(runs.traces):
        if not runs.usable[i]:
            continue
        ma, mb = runs.masks[i]
        both = np.maximum(ma, mb)
        n_steps = len(tr.steps)
        ranges = _ranges(n_steps)
        for pos, word, cls, obj in word_roles(tr.tokens):
            mask = (ma, mb)[obj] if cls in OBJECT_CLASSES else both
            base = dict(source="generated", item=i, word=word, word_class=cls)
            lv_maps = _level_maps(tr, pos)
            # raw: every step and level, then averaged per range
            for lv, m in lv_maps.items():
                sc = S.score_maps(m, mask)
                for r in ranges:
                    row = {k: float(np.mean(sc[k][r[0]:r[1]])) for k in (*METRICS, "area")}
                    out.add(**base, method="raw", level=lv, steps=range_label(r), **row)
            # summed over the range, per level and over all levels (DAAM)
            summed, keys = [], []
            for r in ranges:
                per_level = [_up(m[r[0]:r[1]].sum(0)) for m in lv_maps.values()]
                for lv, u in zip(lv_maps, per_level, strict=True):
                    summed.append(u[0])
                    keys.append(dict(method="summed", level=lv, steps=range_label(r)))
                summed.append(torch.stack(per_level).sum(0)[0])
                keys.append(dict(method="summed", level="all", steps=range_label(r)))
            _score_rows(out, torch.stack(summed), mask, base, keys)
    return out


# ------------------------------------------------------------------------------------------------ renders
@torch.no_grad()
def render_attention(pipe: Any, n: int = 16, timesteps: Sequence[int] = (900, 700, 500, 300, 100), seed: int = 0,
                     batch: int = 64) -> Scores:
    """Cross-attention of the U-Net reading real renders: each of `n` two-object scenes is rendered, VAE-encoded,
    noised to each timestep t (DDPM forward process, fixed noise per scene) and denoised once with its caption;
    every classed word's map per level (and all levels summed) is scored against the renderer's exact masks."""
    from diffusers import DDPMScheduler

    from .latents import encode

    if isinstance(timesteps, (str, bytes)) or not hasattr(timesteps, "__len__") or not len(timesteps):
        raise ValueError(f"timesteps must be a non-empty list of integers from 0 to 999, got {timesteps!r:.60}")
    timesteps = [V.check_int(t, f"timesteps[{i}]", 0, 999) for i, t in enumerate(timesteps)]
    batch, seed = V.check_positive_int(batch, "batch", 4096), V.check_seed(seed)
    scenes = scenes_for(n, seed + 500)
    images = np.stack([np.asarray(shapes.render(s)) for s in scenes])
    z0 = encode(pipe, images)
    tok = pipe.tokenizer
    from ..words import tokenize

    toks = [tokenize(tok, s.caption)[0] for s in scenes]
    ids = torch.tensor([[t.id for t in ts] for ts in toks])
    cond = torch.cat([pipe.text_encoder(ids[i:i + batch].to(pipe.device))[0] for i in range(0, n, batch)])
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    g = seed_generator(seed)
    noise = torch.randn(z0.shape, generator=g)
    masks = [S.render_masks(s) for s in scenes]
    out = Scores()
    unet = pipe.unet
    for t in timesteps:
        xt = sched.add_noise(z0, noise, torch.full((n,), int(t)))
        levels: dict[int, list[torch.Tensor]] = {}
        for i in range(0, n, batch):
            with record_cross_attention(unet) as store:
                unet(xt[i:i + batch].to(pipe.device, unet.dtype), torch.full((min(batch, n - i),), int(t)),
                     encoder_hidden_states=cond[i:i + batch].to(unet.dtype))
            for q, ps in store.items():
                levels.setdefault(q, []).append(torch.stack(ps).mean(0))  # mean over the level's layers
        per_level = {q: torch.cat(v) for q, v in sorted(levels.items(), key=lambda kv: -kv[0])}
        for k in range(len(scenes)):
            both = np.maximum(*masks[k])
            maps, keys, mks = [], [], []
            for pos, word, cls, obj in word_roles(toks[k]):
                mask = masks[k][obj] if cls in OBJECT_CLASSES else both
                ups = []
                for q, p in per_level.items():
                    side = int(round(math.sqrt(q)))
                    u = _up(p[k, :, pos].reshape(side, side).double())[0]
                    ups.append(u)
                    maps.append(u)
                    keys.append(dict(source="rendered", item=k, word=word, word_class=cls, method="render",
                                     level=f"{side}x{side}", steps=f"t={t}"))
                    mks.append(mask)
                maps.append(torch.stack(ups).sum(0))
                keys.append(dict(source="rendered", item=k, word=word, word_class=cls, method="render", level="all",
                                 steps=f"t={t}"))
                mks.append(mask)
            sc = S.score_maps(torch.stack(maps), np.stack(mks))
            for i, key in enumerate(keys):
                out.add(**key, **{m: float(sc[m][i]) for m in (*METRICS, "area")})
    return out


# ------------------------------------------------------------------------------------------------ tables
def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width of its 95 % interval): `verdicts.bootstrap_mean` over the items (the one bootstrap), the
    half-width its farther end from the mean; NaN where there are too few items for an interval."""
    from .. import verdicts as vd

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    iv = vd.bootstrap_mean(v)
    if iv.too_few:
        return iv.estimate, float("nan")
    return iv.estimate, max(iv.estimate - iv.low, iv.high - iv.estimate)


def summarise(scores: Scores, classes: Sequence[str] = ("colour", "shape"), **where: Any) -> list[dict]:
    """One row per (method, level, steps): each metric's mean and 95 % half-width, computed over items (each
    image's words averaged first, so words of one image do not count as independent); n = items."""
    rows = scores.select(word_class=tuple(classes), **where)
    groups: dict[tuple, dict[int, list[dict]]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["method"], r["level"], r["steps"]), {}).setdefault(r["item"], []).append(r)
    out = []
    for (src, method, level, steps), items in groups.items():
        row = dict(source=src, method=method, level=level, steps=steps, n=len(items))
        for m in (*METRICS, "area"):
            per_item = np.array([np.nanmean([r[m] for r in rs]) for rs in items.values()])
            row[m], row[m + "_ci"] = _mean_ci(per_item)
        out.append(row)
    return out


def best(summary: list[dict], metric: str = "auc", **where: Any) -> dict:
    """The summary row with the highest `metric` among those matching `where`."""
    rows = [r for r in summary if all(r[k] == v for k, v in where.items())]
    if not rows:
        raise ValueError(f"no summary rows match {where}")
    return max(rows, key=lambda r: r[metric])


def format_table(summary: list[dict]) -> str:
    lw = max([6] + [len(str(r["level"])) + 1 for r in summary])
    head = (f"{'source':<10}{'method':<8}{'level':<{lw}}{'steps':<8}{'n':>5}  {'pointing':>13}  {'mass inside':>13}  "
            f"{'(area)':>6}  {'AUC':>13}  {'best IoU':>13}")
    lines = [head, "-" * len(head)]
    for r in summary:
        cells = "  ".join(f"{r[m]:>6.3f} ±{r[m + '_ci']:.3f}" for m in ("pointing", "mass_inside"))
        cells += f"  {r['area']:>6.3f}  " + "  ".join(f"{r[m]:>6.3f} ±{r[m + '_ci']:.3f}" for m in ("auc", "best_iou"))
        lines.append(f"{r['source']:<10}{r['method']:<8}{r['level']:<{lw}}{r['steps']:<8}{r['n']:>5}  {cells}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ leakage
def _auc_two(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a value from `pos` > a value from `neg`), ties half; NaN when either is empty."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    d = pos[:, None] - neg[None, :]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


@dataclass
class Leakage:
    """Colour-word leakage onto the other object, per image with both objects found, against judged failures."""

    n_images: int  # images traced
    n_scored: int  # of those, the judge found an object for each phrase (the leakage is defined)
    per_range: dict[str, np.ndarray]  # step range -> (n_scored,) leakage (mean over the two colour words)
    own: np.ndarray  # (n_scored,) share of each colour word on its own object (all steps), mean of the two
    colour_ok: np.ndarray  # (n_scored,) bool: judge says both colours right
    relation_ok: np.ndarray
    summary: dict[str, dict[str, dict[str, float]]]  # failure -> range -> mean_ok, mean_fail, diff, diff_ci, auc, ...
    examples: list[int]  # indices into the runs of the scored images (same order as the arrays)


def leakage(runs: Runs, n_boot: int = 1000, seed: int = 0) -> Leakage:
    """Share of each colour word's summed map (all levels, per step range) on the *other* phrase's object; its mean
    in images the judge passes vs fails (colour; relation), the difference with a 95 % bootstrap interval, and the
    AUC of leakage as a detector of the failure (0.5 = no relation)."""
    per: dict[str, list[float]] = {}
    own, cok, rok, idx = [], [], [], []
    for i, tr in enumerate(runs.traces):
        ma, mb = runs.masks[i]
        if ma is None or mb is None:
            continue
        ranges = _ranges(len(tr.steps))
        colour_words = [(pos, obj) for pos, _, cls, obj in word_roles(tr.tokens) if cls == "colour"]
        if len(colour_words) != 2:
            continue
        vals: dict[str, list[float]] = {range_label(r): [] for r in ranges}
        owns = []
        for pos, obj in colour_words:
            lv_maps = _level_maps(tr, pos)
            mine, other = (ma, mb) if obj == 0 else (mb, ma)
            for r in ranges:
                m = torch.stack([_up(x[r[0]:r[1]].sum(0))[0] for x in lv_maps.values()]).sum(0)
                vals[range_label(r)].append(S.mass_inside(m, other))
                if r == ranges[-1]:
                    owns.append(S.mass_inside(m, mine))
        for k, v in vals.items():
            per.setdefault(k, []).append(float(np.mean(v)))
        own.append(float(np.mean(owns)))
        cok.append(bool(runs.judged[i]["color"]))
        rok.append(bool(runs.judged[i]["relation"]))
        idx.append(i)
    arrays = {k: np.array(v) for k, v in per.items()}
    cok_a, rok_a = np.array(cok, bool), np.array(rok, bool)
    rng = np.random.default_rng(seed)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name, ok in (("wrong colour", cok_a), ("swapped relation", rok_a)):
        summary[name] = {}
        for k, v in arrays.items():
            good, bad = v[ok], v[~ok]
            row = dict(n_ok=int(ok.sum()), n_fail=int((~ok).sum()), mean_ok=float(good.mean()) if len(good) else
                       float("nan"), mean_fail=float(bad.mean()) if len(bad) else float("nan"),
                       auc=_auc_two(bad, good))
            row["diff"] = row["mean_fail"] - row["mean_ok"]
            if len(good) > 1 and len(bad) > 1:
                boots = [rng.choice(bad, len(bad)).mean() - rng.choice(good, len(good)).mean() for _ in range(n_boot)]
                aucs = [_auc_two(rng.choice(bad, len(bad)), rng.choice(good, len(good))) for _ in range(200)]
                row["diff_ci"] = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)))
                row["auc_ci"] = (float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5)))
            else:
                row["diff_ci"] = row["auc_ci"] = (float("nan"), float("nan"))
            summary[name][k] = row
    return Leakage(len(runs.traces), len(idx), arrays, np.array(own), cok_a, rok_a, summary, idx)


def format_leakage(lk: Leakage) -> str:
    lines = [f"leakage = share of a colour word's summed map (all levels) on the OTHER object; {lk.n_scored} of "
             f"{lk.n_images} images with an object found for each phrase; own object (all steps): "
             f"{np.mean(lk.own):.3f}"]
    head = (f"{'failure':<18}{'steps':<8}{'n ok':>6}{'n fail':>7}  {'leak ok':>8}{'leak fail':>10}  "
            f"{'fail - ok [95% CI]':<26}{'AUC [95% CI]':<22}")
    lines += [head, "-" * len(head)]
    for name, per in lk.summary.items():
        for k, r in per.items():
            ci, aci = r["diff_ci"], r["auc_ci"]
            lines.append(f"{name:<18}{k:<8}{r['n_ok']:>6}{r['n_fail']:>7}  {r['mean_ok']:>8.3f}"
                         f"{r['mean_fail']:>10.3f}  {r['diff']:>+7.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]   "
                         f"{r['auc']:.3f} [{aci[0]:.3f}, {aci[1]:.3f}]")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the lesson
@dataclass
class Misleading:
    """One image where the map misleads: the word's summed map (all steps and levels) puts more mass on the other
    object than on its own, though the judge found the object the word names."""

    item: int
    word: str
    prompt: str
    seed: int
    own_mass: float
    other_mass: float
    amap: torch.Tensor  # (32, 32) the summed map, upsampled
    own_mask: np.ndarray
    other_mask: np.ndarray
    image: Any


def find_misleading(runs: Runs, classes: Sequence[str] = ("colour", "shape")) -> Misleading | None:
    """The usable image and colour/shape word whose summed map gives its own object the smallest share relative to
    the other object's (None if every map favours its own object)."""
    worst, best_gap = None, 0.0
    for i, tr in enumerate(runs.traces):
        if not runs.usable[i]:
            continue
        ma, mb = runs.masks[i]
        for pos, word, cls, obj in word_roles(tr.tokens):
            if cls not in classes:
                continue
            m = torch.stack([_up(x.sum(0))[0] for x in _level_maps(tr, pos).values()]).sum(0)
            mine, other = (ma, mb) if obj == 0 else (mb, ma)
            own_m, oth_m = S.mass_inside(m, mine), S.mass_inside(m, other)
            gap = oth_m - own_m
            if gap > best_gap:
                best_gap = gap
                worst = Misleading(i, word, runs.prompts[i], runs.seeds[i], own_m, oth_m, m, mine, other, tr.image)
    return worst


def paired_difference(scores: Scores, a: dict, b: dict, metric: str = "auc",
                      classes: Sequence[str] = ("colour", "shape")) -> tuple[float, float, int]:
    """Mean over items of (metric in cell `a` - metric in cell `b`), each item's words averaged first; returns
    (mean, 95 % half-width, n items). Cells are dicts of method/level/steps, e.g. dict(method="raw", level="8x8",
    steps="1-5")."""
    def per_item(cell: dict) -> dict[int, float]:
        groups: dict[int, list[float]] = {}
        for r in scores.select(word_class=tuple(classes), **cell):
            groups.setdefault(r["item"], []).append(r[metric])
        return {k: float(np.nanmean(v)) for k, v in groups.items()}

    pa, pb = per_item(a), per_item(b)
    d = np.array([pa[k] - pb[k] for k in pa if k in pb])
    mean, half = _mean_ci(d)
    return mean, half, len(d)


@dataclass
class MapQuality:
    """The lesson's measured answer: scores per method/level/steps for colour and shape words."""

    runs: Runs
    scores: Scores
    summary: list[dict]
    best_raw: dict  # the raw (level, step range) with the highest AUC
    daam: dict  # summed over all steps and levels
    function_words: list[dict]  # relation words and articles vs both objects, summed over all steps and levels
    misleading: Misleading | None
    n_usable: int


def map_quality(pipe: Any, n: int = 8, seed: int = 0, steps: int = 20, cfg: float = 7.5) -> MapQuality:
    """Trace `n` two-object prompts and score every map (see the module docstring); small n for a lesson."""
    runs = generated_runs(pipe, n=n, seed=seed, steps=steps, cfg=cfg)
    sc = score_generated(runs)
    summ = summarise(sc)
    all_steps = range_label((0, steps))
    fw = [r for r in summarise(sc, classes=("relation", "article"))
          if r["method"] == "summed" and r["level"] == "all" and r["steps"] == all_steps]
    return MapQuality(runs, sc, summ, best(summ, method="raw"), best(summ, method="summed", level="all",
                                                                          steps=all_steps),
                      fw, find_misleading(runs), int(sum(runs.usable)))
