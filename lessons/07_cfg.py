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
# - what too little and too much guidance do, measured with a judge on prompts the model never saw — on the scenes
#   model, and beside it on the old shapes model, where the answer is different.
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
#
# **Which model, and why.** This lesson runs on `scenes-sd`, our model of real things (foxes, trees, houses on autumn
# leaves, grass, snow, under the light of dawn, day, dusk or night; 64×64 pictures, the same classes as Stable
# Diffusion 1.x): what guidance does is a question about what real generators do, and real generators need it. Our
# first model, `shapes-sd` (flat coloured shapes), is measured beside it in section 4: whether CFG matters as much on
# flat shapes as on real things is a question the same measurements answer. The lesson says, from the numbers, which
# model agrees with the article.

# %% [markdown]
# ## Words first
# - **Latents**: the small grid of numbers the model actually denoises (scenes-sd: channels × 8 × 8, one 8 × 8 grid per channel); the VAE
#   decoder turns them into the 64×64 picture at the end.
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
from explainer.experiments import guidance, scenes_cfg, summaries
from explainer.trace import trace

pipe = ex.load_pipeline("scenes-sd")  # the scenes model: real things, 64x64
shapes = ex.load_pipeline()  # the old shapes model, for section 4

# %% [markdown]
# ## 1. The formula on real tensors
# `trace` runs the pipeline once and records, at every step, both U-Net predictions and the mixed one the sampler
# actually used. We mix them again ourselves and compare.

# %%
PROMPT, SEED, STEPS = "a red fox sitting in autumn leaves", 0, 20
tr = trace(pipe, PROMPT, seed=SEED, steps=STEPS, cfg=7.5)
fox = scenes_cfg.footprint(tr.image, ["fox"])  # where the judge reads the fox, at latent resolution
check = guidance.check_formula(tr, footprint=fox)
print(f"largest |uncond + 7.5*(cond - uncond) - guided| over {check.steps} steps: {check.max_abs_error:.2e}"
      f"  (values themselves reach {check.max_abs_guided:.2f})")
summaries.say("The difference is at the level of float rounding: the pipeline does exactly this arithmetic, nothing "
              "more." if check.max_abs_error <= 1e-5 * max(check.max_abs_guided, 1.0) else
              "The difference is larger than float rounding: the pipeline does something more than this arithmetic.")

# %% [markdown]
# **Does too much guidance over-shoot?** Below, the same prompt and seed at CFG 20: the two predictions, their mix
# and the delta at one step, with the clean picture each prediction implies (bottom row).

# %%
tr20 = trace(pipe, PROMPT, seed=SEED, steps=STEPS, cfg=20.0)
MID = STEPS // 2 - 1  # a step in the middle of the run (0-based)
plots.plot_cfg_branches(tr20, step=MID, pipe=pipe)

# %%
gaps = {t.settings["cfg"]: guidance.branch_gap(t, MID) for t in (tr, tr20)}
for c, g in gaps.items():
    print(f"CFG {c:>4g}, step {g['step']} (sigma {g['sigma']:.2f}): the branches' clean latents differ by RMS "
          f"{g['cond_vs_uncond']:.3f}; guidance moves the estimate {g['guided_vs_cond']:.3f} past the conditional "
          f"one, {g['guided_vs_cond'] / g['picture']:.2f}x the RMS of a whole picture's latent ({g['picture']:.3f})")

# %% [markdown]
# **How to read the bottom row.** Both branches look at the *same* noisy latent x_t, so they imply pictures that
# differ by the first number above. Guidance does not draw a third picture: it takes that difference and multiplies
# it by CFG − 1 (19 at CFG 20), and the decoded "guided" estimate lands that far past the conditional one (the
# second number, next to the size of a whole picture). The sampler moves x_t only part of the way towards it at
# each step and asks again at the next; section 3 measures what the scale does to the finished pictures.

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
# The delta is a difference of **noise** predictions. The sampler moves the latents by the noise prediction times the
# *drop in noise level* at that step, which is large early and tiny late; the second line weighs each step that way.
# And where: the delta's size at each latent position.

# %%
plots.plot_cfg_delta_maps(tr, n=5)

# %%
where = ("the judge reads no fox, so there is no footprint to compare the delta with"
         if check.footprint_share == 0 else
         f"the cells around the fox (as the judge reads its centre) cover {check.footprint_share:.0%} of the picture "
         f"and receive {check.inside_share:.0%} of the delta, summed over all steps: "
         + ("more than their share of the area" if check.inside_share > check.footprint_share else
            "no more than their share of the area"))
summaries.say(f"In this one picture {where}. One picture is one example, not a measurement: try other seeds.")

# %% [markdown]
# ## 3. The CFG sweep on scenes-sd
# Unseen prompts (scenes the model never trained on: one thing, or two things in a relation, each with its ground and
# sky), each drawn with its own seed at CFG 1, 3, 5, 7.5, 12 and 20, the same seed at every scale. The **scenes
# judge** (a small network trained on rendered scenes) reads every picture: which things, where, their colours, the
# ground and the sky. The columns:
# - **all**: the whole prompt read right; **parts**: the share of the prompt's checks read right (each thing, its
#   colour, the relation, the ground, the sky);
# - **saturation**: how colourful the pixels are (0 = grey, 1 = pure colour), and **clipped**: the share of colour
#   values pinned at 0 or 255 (pushed out of range);
# - **extra**: the judge reads a thing the prompt did not ask for.
#
# Each cell is a mean with its 95 % interval, resampling *prompts* (the unit that was drawn).

# %%
sweep = scenes_cfg.scenes_sweep(pipe)
print(sweep.table())

# %%
plots.plot_cfg_model_examples(sweep, n_rows=4)

# %% [markdown]
# ## 4. The same sweep on the old shapes model
# Ten two-shape prompts ("a red circle left of a blue square") with the shapes model's own judge, seed 0, at
# the same scales (25 steps). The figure puts both models side by side; every axis starts at 0, so a small change
# looks small.

# %%
old = scenes_cfg.from_shapes_sweep(guidance.cfg_sweep(shapes, prompts=guidance.SWEEP_PROMPTS[:10], seeds=(0,),
                                                     scales=scenes_cfg.SCALES))
plots.plot_cfg_models([sweep, old])

# %%
plots.plot_cfg_model_examples(old, n_rows=2)

# %% [markdown]
# ## 5. The verdicts, computed
# Each line compares two scales on the *same* prompts and seeds. The interval is a *cluster* bootstrap that resamples
# whole prompts (95 %, as every interval in these lessons); with fewer than 8 prompts it would say "too few to tell".

# %%
models = [sweep.model, old.model]
cfg_verdicts = scenes_cfg.verdicts(sweep) + scenes_cfg.verdicts(old)
ex.verdict_table(cfg_verdicts, title="Lesson 7: CFG on the scenes model and on the shapes model")

# %% [markdown]
# **Reading the table.** Every sentence below is written from the numbers above when the cell runs:

# %%
def model_line(ms):
    m, r = ms.model, lambda start: summaries.reading(cfg_verdicts, f"{ms.model}: {start}")
    return (f"- **{m}** ({ms.units} prompts): the judge reads {ms.mean('parts', 1.0):.0%} of a prompt's checks right "
            f"at CFG 1 and {ms.mean('parts', 7.5):.0%} at CFG 7.5 (low CFG skips parts: the sample {r('low CFG')}); "
            f"the whole prompt {ms.mean('all', 1.0):.0%} at CFG 1, {ms.mean('all', 7.5):.0%} at 7.5 and "
            f"{ms.mean('all', 20.0):.0%} at 20, most often at CFG {ms.best():g} (a middle scale as the sweet spot: "
            f"the sample {summaries.READING[scenes_cfg.sweet_spot(cfg_verdicts, m)]}); saturation "
            f"{ms.mean('saturation', 7.5):.3f} at CFG 7.5 and {ms.mean('saturation', 20.0):.3f} at 20 (over-saturates: "
            f"the sample {r('high CFG over-saturates')}), clipped values {ms.mean('clipped', 7.5):.2%} and "
            f"{ms.mean('clipped', 20.0):.2%} (the sample {r('high CFG clips')}); things not asked for "
            f"{ms.mean('extra', 7.5):.0%} and {ms.mean('extra', 20.0):.0%} (the sample {r('high CFG adds')}).")


def who(start):
    return " and ".join(scenes_cfg.agreeing(cfg_verdicts, start, models)) or "neither model"


sweet = [m for m in models if scenes_cfg.sweet_spot(cfg_verdicts, m) == "agrees"]
g7, g20 = gaps[7.5], gaps[20.0]
summaries.say("\n".join([model_line(sweep), model_line(old), "",
    f"**Which model agrees with the article?** That a low scale skips parts of the prompt: {who('low CFG skips')}. "
    f"That a middle scale is the sweet spot (CFG 7.5 beats both CFG 1 and CFG 20): "
    f"{' and '.join(sweet) or 'neither model'}. That a high scale over-saturates: {who('high CFG over-saturates')}; "
    f"clips colours: {who('high CFG clips')}; adds things: {who('high CFG adds')}. Where a model is not named, its "
    "sample says the opposite or cannot tell (the table says which).",
    "",
    f"**The over-shoot** (section 1, one trace of \u201c{PROMPT}\u201d): at step {g20['step']} guidance puts the "
    f"estimate {g20['guided_vs_cond'] / g20['picture']:.2f}x a whole picture past the conditional one at CFG 20, "
    f"{g7['guided_vs_cond'] / g7['picture']:.2f}x at CFG 7.5."]))

# %%
def per_scale(ms, key):
    return {s: ms.mean(key, s) for s in ms.scales}


findings = summaries.export("07", cfg_verdicts, headline=(
    f"scenes-sd: whole prompt right {sweep.mean('all', 1.0):.0%} at CFG 1, {sweep.mean('all', 7.5):.0%} at 7.5, "
    f"{sweep.mean('all', 20.0):.0%} at 20 ({sweep.units} unseen prompts; low CFG skips parts: the sample "
    f"{summaries.reading(cfg_verdicts, 'scenes-sd: low CFG')}); shapes-sd: {old.mean('all', 1.0):.0%} at CFG 1 vs "
    f"{old.mean('all', 7.5):.0%} at 7.5 ({summaries.reading(cfg_verdicts, 'shapes-sd: low CFG')}); over-saturation at "
    f"CFG 20 vs 7.5 on scenes-sd: {summaries.reading(cfg_verdicts, 'scenes-sd: high CFG over-saturates')}"),
    numbers={m.model: {"prompts": m.units, "images_per_scale": len(m.prompts), "steps": m.steps, "best": m.best(),
                       "sweet_spot": scenes_cfg.sweet_spot(cfg_verdicts, m.model),
                       **{k: per_scale(m, k) for k in scenes_cfg.KEYS}} for m in (sweep, old)} | {
        "formula_error": check.max_abs_error, "formula_max": check.max_abs_guided,
        "inside_share": check.inside_share, "footprint_share": check.footprint_share,
        "first_half_effect": check.first_half_effect, "branch_gap": {str(c): g for c, g in gaps.items()}})

# %% [markdown]
# ## Try it
# - Trace another prompt (`"two balloons above a house"`) and run `plots.plot_cfg_delta_maps` on it: does the
#   delta sit where the balloons end up?
# - Make your own sweep: `scenes_cfg.scenes_sweep(pipe, scenes_cfg.sweep_scenes(12, kinds=["count"]),
#   scales=[1, 2, 4, 8, 16])` (counting prompts), then `print(...table())`.
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
