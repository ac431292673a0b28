# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3 — Latent space and the VAE
#
# **You will learn**
# - what the VAE does: squeeze a picture into a small *latent* and expand it back;
# - how much smaller the latent is, and how much of the picture survives the round trip;
# - what "close together" means in latent space — and what it does *not* mean;
# - what you get when you walk in a straight line from one latent to another.
#
# **The picture to keep in mind**
# ```
#  image 32×32×3 ──VAE encoder──► latent 4×8×8 ──(× scaling factor)──► what the U-Net works on
#  (3072 numbers)                 (256 numbers)
#  image 32×32×3 ◄──VAE decoder── latent 4×8×8 ◄──(÷ scaling factor)── what the U-Net produced
# ```
#
# **Claim tested** (#3): *The model works in a compressed latent space where similar scenes sit close together and
# different ones far apart; a VAE decodes back to pixels.*

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import latents

pipe = ex.load_pipeline()

# %% [markdown]
# ## Why a latent space at all
# The U-Net runs 25 or more times per image, so every number it has to handle costs 25 times. Stable Diffusion
# therefore never denoises pixels: a **VAE** (variational auto-encoder, a network trained to compress and rebuild
# images) first maps pixels to a smaller grid of numbers, the **latent**, and the U-Net works there. The VAE's
# decoder turns the final latent into the picture.
#
# The latent is multiplied by a fixed **scaling factor** before the U-Net sees it, so that its values have a spread
# of about 1, like the noise that will be added to it.

# %%
import numpy as np  # noqa: E402

from explainer.experiments import summaries  # noqa: E402

c = latents.compression(pipe)
print(f"image: 3 x {c['image_size']} x {c['image_size']} = {c['pixel_values']} numbers")
print(f"latent: {' x '.join(map(str, c['latent_shape']))} = {c['latent_values']} numbers")
print(f"compression factor: {c['factor']:.0f}x   (Stable Diffusion at 512 px: 3*512*512 / (4*64*64) = 48x)")
print(f"scaling factor: {pipe.vae.config.scaling_factor:.3f}")

# %% [markdown]
# ## A round trip
# Encode 64 scenes the VAE never saw, decode them, and compare. Top: originals. Middle: after the round trip.
# Bottom: the latents themselves, each of the 4 channels as a little 8×8 picture (blue below zero, red above).

# %%
rec = latents.reconstruction(pipe, n=64)
plots.plot_images(
    [rec.originals[:6], rec.decoded[:6], [plots.latent_mosaic(z) for z in rec.latents[:6]]],
    "The VAE round trip: 32x32x3 pixels -> 4x8x8 latent -> 32x32x3 pixels (unseen scenes)",
    row_labels=["original", "encoded + decoded", "latent, channels\nch 0 | ch 1\nch 2 | ch 3"], cmap="RdBu_r", vmin=-3, vmax=3)

# %%
psnr_each = summaries.psnr_each(rec)
print(f"reconstruction error over {len(rec.originals)} unseen scenes: mean squared error {rec.mse:.5f} (pixels in "
      f"0..1), PSNR of that pooled error {rec.psnr:.1f} dB; mean of each scene's own PSNR {np.mean(psnr_each):.1f} dB; "
      f"mean absolute error {rec.mean_abs_255:.1f} of 255")

# %% [markdown]
# **PSNR** (peak signal-to-noise ratio) turns the error into decibels: above ~30 dB the difference is hard to see.
# **Two numbers, one error.** The PSNR of the pooled error and the mean of the scenes' own PSNRs differ because
# decibels are a logarithm: a few badly kept scenes weigh more in the pooled error. The verdict table below uses the
# per-scene numbers, because each scene is one unit of evidence.

# %%
summaries.say(f"Our small VAE lands {'above' if rec.psnr > 30 else 'below'} that line ({rec.psnr:.1f} dB pooled): "
              + ("the round trip is hard to tell from the original by eye; look closely at the decoded edges."
                 if rec.psnr > 30 else "compare the rows above and the decoded edges are slightly soft."))

# %% [markdown]
# The latent channels look like blurry, recoloured copies of the scene: our latent is still a small *picture*, with
# each of the 8×8 positions describing a 4×4 patch of pixels.
#
# ## Near and far in latent space
# Take 24 scenes, change exactly one thing in each, and measure how far the latent moves (the Euclidean distance
# between the two 256-number latents). Compare with two unrelated scenes.

# %%
ch = latents.change_one_thing(pipe, n=24)
for change in sorted(ch.latent, key=ch.latent.get):
    print(f"{change:<18} latent distance {ch.latent[change]:6.2f}    pixel distance {ch.pixel[change]:6.2f}")

# %% [markdown]
# **What we measured.** A one-pixel move barely shifts the latent. Another shape, colour or size moves it further;
# moving the object to another place, or changing the background, moves it nearly as far as jumping to an unrelated
# scene. And the latent distances come out in (nearly) the same order as the pixel distances: this latent space
# measures *how different two pictures look*, not what they mean. So claim #3 holds in the visual sense only: scenes
# that look alike sit close; a red circle on the left is far from a red circle on the right, though a person would
# call them similar. (Meaning lives in the text embedding of lesson 2 — and, as lesson 6 shows, in how the U-Net
# uses it.)
#
# The same question on 200 scenes: do a latent's 5 nearest neighbours share its colour, shape, position, background?

# %%
nb = latents.latent_neighbours(pipe, n=200)
for attr in nb.knn_accuracy:
    print(f"{attr:<11} nearest-neighbour agreement {nb.knn_accuracy[attr]:.0%}   (chance {nb.chance[attr]:.0%})")

# %% [markdown]
# Two maps of the same 200 latents (256 numbers each) flattened to 2. **PCA** keeps the two directions along which the
# latents spread the most; colour the points by background:

# %%
plots.plot_latent_map(nb.latents, labels=nb.labels["background"], attribute="background",
                      what=f"Latents of {len(nb.latents)} VAE-encoded scenes")

# %% [markdown]
# **UMAP** (uniform manifold approximation and projection) instead tries to keep each point's nearest neighbours
# near it, so it shows groups rather than spread. Colour by position (the first UMAP call compiles for ~15 s):

# %%
plots.plot_latent_map(nb.latents, labels=nb.labels["position"], attribute="position", method="umap",
                      what=f"Latents of {len(nb.latents)} VAE-encoded scenes")

# %% [markdown]
# **What we measured.** A latent's neighbours almost always share its position and background — the things that
# decide most of the pixels — share its colour far less often (though more often than chance), and its shape
# hardly more often than chance gives (the verdict table below: within noise of chance on 200 scenes). The
# maps show the same: PCA sorts scenes by background first; in UMAP the biggest split is the background too, and each
# tight little group holds one position on one background. Try `labels=nb.labels["colour"]` on either map: colours
# mix inside the groups.
#
# ## Walking between two latents
# Decode the points on the straight line between two scenes' latents, and compare with simply cross-fading the
# two pictures' pixels.

# %%
it = latents.interpolate(pipe, frames=7)
print(f"mean difference between the two rows (inner frames): {it.mean_abs_difference:.1f} of 255")
plots.plot_images([it.latent_path, it.pixel_path],
                  "(1 - a) * latent A + a * latent B, decoded, next to (1 - a) * image A + a * image B",
                  row_labels=["latent line,\ndecoded", "pixel\ncross-fade"], col_titles=[f"a = {a:.2f}" for a in it.alphas])

# %% [markdown]
# **A number that flatters.** That mean difference is small, because most pixels are background that changes
# smoothly in both rows. The eye looks somewhere else: at the middle frames of the top row, does every colour there
# appear in one of the two ends? A cross-fade can only mix the two ends' colours, so a pixel whose colour lies far
# from every mix of them is a colour in neither end:

# %%
walk = summaries.walk_difference(it)
print("pixels with a colour in neither end, per inner frame:",
      ", ".join(f"a = {a:.2f}: {v:.0%}" for a, v in zip(it.alphas[1:-1], walk["off_line"], strict=True)))

# %%
summaries.say("**What we measured.** " + (
    f"In every inner frame at most {walk['worst_off_line']:.0%} of the pixels leave the cross-fade's colours: here a "
    "straight latent walk looks like a cross-fade — the object fades out while the other fades in."
    if walk["worst_off_line"] < 0.05 else
    f"At a = {walk['worst_alpha']:.2f}, {walk['worst_off_line']:.0%} of the pixels take a colour that no cross-fade of "
    "the two ends can make: a straight latent walk is *not* a cross-fade, even though its mean difference is small. "
    "The decoder turns an in-between latent into whatever picture it reads there, and a colour or shape in neither "
    "end can appear half-way.") + " Either way the object does not slide from one place to the other: a latent space "
    "with only 4× compression per side keeps the picture's layout; sliding and morphing come from the U-Net, which "
    "starts from noise and *makes* layouts (lesson 10 interpolates between seeds' noise instead).")

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
v3 = summaries.lesson3(c, rec, ch, nb, it)
summaries.export("03", v3, headline=(
    f"{c['factor']:.0f}× fewer numbers than pixels; VAE round trip {rec.psnr:.1f} dB; latent distance follows how "
    f"pictures look (a 1-pixel move is the smallest change); a straight latent walk "
    f"{'looks like' if walk['worst_off_line'] < 0.05 else 'is not'} a pixel cross-fade ({walk['worst_off_line']:.0%} "
    f"of the pixels of its worst frame take a colour in neither end)"), numbers={
    "factor": c["factor"], "psnr_pooled": rec.psnr, "psnr_mean_each": float(np.mean(psnr_each)), "walk": walk,
    "latent_distance": ch.latent, "pixel_distance": ch.pixel, "knn": nb.knn_accuracy, "chance": nb.chance})
ex.verdict_table(v3, title="Lesson 3: latent space and the VAE")

# %% [markdown]
# ## Try it
# - `latents.reconstruction(pipe, n=64)` then look at `rec.originals[rec.worst_index]` and
#   `rec.decoded[rec.worst_index]`: what does the VAE get wrong when it does?
# - `plots.plot_latent_map(nb.latents, labels=nb.labels["shape"], attribute="shape", method="umap")`: is there any
#   grouping by shape? Where would you expect one to appear if the latent were 64×64 instead of 8×8?
# - Interpolate between two other scenes: `latents.interpolate(pipe, seed_a=10_000_020, seed_b=10_000_021)`.
#
# ## Check yourself
# 1. Stable Diffusion's VAE turns 512×512×3 pixels into 4×64×64 latents. What is its compression factor, and why does
#    it make generation cheaper?
# 2. Why is a scene's latent far from the same scene with the object moved to the other side?
# 3. What does the scaling factor do, and why does the U-Net care?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. 786,432 / 16,384 = 48. The U-Net, which runs at every step, handles 48 times fewer numbers.
# 2. The latent is a small picture: moving the object changes which latent positions hold it, as it changes which
#    pixels do. Distance counts differences position by position.
# 3. It rescales the latents to a spread of about 1, the spread of the Gaussian noise the diffusion process mixes in,
#    so the noise schedule means the same thing for every VAE.
#
# </details>
