"""docs/claims.md and the README's lesson table, rendered from the findings the lessons export (docs/findings/*.json,
written by `summaries.export` when a lesson runs with EXPLAINER_FINDINGS set). Nothing in the "our model" columns is
typed: each cell is a verdict's status and numbers, or a lesson's headline, as the lesson computed them.

    python -m explainer.experiments.claims          # rewrite docs/claims.md and the README's lesson table
    python -m explainer.experiments.claims --check  # exit 1 if either differs from what the findings give
"""

from __future__ import annotations

import sys
from pathlib import Path

from .summaries import COMMITTED, REPO, load

# (claim in our words, lesson, starts of the lesson's verdict claims that judge it)
CLAIMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("`pipe(...)` is nothing but a loop you could write by hand: encode the prompt, start from noise, call the U-Net "
     "once per step, decode", "01", ("the loop written out in the lesson gives", "the hand-written loop gives")),
    ("Generation starts from pure noise and removes it step by step", "01",
     ("generation starts from pure Gaussian noise", "the noise level falls at every step")),
    ("The text encoder puts words with similar meaning close together", "02",
     ("a synonym moves the embedding less", "captions' nearest neighbours share their subject")),
    ("CLIP learns to pair images with their captions", "02", ("CLIP pairs each image", "CLIP scores")),
    ("The VAE compresses an image into far fewer numbers without losing what it shows", "03",
     ("the latent holds", "the VAE round trip")),
    ("Similar scenes sit close together and different ones far apart (\u201ca forest at dawn\u201d near \u201ca "
     "forest at dusk\u201d, \u201ca beach\u201d far from \u201ca mountain\u201d)", "03",
     ("in latent space", "in CLIP's image space", "in CLIP's text space")),
    ("Distance in latent space is distance in meaning", "03",
     ("latent distance follows pixel distance", "latent distance is distance in meaning")),
    ("A straight line between two latents is a smooth blend of the two pictures", "03",
     ("a straight latent line looks like a pixel cross-fade",)),
    ("Denoising decides the layout first and the details last", "04",
     ("scenes-sd: coarse before fine: the coarse band's content", "shapes-sd: coarse before fine: the coarse band's "
      "content", "swapped after step 8 of 20: the layout", "where before what")),
    ("A model trained on too little data memorises instead of generalising", "05", ("little data generalises worse",)),
    ("Diffusion models copy their training images", "05",
     ("the model does not copy", "held-out colour x shape pairs are drawn right")),
    ("Each word's cross-attention lands on the thing it names (\u201cfox\u201d on the fox, \u201cleaves\u201d on the "
     "ground)", "06", ("the word \u201cfox\u201d", "the word \u201cleaves\u201d")),
    ("Self-attention lets every position look at every other, and looks far", "06",
     ("self-attention of the ground", "self-attention looks near", "self-attention looks far")),
    ("Low guidance (CFG 1) skips parts of the prompt; a middle scale (7.5) is the sweet spot", "07",
     ("scenes-sd: low CFG skips", "scenes-sd: CFG 7.5 draws", "shapes-sd: low CFG skips", "shapes-sd: CFG 7.5 draws")),
    ("High CFG over-saturates the picture", "07",
     ("scenes-sd: high CFG over-saturates", "scenes-sd: high CFG clips", "shapes-sd: high CFG over-saturates")),
    ("A negative prompt is just the unconditional branch with other words", "08",
     ("the negative prompt is encoded", "\u201c")),
    ("More steps help with diminishing returns: 20 \u2192 40 steps is a visible gain, 40 \u2192 80 rarely is", "09",
     ("scenes-sd: diminishing returns", "scenes-sd: 20 -> 40 steps is a visible gain", "scenes-sd: 40 -> 80 steps",
      "shapes-sd: 20 -> 40 steps is a visible gain", "shapes-sd: 40 -> 80 steps")),
    ("What late steps refine is fine texture (fur, leaves)", "09",
     ("scenes-sd: what 20 -> 40", "scenes-sd: what 40 -> 80")),
    ("Second-order samplers (Heun) are worth their extra network calls", "09",
     ("scenes-sd: Heun wins per U-Net evaluation",)),
    ("DPM++ 2M is the best sampler at few steps", "09", ("scenes-sd: the popular default",)),
    ("A few-step sampler (LCM) needs a model distilled for it", "09", ("scenes-sd: LCM",)),
    ("The same seed with the same settings gives the same picture", "10", ("same seed and settings",)),
    ("A seed fixes the layout, whatever the prompt", "10",
     ("scenes-sd: the same seed keeps the layout", "scenes-sd: the same seed keeps the picture",
      "shapes-sd: the same seed keeps the layout")),
    ("Keeping the seed keeps the lighting, whatever the prompt", "10",
     ("scenes-sd: the same seed keeps the lighting",)),
    ("A model draws best at the size it was trained at; at other sizes it repeats things", "11",
     ("scenes-sd: at 128x128, a size it never saw, it draws the whole", "scenes-sd: at 128x128, a size it never saw, "
      "it draws extra copies", "scenes-sd: at 64x128, a size it never saw, it draws the whole",
      "scenes-sd: at 64x128, a size it never saw, it draws extra copies")),
    ("Off its training size a model still gets the ground and the sky right", "11", ("scenes-sd: ... but keeps",)),
    ("Cost grows with the image size", "11", ("cost grows with resolution", "self-attention pairs grow")),
    ("Transformer denoisers (DiT) improve long-range coherence and prompt adherence over the U-Net", "12",
     ("the DiT",)),
    ("A ControlNet starts as a no-op: its zero convolutions leave the frozen U-Net unchanged until it is trained", "14",
     ("A fresh ControlNet", "Scale 0 gives exactly")),
    ("A ControlNet makes the picture follow a map (edges, segmentation)", "14", ("With the edges ControlNet",)),
    ("The control map overrides the prompt", "14", ("Map vs prompt",)),
    ("Structure is decided early: a ControlNet pushes hardest in the first steps", "14", ("Structure early",)),
    ("GANs are prone to mode collapse", "15", ("Mode collapse",)),
    ("Diffusion is far more diverse than a GAN", "15", ("Diffusion is more diverse",)),
    ("GANs are unstable to train", "15", ("Unstable",)),
    ("What diffusion costs: a GAN draws an image in one network call, far faster", "15", ("The GAN is at least",)),
)

# (lesson, title, what it runs) -- the "what our model shows" half comes from the lesson's exported headline
LESSONS: tuple[tuple[str, str, str], ...] = (
    ("01", "The whole machine in one run", "the denoising loop written out on “a red fox sitting in autumn leaves” "
     "and checked against `pipe(...)`; the two "
     "lanes of text and latents; t, σ and noise level; step explorer"),
    ("02", "Your words become numbers", "“a fox” vs “a red fox sitting in autumn leaves”: tokens, embeddings, the "
     "causal prefix, wording changes, a meaning map, CLIP picture ↔ caption"),
    ("03", "Latent space and the VAE", "compression, the round trip, which things survive it and which the model "
     "draws, “a forest at dawn” / “at dusk” vs “a beach” / “a mountain” in latent and CLIP space, one thing changed, "
     "latent walks"),
    ("04", "Noise in, picture out", "scenes-sd, beside shapes-sd: the forward process on a fox in autumn leaves, the "
     "predicted x0 per step and its power spectrum (when the coarse, middle and fine bands settle), a prompt swapped "
     "part-way, image-to-image; step explorer"),
    ("05", "How the model learned to see", "a tiny U-Net trained live, little vs much data, nearest training images, "
     "held-out colour × shape pairs"),
    ("06", "Inside the U-Net: attention", "scenes-sd: the U shape; where \u201cfox\u201d and \u201cleaves\u201d "
     "look against the judged fox and the world's ground, over 12 prompts; self-attention of the ground against a "
     "uniform map; attention explorer"),
    ("07", "Classifier-free guidance", "scenes-sd, beside shapes-sd: the formula on recorded tensors, the "
     "over-shooting guided x0, where and when the prompt pushes, a CFG sweep of unseen prompts judged image by image"),
    ("08", "Negative prompts", "the negative prompt in the unconditional branch, its push over many seeds"),
    ("09", "Samplers and steps", "scenes-sd (the steps claim beside shapes-sd): Euler, DPM++ 2M, DDIM, Heun, LCM "
     "against a many-step reference, per step and per U-Net call, coarse vs fine detail, the judge's reading; "
     "samplers × steps explorer"),
    ("10", "Seeds and reproducibility", "scenes-sd, beside shapes-sd: same seed same bits; subject centre, coarse "
     "layout and lighting across prompts per seed; slerp"),
    ("11", "Resolution, aspect ratio and memory", "scenes-sd: latent positions and attention pairs from the config, "
     "time and memory per size, 128×128 and wide 64×128 read by the judge"),
    ("12", "Model families", "our own DiT (`shapes-dit`) beside the U-Net: parameters, patches as tokens, joint "
     "attention both ways, traced; the claim judged on 500 prompts"),
    ("13", "Your turn: a playground", "scenes-sd: the playground on the fox; challenges measured over 12 seeds (one "
     "thing vs two, CFG 1 vs 7.5, what a seed keeps, night vs day)"),
    ("14", "ControlNet: structure from a map", "our edge ControlNet: the copied encoder, zero convolutions, the map "
     "against the prompt, residuals per step, training curve"),
    ("15", "Why diffusion won (and what it cost)", "a text-conditional GAN on the same world: combos drawn, PRDC, "
     "speed, three training seeds"),
)

START, END = "<!-- lessons:start (generated by python -m explainer.experiments.claims) -->", "<!-- lessons:end -->"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _judged(rec: dict, starts: tuple[str, ...]) -> str:
    hits = [v for v in rec["verdicts"] if v["claim"].startswith(starts)]
    if not hits:
        raise KeyError(f"lesson {rec['lesson']} exports no verdict starting with {starts}")
    return "; ".join(f"**{v['status']}**: {v['claim']} ({v['numbers']}; n = {v['n']})" for v in hits)


def render_claims(directory: Path | str | None = None) -> str:
    """docs/claims.md from the lessons' exported findings."""
    recs: dict[str, dict] = {}
    rows = []
    for i, (claim, lesson, starts) in enumerate(CLAIMS, 1):
        rec = recs.setdefault(lesson, load(lesson, directory))
        rows.append(f"| {i} | {_cell(claim)} | {lesson} | {_cell(_judged(rec, starts))} |")
    head = [
        "# Claims the lessons test", "",
        "Things people often say about text-to-image diffusion, in our own words, each with the lesson that puts it to "
        "the test and what our model measured. This file is generated (`python -m explainer.experiments.claims`) from "
        "the findings each lesson exports to `docs/findings/NN.json`; the notebook test re-runs every lesson and fails "
        "when its findings drift from the committed ones, and the lesson tests assert on those files.", "",
        "A verdict is about *our* small models, not about every diffusion model. Every interval is a 95 % interval "
        "that resamples the unit that was drawn (prompts, seeds); \"within noise\" means the interval cannot tell, and "
        "\"too few to tell\" means fewer than 8 units (or a handful of training runs), where no interval is given.",
        "", "| # | Claim | Lesson | What our model measured |", "|---|---|---|---|"]
    return "\n".join(head + rows) + "\n"


def render_lesson_rows(directory: Path | str | None = None) -> str:
    """The README's lesson table, between its START and END markers."""
    lines = [START, "| # | lesson | what it runs | what our model shows (generated from the lesson's numbers) |",
             "|---|---|---|---|"]
    for lesson, title, runs in LESSONS:
        lines.append(f"| {int(lesson)} | {title} | {_cell(runs)} | {_cell(load(lesson, directory)['headline'])} |")
    return "\n".join(lines + [END])


def readme_with_rows(readme: str, rows: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError("README.md has no generated lesson table (markers missing)")
    return readme[:readme.index(START)] + rows + readme[readme.index(END) + len(END):]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    claims_path, readme_path = REPO / "docs" / "claims.md", REPO / "README.md"
    claims = render_claims(COMMITTED)
    readme = readme_with_rows(readme_path.read_text(), render_lesson_rows(COMMITTED))
    if "--check" in argv:
        stale = [p.name for p, text in ((claims_path, claims), (readme_path, readme)) if p.read_text() != text]
        print("stale: " + ", ".join(stale) if stale else "docs/claims.md and the README's lesson table are current")
        return 1 if stale else 0
    claims_path.write_text(claims)
    readme_path.write_text(readme)
    print(f"wrote {claims_path} and the lesson table of {readme_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
