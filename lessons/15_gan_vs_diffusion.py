# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 15. Why diffusion won (and what it cost)
#
# **You will learn**
# - what a GAN (generative adversarial network) is: a generator that draws a picture in **one** network call, trained
#   against a discriminator that tries to tell its pictures from real ones;
# - to measure *diversity*: which of the world's free choices (where, how big, on what background) a model actually
#   makes when the prompt leaves them open, and precision / recall / density / coverage of its images;
# - what the GAN's speed buys and what diffusion's 25 × 2 U-Net calls buy.
#
# **The whole lesson in one picture**
# ```
#  prompt ─► frozen text encoder ─┬─► GAN generator: z (64 numbers) ─► 1 call ──────────────► 8×8×4 latents ─► VAE ─► image
#                                 └─► U-Net: noise ─► 25 denoising steps × 2 calls (CFG) ─► 8×8×4 latents ─► VAE ─► image
# ```
# Both models start from the same scenes, the same frozen text encoder and the same VAE; only the middle differs.
#
# **Claim under test**: *GANs are unstable to train and prone to mode collapse; diffusion is more stable and far more
# diverse* — the reason usually given for why image generation moved to diffusion.

# %% [markdown]
# ## Words first
# - **Generator (G)**: a network that turns a random vector z and the prompt into a picture (here: into the VAE's
#   8×8×4 latents, which the VAE decoder turns into pixels). **Discriminator (D)**: a network that scores how real an
#   image looks *for this prompt*. They are trained against each other: D learns to tell real from generated, G learns
#   to raise D's score.
# - **Mode collapse**: the generator finds a few outputs that fool D and keeps drawing those, so whole regions of the
#   data (here: positions, sizes, backgrounds) never appear.
# - **Under-specified prompt**: "a red circle" names colour and shape, so position (5), size (2) and background (3)
#   are free: 5 × 2 × 3 = **30 combos**, and the data draws all of them equally often. The judge reads each image's
#   combo. **Coverage** = share of the 30 combos seen at least once; **entropy** (bits) = how evenly the combos are
#   spread (log2 30 = 4.91 bits if all are equally common, 0 if one combo always).
# - **Precision / recall / density / coverage (PRDC)** (Naeem et al. 2020): embed real and generated images (here with
#   the shipped CLIP's image tower) and put a ball around each point reaching its 5th nearest neighbour. *Precision*:
#   share of generated images inside some real ball (looks real). *Recall*: share of real images inside some generated
#   ball (the model reaches that part of the data). *Density*: like precision, counting how many real balls. *Coverage*:
#   share of real images whose ball holds a generated image.

# %%
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import gan as lesson

gan = ex.load_gan()
pipe = ex.load_pipeline()
cfg = gan.config
print(f"GAN generator: {sum(p.numel() for p in gan.generator.parameters()) / 1e6:.2f} M parameters, "
      f"trained {cfg['steps']:,} steps of batch {cfg['batch']} ({cfg['seconds'] / 60:.0f} min on {cfg['threads']} "
      f"CPU thread); hinge loss, spectral-norm projection discriminator, Adam betas {cfg['betas']}, "
      f"lr G {cfg['lr_g']:g} / D {cfg['lr_d']:g}, EMA {cfg['ema']}")
budget = lesson.diffusion_budget()
print(f"U-Net: {sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.2f} M parameters, trained "
      f"{budget['steps']:,.0f} steps of batch {budget['batch']} ({budget['seconds'] / 60:.0f} min)")

# %% [markdown]
# ## 1. What the GAN draws
# One prompt, sixteen latents z. Every image is a single generator call (plus the VAE decode).

# %%
plots.plot_gan_grid(lesson.gan_grid(gan, "a red circle", seeds=range(16)))

# %% [markdown]
# ## 2. Walking through the latent space
# Top row: the GAN's latent z moved smoothly (slerp) from seed 0's z to seed 1's. Bottom row: the diffusion model's
# starting noise moved the same way (lesson 10). A GAN's latent space is said to be smooth: small steps in z, small
# changes in the picture. The sentence under the figure measures how big each step's change is in this example.

# %%
walk = lesson.interpolations(gan, pipe, "a red circle", seed_a=0, seed_b=1, frames=7)
plots.plot_interpolations(walk)

# %%
from explainer.experiments import summaries  # noqa: E402


def frame_changes(frames: list) -> np.ndarray:
    """RMS pixel change (0..1) between neighbouring frames."""
    a = [np.asarray(f, dtype=np.float64)[..., :3] / 255.0 for f in frames]
    return np.array([np.sqrt(((x - y) ** 2).mean()) for x, y in zip(a[:-1], a[1:], strict=True)])


g_steps, d_steps = frame_changes(walk.gan), frame_changes(walk.diffusion)
summaries.say(
    f"**In this example** (one pair of seeds, {len(walk.gan)} frames): the change between neighbouring frames is "
    f"{g_steps.mean():.3f} on average and {g_steps.max():.3f} at most for the GAN, {d_steps.mean():.3f} and "
    f"{d_steps.max():.3f} for diffusion (RMS, pixels 0..1). "
    + ("Here the GAN's steps are the smaller ones" if g_steps.max() < d_steps.max() else
       "Here the GAN's steps are not the smaller ones")
    + f"; as for evenness, its largest step is {g_steps.max() / max(g_steps.mean(), 1e-9):.1f}x its average step, diffusion's "
    f"{d_steps.max() / max(d_steps.mean(), 1e-9):.1f}x (1x = every step the same size). One pair of seeds is one "
    "example: try others.")

# %% [markdown]
# ## 3. Diversity: which of the 30 combos does each model draw?
# "a red circle" from 64 seeds per model, and 64 scenes rendered from the data's own distribution. The judge reads
# position, size and background of the red circle in each image (diffusion: CFG 5, 25 steps, the model card's
# setting).

# %%
study = lesson.diversity_study(gan, pipe, ["a red circle"], n_seeds=64, progress=False)
for row in study.rows():
    extra = "" if row["model"] == "data" else (f", precision {row['precision']:.2f}, recall {row['recall']:.2f}, "
                                               f"density {row['density']:.2f}, PRDC coverage {row['coverage']:.2f}")
    print(f"{row['model']:>9}: {30 * row['combo_coverage']:.0f}/30 combos, entropy {row['entropy_bits']:.2f} bits, "
          f"object found {100 * row['found']:.0f}%, adherence {100 * row['adherence']:.0f}%{extra}")
plots.plot_mode_coverage(study, "a red circle")

# %% [markdown]
# Two different "coverages": *combos* counts which of the 30 (position, size, background) combinations appear at all,
# the same count as the figure's right panel; *PRDC coverage* asks what share of the real images have a generated
# image close to them in the judge-free embedding space. They measure different things and need not agree.
#
# The data itself, with 64 draws, does not show all 30 combos (about 1 − (29/30)^64 ≈ 89 % are expected), so compare
# each model with the data row, not with 30.

# %% [markdown]
# ## 4. Speed: what the GAN buys

# %%
g_ms, d_ms = 1000 * study.seconds_per_image("GAN"), 1000 * study.seconds_per_image("diffusion")
print(f"GAN {g_ms:.2f} ms per image, diffusion {d_ms:.1f} ms per image: the GAN is {d_ms / g_ms:.0f}x faster "
      f"(1 generator call vs {study.steps} steps x 2 U-Net calls, same VAE decode)")

# %% [markdown]
# ## 5. Stability: the same recipe, several seeds
# The GAN ships with its training logs: the main run and two more seeds of the same recipe (shorter runs). Every
# few hundred steps the run judged the images of 64 unseen prompts (colour and shape right). The left panels are the
# two losses; a GAN's losses do not go down like a regression loss, they are a tug of war.

# %%
logs = lesson.load_logs()
stab = lesson.stability(logs)
print(f"seeds {stab.seeds}; at step {stab.common_step} (the last step every run reached) colour judged right "
      + ", ".join(f"seed {s}: {100 * v:.0f}%" for s, v in stab.adherence_at_common.items()))
plots.plot_stability(logs)

# %% [markdown]
# Mode collapse is a *trajectory*, not only an end state: the main run judged the same 64 latents z for "a red circle"
# at every evaluation. Does training spread them over more combos, or fewer?

# %%
main_seed = gan.config["seed"]
steps_logged, bits = lesson.eval_curve(logs[main_seed], "ema_mode_entropy_bits")
_, colour = lesson.eval_curve(logs[main_seed], "ema_adh_color")
for st, b, c in zip(steps_logged, bits, colour, strict=True):
    print(f"step {st:>5}: combo entropy {b:.2f} bits, colour right on unseen prompts {100 * c:.0f}%")
peak = int(steps_logged[bits.argmax()])
print(f"entropy peaks at step {peak} ({bits.max():.2f} bits) and ends at {bits[-1]:.2f} bits, while colour right goes "
      f"from {100 * colour[bits.argmax()]:.0f}% to {100 * colour[-1]:.0f}% over the same steps")

# %%
fell = bits[-1] < 0.8 * bits.max()
summaries.say(
    "**Collapse is not divergence.** The main run's combo entropy "
    + (f"fell from {bits.max():.2f} bits at step {peak} to {bits[-1]:.2f} at the end — the generator narrowed onto "
       "fewer combos while it got better at colour: that *is* mode collapse, happening during training, even though "
       "nothing diverged and the losses look calm." if fell else
       f"stayed between {bits.min():.2f} and {bits.max():.2f} bits: no narrowing during training.")
    + f" One training run per seed is one sample: {len(stab.seeds)} seeds show how this recipe can go, not how "
      "often it does.")

# %% [markdown]
# ## The verdicts, computed
# Each piece of the claim, judged from the numbers above with its sample size and a 95 % interval (bootstrap for
# entropies and PRDC; exact facts for the speed and the seed curves).

# %%
table = lesson.verdicts(study, stab)
table

# %% [markdown]
# ## The measured answer
# The sentence below is written from the verdicts, not by hand.

# %%
answer = lesson.answer(table, study, stab)
print(answer)
_ = summaries.export("15", list(table), headline=answer, numbers={
    "rows": [{k: v for k, v in r.items() if k != "seconds_per_image"} for r in study.rows()],
    "entropy_curve": {"steps": steps_logged, "bits": bits}, "speedup": d_ms / g_ms},
    varies=("headline", "speedup", "The GAN is at least"))

# %% [markdown]
# ## Try it
# - Other open prompts: `lesson.diversity_study(gan, pipe, ["a blue square", "a green star"], n_seeds=64)`; the full
#   table over four prompts and 128 seeds is `python benchmarks/gan_vs_diffusion.py`.
# - Ask the GAN for a held-out pair the data never showed (lesson 5): `plots.plot_gan_grid(lesson.gan_grid(gan, "a red star"))`.
# - Train the recipe yourself for a few hundred steps and watch the two losses pull against each other:
#   `python -m explainer.train --stage gan --gan-steps 300 --gan-images 2000 --work runs/gan --out runs/my-gan`
#   (then `lesson.load_logs("runs/my-gan")` and `plots.plot_stability(...)`).

# %% [markdown]
# ## Check yourself
# 1. Why can a GAN draw an image in one network call while diffusion needs many?
# 2. A model draws only large red circles in the center, all perfectly. Which of precision and recall is high, which
#    is low?
# 3. Why does the data row itself not reach 30/30 combos with 64 images?
#
# <details><summary>Answer</summary>
#
# 1. The generator learned a direct map from z and the prompt to an image; the discriminator only has to judge
#    finished images. Diffusion learned to remove a little noise at a time, so it must be run step by step (here
#    25 steps, each twice for classifier-free guidance).
# 2. Precision high (every image looks like a real one), recall low (most real images — other positions, sizes,
#    backgrounds — have no generated image near them). That is mode collapse in PRDC terms.
# 3. 64 draws from 30 equally likely combos miss some by chance: about 30 × (29/30)^64 ≈ 3.4 combos are expected
#    to be missing. That is why each model is compared with the data row at the same n.
#
# </details>
