# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Start here: how a text-to-image model works, opened up
#
# These lessons take a real text-to-image diffusion pipeline apart while it runs. The models are small, trained by
# this project on procedural worlds it generates itself, yet they have every part Stable Diffusion has: a tokenizer,
# a CLIP text encoder, a U-Net with cross-attention, a VAE and a scheduler. They run on a laptop CPU, so every claim
# in these lessons is an experiment you run yourself.
#
# - **scenes-sd** draws 64×64 pictures of scenes composed from 3D emoji — foxes, cats, owls, trees, houses, the sun
#   and the moon — on grounds such as autumn leaves, grass or snow, at dawn, day, dusk or night. You meet it first,
#   below, and in the playground; lessons 1, 2, 3, 4, 6, 7, 9, 10, 11 and 13 run on it.
# - **shapes-sd** draws 32×32 pictures of coloured shapes. Lessons 5, 8, 12, 14 and 15 use it (and 4, 7, 9 and 10
#   measure it beside scenes-sd): its world is simple enough that a judge can check every picture exactly, so a
#   lesson can count how often a claim holds where exact geometry is the point.
#
# Work through them in order; each takes a few minutes to read and under a minute and a half to run. Each lesson ends
# with a **verdict table** computed from its own numbers: every claim, whether our model agrees, does not, or whether
# the sample cannot tell ("within noise"), with the sample size and an interval. All the claims the lessons test, with
# each lesson and what our model measured, are listed in `docs/claims.md` (in this repository), generated from the
# numbers the lessons export.
#
# **How to read a number with an interval.** Everywhere in these lessons, "± x" and "[low, high]" mean a **95 %
# interval**: the range that the measurement would fall in most of the time if the experiment were run again with new
# draws. It resamples the thing that was actually drawn: when 36 images come from 12 prompts, the 12 prompts are the
# evidence, not the 36 images. With fewer than 8 such units there is no interval at all — the verdict says **"too few
# to tell"** — and one training run is one sample, never a verdict. Figures that show error bars say what the bars
# are.
#
# **Part 1 — from a prompt to pixels**
#
# | # | lesson | the idea |
# |---|---|---|
# | 1 | [The whole machine in one run](01_whole_machine.ipynb) | prompt → tokens → embedding → noise → U-Net × N → VAE → image, with real shapes |
# | 2 | [Your words become numbers](02_words_to_numbers.ipynb) | tokens, embeddings, similarity of prompts, CLIP's image↔caption matching |
# | 3 | [Latent space and the VAE](03_latent_space.ipynb) | the compressed space where generation happens, and how close similar scenes sit |
# | 4 | [Noise in, picture out](04_noise_to_picture.ipynb) | the forward and reverse processes; does structure come before detail? |
# | 5 | [How the model learned to see](05_how_it_learned.ipynb) | the training objective, trained live; does the model memorise? |
# | 6 | [Inside the U-Net: attention](06_unet_attention.ipynb) | the U shape, where each word looks, how text and time enter |
#
# **Part 2 — the controls people turn**
#
# | # | lesson | the idea |
# |---|---|---|
# | 7 | [Classifier-free guidance](07_cfg.ipynb) | what the CFG slider really computes, and what too little or too much does |
# | 8 | [Negative prompts](08_negative_prompts.ipynb) | the unconditional branch, replaced |
# | 9 | [Samplers and steps](09_samplers_steps.ipynb) | Euler, DPM++, DDIM, Heun; how many steps are worth it |
# | 10 | [Seeds and reproducibility](10_seeds.ipynb) | same seed, same image; what a seed decides |
# | 11 | [Resolution, aspect ratio and memory](11_resolution.ipynb) | latent size, time, memory, and sizes the model never saw |
# | 12 | [Model families](12_model_families.ipynb) | parameter counts, U-Net vs Diffusion Transformer, the families people use |
# | 13 | [Your turn: a playground](13_playground.ipynb) | challenges to try with every control at hand |
# | 14 | [ControlNet: structure from a map](14_controlnet.ipynb) | the copied encoder, zero convolutions, residuals traced per level and step; map vs prompt, measured |
# | 15 | [Why diffusion won (and what it cost)](15_gan_vs_diffusion.ipynb) | a GAN trained on the same world: mode collapse, diversity and speed, measured |

# %% [markdown]
# ## Check that everything works
# The next cell loads scenes-sd and draws one picture of a prompt in its vocabulary. It should take a few seconds.

# %%
import torch

import explainer as ex

pipe = ex.load_pipeline("scenes-sd")
image = pipe("a red fox sitting in autumn leaves", num_inference_steps=20,
             generator=torch.Generator().manual_seed(0)).images[0]
image.resize((256, 256), 0)

# %% [markdown]
# The same run, traced: `ex.trace` records every step and gives back the very same picture, pixel for pixel. Here is
# where the words "fox" and "leaves" looked while the picture was drawn (averaged over the steps).

# %%
import numpy as np  # noqa: E402

tr = ex.trace(pipe, "a red fox sitting in autumn leaves", seed=0, steps=20)
print("traced picture identical to the plain one:", np.array_equal(np.asarray(tr.image), np.asarray(image)))
ex.plots.plot_attention(tr, tokens=["fox", "leaves"])

# %% [markdown]
# The lessons run on shapes-sd (`ex.load_pipeline()` with no argument). The next cell draws one of its pictures and
# asks the shapes judge whether it shows what the prompt says.

# %%
from explainer.judge import judge_against  # noqa: E402

shapes = ex.load_pipeline()
circle = shapes("a large red circle on the left", num_inference_steps=25,
                generator=torch.Generator().manual_seed(0)).images[0]
print("the judge reads the picture as asked:", judge_against(circle, "a large red circle on the left"))
circle.resize((128, 128), 0)

# %% [markdown]
# If both pictures appear (the judge's `all` is True when it sees a red circle on the left), you are ready: open
# [lesson 1](01_whole_machine.ipynb), or try your own prompts in the playground
# (`ex.widgets.playground()`, [lesson 13](13_playground.ipynb)).

# %% [markdown]
# ## Use your own model
# Everything that traces and draws works on any Stable Diffusion 1.x / 2.x / XL folder:
# `pipe = ex.load_pipeline("path/to/folder", device="cuda")`, then `ex.trace(pipe, prompt, seed=3)` (the pipeline's
# own scheduler is traced, bit-identical to `pipe(...)`), `tr.words`, `tr.attention("autumn")` (a word the tokenizer
# splits into pieces is summed, and figures say so), the figures in `ex.plots`, the explorers in `ex.widgets` and
# the classroom app (`python -m explainer.classroom --model PATH`). What needs the shapes model: the judge, the
# lessons' verdicts and the playground lesson's challenges, which read the shapes world.
