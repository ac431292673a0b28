# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 4 — Noise in, picture out
#
# **You will learn**
# - the *forward process*: how training turns a picture into noise, a little at a time, and the *schedule* that says
#   how much noise each timestep holds;
# - the *reverse process*: what the sampler does at every step, and what the U-Net's guess of the finished picture
#   (the *predicted x₀*) looks like along the way;
# - how to measure whether layout comes before detail: with the picture's frequency spectrum, step by step, and with
#   two causal tests (a prompt swapped part-way, and image-to-image).
#
# **The picture to keep in mind**
# ```
# forward (training):   x₀ (picture) ──add a little noise──► x₁ ──► … ──► x₉₉₉ (pure noise)
# reverse (generating): x_T (noise)  ──U-Net: "this much is noise" ──► remove some ──► … ──► x₀ ──VAE──► image
# ```
#
# **Claim tested** (#4): *Generation starts from pure noise and removes it step by step; structure (composition) appears
# first, fine detail later.*
#
# **Which model, and why.** This lesson runs on `scenes-sd`, our model of real things (foxes, trees, houses) on
# textured grounds (autumn leaves, snow, grass) under the light of dawn, day, dusk or night. "Detail" needs something
# to refine: fur, leaves, the grain of snow. The old shapes model (`shapes-sd`) draws flat shapes on a flat
# background, whose only fine detail is a shape's outline; it is measured beside scenes-sd in the spectrum section,
# and the lesson says from the numbers which model agrees with the claim.

# %%
import textwrap

import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import scenes_denoising as sd
from explainer.experiments import summaries
from explainer.experiments.scenes_eval import ARTICLE_PROMPTS
from explainer.experiments.scenes_pictures import foxes_in_leaves, render_all

pipe = ex.load_pipeline("scenes-sd")  # the scenes model: real things, 64x64
PROMPT = "a red fox sitting in autumn leaves"
print(f"the U-Net works on latents of {pipe.unet.config.in_channels} channels x {pipe.unet.config.sample_size} x "
      f"{pipe.unet.config.sample_size}; the VAE turns them into {pipe.unet.config.sample_size * pipe.vae_scale_factor}"
      f" x {pipe.unet.config.sample_size * pipe.vae_scale_factor} pixels")

# %% [markdown]
# ## The forward process
# Training needs noisy pictures with a known amount of noise. The **forward process** makes them: at **timestep** t
# (0 … 999) the noisy latent is
#
# x_t = √ā_t · x₀ + √(1 − ā_t) · ε,
#
# where x₀ is the clean latent, ε is Gaussian noise, and ā_t ("alpha bar") falls from 1 (no noise) to almost 0 (pure
# noise) as t grows. The list of ā_t values is the **noise schedule**. Below: a red fox in autumn leaves from the
# scenes world at growing t, with noise added to the pixels (top), and — what the model really sees — to the VAE
# latents, decoded (bottom). Watch which part of the picture goes first as the noise grows: the leaves' fine texture,
# or the large masses (the fox's blob, the ground, the sky)?

# %%
plots.plot_forward_process(pipe, image=render_all(foxes_in_leaves(1))[0])

# %% [markdown]
# ## The schedule, as the sampler walks it
# Generating runs the process backwards in far fewer steps than 1000: the **sampler** (scheduler) picks which noise
# levels to visit. Every sampler below walks the same training schedule, from pure noise (left) to clean (right), but
# spaces its steps differently.

# %%
plots.plot_noise_schedules(pipe, steps=20)

# %% [markdown]
# ## The reverse process, step by step
# At each step the U-Net predicts the noise ε in the current latent x_t. Subtract it (scaled by the schedule) and you
# get the U-Net's current guess of the clean latent, the **predicted x₀**. The sampler does not jump there; it moves
# x_t a little towards it and asks again at the next, less noisy, step.
#
# We trace the article's prompts (the fox, "a forest at dusk" and the others), each with two seeds, 20 steps, and
# decode every step's predicted x₀ (the trace records it: `tr.steps[i].x0`). Rows of the filmstrip: the latent going
# in, the predicted noise, and the predicted x₀ decoded by the VAE.

# %%
st = sd.spectrum_study(pipe, ARTICLE_PROMPTS, seeds=(0, 1), steps=20)
fox = st.prompts.index(PROMPT)
plots.plot_filmstrip(st.traces[fox], n=7)

# %%
shown = np.linspace(0, st.steps - 1, 8).round().astype(int)
runs = [fox, fox + 1, st.prompts.index("a forest at dusk")]
plots.plot_images([st.frames[r, shown] for r in runs], f"Predicted x0, decoded, at {len(shown)} of the {st.steps} "
                  f"steps (CFG {st.traces[fox].settings['cfg']:g})", row_labels=[textwrap.fill(f"{st.prompts[r]} (seed\u00a0{st.seeds[r]})", 18) for r in runs],
                  col_titles=[f"step {s + 1}" for s in shown])

# %% [markdown]
# ## Measuring "structure first, detail later": the spectrum
# A picture can be written as a sum of waves (its Fourier transform, `numpy.fft.fft2`). Long waves make the layout —
# where the light and dark masses are; short waves make the detail — edges, fur, leaves. Squaring each wave's size
# gives the **power spectrum**; averaging it over rings of equal frequency gives the *radially averaged* spectrum
# (left panel below). We split it into three bands, by wavelength: **coarse** (waves 16 px and longer: the scale of
# the latent grid), **middle** (4 to 16 px) and **fine** (shorter than 4 px).
#
# For each band and each step of each run we ask two things about the predicted x₀:
# 1. **Power**: from which step does the band's power stay within 10 % of its final value? (Is there *as much* coarse
#    structure, or fine detail, as in the end?)
# 2. **Content**: from which step does the band's error to the final picture stay below 10 % of the final band's
#    power? (Is it *the same* structure or detail as in the end?)
#
# The prompt is the unit: the two seeds of a prompt are not two independent pieces of evidence, so the intervals
# resample prompts.

# %%
plots.plot_spectrum_steps(st, run=fox)

# %%
print(st.table())
shapes = ex.load_pipeline()  # the old shapes model, measured the same way
sh = sd.spectrum_study(shapes, sd.shapes_prompts(8), seeds=(0, 1), steps=20, model="shapes-sd")
print(sh.table())

# %%
plots.plot_settle_steps([st, sh])

# %%
spectrum = sd.spectrum_verdicts(st) + sd.spectrum_verdicts(sh)
ex.verdict_table(spectrum, title="Coarse before fine: when each band of the predicted picture settles")

# %% [markdown]
# **Reading the table.** Every sentence below is written from the numbers above when the cell runs:

# %%
POWER, CONTENT = "coarse before fine: the coarse band's power", "coarse before fine: the coarse band's content"
read = {(m, w): summaries.reading(spectrum, f"{m}: {start}") for m in ("scenes-sd", "shapes-sd")
        for w, start in (("power", POWER), ("content", CONTENT))}
agree = [m for m in ("scenes-sd", "shapes-sd") if read[(m, "content")] == "agrees"]


def settles(s, what, band):
    return np.mean(s.settle(what)[band])


summaries.say(
    "\n".join(f"- **{s.model}** ({s.units} prompts x {len(set(s.seeds))} seeds): the coarse band's content is final "
              f"(within {s.tol:.0%}) from step {settles(s, 'error', 'coarse'):.1f} on average, the middle band's from "
              f"step {settles(s, 'error', 'middle'):.1f}, the fine band's from step {settles(s, 'error', 'fine'):.1f} "
              f"of {s.steps}; that the coarse content settles first, the sample {read[(s.model, 'content')]}. The "
              f"band *powers* settle at steps {settles(s, 'power', 'coarse'):.1f} (coarse) and "
              f"{settles(s, 'power', 'fine'):.1f} (fine); coarse first, the sample {read[(s.model, 'power')]}."
              for s in (st, sh))
    + f"\n\n**Which model agrees with the article** that coarse structure is settled before fine detail: "
    f"{' and '.join(agree) or 'neither model'}"
    + ("; the shapes model alone could not say so." if agree == ["scenes-sd"] else ".")
    + " Power and content are different questions: a band can hold as much detail as the final picture "
    "(its power settled) while that detail is still being redrawn (its content not yet settled).")

# %%
first = st.relative_power[:, 0].mean(0)  # each band's power at step 1, as a share of its final power (mean of runs)
fine, coarse = first[sd.BANDS.index("fine")], first[sd.BANDS.index("coarse")]
summaries.say(
    f"At step 1 the predicted x₀ of {st.model} holds {fine:.0%} of its final fine-band power and {coarse:.0%} of its "
    "coarse-band power: " + ("its fine detail lags its coarse structure, and there is a reason. " if fine < coarse
                            else "here its fine detail does not lag its coarse structure. ")
    + "At the first steps the U-Net cannot yet tell which of many possible pictures the noise will become, so it "
    "predicts their mean, and a mean of many pictures keeps their common layout but averages their detail away.")

# %% [markdown]
# ## Explore it yourself: the step explorer
# Drag the step slider: the latent going in, the predicted noise, where CFG pushes, and the predicted x₀ at that
# step. (Without a browser, e.g. in a test, the explorer is built and shows step 1; nothing waits for you.)

# %%
from explainer import widgets  # noqa: E402

widgets.step_explorer(st.traces[fox], step=0)

# %% [markdown]
# ## An experiment: change the prompt half-way
# The spectrum shows *when* each band settles; it does not show that the early steps *decide* the layout. A causal
# test does: if the layout is decided in the first steps, a prompt changed *after* them should keep the old layout.
# Prompt A is a red fox in autumn leaves, on one side of the picture, under one sky; prompt B is another animal on
# the other side, on another ground, under another sky. Generate with A for the first k of 20 steps and with B for
# the rest (the pipeline's step callback swaps the text embeddings), and ask what the final picture follows:
# - its **layout**: are its light and dark masses (brightness over 8 × 8 blocks) nearer A's own picture or B's own
#   picture of the same seed? (no judge needed)
# - its **ground**, **sky** and **thing**, as the scenes judge reads them: A's or B's?
#
# k = 0 is prompt B throughout; k = 20 is A throughout.

# %%
swap = sd.swap_study(pipe, n=8, steps=20)
print(swap.table())

# %%
plots.plot_images([swap.images[k][:5] for k in swap.ks], f"Prompt A for the first k of {swap.steps} steps, then "
                  "prompt B", row_labels=[f"k = {k}" for k in swap.ks],
                  col_titles=[f"A: {a.things[0].name}, {a.position}, {a.ground}, {a.sky}\nB: {b.things[0].name}, "
                              f"{b.position}, {b.ground}, {b.sky}" for a, b in swap.scenes[:5]], cell=1.9)

# %%
EARLY, MID = 4, 8
swap_verdicts = sd.swap_verdicts(swap, (EARLY, MID))
ex.verdict_table(swap_verdicts, title="Swapping the prompt part-way")

# %%
kl = swap.first_k("layout")
b_thing = swap.share(0, "thing", "B")
summaries.say(
    f"Read the table from k = 0 down. The layout follows prompt A from k = {kl} of {swap.steps} on (at least half "
    f"of the {len(swap.pairs)} pairs at every later k); the ground from k = {swap.first_k('ground')}, the sky from "
    f"k = {swap.first_k('sky')}, the thing from k = {swap.first_k('thing')}. After a swap at step {MID} the layout "
    f"stays A's in {swap.share(MID, 'layout'):.0%} of the pairs (the sample "
    f"{summaries.reading(swap_verdicts, f'swapped after step {MID} of {swap.steps}: the layout')}); after a swap at "
    f"step {EARLY}, in {swap.share(EARLY, 'layout'):.0%} (the sample "
    f"{summaries.reading(swap_verdicts, f'swapped after step {EARLY} of {swap.steps}: the layout')}). "
    + (f"So the layout is committed between steps {EARLY} and {MID} of {swap.steps}: the first steps are pure noise "
       "being shaped, and whatever prompt steers them lays the picture out. "
       if swap.share(MID, "layout") >= 0.5 > swap.share(EARLY, "layout") else "")
    + f"Whether the *thing* is still open after the layout is set is harder to see on our model: even B's own "
    f"pictures (k = 0) show B's animal, as the judge reads it, in only {b_thing:.0%} of the pairs, and that the layout "
    f"is committed before the thing, the sample "
    f"{summaries.reading(swap_verdicts, 'where before what')}.")

# %% [markdown]
# ## Forward and reverse in one picture: image-to-image
# Image-to-image runs the two processes back to back. Take a finished picture, run the **forward** process part of
# the way (encode it, add noise up to a fraction of the schedule, the *strength*), then run the **reverse** process
# from there with a new prompt B. Strength 0.2 sends the picture back only 20 % of the way — a light veil of noise,
# 4 of 20 steps left to run; strength 1.0 sends it all the way to pure noise, and the source is forgotten. The source
# pictures are prompt A's from the swap (the fox), the new prompt is each pair's B, and we ask the same questions:
# is the layout still the source's, and whose thing, ground and sky does the result show? (diffusers'
# `StableDiffusionImg2ImgPipeline`, built from our pipeline's parts.)

# %%
i2i = sd.i2i_study(pipe, swap, strengths=(0.2, 0.4, 0.6, 0.8, 1.0))
print(i2i.table())

# %%
k = 0  # which of the pairs to show
plots.plot_images([[i2i.sources[k]] + [i2i.noised[s][k] for s in i2i.strengths],
                   [i2i.sources[k]] + [i2i.results[s][k] for s in i2i.strengths]],
                  f"Image-to-image: \u201c{i2i.pairs[k][0]}\u201d pushed towards \u201c{i2i.pairs[k][1]}\u201d",
                  row_labels=["forward:\nnoised start", "reverse:\nresult (prompt B)"],
                  col_titles=["source"] + [f"strength {s:g}" for s in i2i.strengths])

# %% [markdown]
# **A strength slider.** The same pictures behind a slider (all strengths were computed above, so the slider only
# switches pictures; without a browser it shows strength 0.6).

# %%
import ipywidgets as W  # noqa: E402
from PIL import Image  # noqa: E402


def _png(im, px=192):
    import io

    buf = io.BytesIO()
    Image.fromarray(im).resize((px, px), Image.Resampling.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


strength = W.SelectionSlider(options=i2i.strengths, value=0.6, description="strength")
panels = [W.Image(format="png") for _ in range(3)]
caption = W.HTML()


def show_strength(_=None):
    s = strength.value
    for p, im in zip(panels, (i2i.sources[k], i2i.noised[s][k], i2i.results[s][k]), strict=True):
        p.value = _png(im)
    caption.value = (f"<b>source</b> → <b>noised to strength {s:g}</b> (forward) → <b>denoised with prompt B</b> "
                     f"for {i2i.denoise_steps[s]} of {i2i.steps} steps (reverse)")


strength.observe(show_strength, "value")
show_strength()
W.VBox([strength, W.HBox(panels), caption])

# %%
i2i_verdicts = sd.i2i_verdicts(i2i)
ex.verdict_table(i2i_verdicts, title="Image-to-image: strength decides how much is kept")

# %%
lo, hi = min(i2i.strengths), max(i2i.strengths)
kept = summaries.reading(i2i_verdicts, f"at strength {lo:g} the picture keeps the source's layout")
summaries.say(
    "Strength is the noise level (lesson 1's σ) the picture is sent back to. Read the table with the swap in mind: at "
    "low strength only the last steps run, so the layout of the source survives; at high strength the early, "
    f"layout-deciding steps run again with prompt B. At strength {lo:g} the source's layout is kept in "
    f"{i2i.share(lo, 'layout'):.0%} of the pictures (the sample "
    f"{kept}); at strength {hi:g} in "
    f"{i2i.share(hi, 'layout'):.0%}, its ground is B's in {i2i.share(hi, 'ground', 'B'):.0%} and its sky B's in "
    f"{i2i.share(hi, 'sky', 'B'):.0%}. The thing is B's in {i2i.share(hi, 'thing', 'B'):.0%} at strength {hi:g} "
    f"against {i2i.share(lo, 'thing', 'B'):.0%} at {lo:g} (more strength, more of B: the sample "
    f"{summaries.reading(i2i_verdicts, 'more strength, more of prompt B')}).")

# %% [markdown]
# ## The findings
# Exported for the docs: the spectrum verdicts of both models, the swap and image-to-image verdicts, and the numbers
# behind them.

# %%
cs, fs = np.mean(st.settle("error")["coarse"]), np.mean(st.settle("error")["fine"])
findings = summaries.export("04", spectrum + swap_verdicts + i2i_verdicts, headline=(
    f"scenes-sd ({st.units} prompts x {len(set(st.seeds))} seeds): the predicted picture's coarse band is final from "
    f"step {cs:.1f}, its fine band from step {fs:.1f} of {st.steps} (coarse first: {read[('scenes-sd', 'content')]}; "
    f"shapes-sd: {read[('shapes-sd', 'content')]}); a prompt swapped part-way keeps the first prompt's layout from "
    f"k = {swap.first_k('layout')} of {swap.steps} steps ({len(swap.pairs)} prompt pairs)"), numbers={
    "band_edges": sd.BAND_EDGES, "tol": st.tol,
    "spectrum": {s.model: {"prompts": s.prompts, "seeds": s.seeds, "steps": s.steps, "power_settle": s.settle("power"),
                           "content_settle": s.settle("error")} for s in (st, sh)},
    "swap": {"pairs": swap.pairs, "ks": swap.ks, "steps": swap.steps,
             "share_a": {k: {a: swap.share(k, a) for a in sd.ATTRS} for k in swap.ks},
             "share_b": {k: {a: swap.share(k, a, "B") for a in sd.ATTRS} for k in swap.ks},
             "first_k": {a: swap.first_k(a) for a in sd.ATTRS}},
    "i2i": {"strengths": i2i.strengths, "unet_calls": i2i.denoise_steps,
            "kept": {s: {a: i2i.share(s, a) for a in sd.ATTRS} for s in i2i.strengths},
            "from_b": {s: {a: i2i.share(s, a, "B") for a in sd.ATTRS} for s in i2i.strengths}}})
print(findings["headline"])

# %% [markdown]
# ## Try it
# - `sd.spectrum_study(pipe, ["a forest at dawn"], seeds=range(8), steps=10)`: with fewer steps, does the order of the
#   bands change?
# - `plots.plot_spectrum_steps(st, run=st.prompts.index("a beach"))`: a picture with little texture. Which band
#   carries most of its power?
# - `plots.plot_filmstrip(st.traces[fox], n=7, rows=("latents", "noise_guided", "latents_next"))`: the latent before
#   and after each step.
#
# ## Check yourself
# 1. At t = 999, ā_t ≈ 0.005. What share of x_t is the picture, roughly?
# 2. Why is the predicted x₀ at the first step a blur rather than a sharp wrong picture?
# 3. Before running the swap experiment: what did you expect a prompt swap after step 4 to keep, and what to change?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. √0.005 ≈ 0.07 of the picture against √0.995 ≈ 1.0 of noise: almost nothing.
# 2. The U-Net is trained to minimise the squared error; when many clean pictures fit the noisy input, the best guess
#    under that loss is their average, and an average of many pictures is blurry: it has their common long waves and
#    no short ones. That is what the spectrum shows at the first steps.
# 3. The swap table above answers it on our model, k by k: which steps had already laid the picture out, and what
#    could still change after them. Lesson 6 takes the text away entirely after k steps.
#
# </details>
