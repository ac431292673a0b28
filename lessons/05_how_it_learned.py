# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 5 — How the model learned to see
#
# **You will learn**
# - the training objective of a diffusion model: *add noise, then predict the noise you added*;
# - what the first seconds of training look like, by training a tiny U-Net right here;
# - what a model trained on too little data gets wrong;
# - how to test whether a model copies its training images, and what our model does with combinations it never saw.
#
# **The picture to keep in mind**
# ```
#  training scene ─VAE─► x₀ ─┐                  caption ─text encoder─► embeddings ─┐
#  random t, random noise ε ─┴─► x_t = √ā_t·x₀ + √(1−ā_t)·ε ─► U-Net(x_t, t, text) ─► ε̂
#                                                     loss = mean of (ε̂ − ε)²  → nudge the weights
# ```
#
# **Claim tested** (#7): *The model does not memorise its training images; it learns statistical patterns.*

# %%
import textwrap

import matplotlib.pyplot as plt
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import summaries, training

pipe = ex.load_pipeline()

# %% [markdown]
# ## The objective: predict the noise
# Training shows the U-Net one noisy latent at a time and asks: *which noise was added?* The noise is known — training
# added it — so the answer can be scored. Here is one training scene at five timesteps, with the shipped U-Net's answer
# and its error (the **loss**: the mean squared difference between the predicted and the true noise).

# %%
ex5 = training.noising_example(pipe)
print(f"a model that always answered 'no noise' would score {ex5.loss_if_guessing_zero:.2f} at every t")
plots.plot_images(
    [[ex5.image, *ex5.noisy_decoded]],
    f"\u201c{ex5.caption}\u201d (training scene {ex5.seed}, noise seed {ex5.seed}): noisy latents (decoded) and "
    "the shipped U-Net's noise-prediction loss",
    col_titles=["training scene"] + [f"x_t at t={t}\nloss {loss:.3f}" for t, loss in zip(ex5.timesteps, ex5.loss, strict=True)])

# %%
worst = int(np.argmax(ex5.loss))
summaries.say(
    f"The loss is largest at t={ex5.timesteps[worst]} ({ex5.loss[worst]:.3f}) and smallest at "
    f"t={ex5.timesteps[int(np.argmin(ex5.loss))]} ({min(ex5.loss):.3f}) for this scene and this noise draw. "
    + ("At low t little noise was added, and the little that is there is hard to tell from the picture; at high t "
       "nearly everything is noise, so \"the input is the noise\" is nearly right." if worst == 0 else
       "Here the pattern of most lessons' scenes — hardest at low t, where the little noise added is hard to tell "
       "from the picture — does not show: one scene and one noise draw are one example."))

# %% [markdown]
# ## Training live
# Now a tiny U-Net (1.1 M parameters, a sixth of the shipped one) starts from random weights and trains for 80
# steps on 2000 training scenes, 32 at a time, with the shipped VAE and text encoder frozen. Each step: pick scenes,
# timesteps and noise; predict; score; nudge every weight a little downhill (the AdamW optimiser). This takes a few
# tens of seconds.

# %%
live = training.train_tiny(pipe, n_images=2000, steps=80, checkpoints=(0, 40, 80), eval_every=40)
print(f"{live.params:,} parameters, {live.steps} steps of {live.batch} scenes in {live.seconds:.0f} s")
print("loss on 256 scenes it never trains on, by step:", {k: round(v, 3) for k, v in live.heldout.items()})

# %%
fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
ax.plot(np.arange(1, live.steps + 1), live.losses, alpha=0.3, label="training loss, each step")
ax.plot(np.arange(10, live.steps + 1), live.smoothed(10), label="training loss, 10-step average")
ax.plot(list(live.heldout), list(live.heldout.values()), "o-", label="loss on 256 held-out scenes")
ax.set_xlabel("training step")
ax.set_ylabel("mean squared error of the predicted noise")
ax.set_title(f"A tiny U-Net learning to predict noise ({live.n_images} scenes, batch {live.batch}, {live.steps} steps)")
ax.legend()
plt.show()

# %%
prompts = ["a large red circle on the left", "a large blue square on the right", "a large green star at the top",
           "a large white cross in the center"]
SAMPLE_STEPS, SAMPLE_CFG = 20, 4.0
plots.plot_images(
    [training.sample(pipe, prompts, live.unet, state, steps=SAMPLE_STEPS, cfg=SAMPLE_CFG)
     for state in live.snapshots.values()],
    f"Samples from the tiny U-Net during training ({SAMPLE_STEPS} steps, CFG {SAMPLE_CFG:g}, seeds 0-{len(prompts) - 1})",
    row_labels=[f"after {step} steps" for step in live.snapshots], col_titles=[textwrap.fill(p, 16) for p in prompts])

# %%
from explainer.experiments.gan import diffusion_budget  # noqa: E402

shipped = diffusion_budget()
h = live.heldout
mid = sorted(h)[len(h) // 2]
summaries.say(
    f"**What we saw.** The held-out loss goes {h[0]:.3f} → {h[mid]:.3f} in the first {mid} steps and → "
    f"{h[live.steps]:.3f} in the next {live.steps - mid}"
    + (": it falls fastest at first — the easy part, \"the input is mostly noise\", is learned in a few dozen steps."
       if h[0] - h[mid] > h[mid] - h[live.steps] else ": here it did not fall fastest at first.")
    + f" The samples go from VAE-decoded static to soft blobs. After these {live.steps} steps they are blobs, at best "
    f"of roughly the right colour in roughly the right place — nothing like the shipped model, which trained for "
    f"{shipped['seconds'] / 60:.0f} minutes ({shipped['steps']:,.0f} steps of {shipped['batch']} scenes). Training a "
    "real image model is this same loop, run for weeks on billions of pictures.")

# %% [markdown]
# ## How much data?
# Same tiny model, same 80 steps, same seed — but trained on only 32 scenes instead of 2000. We score both on
# held-out scenes neither saw.

# %%
few = training.train_tiny(pipe, n_images=32, steps=80, eval_every=40)
print(f"{'':<14}{'loss on its training scenes':>30}{'loss on held-out scenes':>26}")
for name, r in ((f"{few.n_images} scenes", few), (f"{live.n_images} scenes", live)):
    print(f"{name:<14}{r.train_eval[r.steps]:>30.3f}{r.heldout[r.steps]:>26.3f}")

# %%
gap_few = few.heldout[few.steps] - few.train_eval[few.steps]
gap_live = live.heldout[live.steps] - live.train_eval[live.steps]
summaries.say(
    f"**What we measured.** The gap between the two columns: {gap_few:+.3f} with 32 scenes, {gap_live:+.3f} with 2000. "
    + (f"A model with 32 scenes fits those 32 — it has seen each one about {few.steps * few.batch // 32} times — but "
       "what it learned is about *those* pictures, so it does worse on scenes it has not seen; with 2000 scenes almost every example is new "
       "and what the model learns carries over." if gap_few > gap_live else
       "Here the small-data run did not show the larger gap.")
    + " **One run is one sample**: each number comes from a single training run with one seed, so the verdict table "
      "reports it as *too few to tell*. To know, you would train each setting several times with other seeds and "
      "compare the spread — try it below.")

# %% [markdown]
#
# ## Does the shipped model copy its training images?
# If a model memorised, its pictures would be copies of training images. Test: generate pictures from captions of
# *new* scenes, and find each one's nearest neighbour among 5000 training scenes (smallest pixel difference). As a
# yardstick, do the same for a fresh, correctly drawn render of each new scene: in a world this small, even a brand-new
# scene has close relatives in the training set.

# %%
near = training.nearest_training(pipe, n=8)
print(f"distance to the nearest of {near.n_train} training images (RMS, pixels 0..1), over {len(near.prompts)} captions:")
print(f"  generated images:                 mean {np.mean(near.gen_distance):.3f} (median {np.median(near.gen_distance):.3f})")
print(f"  fresh renders of the same scenes: mean {np.mean(near.real_distance):.3f} (median "
      f"{np.median(near.real_distance):.3f})")

# %%
plots.plot_images([near.generated, near.nearest_images],
                  f"Generated from new captions (top; seeds {near.seed}-{near.seed + len(near.prompts) - 1}, "
                  f"{near.steps} steps, CFG {near.cfg:g}) and the closest of {near.n_train} training images (bottom)",
                  row_labels=["generated", "nearest\ntraining image"],
                  col_titles=[textwrap.fill(p, 18) for p in near.prompts],
                  col_labels=[f"distance {d:.3f}" for d in near.gen_distance])

# %% [markdown]
# ## Combinations it never saw
# Five colour–shape pairs never appear in any training scene: a red star, a blue cross, a yellow circle, a green
# triangle, a purple square. The model saw red things and stars, but never a red star. Can it draw one? The judge reads
# colour and shape of each picture; as a yardstick, the same colours on shapes it did see together.

# %%
ho = training.held_out_combos(pipe, seeds_per=2)
print(f"training scenes (of the first 5000) that contain a held-out pair: {ho.in_training}")
print(f"held-out pairs: right colour {ho.colour:.0%}, right shape {ho.shape:.0%}, both {ho.both:.0%}")
print(f"seen pairs (same colours): both right {ho.seen_both:.0%}")

# %%
plots.plot_images([ho.images], f"Held-out colour x shape pairs, 2 seeds each ({ho.steps} steps, CFG {ho.cfg:g}); "
                  "below: the judge's reading", col_titles=[textwrap.fill(p, 14) for p in ho.prompts],
                  col_labels=[f"seed {s}\n" + ("both right" if ok else "wrong") for s, ok in zip(ho.seeds, ho.right,
                                                                                              strict=True)])

# %%
v5 = summaries.lesson5(live, few, near, ho)
copies = summaries.reading(v5, "the model does not copy")
summaries.say(
    f"**What we measured.** Mean distance to the nearest training image (what the verdict compares, caption by "
    f"caption): generated {np.mean(near.gen_distance):.3f}, fresh renders of the same captions "
    f"{np.mean(near.real_distance):.3f}, over {len(near.gen_distance)} captions. Are generated pictures surely further "
    f"away than correct new renders? The sample {copies}"
    + {"agrees": ": nothing points to copying.",
       "says the opposite": " — the generated pictures are surely *closer* to the training set than correct renders of "
                            "the same captions: look at the pairs above for near-copies before trusting the rest.",
       }.get(copies, " — it shows them neither surely further nor surely closer, so nothing here points to copying; "
                     "it is just no proof.")
    + f" The held-out pairs are the stronger test: each is absent from the training data, so each one drawn right was "
    f"composed from parts — a colour learned on other shapes, a shape learned in other colours. Both colour and shape "
    f"right: {ho.both:.0%} of held-out pairs, {ho.seen_both:.0%} of seen pairs; that held-out pairs are drawn less "
    f"reliably, the sample {summaries.reading(v5, 'held-out pairs are drawn less reliably')}.")

# %% [markdown]
#
# (Large models *can* memorise: images repeated many times in the training data have been pulled back out of Stable
# Diffusion nearly pixel for pixel. Memorising is a matter of repetition and capacity, not impossible by design.)

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
summaries.export("05", v5, headline=(
    f"a tiny U-Net trained live: held-out loss {live.heldout[0]:.3f} → {live.heldout[live.steps]:.3f} in "
    f"{live.steps} steps; train/held-out gap {gap_few:+.3f} with 32 scenes vs {gap_live:+.3f} with 2000 (one run "
    f"each: too few to tell); nearest training image, mean: generated {np.mean(near.gen_distance):.3f} vs fresh "
    f"renders {np.mean(near.real_distance):.3f} ({copies}); held-out colour×shape pairs both right {ho.both:.0%}"),
    numbers={"heldout": live.heldout, "gap_few": gap_few, "gap_live": gap_live,
             "gen_distance": near.gen_distance, "real_distance": near.real_distance, "held_out_both": ho.both,
             "seen_both": ho.seen_both, "held_out_in_training": ho.in_training}, varies=("headline", "training lowers",
                                                                                       "little data", "heldout",
                                                                                       "gap_few", "gap_live"))
ex.verdict_table(v5, title="Lesson 5: how the model learned")

# %% [markdown]
# ## Try it
# - Train longer: `training.train_tiny(pipe, 4000, steps=600, checkpoints=(600,))` (a few minutes) and sample
#   from it: when do colours become right?
# - Make the data gap bigger or smaller: `n_images=8` or `n_images=256`.
# - `training.nearest_training(pipe, n=16)` and look at the pairs: where the nearest training image looks different,
#   what differs?
#
# ## Check yourself
# 1. Why can the loss be computed at all, when nobody knows "the right picture" for a noisy input?
# 2. A model trained on 32 scenes reaches a lower training loss than one trained on 2000. Why is it still worse?
# 3. Why are the held-out colour–shape pairs a stronger test of "not memorising" than nearest neighbours?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. Training made the noisy input itself, so it knows exactly which noise it added: predicting that noise has a
#    right answer, for every picture and every t.
# 2. Its low loss measures how well it fits 32 particular pictures; on new scenes its error is higher. What matters for
#    generating is the error on pictures it has not seen.
# 3. A copy of a training image cannot contain a pair that no training image contains; drawing one correctly requires
#    combining things learned separately.
#
# </details>
