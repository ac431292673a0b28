"""The verdict tables of lessons 5, 8, 10 and 13: each claim the lesson makes, judged from the numbers its
experiments return, with the sample size and a 95 % interval (Wilson for shares, bootstrap for means and paired
differences) or, for deterministic facts, an exact check. Lessons 1, 2, 3, 4, 6, 7, 9 and 11 keep theirs beside their
experiments (pipeline_tour.verdicts, scenes_findings.lesson2 / lesson3, scenes_denoising.spectrum_verdicts /
swap_verdicts, scenes_attention.cross_verdicts / self_verdicts, guidance.verdicts, samplers.sampler_verdicts,
scenes_resolution.off_size_verdicts / cost_verdicts).

Findings, exported: each lesson ends with `export(lesson, verdicts, headline, numbers)`, which (when the environment
variable EXPLAINER_FINDINGS names a folder) writes them as JSON. The committed copies in docs/findings/ are the one
source of docs/claims.md and of the README's lesson table (`python -m explainer.experiments.claims` renders them),
and of the lesson tests' assertions; the notebook test re-exports them and fails on drift (`drift`)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import verdicts as vd

OFF_LINE = 40  # of 255 (RMS over the channels): further than this from both ends' mix is "a colour in neither end"


def walk_difference(it: Any) -> dict[str, float]:
    """How far the decoded latent line strays from the pixel cross-fade: the mean difference (flattered by pixels both
    ends share) and, per inner frame, the share of pixels whose colour lies off the line between the two ends'
    colours at that pixel -- a colour that no cross-fade of the ends can make."""
    lat, pix = it.latent_path.astype(np.float64), it.pixel_path.astype(np.float64)
    a, d = pix[0], pix[-1] - pix[0]
    off = []
    for x in lat[1:-1]:
        t = np.clip(((x - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-9), 0.0, 1.0)
        dist = np.sqrt(((x - (a + t[..., None] * d)) ** 2).mean(-1))
        off.append(float((dist > OFF_LINE).mean()))
    worst = int(np.argmax(off))
    return {"all": float(np.abs(lat[1:-1] - pix[1:-1]).mean()), "off_line": off, "worst_off_line": off[worst],
            "worst_frame": worst + 1, "worst_alpha": float(it.alphas[worst + 1])}


def psnr_each(rec: Any) -> list[float]:
    a = rec.originals.astype(np.float64) / (255.0 if rec.originals.dtype == np.uint8 else 1.0)
    b = rec.decoded.astype(np.float64) / (255.0 if rec.decoded.dtype == np.uint8 else 1.0)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    return list(10 * np.log10(1.0 / np.maximum(mse, 1e-12)))


def lesson5(live: Any, few: Any, near: Any, ho: Any) -> list[vd.Verdict]:
    """Live training, little data, copying, held-out pairs."""
    last = live.steps
    out = [vd.one_run("training lowers the held-out loss (by at least a fifth)",
                      live.heldout[last] < 0.8 * live.heldout[0],
                      f"held-out loss {live.heldout[0]:.3f} at step 0 -> {live.heldout[last]:.3f} at step {last}",
                      "one training run; 256 held-out scenes, fixed noise"),
           vd.one_run("little data generalises worse: 32 scenes leave a larger train/held-out gap than 2000",
                      few.heldout[last] - few.train_eval[last] > live.heldout[last] - live.train_eval[last],
                      f"gap {few.heldout[last] - few.train_eval[last]:+.3f} (32 scenes) vs "
                      f"{live.heldout[last] - live.train_eval[last]:+.3f} (2000 scenes)", "one training run each")]
    return out + lesson5_copies(near, ho)


def lesson5_copies(near: Any, ho: Any) -> list[vd.Verdict]:
    """No copying (paired distances to the training set) and held-out colour x shape pairs."""
    out = []
    out.append(vd.compare("the model does not copy: generated pictures are no closer to the training set than fresh "
                          "renders are", near.real_distance, near.gen_distance, labels=("fresh renders", "generated"),
                          claim_above=False, margin=0.0, digits=3, unit="prompts (paired)",
                          note="distance to the nearest training image; agrees if generated are surely further"))
    # the unit drawn is the colour x shape pair (each drawn at several seeds and places): intervals resample pairs
    pair = lambda prompts: [" ".join(p.split()[2:4]) for p in prompts]  # noqa: E731 ("a large red star ..." -> "red star")
    held, seen = pair(ho.prompts), pair(ho.seen_prompts)
    unit = f"colour x shape pairs ({len(set(held))} held out, {len(held) // len(set(held))} images each)"
    out.append(vd.from_interval("held-out colour x shape pairs are drawn right (colour and shape) in most images",
                                vd.bootstrap_mean([float(r) for r in ho.right], groups=held), unit, "both right",
                                threshold=0.5, percent=True, note=f"{ho.in_training} training scenes hold such a pair"))
    out.append(vd.compare("held-out pairs are drawn less reliably than seen ones", [float(r) for r in ho.seen_right],
                          [float(r) for r in ho.right], labels=("seen", "held out"), paired=False, percent=True,
                          groups=(seen, held), unit="images",
                          note=f"groups: colour x shape pairs ({len(set(seen))} seen, {len(set(held))} held out)"))
    return out


def lesson8(what: Any, effect: Any) -> list[vd.Verdict]:
    """The negative prompt is the unconditional branch; a negative naming one value of what the judge reads (a
    background, a colour) removes it. Both runs use the same seeds, so the comparisons are paired by seed (the seed
    is the unit drawn)."""
    from ..judge import judge_against
    from .negative import judged

    n = len(effect.seeds)
    hit0 = [float(judged(im, effect.attribute) == effect.target) for im in effect.images_without]
    hit1 = [float(judged(im, effect.attribute) == effect.target) for im in effect.images_with]
    kept0 = [float(bool(judge_against(im, effect.prompt)["all"])) for im in effect.images_without]
    kept1 = [float(bool(judge_against(im, effect.prompt)["all"])) for im in effect.images_with]
    what_ = "backgrounds" if effect.attribute == "background" else f"{effect.attribute}s"
    return [vd.exact("the negative prompt is encoded into the unconditional branch, nothing else changes",
                     what.uncond_vs_negative_encoding < 1e-5 and what.cond_same < 1e-5,
                     f"uncond vs encode(negative) {what.uncond_vs_negative_encoding:.1e}; prompt side changed by "
                     f"{what.cond_same:.1e}", "every step of one run"),
            vd.exact("guidance then moves away from the negative prompt", what.moved_away > 0.999,
                     f"mean cosine {what.moved_away:.4f} (1 = straight away)", "every step of one run"),
            vd.compare(f"\u201c{effect.negative}\u201d as negative prompt removes {effect.target} {what_} from "
                       f"\u201c{effect.prompt}\u201d", hit0, hit1, labels=("without", "with"), percent=True,
                       unit="seeds (paired: the same seed with and without)",
                       note=f"{effect.target} {what_}: {sum(hit0):.0f}/{n} without, {sum(hit1):.0f}/{n} with"),
            vd.compare("the asked object survives the negative prompt (judge still accepts the prompt)", kept1, kept0,
                       labels=("with", "without"), percent=True, margin=-0.1,
                       unit="seeds (paired: the same seed with and without)",
                       note="agrees if the drop is surely under 10 points")]


def layout_by_seed(layout: Any) -> tuple[list[float], list[float]]:
    """Per seed: the mean IoU of its same-seed pairs (across prompts) and of its pairs with every other seed, in the
    order `layout_study` builds them (prompt pairs, then seed i x seed j)."""
    k = len(layout.seeds)
    combos = len(layout.same_ious) // k
    same = np.asarray(layout.same_ious, dtype=np.float64).reshape(combos, k).mean(0)
    other = np.zeros((k, k))
    cross = [(i, j) for i in range(k) for j in range(k) if i != j]
    for c in range(combos):
        for (i, j), v in zip(cross, layout.other_ious[c * len(cross):(c + 1) * len(cross)], strict=True):
            other[i, j] += v / combos
    other_by_seed = [(other[i].sum() + other[:, i].sum()) / (2 * (k - 1)) for i in range(k)]
    return list(same), other_by_seed


def lesson13(checks: dict[str, Any], prompt: str) -> list[vd.Verdict]:
    """The playground's one run, read by the judge, key by key."""
    wrong = [k for k, v in checks.items() if v is False and k != "all"]
    return [vd.exact(f"the playground's first run draws \u201c{prompt}\u201d as asked", not wrong,
                     "wrong: " + (", ".join(wrong) or "nothing"), "1 image",
                     "relations are our model's weakest skill" if "relation" in wrong else "")]


# ----------------------------------------------------------------------------------------- findings, exported
FINDINGS_ENV = "EXPLAINER_FINDINGS"
REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "findings"


def _plain(x: Any) -> Any:
    """Numbers as JSON can hold them: numpy scalars and arrays to floats and lists, tuple keys to strings."""
    if isinstance(x, dict):
        return {str(k) if not isinstance(k, tuple) else "x".join(map(str, k)): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return round(float(x), 6) if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"findings must be numbers, strings, lists or dicts of them, got {type(x).__name__}")


def export(lesson: str, verdicts: Sequence[vd.Verdict], headline: str, numbers: dict | None = None,
           varies: Sequence[str] = ()) -> dict:
    """A lesson's findings: its verdicts, the one-line headline the README shows (rendered from its numbers), and the
    numbers the tests assert on. Written to $EXPLAINER_FINDINGS/<lesson>.json when that variable is set; returned.
    `varies` names what changes from run to run (wall-clock timings): number keys, "headline", or the start of a
    verdict's claim, whose numbers text `drift` then does not compare."""
    rec = {"lesson": lesson, "headline": headline, "varies": list(varies),
           "verdicts": [{"claim": v.claim, "status": v.status, "numbers": v.numbers, "n": v.n, "note": v.note}
                        for v in verdicts],
           "numbers": _plain(numbers or {})}
    out = os.environ.get(FINDINGS_ENV)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{lesson}.json").write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
    return rec


def load(lesson: str, directory: Path | str | None = None) -> dict:
    """The committed findings of a lesson (e.g. "07"), as `export` wrote them."""
    path = Path(directory or COMMITTED) / f"{lesson}.json"
    if not path.exists():
        raise FileNotFoundError(f"no findings for lesson {lesson!r} at {path}: run the lesson with {FINDINGS_ENV} set")
    return json.loads(path.read_text())


def verdict(rec: dict, start: str) -> dict:
    """The one exported verdict whose claim starts with `start`."""
    hits = [v for v in rec["verdicts"] if v["claim"].startswith(start)]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} verdicts of lesson {rec['lesson']} start with {start!r}: "
                       f"{[v['claim'] for v in rec['verdicts']]}")
    return hits[0]


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _same_text(a: str, b: str, rel: float) -> bool:
    """The same words with the same numbers, each within `rel`, or 1 for a count and 2 units of the last printed
    digit for a decimal: a CPU whose kernels round a last bit otherwise moves a clipped-pixel share or a bootstrap
    bound by that much (lesson 7 on two machines: 0.0262 vs 0.0260); the words and statuses do not move."""
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True):
        digits = len(x.partition(".")[2])  # a count may move by 1, a decimal by 2 units of its last digit
        if not math.isclose(float(x), float(y), rel_tol=rel, abs_tol=2 * 10.0 ** -digits if digits else 1):
            return False
    return True


def drift(new: dict, old: dict, rel: float = 0.02) -> list[str]:
    """What differs between two exports of one lesson: statuses and claims exactly, numbers within `rel`, the
    headline exactly unless `varies` names it, the verdicts' numbers text word for word with its numbers as
    `_same_text` allows, unless `varies` names them."""
    varies = set(old.get("varies", [])) | set(new.get("varies", []))
    out = []
    if "headline" not in varies and new["headline"] != old["headline"]:
        out.append(f"headline: {old['headline']!r} -> {new['headline']!r}")
    if [v["claim"] for v in new["verdicts"]] != [v["claim"] for v in old["verdicts"]]:
        out.append("verdict claims differ")
    for a, b in zip(old["verdicts"], new["verdicts"], strict=False):
        if a["status"] != b["status"]:
            out.append(f"{a['claim']}: {a['status']} -> {b['status']}")
        elif not _same_text(a["numbers"], b["numbers"], rel) and not any(a["claim"].startswith(x) for x in varies):
            out.append(f"{a['claim']}: {a['numbers']} -> {b['numbers']}")

    def walk(x: Any, y: Any, key: str) -> None:
        if key.split(".")[0] in varies:
            return
        if isinstance(x, dict) and isinstance(y, dict) and x.keys() == y.keys():
            for k in x:
                walk(x[k], y[k], f"{key}.{k}" if key else k)
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, w) in enumerate(zip(x, y, strict=True)):
                walk(u, w, f"{key}[{i}]")
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if not math.isclose(x, y, rel_tol=rel, abs_tol=1e-3):
                out.append(f"{key}: {x} -> {y}")
        elif x != y:
            out.append(f"{key}: {x!r} -> {y!r}")

    walk(old["numbers"], new["numbers"], "")
    return out


def say(text: str) -> Any:
    """A finding rendered from its numbers, shown as Markdown in Jupyter (plain text elsewhere)."""
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return text
    return Markdown(text)


READING = {vd.AGREES: "agrees", vd.DISAGREES: "says the opposite", vd.NOISE: "cannot tell (within noise)",
           vd.TOO_FEW: "has too few units to tell"}


def reading(verdicts: Sequence[vd.Verdict], start: str) -> str:
    """How the sample reads the claim that starts with `start`, in words: "agrees", "says the opposite", "cannot tell
    (within noise)" or "has too few units to tell" -- for sentences rendered from the verdicts."""
    hits = [v for v in verdicts if v.claim.startswith(start)]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} verdicts start with {start!r}")
    return READING[hits[0].status]
