# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12. Model families: sizes, U-Nets and Diffusion Transformers
#
# **You will learn**
# - where the parameters of a text-to-image pipeline live, counted on the model you have loaded;
# - how a Diffusion Transformer (DiT) differs from a U-Net, by building a tiny one beside ours;
# - the sizes and designs of the families people actually use (Stable Diffusion 1.x/2.x/XL/3, PixArt, FLUX), with
#   the sources the numbers come from.
#
# **The whole lesson in one picture**
# ```
#  U-Net (SD 1.x, 2.x, XL):   latents ─► conv ↓ ─► conv ↓ ─► middle ─► conv ↑ ─► conv ↑ ─► noise     (skip links ─►)
#                                          text enters through cross-attention at several resolutions
#  DiT (PixArt, SD3, FLUX):   latents ─► cut into patches = tokens ─► transformer block × N ─► un-patch ─► noise
#                                          every block: self-attention over all patches (+ text, by cross-attention
#                                          or by joining the text tokens to the image tokens)
# ```
#
# **Claim under test** (CLAIMS.md #15): *More parameters give more capacity (SD 1.x ≈ 0.86 B U-Net, SDXL and Flux far
# larger); transformers (DiT) replace the U-Net in newer models.*

# %% [markdown]
# ## Words first
# - **Parameter**: one learned number (a weight). "0.86 B" means 860 million of them. More parameters can store more
#   patterns (**capacity**) but cost more memory and time per step.
# - **Component**: a part of the pipeline: tokenizer and scheduler (no parameters: rules), text encoder, denoiser
#   (U-Net or transformer), VAE.
# - **Patch / token**: a DiT cuts the latents into small squares (patches) and treats each as one token, like a word
#   in a sentence; then it is a transformer, the architecture of language models.

# %%
import explainer as ex
from explainer.experiments import families

pipe = ex.load_pipeline()

# %% [markdown]
# ## 1. Where our pipeline's parameters are

# %%
print(families.params_table(pipe))

# %% [markdown]
# As in Stable Diffusion 1.x (where the U-Net holds about 80% of the ~1.07 B parameters), the denoiser is the
# biggest part: it runs at every step, so that is where capacity pays. (Our `clip` vision tower, used only in
# training and lesson 2, is not a pipeline component and is not counted.)

# %% [markdown]
# ## 2. A tiny Diffusion Transformer beside our U-Net
# We build a PixArt-α-style pipeline from configuration alone: random weights, no download. It shares our VAE and
# tokenizer, so it works on the same 4×8×8 latents; its text encoder is a small T5 encoder (as PixArt uses T5), and
# its denoiser is `PixArtTransformer2DModel`, sized (8 blocks, width 256) to about as many parameters as our U-Net
# so the two designs can be compared fairly. Untrained, it can only draw noise — the point is its shape and size.

# %%
dit = families.build_tiny_dit(pipe, layers=8, width=256, heads=4, patch=1)
print(families.params_table(dit))

# %%
run = families.run_dit(dit, pipe, prompt="a red circle", steps=10)
print(f"our U-Net: {run.unet_params:,} parameters; the tiny DiT's transformer: {run.transformer_params:,}")
print(f"10 steps with the DiT took {run.seconds:.1f} s; its (untrained) output:")
run.image.resize((128, 128), 0)

# %% [markdown]
# Can `ex.trace` record it, as it records our U-Net?

# %%
print("traced:", run.traced)
print(run.trace_message)

# %% [markdown]
# Not yet: the trace hooks are written for the U-Net pipelines (Stable Diffusion 1.x/2.x and SDXL). Tracing
# transformer pipelines is coming; until then you can run them plainly, as above.
#
# What differs inside: the U-Net mixes neighbouring positions with convolutions and sees the whole image only at its
# coarse levels; the DiT treats all 64 latent positions as tokens and lets every block attend to all of them, and it
# gets the timestep through adaptive normalisation (scale and shift of every block) instead of adding it into
# convolution features. Transformers scale simply — more blocks, wider blocks — which is one reason newer large
# models (SD3, FLUX) use them.

# %% [markdown]
# ## 3. The families people use
# Numbers as their papers and model cards state them. "Denoiser" is the network run at every step.

# %% [markdown]
# The table is `families.FAMILIES`; the sources are in its last column.

# %%
from IPython.display import Markdown

Markdown(families.families_table())

# %%
sd15_unet = 860e6
print(f"our U-Net is {run.unet_params / sd15_unet * 100:.3f}% of SD 1.5's, and {run.unet_params / 12e9 * 100:.4f}% of "
      f"FLUX.1's transformer")

# %% [markdown]
# **What this says about the claim.** The counts above agree with it as stated: SD 1.x's U-Net is ~0.86 B, SDXL's
# is about three times that, FLUX.1's transformer ~14 times; and the newest families (SD3, FLUX, PixArt) use
# transformers instead of a U-Net. Whether *more parameters give more capacity* we can see in miniature: our model
# has a few million parameters because the shapes world is tiny — seven colours, five shapes, a 32×32 canvas — and it
# is enough for that world, not for photographs. Capacity must match what there is to learn.

# %% [markdown]
# ## Try it
# - Make the DiT bigger or smaller (`layers=4`, `width=128`) and count again: how do parameters grow with width?
#   (Hint: most weights are width × width matrices.)
# - `patch=2` cuts the 8×8 latent into 4×4 = 16 tokens instead of 64: time `run_dit` with both.
# - Look at our U-Net's anatomy with `ex.plots.plot_unet_anatomy(pipe.unet)` (lesson 6) and find where its
#   parameters sit: the wide, coarse levels or the fine ones?

# %% [markdown]
# ## Check yourself
# 1. Which component of a pipeline has no parameters at all, and why?
# 2. Why do parameters of a transformer grow roughly with the square of its width?
# 3. FLUX.1 has ~14× the denoiser parameters of SD 1.5. Does a step cost ~14× as much?
#
# <details><summary>Answer</summary>
#
# 1. The tokenizer (a fixed lookup from words to ids) and the scheduler (a formula); they hold no learned weights.
# 2. Most of its weights are in the attention and MLP matrices, which are width × width (or width × 4·width);
#    doubling the width multiplies each by four.
# 3. Roughly the arithmetic grows with the parameters times the number of tokens each weight touches — so it also
#    depends on image size, patch size and text length. Parameter count is a first guess, not the answer; measure.
#
# </details>
