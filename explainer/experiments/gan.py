"""Lesson 15, GAN vs diffusion on the same world: is "GANs are unstable and mode-collapse; diffusion is stable and
diverse" true here, and what does diffusion's diversity cost?

Both models draw the same VAE latents from the same frozen text encoder's reading of the prompt, trained on the same
scenes. The measurements:

- diversity for under-specified prompts ("a red circle": position, size and background left free): the judged
  (position, size, background) combos each model draws over many seeds, against the data's own (uniform) draw —
  coverage of the world's 30 combos and entropy in bits (`diversity_study`);
- precision / recall / density / coverage (Naeem et al. 2020, the `prdc` package) of generated vs real images,
  embedded by the shipped CLIP's vision tower (`explainer.gan.clip_image_embeddings`);
- adherence read by the judge (colour, shape, one object) and seconds per image;
- stability: the shipped GAN training logs of several seeds (losses and judged quality over training).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import validation as V
from .. import verdicts as vd
from ..gan import (
    DEFAULT_GAN,
    ShapesGAN,
    all_combos,
    attribute_combo,
    check_embeddings,
    check_gan,
    clip_image_embeddings,
    coverage_entropy,
    generate,
    real_distribution,
)
from ..judge import judge_against

#: under-specified prompts: colour and shape asked, position / size / background left to the model.
OPEN_PROMPTS = ("a red circle", "a blue square", "a green star", "an orange cross")
DIFFUSION_CFG = 5.0  # the model card's recommended guidance scale
DIFFUSION_STEPS = 25


def _color_shape(prompt: str, name: str = "prompt") -> tuple[str, str]:
    from ..judge import parse_prompt

    V.check_prompt(prompt, name, allow_empty=False)
    spec = parse_prompt(prompt)
    if len(spec.objects) != 1 or spec.objects[0].color is None or spec.objects[0].shape is None:
        raise ValueError(f"{name} must name one colour and one shape (e.g. 'a red circle'), got {prompt!r}")
    return spec.objects[0].color, spec.objects[0].shape


@dataclass
class Sample:
    """One model's images for one prompt, read by the judge and embedded by CLIP."""

    model: str  # "GAN", "diffusion" or "data"
    prompt: str
    images: list
    seconds_per_image: float | None
    combos: list  # judged (position, size, background) of the asked object, None where not found
    adherent: list[bool]  # judge: colour, shape and one object right
    embeddings: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return len(self.images)

    def counts(self) -> Counter:
        return Counter(self.combos)

    def summary(self) -> dict[str, float]:
        return coverage_entropy(self.counts())

    def marginal(self, key: str) -> dict[str, float]:
        """Share of found objects per value of one free attribute: key 'position', 'size' or 'background'."""
        i = ("position", "size", "background").index(V.check_choice(key, ("position", "size", "background"), "key"))
        found = [c[i] for c in self.combos if c is not None]
        return {k: v / max(1, len(found)) for k, v in Counter(found).items()}


def _read(model: str, prompt: str, images: list, spi: float | None) -> Sample:
    color, shape = _color_shape(prompt)
    combos = [attribute_combo(im, color, shape) for im in images]
    adherent = [bool(judge_against(im, prompt)["all"]) for im in images]
    return Sample(model, prompt, list(images), spi, combos, adherent, clip_image_embeddings(images))


def gan_sample(gan: ShapesGAN, prompt: str, seeds: Sequence[int]) -> Sample:
    """The GAN's images of `prompt` (one colour, one shape) for each seed, read by the judge and embedded."""
    check_gan(gan)
    _color_shape(prompt)
    seeds = V.check_seeds(seeds, single=False)
    t0 = time.perf_counter()
    images = generate(gan, prompt, seeds)
    return _read("GAN", prompt, images, (time.perf_counter() - t0) / len(images))


def diffusion_sample(pipe: Any, prompt: str, seeds: Sequence[int], cfg: float = DIFFUSION_CFG,
                     steps: int = DIFFUSION_STEPS) -> Sample:
    from .. import generation

    V.check_pipeline(pipe)
    _color_shape(prompt)
    seeds = V.check_seeds(seeds, single=False)
    cfg, steps = V.check_cfg(cfg), V.check_steps(steps)
    t0 = time.perf_counter()
    images = generation.generate_images(pipe, [prompt] * len(seeds), seeds, cfgs=cfg,
                                        steps=steps, what="gan-vs-diffusion").images
    return _read("diffusion", prompt, images, (time.perf_counter() - t0) / len(images))


def data_sample(prompt: str, n: int, start_seed: int = 20_000_000) -> Sample:
    color, shape = _color_shape(prompt)
    n = V.check_positive_int(n, "n", 1_000_000)
    return _read("data", prompt, real_distribution(color, shape, n, start_seed=start_seed), None)


# ---------------------------------------------------------------------------------------------------- prdc
def prdc_points(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, np.ndarray]:
    """Per-point indicators whose means are prdc's four numbers: precision and density per fake point, recall and
    coverage per real point (the k-NN balls held fixed). Bootstrapping them gives intervals."""
    from prdc.prdc import compute_nearest_neighbour_distances, compute_pairwise_distance

    real, fake, k = check_embeddings(real, fake, k)

    with contextlib.redirect_stdout(io.StringIO()):
        r_real = compute_nearest_neighbour_distances(real, k)
        r_fake = compute_nearest_neighbour_distances(fake, k)
        d = compute_pairwise_distance(real, fake)
    inside_real = d < r_real[:, None]  # fake j inside real i's ball
    return {"precision": inside_real.any(axis=0).astype(float), "density": inside_real.sum(axis=0) / k,
            "recall": (d < r_fake[None, :]).any(axis=1).astype(float),
            "coverage": (d.min(axis=1) < r_real).astype(float)}


def prdc_table(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, vd.Interval]:
    """prdc's numbers (computed by the `prdc` package) with 95 % bootstrap intervals over the points."""
    from prdc import compute_prdc

    real, fake, k = check_embeddings(real, fake, k)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    pts = prdc_points(real, fake, k)
    out = {}
    for name, v in pts.items():
        iv = vd.bootstrap_mean(v, n_boot=2000)
        out[name] = vd.Interval(float(ref[name]), min(iv.low, float(ref[name])), max(iv.high, float(ref[name])))
    return out


# ---------------------------------------------------------------------------------------------------- the study
def _entropy(combos: Sequence) -> float:
    found = [c for c in combos if c is not None]
    if not found:
        return 0.0
    p = np.array(list(Counter(found).values()), dtype=float) / len(found)
    return float(-(p * np.log2(p)).sum())


def _combos(combos: Any, name: str) -> list:
    if isinstance(combos, (str, bytes)) or not hasattr(combos, "__len__"):
        raise ValueError(f"{name} must be a list of judged combos (tuples or None), got {type(combos).__name__}")
    out = list(combos)
    if not out:
        raise ValueError(f"{name} must hold at least one judged image, got none")
    return out


def entropy_interval(combos: Sequence, n_boot: int = 2000, seed: int = 0) -> vd.Interval:
    """Entropy (bits) of the judged combos with a 95 % percentile bootstrap interval (images resampled)."""
    n_boot, seed = V.check_positive_int(n_boot, "n_boot", 1_000_000), V.check_seed(seed)
    rng = np.random.default_rng(seed)
    arr = _combos(combos, "combos")
    est = _entropy(arr)
    boots = [_entropy([arr[i] for i in rng.integers(0, len(arr), len(arr))]) for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return vd.Interval(est, float(min(lo, est)), float(max(hi, est)))


def entropy_difference(a: Sequence, b: Sequence, n_boot: int = 2000, seed: int = 0) -> vd.Interval:
    """entropy(a) - entropy(b), each side resampled on its own (95 % percentile bootstrap)."""
    n_boot, seed = V.check_positive_int(n_boot, "n_boot", 1_000_000), V.check_seed(seed)
    rng = np.random.default_rng(seed)
    a, b = _combos(a, "a"), _combos(b, "b")
    est = _entropy(a) - _entropy(b)
    boots = [_entropy([a[i] for i in rng.integers(0, len(a), len(a))])
             - _entropy([b[i] for i in rng.integers(0, len(b), len(b))]) for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return vd.Interval(est, float(min(lo, est)), float(max(hi, est)))


@dataclass
class DiversityStudy:
    """GAN, diffusion and data samples for each open prompt, with the measures computed from them."""

    samples: dict[tuple[str, str], Sample]
    prompts: list[str]
    seeds: list[int]
    cfg: float
    steps: int

    def get(self, model: str, prompt: str) -> Sample:
        V.check_choice(model, ("GAN", "diffusion", "data"), "model")
        return self.samples[(model, V.check_choice(prompt, self.prompts, "prompt"))]

    def pooled(self, model: str) -> list:
        """Judged combos of a model over all prompts (prompt-major)."""
        return [c for p in self.prompts for c in self.get(model, p).combos]

    def rows(self) -> list[dict[str, Any]]:
        """One row per (model, prompt): coverage, entropy, found, adherence, prdc (vs the data), seconds/image."""
        out = []
        for p in self.prompts:
            real = self.get("data", p).embeddings
            for m in ("data", "GAN", "diffusion"):
                s = self.get(m, p)
                ce = s.summary()
                row = {"model": m, "prompt": p, "n": s.n, "combo_coverage": ce["coverage"],  # PRDC has "coverage"
                       "entropy_bits": ce["entropy_bits"], "found": ce["found"],
                       "adherence": float(np.mean(s.adherent)), "seconds_per_image": s.seconds_per_image}
                if m != "data":
                    pr = prdc_table(real, s.embeddings)
                    row.update({k: v.estimate for k, v in pr.items()})
                out.append(row)
        return out

    def prdc_pooled(self, model: str) -> dict[str, vd.Interval]:
        """prdc of a model against the data, points pooled over prompts (each prompt its own real set)."""
        pts: dict[str, list] = {}
        for p in self.prompts:
            for k, v in prdc_points(self.get("data", p).embeddings, self.get(model, p).embeddings).items():
                pts.setdefault(k, []).append(v)
        return {k: vd.bootstrap_mean(np.concatenate(v), n_boot=2000) for k, v in pts.items()}

    def seconds_per_image(self, model: str) -> float:
        vals = [self.get(model, p).seconds_per_image for p in self.prompts]
        return float(np.mean(vals))


def diversity_study(gan: ShapesGAN, pipe: Any, prompts: Sequence[str] = OPEN_PROMPTS, n_seeds: int = 64,
                    first_seed: int = 0, cfg: float = DIFFUSION_CFG, steps: int = DIFFUSION_STEPS,
                    progress: bool = True) -> DiversityStudy:
    """Draw n_seeds images per prompt from the GAN and the diffusion pipeline (seeds first_seed...), and as many
    rendered scenes from the data's own distribution; judge and embed them all."""
    from tqdm.auto import tqdm

    check_gan(gan)
    V.check_pipeline(pipe)
    n_seeds = V.check_int(n_seeds, "n_seeds (prdc needs k-NN balls with k=5)", 8, 100_000)
    first_seed = V.check_seed(first_seed, "first_seed")
    if first_seed + n_seeds - 1 > V.MAX_SEED:
        raise ValueError(f"first_seed + n_seeds - 1 must be at most 2**64-1, got {first_seed + n_seeds - 1}")
    cfg, steps, progress = V.check_cfg(cfg), V.check_steps(steps), V.check_bool(progress, "progress")
    prompts = V.check_prompts(prompts, "prompts")
    for i, p in enumerate(prompts):
        _color_shape(p, f"prompts[{i}]")
    seeds = list(range(first_seed, first_seed + n_seeds))
    samples = {}
    for p in tqdm(prompts, desc="GAN vs diffusion", disable=not progress):
        samples[("GAN", p)] = gan_sample(gan, p, seeds)
        samples[("diffusion", p)] = diffusion_sample(pipe, p, seeds, cfg, steps)
        samples[("data", p)] = data_sample(p, n_seeds)
    return DiversityStudy(samples, prompts, seeds, cfg, steps)


# ---------------------------------------------------------------------------------------------------- stability
def load_logs(folder: str | Path | None = None) -> dict[int, list[dict]]:
    """The shipped training logs: seed -> records (the main run's training_log.jsonl and stability/seed*_log.jsonl)."""
    folder = DEFAULT_GAN if folder is None else V.check_folder(folder, "folder")
    out: dict[int, list[dict]] = {}
    main = folder / "training_log.jsonl"
    if main.exists():
        cfg = json.loads((folder / "config.json").read_text())
        out[int(cfg.get("seed", 0))] = [json.loads(line) for line in main.read_text().splitlines() if line.strip()]
    for f in sorted((folder / "stability").glob("seed*_log.jsonl")):
        seed = int(f.name.removeprefix("seed").split("_")[0])
        out[seed] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    if not out:
        raise V.MissingPathError(f"folder {str(folder)!r} holds no GAN training logs (training_log.jsonl or "
                                 "stability/seed*_log.jsonl)")
    return out


def eval_curve(records: list[dict], key: str = "ema_adh_color") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a judged-quality key over training (evaluation records only, the final record excluded)."""
    pts = [(r["step"], r[key]) for r in records if key in r and r.get(key) is not None and not r.get("final")]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)


def loss_curve(records: list[dict], key: str = "loss_d") -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in records if key in r and not r.get("final")]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)


@dataclass
class Stability:
    """What the seeds' logs say at the last step every run reached."""

    seeds: list[int]
    common_step: int
    adherence_at_common: dict[int, float]  # EMA generator: colour judged right, 64 unseen prompts
    raw_adherence_at_common: dict[int, float]  # the live generator, same measure
    worst_drop: dict[int, float]  # largest fall of the live generator's judged colour share between two evaluations
    loss_d_std: dict[int, float]  # std of the logged discriminator loss over the last half of the common steps
    n_prompts: int = 64


def stability(logs: dict[int, list[dict]]) -> Stability:
    """What the seeds' logs (`load_logs`: seed -> records) say at the last evaluated step every run reached."""
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"logs must be a non-empty dict seed -> records (load_logs()), got {logs!r:.60}")
    if any(not len(eval_curve(r)[0]) for r in logs.values()):
        raise ValueError("logs: every seed's records must hold at least one evaluation (ema_adh_color)")
    seeds = sorted(logs)
    last = {s: max(eval_curve(logs[s])[0], default=0) for s in seeds}
    common = int(min(last.values()))
    adh, raw, drop, lstd = {}, {}, {}, {}
    for s in seeds:
        st, v = eval_curve(logs[s])
        adh[s] = float(v[st == common][0]) if (st == common).any() else float("nan")
        rst, rv = eval_curve(logs[s], "raw_adh_color")
        raw[s] = float(rv[rst == common][0]) if (rst == common).any() else float("nan")
        keep = rv[rst <= common]
        drop[s] = float(max(0.0, np.max(keep[:-1] - keep[1:]))) if len(keep) > 1 else 0.0
        ls, lv = loss_curve(logs[s])
        sel = lv[(ls > common / 2) & (ls <= common)]
        lstd[s] = float(sel.std()) if len(sel) else float("nan")
    return Stability(seeds, common, adh, raw, drop, lstd)


# ---------------------------------------------------------------------------------------------------- verdicts
def verdicts(study: DiversityStudy, stab: Stability | None = None) -> vd.VerdictTable:
    """The claim, piece by piece, judged by the numbers measured here."""
    n = len(study.seeds)
    unit = f"{len(study.prompts)} prompt(s) x {n} seeds"
    out = []
    g, d, r = study.pooled("GAN"), study.pooled("diffusion"), study.pooled("data")
    ceil = math.log2(len(all_combos()))
    out.append(vd.from_interval(
        "Mode collapse: the GAN's judged (position, size, background) combos have less entropy than the data's",
        entropy_difference(r, g), unit + " each", "entropy(data) - entropy(GAN), bits", threshold=0.0,
        note=f"ceiling log2(30) = {ceil:.2f} bits"))
    out.append(vd.from_interval(
        "Diffusion's combos have less entropy than the data's (it too drops modes)", entropy_difference(r, d),
        unit + " each", "entropy(data) - entropy(diffusion), bits", threshold=0.0))
    out.append(vd.from_interval(
        "Diffusion is more diverse than the GAN (combo entropy)", entropy_difference(d, g), unit + " each",
        "entropy(diffusion) - entropy(GAN), bits", threshold=0.0))
    pg, pd = study.prdc_pooled("GAN"), study.prdc_pooled("diffusion")
    out.append(vd.from_interval(
        "Diffusion has higher recall than the GAN (prdc, CLIP image embeddings)",
        vd.Interval(pd["recall"].estimate - pg["recall"].estimate,
                    pd["recall"].low - pg["recall"].high, pd["recall"].high - pg["recall"].low),
        unit + " each vs as many real scenes", "recall(diffusion) - recall(GAN)", threshold=0.0,
        note=f"recall GAN {pg['recall'].text()}, diffusion {pd['recall'].text()} (conservative interval)"))
    out.append(vd.from_interval(
        "Diffusion covers more of the real manifold than the GAN (prdc coverage)",
        vd.Interval(pd["coverage"].estimate - pg["coverage"].estimate,
                    pd["coverage"].low - pg["coverage"].high, pd["coverage"].high - pg["coverage"].low),
        unit + " each vs as many real scenes", "coverage(diffusion) - coverage(GAN)", threshold=0.0,
        note=f"coverage GAN {pg['coverage'].text()}, diffusion {pd['coverage'].text()}"))
    ga = [a for p in study.prompts for a in study.get("GAN", p).adherent]
    da = [a for p in study.prompts for a in study.get("diffusion", p).adherent]
    out.append(vd.compare("Diffusion follows the prompt (colour, shape, one object) more often than the GAN", da, ga,
                          labels=("diffusion", "GAN"), paired=False, unit="images", percent=True))
    ratio = study.seconds_per_image("diffusion") / study.seconds_per_image("GAN")
    out.append(vd.exact("The GAN is at least 10x faster per image (one call vs 25 steps x 2 U-Net calls)",
                        ratio >= 10, f"diffusion {study.seconds_per_image('diffusion') * 1000:.1f} ms vs GAN "
                        f"{study.seconds_per_image('GAN') * 1000:.2f} ms per image: {ratio:.0f}x", unit,
                        note="wall-clock on this machine, one measurement"))
    if stab is not None:
        vals = list(stab.adherence_at_common.values())
        spread = max(vals) - min(vals)
        out.append(vd.one_run(
            f"Unstable: the GAN seeds end far apart (judged colour share spread > 20 points at step "
            f"{stab.common_step})",
            spread > 0.2, "EMA colour right per seed " + ", ".join(f"{s}: {100 * v:.0f}%" for s, v in
                                                                 stab.adherence_at_common.items())
            + f"; spread {100 * spread:.0f} points", f"{len(stab.seeds)} seeds x {stab.n_prompts} prompts",
            note="each seed's share has a Wilson interval of about 12 points either way at 64 prompts",
            runs=len(stab.seeds)))
        worst = max(stab.worst_drop.values())
        out.append(vd.one_run(
            "Unstable: some run's live generator loses > 20 points of judged colour share between two evaluations",
            worst > 0.2, "largest drop per seed " + ", ".join(f"{s}: {100 * v:.0f}" for s, v in
                                                              stab.worst_drop.items()) + " points",
            f"{len(stab.seeds)} seeds", runs=len(stab.seeds)))
    return vd.table(out, "Why diffusion won: the claim, measured on the shapes world")


def diffusion_budget(pipeline_dir: str | Path | None = None) -> dict[str, float]:
    """The shipped U-Net's training budget from its training.json: updates, batch and seconds, continuations summed."""
    from ..gan import DEFAULT_TEXT

    folder = DEFAULT_TEXT if pipeline_dir is None else V.check_folder(pipeline_dir, "pipeline_dir", ["training.json"])
    meta = json.loads((folder / "training.json").read_text())
    steps = seconds = 0.0
    batch = meta.get("batch", 0)
    node: Any = meta
    while isinstance(node, dict) and "unet_steps" in node:
        steps += node["unet_steps"]
        seconds += node.get("unet_seconds", 0.0)
        node = node.get("continued_from")
    return {"steps": steps, "batch": batch, "seconds": seconds}


def answer(table: vd.VerdictTable, study: DiversityStudy, stab: Stability | None = None) -> str:
    """The measured answer to the claim, one sentence per part, from the verdicts' statuses."""
    by = {v.claim: v for v in table}

    def status(prefix: str) -> str | None:
        for claim, v in by.items():
            if claim.startswith(prefix):
                return v.status
        return None

    parts = []
    mc = status("Mode collapse")
    parts.append({vd.AGREES: "Mode collapse: yes — the GAN's free choices are less varied than the data's.",
                  vd.DISAGREES: "Mode collapse: no — the GAN's free choices are more varied than the data's.",
                  vd.NOISE: "Mode collapse: not shown at this sample size."}[mc])
    dv = status("Diffusion is more diverse")
    parts.append({vd.AGREES: "Diffusion is more diverse than the GAN, measured.",
                  vd.DISAGREES: "Diffusion is less diverse than the GAN here, contrary to the claim.",
                  vd.NOISE: "Diversity of the two cannot be told apart at this sample size."}[dv])
    rc = status("Diffusion has higher recall")
    parts.append({vd.AGREES: "Diffusion reaches more of the real images (recall).",
                  vd.DISAGREES: "The GAN reaches more of the real images (recall).",
                  vd.NOISE: "Recall cannot tell them apart."}[rc])
    ad = status("Diffusion follows the prompt")
    parts.append({vd.AGREES: "Diffusion also follows the prompt more often.",
                  vd.DISAGREES: "The GAN follows the prompt more often.",
                  vd.NOISE: "Prompt adherence is within noise."}[ad])
    ratio = study.seconds_per_image("diffusion") / study.seconds_per_image("GAN")
    parts.append(f"What it cost: the GAN is {ratio:.0f}x faster per image.")
    if stab is not None:
        un = [v for c, v in by.items() if c.startswith("Unstable")]
        if any(v.agrees for v in un):
            parts.append("Stability: the GAN seeds' curves do show instability (see the verdicts above).")
        else:
            parts.append(f"Stability: the {len(stab.seeds)} GAN seeds' losses did not diverge in the "
                         f"{stab.common_step} steps every run reached (spectral norm, hinge, TTUR, EMA) — which says "
                         "nothing about mode collapse: read the entropy curve above.")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------ what the figures show
@dataclass
class GanGrid:
    """The GAN's image of one prompt for many latents z (one seed each): what `plots.plot_gan_grid` draws."""

    prompt: str
    seeds: list[int]
    images: list = field(repr=False)


def gan_grid(gan: ShapesGAN, prompt: str, seeds: Sequence[int] = tuple(range(16))) -> GanGrid:
    """One generator call per latent z: the GAN's images of `prompt` for each seed."""
    check_gan(gan)
    prompt, seeds = V.check_prompt(prompt), V.check_seeds(seeds, single=False)
    return GanGrid(prompt, seeds, generate(gan, prompt, seeds))


@dataclass
class Interpolations:
    """The GAN's latent slerp z(seed_a) -> z(seed_b) beside diffusion's noise slerp between the same seeds."""

    prompt: str
    seed_a: int
    seed_b: int
    cfg: float
    steps: int
    gan: list = field(repr=False)
    diffusion: list = field(repr=False)


def interpolations(gan: ShapesGAN, pipe: Any, prompt: str, seed_a: int = 0, seed_b: int = 1, frames: int = 7,
                   cfg: float = 5.0, steps: int = 25) -> Interpolations:
    """Both interpolations between two seeds, `frames` frames each (what `plots.plot_interpolations` draws).
    seed_a == seed_b gives two constant rows (each model's image of that seed), not a division by zero."""
    from ..gan import interpolate_latents
    from ..sweeps import interpolate_seeds

    check_gan(gan)
    prompt = V.check_prompt(prompt)
    seed_a, seed_b = V.check_seed(seed_a, "seed_a"), V.check_seed(seed_b, "seed_b")
    frames, cfg, steps = V.check_int(frames, "frames", 2, 64), V.check_cfg(cfg), V.check_steps(steps)
    d = interpolate_seeds(pipe, prompt, seed_a, seed_b, frames=frames, cfg=cfg, steps=steps)  # checks pipe first
    g = interpolate_latents(gan, prompt, seed_a, seed_b, steps=frames)
    return Interpolations(prompt, seed_a, seed_b, cfg, steps, list(g), list(d.images))
