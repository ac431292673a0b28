# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. Seeds and reproducibility: what a seed decides
#
# **You will learn**
# - what a seed is, and that the same seed with the same settings gives the same image, bit for bit (checked);
# - how much of the picture the seed decides: does the layout stay when you change the prompt? (measured);
# - to browse seeds with a grid, and to walk smoothly from one seed's picture to another's (slerp).
#
# **The whole lesson in one picture**
# ```
#  seed 42 ──► random generator ──► starting noise (4×8×8 numbers) ──► denoising, steered by the prompt ──► image
#  same seed = same noise = same start. Everything after it is deterministic arithmetic.
# ```
#
# **Claim under test** (popular claim #13): *The same seed with the same settings gives the same image; keeping the seed
# while changing the prompt keeps layout and lighting.*

# %% [markdown]
# ## Words first
# - **Seed**: a whole number that starts the pseudo-random number generator. The generator then produces the
#   starting noise: the random latents that denoising begins from.
# - **Deterministic**: the same inputs always give the same outputs. The pipeline is deterministic *given* the
#   noise; on one machine, with the same library versions and thread count, even the last bit repeats. (Across
#   different hardware, tiny rounding differences can appear.)
# - **Layout**: where things are in the picture. Here we measure it with the object's **foreground mask** (pixels
#   that are not background) and its centre.

# %%
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import seeds
from explainer.sweeps import grid, interpolate_seeds

pipe = ex.load_pipeline()

# %% [markdown]
# ## 1. Same seed, same settings: the same bits?
# Two separate pipeline calls with seed 0, and one with seed 1.

# %%
rep, images = seeds.reproducibility(pipe, prompt="a red circle left of a blue square", seed=0, other_seed=1)
print(f"seed 0 twice: identical bytes = {rep.identical} (largest pixel difference {rep.max_pixel_difference})")
print(f"the starting noise drawn twice from seed 0 is identical: {rep.noise_identical}")
print(f"seed 0 vs seed 1: different = {rep.other_seed_differs} "
      f"(mean pixel difference {rep.other_seed_mean_difference:.1f} of 255)")

# %% [markdown]
# ## 2. Same seed, changed prompt: does the layout stay?
# Prompts with no position word ("a large red circle", "a large blue square", "a small green star") leave the
# *where* to the seed. Each prompt with seeds 0–7 (24 images). Columns share a seed:

# %%
layout = seeds.layout_study(pipe)
plots.plot_layout(layout)

# %% [markdown]
# We compare every pair of images from *different* prompts: is their layout more alike when they share a seed?
# **IoU** (intersection over union) of two masks is the overlap divided by the combined area: 1 = the same pixels,
# 0 = no overlap.

# %%
print(f"foreground IoU   : same seed {layout.same_seed_iou:.2f}  vs different seeds {layout.other_seed_iou:.2f}")
print(f"centre distance  : same seed {layout.same_seed_shift:.1f} px "
      f"vs different seeds {layout.other_seed_shift:.1f} px")
print(f"same judged position word: same seed {100 * layout.same_seed_position:.0f}%  vs different seeds "
      f"{100 * layout.other_seed_position:.0f}%")

# %%
from explainer.experiments import summaries  # noqa: E402

v10 = summaries.lesson10(rep, layout, seeds.noise_norms(0, 1))
same_by_seed, other_by_seed = summaries.layout_by_seed(layout)
keeps = summaries.reading(v10, "the same seed keeps")
summaries.say(
    f"**What our small model says.** Averaged per seed (the seed is what was drawn: {len(layout.seeds)} of them), the "
    f"same seed gives a foreground overlap of {np.mean(same_by_seed):.2f} across prompts, other seeds "
    f"{np.mean(other_by_seed):.2f}; that sharing a seed keeps the layout, the sample {keeps}"
    + (". So on our model we cannot say the seed keeps the layout — nor that it does not." if "tell" in keeps else
       "." if keeps == "agrees" else ".")
    + " In large models the seed is widely reported to keep the composition; ours decides *where* within the first "
      "few steps (lesson 4), when the prompt's push is strongest (lesson 7), so the words can override what the noise "
      "suggested. Either way it is a tendency to measure, not a law (lesson 13 asks you to look for a seed where the "
      "layout flips), and \"lighting\" has no meaning in our flat shapes world, so we cannot test that half of the "
      "claim.")

# %% [markdown]
# ## 3. A seed grid
# `grid` makes one image per setting; here seeds 0–5 at two CFG scales. Browsing seeds like this is how people pick
# a composition before refining the prompt.

# %%
g = grid(pipe, "a yellow star above a green square", seeds=[0, 1, 2, 3, 4, 5], cfgs=[3, 7.5])
plots.plot_grid(g)

# %% [markdown]
# ## 4. Walking between two seeds: slerp
# Seeds are not "near" each other: seed 1 is as unrelated to seed 0 as seed 999. To move smoothly from one
# picture to another we blend the two starting noises. A straight average would shrink the noise (two independent
# random vectors partly cancel), and the model has never seen noise that weak. **Slerp** (spherical linear
# interpolation) moves along the arc between them and keeps the size right:

# %%
norms = seeds.noise_norms(0, 1)
print({k: round(v, 2) for k, v in norms.items()})

# %%
plots.plot_interpolation(interpolate_seeds(pipe, "a large red circle", seed_a=0, seed_b=1, frames=7))

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
v10 = summaries.lesson10(rep, layout, norms)
summaries.export("10", v10, headline=(
    f"same seed and settings: largest pixel difference {rep.max_pixel_difference}; same-seed layout overlap "
    f"{np.mean(same_by_seed):.2f} vs other seeds {np.mean(other_by_seed):.2f} over {len(layout.seeds)} seeds "
    f"({summaries.reading(v10, 'the same seed keeps')}); slerp keeps the noise's size "
    f"({norms['slerp_midpoint']:.1f} vs {norms['lerp_midpoint']:.1f} for a straight mix)"), numbers={
    "max_pixel_difference": rep.max_pixel_difference, "same_iou": same_by_seed, "other_iou": other_by_seed,
    "position_same": layout.same_seed_position, "position_other": layout.other_seed_position, "norms": norms})
ex.verdict_table(v10, title="Lesson 10: seeds")

# %% [markdown]
# ## Try it
# - Change the number of steps, or the sampler (`generate(pipe, prompt, seed=0, scheduler="euler")`): is the image
#   still the same? (The seed fixes the *noise*, not the picture.)
# - Make your own layout study with two-object prompts:
#   `seeds.layout_study(pipe, prompts=["a red circle left of a blue square", "a green star left of a white cross"])`.
# - Interpolate between seeds where the object is on opposite sides: where in the walk does it jump?

# %% [markdown]
# ## Check yourself
# 1. You share a prompt and a seed with a friend, but they get a different image. Name two settings that may differ.
# 2. Why does a straight-line blend of two noises make washed-out images?
# 3. What does a seed decide, and what does it not?
#
# <details><summary>Answer</summary>
#
# 1. Any of: step count, sampler, CFG scale, image size (it changes the noise's shape), negative prompt, model
#    version, or the device/dtype (fp16 on a GPU rounds differently).
# 2. The midpoint of two independent Gaussian noises has about 0.71× their size, so it looks like *less noisy* latents
#    at a very noisy timestep; the model removes "too little" noise and the image comes out flat. Slerp keeps the size.
# 3. It decides the starting noise, and through it where blobs of colour start to form. It does not decide what the
#    prompt asks for; with a different prompt the same seed may keep the layout — in large models often; in ours,
#    section 2 measured whether 8 seeds can tell.
#
# </details>
