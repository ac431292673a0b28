"""scenes-sd's model card, rendered from what its folder holds, how it trained (`training.json`) and, when measured,
what `benchmarks/adherence.py --model scenes-sd --card` read off its pictures (`adherence.json`). Every number in the
card comes from those files; nothing is typed in by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..verdicts import AGREES, DISAGREES, TOO_FEW, Interval, judge_interval
from ..worlds.scenes_judge import thing_losses

#: issue 24's goals, and GenEval's published scores for scale (single, two, position, attribution, counting)
GOALS = {"object": 0.95, "two_objects": 0.80, "relation": 0.70, "color_attribution": 0.70, "counting": 0.60}
GENEVAL = {"Stable Diffusion 1.5": {"object": 0.97, "two_objects": 0.38, "position": 0.04, "color_attribution": 0.06,
                                   "counting": 0.35},
           "SDXL": {"object": 0.98, "two_objects": 0.74, "position": 0.15, "color_attribution": 0.23,
                    "counting": 0.39}}
ARTICLE_GOAL = 0.90
LABELS = {"object": "single object", "two_objects": "two objects", "counting": "counting", "color": "colour",
          "position": "position", "relation": "relation", "color_attribution": "colour attribution",
          "ground": "ground", "sky": "sky"}
PARTS = ("unet", "vae", "text_encoder", "clip")


def parameters(folder: Path) -> dict[str, int]:
    """Parameters per component, read from the safetensors headers."""
    from safetensors import safe_open

    out = {}
    for part in PARTS:
        n = 0
        for f in sorted((folder / part).glob("*.safetensors")):
            with safe_open(str(f), "pt") as st:
                for k in st.keys():
                    shape = st.get_slice(k).get_shape()
                    n += math.prod(shape)
        out[part] = n
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _training_rows(training: dict) -> list[str]:
    rows = ["| stage | updates | batch | lr | minutes (all runs) | device × threads | last numbers |",
            "|---|---|---|---|---|---|---|"]
    for stage in ("vae", "vae-decoder", "clip", "judge", "unet"):
        log = training.get(stage) or {}
        runs = log.get("runs") or []
        last = log.get("last") or {}
        ev = (log.get("eval") or {}).get("eval") or {}
        if not runs and not last:
            continue
        r = runs[-1] if runs else {}
        # a fine-tune of an earlier model (its runs carry updates_before): count the fine-tune's own runs' minutes
        first = next((i for i, x in enumerate(runs) if x.get("updates_before")), 0)
        minutes = sum(x.get("minutes", 0) for x in runs[first:]) if runs else last.get("minutes")
        where = ", ".join(sorted({f"{x.get('device') or 'cpu'} × {x.get('threads')}" for x in runs})) or "—"
        nums = {k: v for k, v in (ev or r.get("metrics") or last).items()
                if isinstance(v, (int, float)) and k not in ("step", "lr", "minutes")}
        shown = ", ".join(f"{k} {v:.3g}" for k, v in list(nums.items())[:6])
        updates = r.get("updates_total", last.get("step", "—"))
        if r.get("updates_before"):  # a fine-tune of an earlier model: its updates come on top
            updates = f"{r['updates_before']} + {updates}"
        shown_minutes = "—" if minutes is None else f"{minutes:.1f}"
        if r.get("updates_before"):  # the runs here are the fine-tune's; the earlier model's took their own time
            shown_minutes += " (this fine-tune)"
        rows.append(f"| {stage} | {updates} | {r.get('batch', '—')} | {r.get('lr', '—')} | {shown_minutes} | {where} | "
                    f"{shown} |")
    return rows


def _judge_note(training: dict) -> str:
    """How the judge's last runs were trained, when they refit an earlier judge on this folder's decoder."""
    runs = (training.get("judge") or {}).get("runs") or []
    refits = [r for r in runs if r.get("judge_from")]
    if not refits:
        return ""
    first, last = refits[0], refits[-1]
    updates = last["updates_total"] + last.get("updates_before", 0) - first.get("updates_before", 0)
    runs_said = f"{len(refits)} runs" if len(refits) > 1 else "one run"
    every = " of every combination (those held out of the U-Net's training too)" if last.get("first_seed") else ""
    return (f" (its last {updates:,} updates, {runs_said}, refit it on round trips through this folder's decoder; "
            f"the last run: {last.get('images', 0):,} scenes{every}, {last.get('round_trips', 0):,} of them also as "
            "round trips)")


def _judge_rows(training: dict) -> list[str]:
    ev = ((training.get("judge") or {}).get("eval") or {}).get("eval") or {}
    qs = sorted(k for k in ev if not k.startswith("round_trip_") and k != "n")
    if not qs:
        return ["The judge has not been evaluated yet."]
    rows = ["| question | unseen renders | their VAE round trips |", "|---|---|---|"]
    rows += [f"| {q} | {_pct(ev[q])} | {_pct(ev.get('round_trip_' + q))} |" for q in qs]
    rt = [ev[k] for k in ev if k.startswith("round_trip_")]
    if rt:
        worst = min(rt)
        verdict = "reads" if worst >= 0.95 else "does not yet read"
        rows.append(f"\nOn the VAE's round trips the judge {verdict} every question ≥ 95 % right (worst "
                    f"{_pct(worst)}, n {ev.get('n')} unseen scenes).")
    if "held_out_things" in ev:
        rows.append("\nheld_out_things: things in a combination the U-Net never trains on (a purple car, a green "
                    "balloon, a yellow house, a cat on snow, a penguin on sand), found: the judge is the measure, not "
                    "the model, so it learns them too.")
    return rows


def _adherence_rows(m: dict) -> list[str]:
    main = m.get("main", {})
    rows = [f"{m.get('n_prompts')} unseen prompts (canonical captions of scenes never trained on), one image each, "
            f"CFG {m.get('cfg_main', 7.5)}, {m.get('steps_main', 20)} DPM++ 2M steps; 95 % Wilson intervals over "
            "prompts.", "", "| category | scenes-sd | n | 95 % interval | goal | SD 1.5 (GenEval) | SDXL (GenEval) |",
            "|---|---|---|---|---|---|---|"]
    for k, label in LABELS.items():
        if k not in main:
            continue
        c = main[k]
        ref = {name: v.get("position" if k == "relation" else k) for name, v in GENEVAL.items()}
        goal = GOALS.get(k)
        met = "" if goal is None else (" ✓" if c["share"] >= goal else " ✗")
        rows.append(f"| {label} | {_pct(c['share'])} | {c['n']} | {_pct(c['low'])} – {_pct(c['high'])} | "
                    f"{_pct(goal) if goal else '—'}{met} | {_pct(ref['Stable Diffusion 1.5'])} | {_pct(ref['SDXL'])} |")
    art = m.get("article") or {}
    if art:
        rows += ["", f"The article's prompts, {m.get('seeds', '?')} seeds each (right = every question the prompt "
                     f"asks read right; goal ≥ {_pct(ARTICLE_GOAL)}):", "", "| prompt | read right |", "|---|---|"]
        rows += [f"| {p} | {_pct(v)}{' ✓' if v >= ARTICLE_GOAL else ' ✗'} |" for p, v in art.items()]
    for key, name in (("cfg", "CFG scale"), ("steps", "steps")):
        sweep = m.get(key) or {}
        if sweep:
            cats = [k for k in ("object", "two_objects", "relation", "color_attribution", "ground", "sky")
                    if any(k in t for t in sweep.values())]
            rows += ["", f"Sweep of the {name} ({next(iter(sweep.values()))[cats[0]]['n']} prompts per category):", "",
                     f"| {name} | " + " | ".join(LABELS[c] for c in cats) + " |", "|---" * (len(cats) + 1) + "|"]
            rows += [f"| {s} | " + " | ".join(_pct(t.get(c, {}).get("share")) for c in cats) + " |"
                     for s, t in sweep.items()]
    lay = m.get("layout")
    if isinstance(lay, list) and lay:  # lesson 10's layout study: one-thing prompts x seeds, paired by seed
        rows += ["", "How much of the picture a seed fixes (lesson 10's study: one-thing prompts, every prompt with "
                     "every seed; each seed's same-seed pairs against its pairs with other seeds, 95 % intervals over "
                     "seeds):", "", "| claim | verdict | numbers | n |", "|---|---|---|---|"]
        rows += [f"| {v['claim']} | {v['status']} | {v['numbers']} | {v['n']} |" for v in lay]
    rows += _thing_rows(m.get("things") or {}, m.get("text_confusion"))
    if m.get("seconds_one_image") is not None:
        rows += ["", f"One {m.get('steps_main', 20)}-step image at CFG {m.get('cfg_main', 7.5)}: "
                     f"{m['seconds_one_image']:.2f} s on {m.get('threads', '?')} CPU threads."]
    return rows


def _thing_rows(things: dict, confusion: dict | None = None) -> list[str]:
    """Which things it draws (single-object prompts, per thing) against the VAE round trips of the same scenes: is a
    thing lost by the U-Net or by the decoder? And, where measured, which other thing the text encoder reads its name
    most like."""
    if not things:
        return []
    order = sorted(things.items(), key=lambda kv: (kv[1]["drawn"], kv[0]))
    text = all("text_nearest" in r for r in things.values())
    rows = ["", f"Which things it draws: {order[0][1]['n']} unseen single-object prompts per thing, one image each, "
                "and the same scenes rendered and sent through the VAE and back (a round trip: what the decoder brings "
                "back from the encoder's own latents), all read by the same judge; round trip − drawn with its 95 % "
                "interval over prompts" + ("; and the other thing whose name the text encoder reads most alike (the "
                                            "cosine of the name's states in \"a <name>\", what the U-Net reads)"
                                            if text else "") + ":", "",
            "| thing | drawn (95 % interval) | round trip | render | round trip − drawn |"
            + (" text encoder reads it most like |" if text else ""),
            "|---|---|---|---|---|" + ("---|" if text else "")]
    for t, r in order:
        gap = ("too few to tell" if r["too_few"] else
               f"{100 * r['gap']:+.1f} pp [{100 * r['gap_low']:+.1f}, {100 * r['gap_high']:+.1f}]")
        near = f" {r['text_nearest']} ({r['text_cosine']:.2f}) |" if text else ""
        rows.append(f"| {t} | {_pct(r['drawn'])} ({_pct(r['low'])} – {_pct(r['high'])}) | {_pct(r['round_trip'])} | "
                    f"{_pct(r['render'])} | {gap} |{near}")
    lost = thing_losses(things)
    unet = [f"{t} ({_pct(things[t]['drawn'])} drawn, {_pct(things[t]['round_trip'])} of round trips)"
            for t in lost["unet"]]
    decoder = [f"{t} ({_pct(things[t]['round_trip'])})" for t in lost["decoder"]]
    judge = [f"{t} ({_pct(things[t]['render'])})" for t in lost["judge"]]
    rows += ["", (f"Lost by the U-Net more than by the decoder, beyond noise: {', '.join(unet)}." if unet else
                  "No thing is drawn less often than its round trips are read, beyond noise.")
             + (f" Renders read right but their round trips less than 90 % of the time, so the decoder (or the judge "
                f"on its blur) loses these even from the encoder's own latents: {', '.join(decoder)} (the U-Net's "
                "latents are its own, and it may still draw them: compare its share)." if decoder else "")
             + (f" The judge itself reads renders right less than 90 % of the time for: {', '.join(judge)}; there "
                "a miss may be the judge's, not the model's." if judge else "")]
    if confusion:
        rows += ["", _confusion_sentence(confusion)]
    return rows


def _confusion_sentence(c: dict) -> str:
    """What the rank correlation between a name's nearest-neighbour cosine and its drawn share says, judged by its
    interval as every verdict is (`benchmarks/scenes_adherence.py` stores it: rho, low, high, n, too_few)."""
    status = judge_interval(Interval(c["rho"], c["low"], c["high"], units=c["n"]), 0.0, claim_above=False)
    what = (f"Spearman's ρ between how alike the text encoder reads a thing's name and its nearest other thing's, and "
            f"how often the thing is drawn: {c['rho']:+.2f}")
    if status == TOO_FEW:
        return f"{what} over only {c['n']} things: too few to tell whether the names it confuses are the things it " \
               "fails to draw."
    what += f" [{c['low']:+.2f}, {c['high']:+.2f}] over {c['n']} things (95 % bootstrap interval over things)"
    if status == AGREES:
        return (f"The things it draws least are the ones whose names its text encoder reads most like another's: "
                f"{what}. Part of what the U-Net misses is decided before it runs, by the text encoder it reads.")
    if status == DISAGREES:
        return f"The names the text encoder reads alike are not the things it fails to draw: {what}."
    return f"Whether the names the text encoder reads alike are the things it fails to draw is within noise: {what}."


def _last_run(training: dict, stage: str) -> dict:
    runs = (training.get(stage) or {}).get("runs") or []
    return runs[-1] if runs else {}


def _decoder_note(training: dict) -> str:
    r = _last_run(training, "vae-decoder")
    return (f"; its decoder then fine-tuned alone for {r['updates_total']} updates, the encoder frozen (as "
            "sd-vae-ft-mse: the U-Net's latents unchanged)") if r else ""


def _mix_note(training: dict) -> str:
    """The last U-Net run's --unet-mix, when it drew some scenes more often than the data holds them."""
    r = _last_run(training, "unet")
    mix = r.get("mix")
    if not mix:
        return ""
    keys = ", ".join(f"{k} ×{w:g}" for k, w in mix.items())
    return (f"; its last {r.get('updates_total', 0):,} updates drew some scenes more often than the data holds them "
            f"({keys})")


def text_updates(runs: list[dict]) -> int:
    """How many U-Net updates also trained the text tower: those of the runs since the last `--init-from` (a
    `text_lr` > 0) plus the ones the pipeline it started from had had (`text_updates_before`)."""
    start = max((i for i, r in enumerate(runs) if "init_from" in r), default=0)
    return (runs[start].get("text_updates_before", 0) if runs else 0) + sum(
        r["updates_total"] for r in runs[start:] if r.get("text_lr"))


def _text_note(training: dict) -> str:
    runs = (training.get("unet") or {}).get("runs") or []
    tuned = text_updates(runs)
    if not tuned:
        return "frozen while the U-Net trained (as SD 1.x)"
    lrs = sorted({r["text_lr"] for r in runs if r.get("text_lr")})
    at = f" at learning rate {', '.join(f'{x:g}' for x in lrs)}" if lrs else ""
    last = runs[-1]
    frozen_last = "" if last.get("text_lr") else f", and frozen again for its last {last['updates_total']:,}"
    return (f"frozen while the U-Net learned to draw (as SD 1.x), then fine-tuned with it for {tuned:,} of its "
            f"updates{at}{frozen_last}")


def write_card(folder: Path, measured: dict | None = None) -> Path:
    """Render `folder/MODEL_CARD.md` from the folder, its `training.json` and `measured` (else `adherence.json`
    beside it, when there is one); writes `adherence.json` when `measured` is given."""
    folder = Path(folder)
    training = json.loads((folder / "training.json").read_text()) if (folder / "training.json").exists() else {}
    if measured is not None:
        (folder / "adherence.json").write_text(json.dumps(measured, indent=1, default=str))
    elif (folder / "adherence.json").exists():
        measured = json.loads((folder / "adherence.json").read_text())
    n = parameters(folder)
    vae_channels = json.loads((folder / "vae" / "config.json").read_text())["latent_channels"]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    text = [
        "# scenes-sd: a small Stable Diffusion trained on the scenes world", "",
        "A standard `StableDiffusionPipeline` folder (safetensors, fp16 on disk), every part the class Stable "
        "Diffusion 1.x uses, trained by the explainer project on procedural 64×64 scenes composed from Microsoft's "
        "Fluent 3D emoji (MIT licence, `explainer/assets/emoji/LICENSE`): foxes, trees, autumn leaves, dawn and dusk "
        "skies. Load it with `ex.load_pipeline(\"scenes-sd\")` or plain "
        "`StableDiffusionPipeline.from_pretrained(folder)`. Retrain it with "
        "`python -m explainer.train --world scenes --stage all` (each stage resumable: run it again).", "",
        f"Folder: {size / 1e6:.1f} MB.", "",
        "## Components", "", "| component | class | parameters | notes |", "|---|---|---|---|",
        f"| unet | `UNet2DConditionModel` | {n['unet'] / 1e6:.2f} M | 8×8 latents, ε-prediction, Min-SNR-5, "
        f"10 % empty captions (CFG), EMA 0.999{_mix_note(training)} |",
        f"| vae | `AutoencoderKL` | {n['vae'] / 1e6:.2f} M | factor 8 as SD (64×64×3 → 8×8×{vae_channels})"
        f"{_decoder_note(training)} |",
        f"| text_encoder | `CLIPTextModel` | {n['text_encoder'] / 1e6:.2f} M | the text tower of the CLIP pair in "
        f"`clip/`, trained contrastively on the world, then {_text_note(training)} |",
        f"| clip | `CLIPModel` | {n['clip'] / 1e6:.2f} M | text and vision towers (for the lessons' CLIP scores) |",
        "| tokenizer | word-level `PreTrainedTokenizerFast` | — | the world's words |",
        "| scheduler | `DPMSolverMultistepScheduler` | — | DPM++ 2M, SD's scaled-linear β schedule |", "",
        "## Training", "", *_training_rows(training), "",
        "## The judge (`explainer/assets/scenes-judge`)", "",
        "A small CNN trained on rendered scenes (augmented, and on VAE round trips) that reads which things a 64 px "
        f"picture holds, where, their colours, the ground and the sky{_judge_note(training)}. Its accuracy per "
        "question:", "",
        *_judge_rows(training), "",
        "## Measured", "",
    ]
    text += _adherence_rows(measured) if measured else ["Not measured yet: run "
                                                        "`python benchmarks/adherence.py --model scenes-sd --card`."]
    text += _freezing_rows(folder)
    text += _limits(folder, measured)
    (folder / "MODEL_CARD.md").write_text("\n".join(text) + "\n")
    return folder / "MODEL_CARD.md"


def _freezing_rows(folder: Path) -> list[str]:
    """The frozen-vs-fine-tuned text encoder comparison (`freezing.json`: `benchmarks/scenes_compare.py --json`
    output plus a `setup` line), when it was measured."""
    path = folder / "freezing.json"
    if not path.exists():
        return []
    c = json.loads(path.read_text())
    la, lb = c["labels"]
    rows = ["", "## The text encoder: frozen or fine-tuned with the U-Net?", "", c.get("setup", ""), "",
            f"| category | {la} | {lb} | {lb} − {la} (95 % interval over prompts) | n |", "|---|---|---|---|---|"]
    for name, group in (("", c["categories"]), ("article: ", c["article"])):
        for k, r in group.items():
            gap = ("too few to tell" if r["too_few"] else
                   f"{100 * r['diff']:+.1f} pp [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]")
            rows.append(f"| {name}{LABELS.get(k, k)} | {_pct(r['a'])} | {_pct(r['b'])} | {gap} | {r['n']} |")
    def beyond(group: dict) -> list[str]:  # intervals that exclude 0, with the direction
        return [f"{LABELS.get(k, k)} ({lb} {'higher' if r['low'] > 0 else 'lower'})" for k, r in group.items()
                if not r["too_few"] and (r["low"] > 0 or r["high"] < 0)]

    cats, arts = beyond(c["categories"]), beyond(c["article"])
    rows += ["", (f"Beyond noise among the categories: {', '.join(cats)}." if cats else
                  "No category differs beyond noise: keeping the text encoder frozen, as Stable Diffusion 1.x does, "
                  "costs no measurable adherence here at this point of training.")
             + (f" Among the article's prompts (seeds as the unit): {', '.join(arts)}." if arts else "")]
    return rows


def _limits(folder: Path, measured: dict | None) -> list[str]:
    """What the numbers above say plainly, and the known flaws read off the folder."""
    out = ["", "## Status, said plainly", ""]
    if measured:
        main = measured.get("main", {})
        goals = [(LABELS[k], main[k], g) for k, g in GOALS.items() if k in main]
        # a goal met by the point estimate whose interval reaches below it is not surely met: say so
        met = [name + (f" by its point estimate only, its 95 % interval reaching down to {_pct(c['low'])}"
                       if c.get("low", g) < g else "") for name, c, g in goals if c["share"] >= g]
        art = measured.get("article") or {}
        out.append(f"{len(met)} of {len(goals)} of the category goals are met"
                   + (f" ({'; '.join(met)})" if met else "") + f"; {sum(v >= ARTICLE_GOAL for v in art.values())} of "
                   f"{len(art)} article prompts are read right for ≥ {_pct(ARTICLE_GOAL)} of seeds. Grounds and skies "
                   f"are drawn right ({_pct(main.get('ground', {}).get('share'))} / "
                   f"{_pct(main.get('sky', {}).get('share'))}); things much less often "
                   f"({_pct(main.get('object', {}).get('share'))} single object). The judge reads VAE round trips "
                   "less well than renders (table above), so the things' numbers mix the model's misses with the "
                   "judge's; look at the pictures too.")
    te = json.loads((folder / "text_encoder" / "config.json").read_text())
    if te.get("eos_token_id") == 2:
        out += ["", "Known flaw: the text encoder's `eos_token_id` is 2, and for that value transformers pools a "
                    "caption's vector at the token with the highest id (the alphabetically last word of this "
                    "vocabulary), not at its end; the contrastive CLIP was trained and is scored so. The U-Net reads "
                    "every token's hidden state and is not affected; CLIP scores of captions are."]
    return out
