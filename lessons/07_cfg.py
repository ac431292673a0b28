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
# **Claim under test** (popular claim #11): *CFG: prediction = uncond + scale · (cond − uncond); a low scale skips parts
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
from explainer import plots, widgets
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
# The running example is also our first look at the model's weakest skill. What did the judge read in this picture?

# %%
example = guidance.running_example(tr)
print(example.sentence())

# %% [markdown]
# Here are the two predictions, the mix, and the delta at one step (step 9 of 25), with the clean image each
# prediction implies (bottom row).

# %%
plots.plot_cfg_branches(tr, step=8, pipe=pipe)

# %%
for i in (0, 8):
    g = guidance.branch_gap(tr, i)
    print(f"step {g['step']:>2} (sigma {g['sigma']:5.2f}): the two branches' clean latents differ by RMS "
          f"{g['cond_vs_uncond']:.3f}; guidance moves the estimate {g['guided_vs_cond']:.3f} past the conditional one; "
          f"a whole picture's latent has RMS {g['picture']:.3f}")

# %% [markdown]
# **How to read the bottom row.** Both branches look at the *same* noisy latent x_t. By step 9 the layout is already
# in x_t (lesson 4), so the unconditional and the conditional branch read the same blobs and imply nearly the same
# picture: their difference (first number above, step 9) is small next to a whole picture. Guidance does not draw a
# third picture; it takes that small difference and multiplies it by CFG − 1 = 6.5 (second number), far beyond
# anything the U-Net ever predicted, so the decoded "guided" estimate is an over-shot smear. The sampler never shows
# you that smear: it moves x_t only a fraction of the way towards it, and asks again at the next step. At step 1
# (first line) x_t is pure noise, the gap between the branches is larger, and the prompt really is choosing what
# to draw.

# %% [markdown]
# ## 2. When and where does the prompt push?
# The size of the delta at each step (left), and relative to the unconditional prediction (right):

# %%
plots.plot_cfg_delta_norm(tr)

# %%
print(f"the delta is largest at step {check.peak_step + 1} of {check.steps}; "
      f"{100 * check.first_half_share:.0f}% of its total size falls in the first half of the steps")
print(f"weighted by how far the sampler moves at each step: {100 * check.first_half_effect:.0f}% in the first half")

# %% [markdown]
# And where: the delta's size at each latent position. Compare with where the objects end up.

# %%
plots.plot_cfg_delta_maps(tr, n=5)

# %%
print(f"the objects cover {100 * check.footprint_share:.0f}% of the image, "
      f"but receive {100 * check.inside_share:.0f}% of the delta (summed over all steps)")

# %% [markdown]
# So the prompt pushes harder on the places where the objects will be than their share of the area would give.
#
# *When* needs care. The delta is a difference of **noise** predictions, and in our model it does not shrink towards
# the end (measured above: its peak is late). But the sampler moves the latents by the noise prediction times the
# *drop in noise level* at that step, which is large early and tiny late. Weighted that way (second line), most of
# the prompt's actual push lands in the first half, while the layout is decided (lesson 4).

# %% [markdown]
# ## 3. The CFG sweep
# Two-object prompts × a few seeds, each at CFG 1, 3, 7.5, 12 and 20 (the cell below prints how many; about 50 s on 2
# CPU cores). Every image is read by the **judge** (`explainer.judge`), a small program that finds the shapes and their
# colours, and compared with the prompt. The columns of the table:
# - **all**: the whole prompt is right (both objects with their colour and shape, the relation, nothing extra);
# - **objects**: both named objects drawn with the asked colour *and* shape;
# - **relation**: both found, and standing in the asked relation ("left of", "above", ...);
# - **extra**: more objects in the picture than the prompt names;
# - **right / recoloured / reshaped / gone**: what became of each *named object* (2 per image): drawn
#   right; its shape drawn but in another colour; its colour drawn but as another shape; neither found;
# - **saturation**: how colourful the pixels are (0 = grey, 1 = pure colour), and **clipped**: the share of colour
#   values pinned at 0 or 255 (pushed out of range).

# %%
sweep = guidance.cfg_sweep(pipe)
print(sweep.table())

# %%
plots.plot_cfg_sweep(sweep)

# %%
plots.plot_cfg_examples(sweep, n_rows=4)

# %% [markdown]
# **Explore it**: the CFG explorer puts a slider on the sweep you just ran: the same images, nothing new is
# generated. Pick a prompt and move the scale from 1 to 20. Under each seed's picture is what the judge read in it;
# the line above is that scale's row of the table. Watch where a colour shifts, where a shape dissolves, where an
# extra blob appears, and whether "left of" ever changes. (Without a browser the explorer is built and shows CFG 20;
# nothing waits for you.)

# %%
widgets.cfg_explorer(sweep, prompt=sweep.prompts[0], scale=20)

# %% [markdown]
# ## 4. The verdicts, computed
# Each line compares two scales on the *same* prompt-and-seed pairs. **Which unit counts?** The prompts were chosen,
# the seeds drawn, and images of one prompt resemble each other: 36 images of 12 prompts are not 36 independent
# pieces of evidence. So the interval is a *cluster* bootstrap that resamples whole prompts (95 %, as every interval in
# these lessons); with fewer than 8 prompts it would say "too few to tell" and give no interval at all.

# %%
from explainer.experiments import summaries  # noqa: E402

cfg_verdicts = guidance.verdicts(sweep)
ex.verdict_table(cfg_verdicts, title="Lesson 7: CFG on our model")

# %% [markdown]
# **Reading the table.** Every sentence below is written from the numbers above when the cell runs:

# %%
lo, mid, hi = 1.0, 7.5, 20.0
best = max(sweep.scales, key=lambda s: (sweep.adherence[s]["all"], -abs(s - mid)))
fates = {s: {f: sweep.fate_share(s, f) for f in ("recoloured", "reshaped", "gone")} for s in (12.0, 20.0)}
rel = {s: sweep.adherence[s]["relation"] for s in sweep.scales}
sweet = "; ".join(f"against CFG {o:g} the sample {summaries.reading(cfg_verdicts, f'a middle scale is the sweet spot: CFG {best:g} (best here) beats CFG {o:g}')}"  # noqa: E501
                  for o in (lo, mid, hi) if o != best)
summaries.say(f"""
- *Low CFG skips parts of the prompt*: at CFG {lo:g} both objects are drawn right in {sweep.adherence[lo]['objects']:.0%}
  of the images, at CFG {mid:g} in {sweep.adherence[mid]['objects']:.0%}; the sample
  {summaries.reading(cfg_verdicts, 'low CFG skips parts')}.
- *A sweet spot in the middle*: the whole prompt is right most often at CFG {best:g}
  ({sweep.adherence[best]['all']:.0%}); {sweet}.
- *Over-saturation*: mean saturation {sweep.saturation[lo]:.3f} at CFG {lo:g} and {sweep.saturation[hi]:.3f} at CFG
  {hi:g} — the sample {summaries.reading(cfg_verdicts, 'high CFG over-saturates')}; clipped channel values
  {sweep.clipped[lo]:.2%} and {sweep.clipped[hi]:.2%} — the sample {summaries.reading(cfg_verdicts, 'high CFG clips')}.
  (The figure's axes start at 0, so a small change looks small.)
- *Artefacts*: at CFG 12 and 20, {fates[12.0]['recoloured'] + fates[12.0]['reshaped']:.0%} and
  {fates[20.0]['recoloured'] + fates[20.0]['reshaped']:.0%} of the named objects change colour or shape, and
  {fates[12.0]['gone']:.0%} and {fates[20.0]['gone']:.0%} vanish; extra objects: the sample
  {summaries.reading(cfg_verdicts, 'high CFG adds extra')}.
- *Relations*: the relation is right in {min(rel.values()):.0%} to {max(rel.values()):.0%} of the images across the
  scales; more guidance drawing it more often: the sample {summaries.reading(cfg_verdicts, 'more guidance draws')}.
  Guidance pushes what the prompt's words say; it does not teach the model "left of".
""")

# %%
summaries.export("07", cfg_verdicts, headline=(
    f"both objects right at CFG 1 in {sweep.adherence[lo]['objects']:.0%} of {len(sweep.prompts)} images "
    f"({len(set(sweep.prompts))} prompts); whole prompt best at CFG {best:g} ({sweep.adherence[best]['all']:.0%}); "
    f"saturation {sweep.saturation[lo]:.2f} → {sweep.saturation[hi]:.2f} and clipped values {sweep.clipped[lo]:.1%} → "
    f"{sweep.clipped[hi]:.1%} from CFG 1 to 20; relation right {min(rel.values()):.0%}–{max(rel.values()):.0%} at "
    "every scale"), numbers={
    "adherence": sweep.adherence, "saturation": sweep.saturation, "clipped": sweep.clipped,
    "extra": sweep.extra_objects, "fates": {s: {f: sweep.fate_share(s, f) for f in ("right", "recoloured", "reshaped",
                                                                                   "gone")} for s in sweep.scales},
    "images_per_scale": len(sweep.prompts), "prompts": len(set(sweep.prompts)), "best": best,
    "formula_error": check.max_abs_error, "formula_max": check.max_abs_guided, "inside_share": check.inside_share,
    "footprint_share": check.footprint_share, "first_half_effect": check.first_half_effect,
    "branch_gap_step9": guidance.branch_gap(tr, 8), "example": example.status})

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
