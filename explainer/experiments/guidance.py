"""Lesson 7, classifier-free guidance (CFG): the formula on real tensors, where and when the prompt pushes, and a
CFG sweep measured with the judge (prompt adherence) and with image statistics (saturation, clipped pixels).

Also the small helpers the other part-2 experiments share: `generate_many` (many prompt/seed pairs in batched
pipeline calls), `saturation` and `clipped_fraction` (image statistics), `adherence_table` (judge many images).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import generation
from .. import validation as V
from ..judge import judge, judge_against

# Prompts the CFG sweep judges: two objects each, so "does low CFG skip a part of the prompt?" has an answer.
SWEEP_PROMPTS = (
    "a red circle left of a blue square",
    "a yellow star above a green square",
    "a white triangle right of a purple circle",
    "a blue cross below an orange star",
    "a green circle above a red triangle",
    "an orange square left of a white star",
    "a purple star below a yellow square",
    "a red square right of a green circle",
    "a blue triangle above a white circle",
    "an orange circle left of a purple triangle",
    "a white square below a red cross",
    "a green star right of an orange triangle",
)
# 12 prompts x 3 seeds: the verdicts resample prompts (the unit that was chosen); an interval needs 8 or more
SWEEP_SEEDS = (0, 1, 2)
SWEEP_SCALES = (1.0, 3.0, 7.5, 12.0, 20.0)


# --------------------------------------------------------------------------------------------- shared helpers
@contextlib.contextmanager
def using_scheduler(pipe: Any, name: str | None) -> Iterator[None]:
    """Install the named sampler (built from the pipeline's own config) for the duration, then put the old one back
    (None keeps the pipeline's own). The one swap of `explainer.generation`."""
    with generation.using_scheduler(pipe, name):
        yield


def generate_many(pipe: Any, prompts: Sequence[str], seeds: Sequence[int], cfg: float = 7.5, steps: int = 25,
                  scheduler: str | None = "dpm++2m", negative_prompt: str | None = None, height: int | None = None,
                  width: int | None = None, max_batch: int = 16, output: str = "pil") -> list[Any]:
    """One image per (prompt, seed) pair, several per pipeline call where that stays exact: image k is bit for bit
    the single run of prompt k from seed k (`explainer.generation.generate_images`; images with and without CFG
    never share a call). A single prompt string is one prompt; every argument is checked before any image."""
    prompts = V.check_prompts(prompts, "prompts")
    seeds = V.check_seeds(seeds, "seeds")
    V.check_same_length("prompts", prompts, "seeds", seeds)
    cfg, steps = V.check_cfg(cfg), V.check_steps(steps)
    scheduler = generation.check_sampler(pipe, scheduler)
    negative_prompt = V.check_optional_prompt(negative_prompt)
    max_batch = V.check_positive_int(max_batch, "max_batch", 1024)
    output = V.check_choice(output, ("pil", "np", "pt", "latent"), "output")
    height, width = V.check_image_size(pipe, height, width, int(getattr(pipe, "vae_scale_factor", 8)))
    return generation.generate_images(pipe, prompts, seeds, cfg, steps, scheduler, negative_prompt, height, width,
                                      max_batch=max_batch, output_type=output, what="generate_many").images


def _image(image: Any, name: str = "image") -> Any:
    """A PIL image, or an (h, w, 3) uint8 array made one."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return Image.fromarray(image)
    raise ValueError(f"{name} must be a PIL image or an (h, w, 3) uint8 array, got {type(image).__name__}")


def saturation(image: Any) -> float:
    """Mean HSV saturation of an image, 0 (grey) .. 1 (pure colour)."""
    return float(np.asarray(_image(image).convert("HSV"))[..., 1].mean() / 255.0)


def clipped_fraction(image: Any) -> float:
    """Fraction of colour channel values pinned at 0 or 255: a sign of values pushed past the range and clipped."""
    a = np.asarray(_image(image).convert("RGB"))
    return float(((a == 0) | (a == 255)).mean())


def adherence_table(images: Sequence[Any], prompts: Sequence[str]) -> dict[str, float]:
    """Judge every image against its prompt; the rate of each judged key (None = not asked, left out)."""
    images, prompts = list(images), V.check_prompts(prompts, "prompts", single=False)
    V.check_same_length("images", images, "prompts", prompts)
    keys: dict[str, list[bool]] = {}
    for im, p in zip(images, prompts, strict=True):
        for k, v in judge_against(im, p).items():
            if v is not None:
                keys.setdefault(k, []).append(bool(v))
    return {k: float(np.mean(v)) for k, v in keys.items()}


# --------------------------------------------------------------------------------------------- the formula
@dataclass
class FormulaCheck:
    cfg: float
    steps: int
    max_abs_error: float  # max |uncond + cfg * (cond - uncond) - guided| over every step and element
    max_abs_guided: float  # for scale: the largest |guided| value
    delta_norms: list[float]  # ||cond - uncond|| per step
    uncond_norms: list[float]
    peak_step: int  # step where the delta is largest
    first_half_share: float  # share of the summed delta norm that falls in the first half of the steps
    first_half_effect: float  # the same, each step weighted by how far the sampler moves (sigma_i - sigma_i+1)
    inside_share: float  # share of the delta (summed over steps) that falls on the objects' footprint
    footprint_share: float  # the footprint's share of the image area (what an even spread would give)


def _check_cfg_trace(tr: Any, name: str = "tr", min_steps: int = 1) -> None:
    """A Trace of a run with classifier-free guidance (cfg > 1): it holds both branches."""
    if not hasattr(tr, "steps") or not hasattr(tr, "settings"):
        raise ValueError(f"{name} must be a Trace (explainer.trace(...)), got {type(tr).__name__}")
    if len(tr.steps) < min_steps:
        raise ValueError(f"{name} must have at least {min_steps} steps (the measures compare the first half with the "
                         f"second), got {len(tr.steps)}")
    if getattr(tr.steps[0], "noise_uncond", None) is None:
        raise ValueError(f"{name} must be traced with cfg > 1 (got cfg={tr.settings.get('cfg')!r}): without "
                         "guidance there is no unconditional branch to compare")


def _footprint(image: Any, size: tuple[int, int]) -> np.ndarray:
    """Where the objects are, at latent resolution: pixels that differ from the judged background colour."""
    from ..shapes import BACKGROUNDS

    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    bg = np.array(BACKGROUNDS[judge(image).background], dtype=np.float64)
    mask = (np.linalg.norm(a - bg, axis=-1) > 60).astype(np.float64)
    h, w = size
    fh, fw = mask.shape[0] // h, mask.shape[1] // w
    return mask.reshape(h, fh, w, fw).mean(axis=(1, 3))


def check_formula(tr: Any, footprint: np.ndarray | None = None) -> FormulaCheck:
    """Recombine the trace's two U-Net predictions by hand and compare with what the sampler was given.
    `footprint`: where the things are, an (h, w) map in [0, 1] at latent resolution (None: the shapes judge's object
    pixels, for the shapes model; `scenes_cfg.footprint` for the scenes model)."""
    _check_cfg_trace(tr, min_steps=2)
    cfg = float(tr.settings["cfg"])
    err, big, dn, un, maps = 0.0, 0.0, [], [], []
    sig = [float(st.sigma) for st in tr.steps] + [0.0]
    for st in tr.steps:
        mine = st.noise_uncond.double() + cfg * (st.noise_cond.double() - st.noise_uncond.double())
        err = max(err, float((mine - st.noise_guided.double()).abs().max()))
        big = max(big, float(st.noise_guided.abs().max()))
        dn.append(float(st.cfg_delta.norm()))
        un.append(float(st.noise_uncond.norm()))
        maps.append(st.cfg_delta.double().norm(dim=0).numpy())
    if sum(dn) == 0:
        raise ValueError("tr: the conditional and unconditional predictions are identical at every step (an empty "
                         "prompt is the unconditional prompt): there is no guidance to measure")
    total = np.sum(maps, axis=0)
    fp = _footprint(tr.image, total.shape) if footprint is None else np.asarray(footprint, dtype=np.float64)
    if fp.shape != total.shape:
        raise ValueError(f"footprint must have the latent's shape {total.shape}, got {fp.shape}")
    half = len(dn) // 2
    eff = [d * (sig[i] - sig[i + 1]) for i, d in enumerate(dn)]
    return FormulaCheck(cfg, len(dn), err, big, dn, un, int(np.argmax(dn)), float(sum(dn[:half]) / sum(dn)),
                        float(sum(eff[:half]) / sum(eff)),
                        float((total * fp).sum() / total.sum()), float(fp.mean()))


# --------------------------------------------------------------------------------------------- the sweep
FATES = ("right", "recoloured", "reshaped", "gone")


@dataclass
class CfgSweep:
    """The CFG sweep, per scale. Columns of `table()` (every rate is a share of the images, or of the named objects):

    all        the judge finds the whole prompt right (both objects with their colour and shape, the relation, count)
    objects    both named objects drawn with the asked colour AND shape
    relation   the two named objects found and standing in the asked relation ("left of", ...)
    extra      more objects in the image than the prompt names
    right / recoloured / reshaped / gone   the fate of each named object (2 per image): drawn right; its shape drawn
               but in another colour; its colour drawn but as another shape; neither its colour nor its shape found
    saturation mean HSV saturation of the pixels (0 grey .. 1 pure colour)
    clipped    share of colour channel values at exactly 0 or 255
    """

    scales: list[float]
    prompts: list[str]
    seeds: list[int]
    adherence: dict[float, dict[str, float]]  # scale -> judged key -> rate
    missing_object: dict[float, float]  # scale -> share of images where no object has a named object's colour
    extra_objects: dict[float, float]  # scale -> share of images with more objects than asked
    saturation: dict[float, float]  # scale -> mean HSV saturation
    clipped: dict[float, float]  # scale -> fraction of channel values at 0 or 255
    images: dict[float, list[Any]] = field(repr=False)
    seconds: float = 0.0
    # per image, in the order of `prompts`: judged keys (all, objects, relation, ...), extra, saturation, clipped
    per_image: dict[float, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    # per named object (2 per image, image order): "right", "recoloured", "reshaped" or "gone"
    fates: dict[float, list[str]] = field(default_factory=dict, repr=False)
    steps: int = 25  # denoising steps of every image (sampler: DPM++ 2M, as generate_many uses)

    def image_fates(self, scale: float, k: int) -> list[tuple[str, str]]:
        """(named object, its fate) for each object image k's prompt names, at `scale`."""
        from ..judge import parse_prompt

        def named(p: str) -> list[str]:
            return [" ".join(w for w in (o.color, o.shape) if w) for o in parse_prompt(p).objects]

        start = sum(len(named(p)) for p in self.prompts[:k])
        names = named(self.prompts[k])
        return list(zip(names, self.fates[scale][start:start + len(names)], strict=True))

    def image_summary(self, scale: float, k: int) -> str:
        """What the judge read in image k at `scale`, in words: "as asked", or what went wrong."""
        rec = self.per_image[scale][k]
        if rec["all"]:
            return "as asked"
        wrong = [f"{name} {fate}" for name, fate in self.image_fates(scale, k) if fate != "right"]
        if rec.get("relation") is False:
            wrong.append("relation wrong")
        if rec.get("size") is False:
            wrong.append("size wrong")
        if rec["extra"]:
            wrong.append("extra objects")
        return ", ".join(wrong) or "wrong"

    def values(self, scale: float, key: str) -> list[float]:
        """One number per image at `scale` (booleans as 0/1): a judged key, "extra", "saturation" or "clipped"."""
        return [float(bool(r[key])) if isinstance(r[key], (bool, type(None))) else float(r[key])
                for r in self.per_image[scale]]

    def fate_share(self, scale: float, fate: str) -> float:
        f = self.fates[V.check_choice(scale, self.scales, "scale")]
        V.check_choice(fate, FATES, "fate")
        if not f:
            raise ValueError(f"the sweep judged no named objects at CFG {scale:g}: there is no share to give")
        return sum(x == fate for x in f) / len(f)

    def table(self) -> str:
        head = (f"{'CFG':>5} | {'all':>5} {'objects':>7} {'relation':>8} {'extra':>5} | "
                f"{'right':>5} {'recoloured':>10} {'reshaped':>8} {'gone':>5} | {'saturation':>10} {'clipped':>7}")
        lines = [f"{len(self.prompts)} images per scale ({len(set(self.prompts))} prompts x {len(set(self.seeds))} "
                 f"seeds); {len(next(iter(self.fates.values()), []))} named objects per scale", head, "-" * len(head)]
        for s in self.scales:
            a = self.adherence[s]
            lines.append(f"{s:>5g} | {a['all']:>5.2f} {a.get('objects', float('nan')):>7.2f} "
                         f"{a.get('relation', float('nan')):>8.2f} {self.extra_objects[s]:>5.2f} | "
                         + " ".join(f"{self.fate_share(s, f):>{w}.2f}" for f, w in zip(FATES, (5, 10, 8, 5),
                                                                                       strict=True))
                         + f" | {self.saturation[s]:>10.3f} {self.clipped[s]:>7.4f}")
        lines.append("all: whole prompt right; objects: both named objects with their colour and shape; relation: "
                     "the asked relation holds; extra: more objects than named;")
        lines.append("right/recoloured/reshaped/gone: what became of each named object (shape kept in another colour "
                     "/ colour kept as another shape / neither found)")
        return "\n".join(lines)

def _fate(j: Any, obj: Any) -> str:
    if j.find(color=obj.color, shape=obj.shape) is not None:
        return "right"
    if obj.shape is not None and j.find(shape=obj.shape) is not None:
        return "recoloured"
    if obj.color is not None and j.find(color=obj.color) is not None:
        return "reshaped"
    return "gone"


def judge_image(image: Any, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """The per-image record of the sweep (judged keys, extra objects, a named colour absent, saturation, clipped)
    and the fate of each named object ("right", "recoloured", "reshaped", "gone")."""
    from ..judge import parse_prompt

    spec = parse_prompt(prompt)
    j = judge(image)
    colours = {o.color for o in j.objects}
    rec: dict[str, Any] = dict(judge_against(image, spec))
    rec["extra"] = j.count > len(spec.objects)
    rec["colour_absent"] = any(o.color not in colours for o in spec.objects)
    rec["saturation"] = saturation(image)
    rec["clipped"] = clipped_fraction(image)
    return rec, [_fate(j, o) for o in spec.objects]


def check_sweep_arguments(pipe: Any, prompts: Any, seeds: Any, scales: Any, steps: Any
                          ) -> tuple[list[str], list[int], list[float], int]:
    """cfg_sweep's arguments, checked before any image: prompts a non-empty list of non-blank prompt strings (ONE
    string is one prompt, never split into letters), seeds a non-empty list of integers from 0 to 2**64-1 (not bool,
    not float), scales a non-empty list of distinct finite numbers > 0 and <= 100, steps an integer from 1 to 1000."""
    prompts = V.check_prompts(prompts, "prompts", allow_empty=False)
    seeds = V.check_seeds(seeds, "seeds")
    scales = V.check_numbers(scales, "scales", 0.0, V.MAX_CFG, low_open=True)
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales must be distinct (each is a column of the sweep), got {scales}")
    steps = V.check_steps(steps, "steps")
    V.check_pipeline(pipe)
    try:
        generation.check_sampler(pipe, "dpm++2m")
    except ValueError:
        raise ValueError(f"pipe must be a U-Net pipeline (Stable Diffusion): the sweep draws with DPM++ 2M, which "
                         f"does not fit {type(pipe).__name__}") from None
    return prompts, seeds, scales, steps


def check_sweep(sweep: Any, name: str = "sweep") -> CfgSweep:
    """A finished CfgSweep with images at every scale (what cfg_sweep returns): the CFG explorer's input check."""
    if not isinstance(sweep, CfgSweep):
        raise ValueError(f"{name} must be the result of experiments.guidance.cfg_sweep(...), got "
                         f"{type(sweep).__name__}")
    if not sweep.prompts or not sweep.scales:
        raise ValueError(f"{name} is empty ({len(sweep.prompts)} images, {len(sweep.scales)} scales): run cfg_sweep "
                         "with at least one prompt, seed and scale")
    missing = [s for s in sweep.scales if len(sweep.images.get(s, ())) != len(sweep.prompts)
               or len(sweep.per_image.get(s, ())) != len(sweep.prompts)]
    if missing:
        raise ValueError(f"{name} has no complete images / judgements at scales {missing}: it is not a finished "
                         "cfg_sweep result")
    return sweep


def cfg_sweep(pipe: Any, prompts: Sequence[str] = SWEEP_PROMPTS, seeds: Sequence[int] = SWEEP_SEEDS,
              scales: Sequence[float] = SWEEP_SCALES, steps: int = 25) -> CfgSweep:
    """Every prompt x seed at every scale; judged adherence, missing/extra objects, saturation, clipped values.
    Arguments as `check_sweep_arguments` says (checked before any image; a single prompt string is one prompt)."""
    prompts, seeds, scales, steps = check_sweep_arguments(pipe, prompts, seeds, scales, steps)
    t0 = time.perf_counter()
    ps = [p for p in prompts for _ in seeds]
    ss = [s for _ in prompts for s in seeds]
    res = CfgSweep(list(scales), ps, ss, {}, {}, {}, {}, {}, {}, steps=int(steps))
    for s in scales:
        ims = generate_many(pipe, ps, ss, cfg=s, steps=steps)
        res.images[s] = ims
        res.adherence[s] = adherence_table(ims, ps)
        judged = [judge_image(im, p) for im, p in zip(ims, ps, strict=True)]
        res.per_image[s] = [r for r, _ in judged]
        res.fates[s] = [f for _, fs in judged for f in fs]
        res.missing_object[s] = float(np.mean([r["colour_absent"] for r, _ in judged]))
        res.extra_objects[s] = float(np.mean([r["extra"] for r, _ in judged]))
        res.saturation[s] = float(np.mean([r["saturation"] for r, _ in judged]))
        res.clipped[s] = float(np.mean([r["clipped"] for r, _ in judged]))
    res.seconds = time.perf_counter() - t0
    return res


def running_example(tr: Any) -> Any:
    """Is the traced picture what its prompt asked? A Verdict naming every judged key that came out wrong (for the
    running example, "a red circle left of a blue square" at seed 0, our model may swap the relation)."""
    from .. import verdicts as vd

    if not all(hasattr(tr, k) for k in ("image", "prompt", "settings")):
        raise ValueError(f"tr must be a Trace (explainer.trace(...)), got {type(tr).__name__}")
    checks = judge_against(tr.image, tr.prompt)
    wrong = [k for k, v in checks.items() if v is False and k != "all"]
    seed = tr.settings.get("seed")
    note = ""
    if "relation" in wrong:
        note = ("the relation came out wrong: relations between two objects are our model's weakest skill "
                "(lesson 7's relation column measures how often)")
    return vd.exact(f"\u201c{tr.prompt}\u201d (seed {seed}) is drawn as asked", not wrong,
                    f"the judge reads: {judge(tr.image).describe()}; wrong: {', '.join(wrong) or 'nothing'}",
                    "1 image", note)


def second_object_scale(pipe: Any, prompt: str, seed: int, scales: Sequence[float] = (1, 1.5, 2, 3, 4, 5, 7.5),
                        steps: int = 25) -> float | None:
    """The smallest scale in `scales` at which the judge finds both named objects (None if it never does)."""
    prompt, seed = V.check_prompt(prompt, allow_empty=False), V.check_seed(seed)
    scales, steps = sorted(V.check_numbers(scales, "scales", 0.0, V.MAX_CFG)), V.check_steps(steps)
    for s in scales:
        im = generate_many(pipe, [prompt], [seed], cfg=s, steps=steps)[0]
        if judge_against(im, prompt).get("objects"):
            return float(s)
    return None


def verdicts(sweep: CfgSweep, low: float = 1.0, mid: float = 7.5, high: float = 20.0) -> list[Any]:
    """The claim's parts as Verdicts, each from the per-image numbers with a paired bootstrap over the images (the same
    prompt and seed at every scale) or a Wilson interval: agrees, does not agree, or within noise."""
    from .. import verdicts as vd

    check_sweep(sweep)
    for value, nm in ((low, "low"), (mid, "mid"), (high, "high")):
        V.check_choice(value, sweep.scales, nm)
    unit = "images (same prompts and seeds at each scale)"
    vd_compare = vd.compare

    def compare(*args: Any, **kw: Any) -> Any:  # every comparison resamples whole prompts (cluster bootstrap)
        return vd_compare(*args, groups=sweep.prompts, **kw)

    best = max(sweep.scales, key=lambda s: (sweep.adherence[s]["all"], -abs(s - mid)))
    out = []
    # 1. low CFG skips parts of the prompt: more images without both objects at CFG 1 than at the middle scale
    miss = {s: [1.0 - v for v in sweep.values(s, "objects")] for s in sweep.scales}
    out.append(compare(f"low CFG skips parts of the prompt (a named object not drawn right, CFG {low:g} vs {mid:g})",
                          miss[low], miss[mid], labels=(f"CFG {low:g}", f"CFG {mid:g}"), percent=True, unit=unit))
    # 2. a middle scale is the sweet spot: the best scale against each neighbour end
    allv = {s: sweep.values(s, "all") for s in sweep.scales}
    for other in (low, mid, high):
        if other == best:
            continue
        out.append(compare(f"a middle scale is the sweet spot: CFG {best:g} (best here) beats CFG {other:g}",
                              allv[best], allv[other], labels=(f"CFG {best:g}", f"CFG {other:g}"), percent=True,
                              unit=unit, note="whole prompt judged right"))
    # 3. high CFG over-saturates: per-image saturation and clipping, CFG high vs CFG low
    out.append(compare(f"high CFG over-saturates (mean HSV saturation, CFG {high:g} vs {low:g})",
                          sweep.values(high, "saturation"), sweep.values(low, "saturation"),
                          labels=(f"CFG {high:g}", f"CFG {low:g}"), digits=3, unit=unit))
    c_hi, c_lo = sweep.clipped[high], sweep.clipped[low]
    out.append(compare(f"high CFG clips colour values (channel values at 0 or 255, CFG {high:g} vs {low:g})",
                          sweep.values(high, "clipped"), sweep.values(low, "clipped"),
                          labels=(f"CFG {high:g}", f"CFG {low:g}"), digits=4, unit=unit,
                          note=f"{c_hi / c_lo:.0f}x as many" if c_lo > 0 else ""))
    # 4. high CFG adds artefacts: extra objects
    out.append(compare(f"high CFG adds extra objects (CFG {high:g} vs {mid:g})", sweep.values(high, "extra"),
                          sweep.values(mid, "extra"), labels=(f"CFG {high:g}", f"CFG {mid:g}"), percent=True,
                          unit=unit))
    # 5. how named objects fail at high CFG: changed (recoloured or reshaped) rather than gone
    f = sweep.fates[high]
    wrong = [x for x in f if x != "right"]
    changed = sum(x in ("recoloured", "reshaped") for x in wrong)
    if wrong:
        out.append(vd.proportion(f"at CFG {high:g} a named object that goes wrong changes colour or shape rather than "
                                 "vanishing", changed, len(wrong), threshold=0.5, what="changed",
                                 unit=f"wrongly drawn named objects (of {len(f)})",
                                 note=f"recoloured {sum(x == 'recoloured' for x in wrong)}, reshaped "
                                      f"{sum(x == 'reshaped' for x in wrong)}, gone {sum(x == 'gone' for x in wrong)}"))
    # 6. relations do not get better with guidance
    rel = {s: sweep.values(s, "relation") for s in sweep.scales}
    out.append(compare(f"more guidance draws the relation right more often (CFG {mid:g} vs {low:g})", rel[mid],
                          rel[low], labels=(f"CFG {mid:g}", f"CFG {low:g}"), percent=True, unit=unit,
                          note="relation: " + ", ".join(f"{s:g}: {np.mean(rel[s]):.2f}" for s in sweep.scales)))
    return out


def branch_gap(tr: Any, step: int) -> dict[str, float]:
    """How different the clean latents x0 implied by the two branches are at `step` (0-based), and how far guidance
    pushes past the conditional one. For an epsilon model x0 = (x - sigma * eps) in sigma units, so
    x0(cond) - x0(uncond) = -sigma * delta and x0(guided) - x0(cond) = -(cfg - 1) * sigma * delta. Returned as RMS
    values over the latent, beside the RMS of the final clean latent (the size of a whole picture)."""
    _check_cfg_trace(tr)
    step = V.check_step_index(step, len(tr.steps))
    st = tr.steps[step]
    cfg = float(tr.settings["cfg"])
    sigma = float(st.sigma)
    rms = lambda t: float(t.double().pow(2).mean().sqrt())  # noqa: E731
    gap = sigma * rms(st.cfg_delta)
    final = tr.steps[-1].x0 if tr.steps[-1].x0 is not None else tr.steps[-1].latents
    return {"step": step + 1, "sigma": sigma, "cond_vs_uncond": gap, "guided_vs_cond": (cfg - 1) * gap,
            "picture": rms(final), "cfg": cfg}
