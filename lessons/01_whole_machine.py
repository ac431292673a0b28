# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1 — The whole machine in one run
#
# **You will learn**
# - the five parts of a text-to-image diffusion model and the order in which they run;
# - what goes in and out of each part, as real tensor shapes and parameter counts;
# - that the whole pipeline is a short loop you can write yourself — and get exactly the same picture.
#
# **The picture to keep in mind**
# ```
# prompt ─tokenizer─► token ids ─text encoder─► embeddings ──────────────┐
#                                                                        ▼
# seed ─► random noise (latents) ─► [ U-Net predicts the noise ─► scheduler removes a bit of it ] × N ─► VAE ─► image
# ```
#
# **Claim tested** (from the list of popular claims, #4, first half): *generation starts from pure noise and removes it
# step by step.* We measure the starting latents (is it plain Gaussian noise?) and watch it turn into a picture.

# %% [markdown]
# ## A few words first
# - A **token** is a piece of text the model knows (here: one word). The **tokenizer** turns the prompt into token ids.
# - The **text encoder** (a CLIP text model) turns the token ids into **embeddings**: one list of numbers per token.
# - A **latent** is a small grid of numbers that stands for an image. Generation happens in this "latent space"
#   because it is smaller than pixels; the **VAE** (variational auto-encoder) translates latents back into pixels.
# - The **U-Net** is the neural network that, given a noisy latent, the text embeddings and the **timestep** (how
#   noisy the latent is), predicts the noise in it. The **scheduler** (also called sampler) uses that prediction to
#   take one step from a noisier latent to a cleaner one.
# - **CFG** (classifier-free guidance) runs the U-Net twice per step, with and without the prompt, and pushes the
#   result towards "with" (lesson 7 is all about it).
#
# <a id="noise-level"></a>
# **Three names for "how noisy"** (the other lessons link back here):
# - the **timestep t**: a whole number from 0 (clean) to 999 (pure noise) that the model was trained with; the U-Net
#   is told t at every call;
# - the **noise level σ** ("sigma"): how much noise there is compared with the picture, σ_t = √((1 − ā_t) / ā_t), where
#   ā_t is the share of the picture's energy still in x_t (lesson 4 writes out the formula). σ = 0 is clean; σ = 10
#   means the noise is ten times the size of the picture (the cell after the filmstrip prints our range);
# - **x_t**: the noisy latent at timestep t. The sampler walks t (and σ) down from their largest value to 0 in N steps;
#   the filmstrip headers below show both for each step.
#
# **The model, and why this one.** This lesson runs `scenes-sd`, our small model of the *scenes world*: 64×64 pictures
# of real things (foxes, trees, houses, boats) on textured grounds under the light of dawn, day, dusk or night, so the
# article's own prompt, *"a red fox sitting in autumn leaves"*, is one it knows. Every part of it is the class Stable
# Diffusion 1.x uses (a CLIP text encoder, a U-Net, a VAE and the DPM++ 2M scheduler; only its tokenizer knows whole
# words instead of word pieces), only smaller, so everything here carries over to the big model — and it runs in
# about a second on a laptop CPU.

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import pipeline_tour

pipe = ex.load_pipeline("scenes-sd")
PROMPT, SEED = "a red fox sitting in autumn leaves", 0

# %% [markdown]
# ## The machine at a glance
# Each box is a real part of the loaded pipeline, with its class, its number of parameters (learned numbers) and the
# shape of what it hands to the next part.

# %%
plots.plot_pipeline(pipe, PROMPT)

# %% [markdown]
# That row of boxes is the order in which the parts are *called*, not how data flows: the text embeddings do not turn
# into the noise latents. The picture below shows the two lanes. The text lane runs once; its embeddings enter
# **every** U-Net call inside the loop, where the latents go round N times (shapes and parameter counts from the
# hand-made run below).

# %%
params = {}
for name, part in pipe.components.items():
    if part is None:  # optional parts this pipeline does not use (e.g. a safety checker)
        continue
    params[name] = plots.count_params(part)
    print(f"{name:<16} {type(part).__name__:<32} {params[name]:>10,} parameters")

# %%
from explainer.experiments import summaries  # noqa: E402

big = sorted(params, key=params.get, reverse=True)
summaries.say(f"The {big[0]} holds {params[big[0]] / sum(params.values()):.0%} of the learned numbers, the {big[1]} "
              f"{params[big[1]] / sum(params.values()):.0%}, the {big[2]} {params[big[2]] / sum(params.values()):.0%}. "
              "The tokenizer is a lookup table and the scheduler is a formula: neither learns anything.")

# %% [markdown]
# ## The loop, written out
# Here is the whole of what `pipe(prompt)` does, with the pipeline's own parts — nothing hidden, nothing imported from
# our package. The denoising loop is the lines marked 1–5 and the decoding line 6; everything before them prepares
# their inputs. The last lines run `pipe(...)` itself with the same seed and settings and compare the two pictures
# pixel by pixel.

# %%
import numpy as np  # noqa: E402
import torch  # noqa: E402

STEPS, CFG = 25, 7.5
tok, enc, unet, vae, sched = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae, pipe.scheduler


def token_ids(text):
    return tok([text], padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids


with torch.no_grad():
    embeds = torch.cat([enc(token_ids(""))[0], enc(token_ids(PROMPT))[0]])  # without / with the prompt
    latents = torch.randn((1, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                          generator=torch.Generator().manual_seed(SEED))  # the seed's pure noise
    sched.set_timesteps(STEPS)
    latents = latents * sched.init_noise_sigma
    for t in sched.timesteps:                                                            # 1. for each step:
        x_in = sched.scale_model_input(torch.cat([latents] * 2), t)                      # 2. two copies, scaled
        eps_uncond, eps_cond = unet(x_in, t, encoder_hidden_states=embeds).sample.chunk(2)  # 3. predict the noise
        eps = eps_uncond + CFG * (eps_cond - eps_uncond)                                 # 4. guidance (lesson 7)
        latents = sched.step(eps, t, latents).prev_sample                                # 5. remove a bit of it
    pixels = vae.decode(latents / vae.config.scaling_factor).sample                      # 6. latent -> pixels
mine = pipe.image_processor.postprocess(pixels, output_type="pil")[0]
theirs = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=CFG,
              generator=torch.Generator().manual_seed(SEED)).images[0]
loop_difference = int(np.abs(np.asarray(mine, dtype=int) - np.asarray(theirs, dtype=int)).max())
print("largest pixel difference between this loop and pipe(...):", loop_difference, "of 255")

# %% [markdown]
# ## Running it by hand, part by part
# `run_by_hand` (in `explainer/experiments/pipeline_tour.py`) is the same lines as the cell above — the same calls in
# the same order — with a stopwatch and a note of the shape each part hands on. Its table:

# %%
tour = pipeline_tour.run_by_hand(pipe, PROMPT, seed=SEED, steps=STEPS, cfg=CFG)
print("tokens:", tour.tokens)
print(tour.table())

# %%
plots.plot_machine(tour, pipe)

# %% [markdown]
# Read the shapes from top to bottom (the sentences below are filled in from the table's own numbers):

# %%
shape = {s["stage"].split(" (")[0]: s["shape"] for s in tour.stages}
ids, emb, noise, img = shape["token ids"], shape["text embeddings"], shape["noise latents"], shape["VAE decode"]
n_latent, n_pixels = noise[1] * noise[2] * noise[3], img[1] * img[2] * img[3]
summaries.say(
    f"- the prompt became a row of {ids[1]} token ids: {len(tour.tokens)} real ones, padded to the text encoder's "
    f"fixed length;\n- each token became a vector: the embeddings are *{emb[1]} tokens × {emb[2]} dimensions*;\n"
    f"- the noise has the latent's shape, *{noise[1]} channels × {noise[2]} × {noise[3]}*, {img[2] // noise[2]} times "
    f"smaller per side than the {img[2]}×{img[3]} picture: {n_latent} numbers instead of {n_pixels}, "
    f"{n_pixels / n_latent:.0f}× fewer (lesson 3);\n- the U-Net's output has exactly the latent's shape — it is a "
    f"prediction of the noise in it;\n- only at the very end does the VAE turn the latent into a {img[1]}-channel "
    "picture.")

# %%
print(f"starting latents: standard deviation {tour.noise_std:.2f} (pure Gaussian noise has 1)")
print(f"U-Net calls: {tour.unet_calls} ({tour.steps} steps x 2 for CFG)")
print(f"largest pixel difference between run_by_hand's image and pipe(...): {tour.max_pixel_difference} of 255")

# %%
plots.plot_images([[mine, theirs]], f"\u201c{PROMPT}\u201d, seed {SEED}, {STEPS} steps, CFG {CFG}: the loop above "
                  f"beside pipe(...)", col_titles=["the loop written out", "pipe(...)"], cell=2.4)

# %%
summaries.say(f"Left: the loop written out above. Right: `pipe(...)` — \u201c{PROMPT}\u201d, seed {SEED}, {STEPS} "
              f"steps, CFG {CFG}. Their largest pixel difference is {loop_difference} of 255: "
              + ("they are the same picture, bit for bit — the whole machine is the handful of lines in that cell."
                 if loop_difference == 0 else "they differ, so something in the loop above is not what the pipeline "
                 "does."))

# %% [markdown]
# ## From noise to picture
# `ex.trace` runs the pipeline once and records every step. Top row: the latent going into each step (each of its
# channels as a tile). Bottom row: the U-Net's current guess of the finished picture (lesson 4 explains this "predicted x₀").

# %%
tr = ex.trace(pipe, PROMPT, seed=SEED, steps=25)
plots.plot_filmstrip(tr, n=6, rows=("latents", "x0"))

# %%
print(f"step 1: t = {int(tr.steps[0].timestep)}, sigma = {float(tr.steps[0].sigma):.2f};  "
      f"step {len(tr.steps)}: t = {int(tr.steps[-1].timestep)}, sigma = {float(tr.steps[-1].sigma):.3f}")
print("sigma at the start of each step:", ", ".join(f"{s:.2f}" for s in pipeline_tour.sigma_schedule(tr)))

# %% [markdown]
# **Explore it**: the step explorer puts a slider on the same trace — the latent going in, the predicted noise, where
# CFG pushes, and the predicted picture at each step. (Without a browser, e.g. in a test, it is built at step 1.)

# %%
from explainer import widgets  # noqa: E402

widgets.step_explorer(tr, step=0)

# %% [markdown]
# **What we measured.** The verdicts below, each computed from this run: the starting latents against pure Gaussian
# noise, the loop written out above and `run_by_hand` against `pipe(...)`, the U-Net calls against the steps, and the
# noise level step by step. (Whether the picture *is* a red fox in autumn leaves, and how often, is for the judge of
# lessons 4 and 7; *which* things appear first — layout or detail — is lesson 4.)

# %%
v1 = pipeline_tour.verdicts(tour, tr, written_loop_difference=loop_difference)
sig = pipeline_tour.sigma_schedule(tr)
summaries.export("01", v1, headline=(
    f"the loop written out gives `pipe(...)`'s image of \u201c{PROMPT}\u201d with a largest pixel difference of "
    f"{loop_difference} of 255; {tour.unet_calls} U-Net calls for {tour.steps} steps with CFG; the start is noise of "
    f"standard deviation {tour.noise_std:.2f}; sigma {sig[0]:.1f} -> {sig[-1]:.2f}"), numbers={
    "model": "scenes-sd", "prompt": PROMPT, "seed": SEED, "written_loop_difference": loop_difference,
    "max_pixel_difference": tour.max_pixel_difference, "unet_calls": tour.unet_calls, "steps": tour.steps,
    "noise_std": tour.noise_std, "shapes": {s["stage"].split(" (")[0]: list(s["shape"]) for s in tour.stages},
    "tokens": tour.tokens, "sigmas": sig})
ex.verdict_table(v1, title=f"Lesson 1: the whole machine (scenes-sd, \u201c{PROMPT}\u201d, seed {SEED})")

# %% [markdown]
# ## Try it
# - Change `PROMPT` to `"a forest at dawn"` or `"two balloons above a house"` and rerun: the loop still equals
#   `pipe(...)` bit for bit, whatever it draws.
# - Change `SEED` to 1, 2, 3: same prompt, other noise, other picture.
# - `run_by_hand(pipe, PROMPT, steps=5)`: how does the picture change with only 5 steps? And with `cfg=1`? (The
#   table's U-Net call count changes too: why?)
#
# ## Check yourself
# 1. Which parts run once per image, and which run once per step?
# 2. Why does the U-Net's output have the same shape as its input latent?
# 3. How many numbers does the U-Net work on, and how many does the picture have? (Read the table.)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. Tokenizer, text encoder, noise and VAE run once; the U-Net (twice, with CFG) and the scheduler step run once per
#    step.
# 2. It predicts the noise *in* the latent, value for value, so the scheduler can subtract a share of it.
# 3. The noise latents' channels × height × width — the shapes cell above multiplies them out and compares them with
#    the picture's height × width × 3 (lesson 3 is about why it is fewer).
#
# </details>
