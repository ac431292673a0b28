# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Classifier-free guidance: what the CFG slider really computes
#
# **You will learn**
# - that every denoising step runs the U-Net twice, once with your prompt and once without, and how the two
#   predictions are mixed (the formula, checked on real numbers);
# - where in the picture and when in the process the prompt pushes hardest;
# - what too little and too much guidance do to our model, measured with a judge instead of by eye.
#
# **The whole lesson in one picture**
# ```
#  x_t (noisy latents) ──► U-Net( x_t, t, "your prompt" ) ──► ε_cond   ─┐
#                     └──► U-Net( x_t, t, ""            ) ──► ε_uncond ─┴─► ε = ε_uncond + s · (ε_cond − ε_uncond)
#                                                                                   │   s = the CFG scale
#                                                                      sampler step ◄┘
# ```
#
# **Claim under test** (CLAIMS.md #11): *CFG: prediction = uncond + scale · (cond − uncond); a low scale skips parts
# of the prompt, a middle scale is the sweet spot, a high scale over-saturates and adds artefacts.*

# %% [markdown]
# ## Words first
# - **Latents**: the small grid of numbers the model actually denoises (ours: 4 channels × 8 × 8); the VAE decoder
#   turns them into the 32×32 picture at the end.
# - **Step / timestep**: generation starts from pure noise and removes a bit of it in each of N steps; the timestep
#   says how noisy the latents still are.
# - **Noise prediction ε**: at each step the U-Net looks at the noisy latents and guesses the noise in them. The
#   sampler subtracts (part of) that guess.
# - **Conditional / unconditional**: the guess made while reading your prompt (ε_cond) and the guess made while
#   reading the empty prompt "" (ε_uncond).
# - **CFG** (classifier-free guidance) and its **scale s**: the two guesses are mixed as
#   ε_uncond + s · (ε_cond − ε_uncond). s = 1 is the plain conditional guess; s > 1 goes *further* in the direction
#   the prompt pointed. The difference ε_cond − ε_uncond is the **CFG delta**.

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import guidance
from explainer.trace import trace

pipe = ex.load_pipeline()

# %% [markdown]
# ## 1. The formula on real tensors
# `trace` runs the pipeline once and records, at every step, both U-Net predictions and the mixed one the sampler
# actually used. We mix them again ourselves and compare.

# %%
tr = trace(pipe, "a red circle left of a blue square", seed=0, steps=25, cfg=7.5)
check = guidance.check_formula(tr)
print(f"largest |uncond + 7.5*(cond - uncond) - guided| over {check.steps} steps: {check.max_abs_error:.2e}"
      f"  (values themselves reach {check.max_abs_guided:.2f})")

# %% [markdown]
# The difference is at the level of float rounding: the pipeline does exactly this arithmetic, nothing more.
# Here are the two predictions, the mix, and the delta at one step, with the clean image each prediction implies
# (bottom row). The unconditional branch alone draws *something* plausible; the prompt's branch draws the prompt;
# the guided one exaggerates the difference.

# %%
plots.plot_cfg_branches(tr, step=8, pipe=pipe)

# %% [markdown]
# ## 2. When and where does the prompt push?
# The size of the delta at each step (left), and relative to the unconditional prediction (right):

# %%
plots.plot_cfg_delta_norm(tr)

# %%
print(f"the delta is largest at step {check.peak_step + 1} of {check.steps}; "
      f"{100 * check.first_half_share:.0f}% of its total size falls in the first half of the steps")

# %% [markdown]
# And where: the delta's size at each latent position. Compare with where the objects end up.

# %%
plots.plot_cfg_delta_maps(tr, n=5)

# %%
print(f"the objects cover {100 * check.footprint_share:.0f}% of the image, "
      f"but receive {100 * check.inside_share:.0f}% of the delta (summed over all steps)")

# %% [markdown]
# So the prompt pushes hardest on the places where the objects will be — more than their share of the area —
# and, in our runs, mostly in the noisy early part of the process when the layout is being decided (lesson 4).

# %% [markdown]
# ## 3. The CFG sweep
# Six two-object prompts × 2 seeds, each at CFG 1, 3, 7.5, 12 and 20 (60 images, ~20 s on 2 CPU cores).
# Every image is read by the **judge** (`explainer.judge`), a small program that finds the shapes and their colours,
# and compared with the prompt. We also measure the **saturation** (how colourful the pixels are, 0 = grey, 1 = pure
# colour) and the share of colour values **clipped** at 0 or 255 (pushed out of range).

# %%
sweep = guidance.cfg_sweep(pipe)
print(sweep.table())

# %%
sweep.plot()

# %%
sweep.figure(n_rows=4)

# %%
for line in guidance.verdicts(sweep):
    print(line)

# %% [markdown]
# **What our small model says.** The printout above is the answer, measured: read it against the claim.
# CFG 1 means "no guidance": the prompt still steers the U-Net through cross-attention, but nothing amplifies it,
# and our model then often leaves out one of the two objects or gets a colour wrong. A few times the prompt's
# strength fixes that. Whether very high CFG "over-saturates" depends on the model: our shapes are flat, fully
# saturated colours on dark backgrounds, so there is little room to become *more* colourful; look at the clipped
# values and the extra-object count for what too much guidance does here instead.

# %% [markdown]
# ## Try it
# - Trace a one-object prompt (`"a small green star at the top"`) and run `plots.plot_cfg_delta_maps` on it: does the
#   delta sit where the star ends up?
# - Make your own sweep: `guidance.cfg_sweep(pipe, prompts=["a white cross below a red square"], seeds=[0, 1, 2, 3],
#   scales=[1, 2, 4, 8, 16])`.
# - Try a scale below 1, e.g. `trace(pipe, ..., cfg=0.5)`: the pipeline then skips the unconditional pass entirely
#   (look at `tr.has_uncond`).

# %% [markdown]
# ## Check yourself
# 1. With CFG scale 1, what is the guided prediction equal to?
# 2. Why does guidance make every step cost two U-Net evaluations, and how do pipelines usually pay for it?
# 3. If the delta is near zero at a step, does the CFG scale matter at that step?
#
# <details><summary>Answer</summary>
#
# 1. ε_uncond + 1 · (ε_cond − ε_uncond) = ε_cond: just the conditional prediction. That is why diffusers skips the
#    unconditional pass entirely when the scale is ≤ 1.
# 2. It needs one prediction with the prompt and one without, at the same latents and timestep. Pipelines put both
#    in one batch of two, so it is one call of twice the size (about twice the compute).
# 3. Hardly: the scale multiplies the delta, and a tiny delta stays tiny. The scale matters most where and when the
#    prompt and the empty prompt disagree.
#
# </details>
