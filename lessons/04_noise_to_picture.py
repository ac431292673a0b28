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
# - how to measure whether layout comes before detail.
#
# **The picture to keep in mind**
# ```
# forward (training):   x₀ (picture) ──add a little noise──► x₁ ──► … ──► x₉₉₉ (pure noise)
# reverse (generating): x_T (noise)  ──U-Net: "this much is noise" ──► remove some ──► … ──► x₀ ──VAE──► image
# ```
#
# **Claim tested** (#4): *Generation starts from pure noise and removes it step by step; structure (composition) appears
# first, fine detail later.*

# %%
import textwrap

import matplotlib.pyplot as plt
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import denoising

pipe = ex.load_pipeline()

# %% [markdown]
# ## The forward process
# Training needs noisy pictures with a known amount of noise. The **forward process** makes them: at **timestep** t
# (0 … 999) the noisy latent is
#
# x_t = √ā_t · x₀ + √(1 − ā_t) · ε,
#
# where x₀ is the clean latent, ε is Gaussian noise, and ā_t ("alpha bar") falls from 1 (no noise) to almost 0 (pure
# noise) as t grows. The list of ā_t values is the **noise schedule**. Below: a scene at growing t, with noise added to
# the pixels (top), and — what the model really sees — to the VAE latents, decoded (bottom).

# %%
plots.plot_forward_process(pipe)

# %% [markdown]
# ## The schedule, as the sampler walks it
# Generating runs the process backwards in far fewer steps than 1000: the **sampler** (scheduler) picks which noise
# levels to visit. Every sampler below walks the same training schedule, from pure noise (left) to clean (right), but
# spaces its steps differently.

# %%
plots.plot_noise_schedules(pipe, steps=25)

# %% [markdown]
# ## The reverse process, step by step
# At each step the U-Net predicts the noise ε in the current latent x_t. Subtract it (scaled by the schedule) and you
# get the U-Net's current guess of the clean latent, the **predicted x₀**. The sampler does not jump there; it moves
# x_t a little towards it and asks again at the next, less noisy, step. Rows: the latent going in, the predicted noise,
# and the predicted x₀ decoded by the VAE.

# %%
tr = ex.trace(pipe, "a large yellow star at the top", seed=0, steps=25)
plots.plot_filmstrip(tr, n=7)

# %% [markdown]
# ## Measuring "structure first, detail later"
# We generate 8 one-object scenes (25 steps each) and decode the predicted x₀ at every step. Two measurements:
#
# 1. **Frequency bands.** Split each step's difference from the final picture into a *coarse* part (blurred over
#    4×4-pixel blocks: where the blobs are and their colour) and a *fine* part (what the blur removes: edges,
#    corners, points of a star). For each band: the step after which its error stays below 10 % of its starting value.
# 2. **The judge.** A small image reader (`explainer.judge`) reads position, colour and shape from each step's x₀. For
#    each attribute: the step from which its reading no longer changes.

# %%
res = denoising.structure_then_detail(pipe, n=8, steps=25)
print(f"coarse structure settles at step {res.coarse_settle:.1f} of {res.steps} (mean over {len(res.prompts)} images)")
print(f"fine detail settles at step      {res.fine_settle:.1f}")
for attr, step in res.lock.items():
    print(f"judged {attr:<8} fixed from step {step:4.1f}   (per image: {res.lock_each[attr]})")
print(f"final images that follow their prompt entirely (judged): {res.adherence:.0%}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
steps = np.arange(1, res.steps + 1)
ax.plot(steps, (res.coarse / res.coarse[:, :1]).mean(0), "o-", label="coarse (4x4 blur): layout, colour")
ax.plot(steps, (res.fine / res.fine[:, :1]).mean(0), "s-", label="fine (the rest): edges, corners")
ax.axhline(0.1, color="gray", linestyle=":", label="10 % of the start")
ax.set_xlabel("denoising step")
ax.set_ylabel("error of predicted x0 vs final image\n(relative to step 1)")
ax.set_title(f"Which part of the picture is decided when ({len(res.prompts)} prompts, 25 steps, DPM++ 2M, CFG 7.5)")
ax.legend()
plt.show()

# %%
shown = np.linspace(0, res.steps - 1, 9).round().astype(int)
plots.plot_images([res.x0_frames[r, shown] for r in range(3)], "Predicted x0, decoded, at 9 of the 25 steps (seeds 0, 1, 2)",
                  row_labels=[textwrap.fill(p, 18) for p in res.prompts[:3]], col_titles=[f"step {s + 1}" for s in shown])

# %% [markdown]
# **What we measured.** On our model the claim holds. The coarse band settles several steps before the fine band,
# and the judge reads the final position from the first few steps, while colour and shape keep changing for longer
# (read the averages above, and the per-image lists: some images settle everything at step 1, others change their
# mind late). The first steps decide where things go; the later ones settle colour and then the exact shape and its
# edges. The filmstrip shows why: early predicted x₀ are blurry averages — the U-Net cannot yet tell which of many
# possible pictures the noise
# will become, so it predicts their mean, and a mean is blurry.

# %% [markdown]
# ## Try it
# - `denoising.structure_then_detail(pipe, n=8, steps=10)`: with fewer steps, does the order change?
# - Trace two-object prompts (`"a red circle left of a blue square"`) and pass them as
#   `structure_then_detail(pipe, prompts=[...])`: when is the relation fixed?
# - `plots.plot_filmstrip(tr, n=7, rows=("latents", "noise_guided", "latents_next"))`: the latent before and after each
#   step.
#
# ## Check yourself
# 1. At t = 999, ā_t ≈ 0.005. What share of x_t is the picture, roughly?
# 2. Why is the predicted x₀ at the first step a blur rather than a sharp wrong picture?
# 3. If structure is fixed in the first third of the steps, what does that suggest about changing the prompt half-way
#    through generation?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. √0.005 ≈ 0.07 of the picture against √0.995 ≈ 1.0 of noise: almost nothing.
# 2. The U-Net is trained to minimise the squared error; when many clean pictures fit the noisy input, the best guess
#    under that loss is their average, and an average of many pictures is blurry.
# 3. A prompt change late in generation can still alter detail (shape, edges) but hardly layout; lesson 6 tests this by
#    taking the text away after k steps.
#
# </details>
