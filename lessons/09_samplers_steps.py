# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. Samplers and steps: how many are worth it?
#
# **You will learn**
# - what a sampler (scheduler) is, and how Euler, DPM++ 2M, DDIM and Heun differ;
# - to count cost honestly: in U-Net evaluations, not steps (Heun pays two per step);
# - whether 20 → 40 steps is a visible gain and 40 → 80 is not, on our models, measured — and what the extra steps
#   change: the layout, or the texture (fur, leaves);
# - what a few-step sampler (LCM) does to a model that was not trained for it.
#
# **The whole lesson in one picture**
# ```
#  noise ──step──step──step── … ──► image        every "step" = the U-Net predicts the noise, the sampler moves x_t
#        a sampler decides WHERE to step (which noise levels) and HOW (first order, or correcting with history / a
#        second evaluation). More steps = smaller moves = closer to the exact answer, at more cost.
# ```
#
# **Claims under test** (popular claims #5 and #12): *More steps help with diminishing returns: 20→40 is a visible gain,
# 40→80 rarely is.* *Samplers differ in speed and quality (Euler, DPM++ 2M, DDIM, Heun); some models are trained for
# 4–8 steps.*
#
# **Which model, and why.** This lesson runs on `scenes-sd`, our model of real things (foxes, cats, rabbits, forests)
# on textured grounds (autumn leaves, grass): the claim that extra steps keep paying comes from big models refining
# fine texture — fur, leaves — so it needs pictures that have texture. The old shapes model (`shapes-sd`, flat shapes
# on a flat background) is measured beside it for the steps claim, and the lesson says, from the numbers, what each
# model does.

# %% [markdown]
# ## Words first
# - **Sampler** (diffusers calls it a *scheduler*): the numerical method that turns the U-Net's noise predictions into
#   a path from pure noise to a clean latent. The deterministic ones here all approximate the same ideal path (the
#   solution of an ordinary differential equation), so with very many steps they agree.
# - **Euler**: the simplest step: move along the current prediction. **DDIM**: the same idea written for the original
#   noise schedule. **DPM++ 2M**: a second-order *multistep* method: it reuses the previous step's prediction to
#   correct the current one, for free (it is our models' own sampler). **Heun**: second order by evaluating the U-Net
#   twice per step (predict, then correct), so it costs double.
# - **U-Net evaluation**: one call of the network (with CFG, one call holds both branches as a batch of two). This
#   is what costs time, so it is the fair x-axis.
# - **Reference**: our stand-in for "the exact answer": DPM++ 2M with 100 steps, from the same prompt and seed.
# - **Coarse and fine**: a difference between two pictures, split by spatial frequency at the edge of lesson 4's fine
#   band: *fine* is what changes over less than 4 pixels (texture, edges: lesson 4's fine band), *coarse* is the rest
#   (where things are, what colour: lesson 4's coarse and middle bands).

# %%
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import samplers, scenes_samplers, summaries

pipe = ex.load_pipeline("scenes-sd")  # the scenes model: real things on textured grounds, 64x64
shapes = ex.load_pipeline()  # the old shapes model, for section 3

# %% [markdown]
# ## 1. One study, every sampler
# Twelve unseen prompts of an animal or a forest on autumn leaves or grass, one seed each, every sampler at several
# step counts. Each picture is compared with its reference (RMSE: root-mean-square pixel difference, 0 = identical,
# in 0..1 units) and read by the scenes judge (does it hold the thing, the ground and the sky the prompt asks for?).
# The prompt is the unit that was drawn: every interval below resamples prompts, and eight or more are needed for
# one. This is the slow cell of the lesson.

# %%
study = scenes_samplers.study(pipe)
print(study.table())

# %%
plots.plot_sampler_study(study)

# %% [markdown]
# ## 2. Is 20 → 40 a visible gain, and 40 → 80 not?
# "Visible" needs a yardstick: an RMSE of 0.02 is about five grey levels per pixel on average. We measure how much
# the picture itself changes when the step count doubles (same prompt and seed), with DPM++ 2M, the model's own
# sampler.

# %%
DOUBLINGS = list(zip(scenes_samplers.STEPS[:-1], scenes_samplers.STEPS[1:], strict=True))
ch = {(a, b): study.change("dpm++2m", a, b) for a, b in DOUBLINGS}
for (a, b), v in ch.items():
    print(f"dpm++2m {a:>2} -> {b:>2} steps: the picture changes by RMSE {v:.4f} "
          f"({'visible' if v > samplers.VISIBLE else 'below the yardstick'}); distance to the reference "
          f"{study.run('dpm++2m', a).distance:.4f} -> {study.run('dpm++2m', b).distance:.4f}")

# %% [markdown]
# **What the extra steps change: layout or texture?** The distance to the reference at each step count, split into
# its coarse and fine bands. The second row of the figure below shows *where* each picture still differs from the
# reference in fine detail (white = a difference of 0.1 or more, a clearly visible one).

# %%
bt = scenes_samplers.band_table(study)
for n, b in bt.items():
    print(f"dpm++2m {n:>2} steps: coarse {b['coarse']:.4f}, fine {b['fine']:.4f} "
          f"(fine is {b['fine'] / max(b['coarse'] + b['fine'], 1e-12):.0%} of the two)")

# %%
FOX = next((k for k, p in enumerate(study.prompts) if "fox" in p), 0)
plots.plot_sampler_examples(study, "dpm++2m", index=FOX, detail=scenes_samplers.detail_maps(study, FOX))

# %%
v_tex = scenes_samplers.texture_verdicts(study) + scenes_samplers.texture_verdicts(study, a=40, b=80)
ex.verdict_table(v_tex, title="What the extra steps change (dpm++2m, scenes-sd)")

# %% [markdown]
# ## 3. The shapes model beside it
# The same measure on the shapes model: eight prompts of flat shapes, one seed each, DPM++ 2M at the same step counts
# (only the changes between step counts are used here, so its longest run serves as its reference).

# %%
SHAPE_PROMPTS = samplers.PROMPTS + ("a small purple triangle on the right", "a large orange square at the bottom",
                                    "a white star below a blue circle", "a red cross right of a yellow triangle")
flat = samplers.sampler_study(shapes, prompts=SHAPE_PROMPTS, seeds=list(range(len(SHAPE_PROMPTS))),
                              plan={"dpm++2m": scenes_samplers.STEPS}, reference=("dpm++2m", max(scenes_samplers.STEPS)))
flat_ch = {(a, b): flat.change("dpm++2m", a, b) for a, b in DOUBLINGS}
print(" " * 18 + "".join(f"{a:>3} -> {b:<3}" for a, b in DOUBLINGS))
for name, c in (("scenes-sd", ch), ("shapes-sd", flat_ch)):
    print(f"{name:<18}" + "".join(f"{c[k]:>10.4f}" for k in DOUBLINGS))

# %%
v_steps = samplers.steps_verdicts(study) + samplers.steps_verdicts(flat)
seen = {m: [f"{a} → {b}" for (a, b), v in c.items() if v > samplers.VISIBLE]
        for m, c in (("scenes-sd", ch), ("shapes-sd", flat_ch))}
last = {m: v[-1] if v else None for m, v in seen.items()}
agree = scenes_samplers.agreeing(v_steps, ("scenes-sd", "shapes-sd"))
tex = {k: summaries.reading(v_tex, f"scenes-sd: what {k} steps still changes") for k in ("20 -> 40", "40 -> 80")}
fine_share = {n: b["fine"] / max(b["coarse"] + b["fine"], 1e-12) for n, b in bt.items()}
summaries.say(
    "**What the numbers say.** " + " ".join(
        f"On **{m}** the last doubling that changes the picture visibly is "
        + (f"{last[m]} steps" if last[m] else f"none of those measured (already {DOUBLINGS[0][0]} → {DOUBLINGS[0][1]} "
           "stays below the yardstick)")
        + f"; 20 → 40 changes it by {c[(20, 40)]:.4f} and 40 → 80 by {c[(40, 80)]:.4f} (yardstick {samplers.VISIBLE}): "
        f"that 20 → 40 is a visible gain, the sample {summaries.reading(v_steps, f'{m}: 20 -> 40')}; that 40 → 80 is "
        f"not, it {summaries.reading(v_steps, f'{m}: 40 -> 80')}."
        for m, c in (("scenes-sd", ch), ("shapes-sd", flat_ch)))
    + f" The article's whole claim holds on {' and '.join(m for m, a in agree.items() if a) or 'neither model'}"
    + (" — the two models agree." if len(set(agree.values())) == 1 else " — here the two models disagree.")
    + f" On scenes-sd, that the 20 → 40 change is mostly fine detail (texture), the sample {tex['20 -> 40']}; for "
      f"40 → 80 it {tex['40 -> 80']}: the fine band's share of what is left grows from "
      f"{bt[min(bt)]['fine'] / (bt[min(bt)]['coarse'] + bt[min(bt)]['fine']):.0%} at {min(bt)} steps to "
      f"{bt[max(bt)]['fine'] / (bt[max(bt)]['coarse'] + bt[max(bt)]['fine']):.0%} at {max(bt)}, so "
    + ("texture is what refines last" if fine_share[max(bt)] > fine_share[min(bt)] else
       "texture does not refine last here")
    + " — by amounts the yardstick calls "
    + ("visible." if bt[40]["fine"] > samplers.VISIBLE else "invisible after 40 steps.")
    + " The claim comes from big models, whose pictures hold far more texture than ours (we have not measured "
      "them); where the gain stops being visible depends on the model and on what is in the picture.")

# %% [markdown]
# ## 4. Heun: better per step, but per evaluation?
# Compare the runs at similar U-Net evaluation counts (Heun 10 steps = 19 evaluations vs Euler 20 steps; Heun 20 =
# 39 vs Euler 40):

# %%
pairs = [(study.run("heun", h), study.run("euler", e)) for h, e in samplers.HEUN_PAIRS]
for heun, euler in pairs:
    print(f"heun {heun.steps:>2} steps: {heun.unet_evals:>2} evaluations, distance {heun.distance:.4f}   |   "
          f"euler {euler.steps:>2} steps: {euler.unet_evals:>2} evaluations, distance {euler.distance:.4f}")

# %%
v_heun = samplers.heun_verdicts(study)
heun_read = [summaries.reading(v_heun, f"scenes-sd: Heun wins per U-Net evaluation: heun {h.steps} steps")
             for h, _ in pairs]
summaries.say(
    "**What we measured.** Heun corrects each step with a second U-Net call, so *per step* it is the more accurate "
    "method. Per U-Net evaluation, which is what costs time: "
    + "; ".join(f"Heun {h.steps} ({h.unet_evals} evaluations) lands {h.distance:.4f} from the reference and Euler "
                f"{e.steps} ({e.unet_evals}) {e.distance:.4f} — that Heun is closer, the sample {r}"
                for (h, e), r in zip(pairs, heun_read, strict=True))
    + ". " + ("So on our model Heun's correction pays for its extra call at both sizes of run." if
              all(r == "agrees" for r in heun_read) else
              "So on our model Heun's correction never surely pays for its extra call." if
              not any(r == "agrees" for r in heun_read) else
              "So on our model Heun's correction surely pays for its extra call only at "
              + ", ".join(f"{h.unet_evals} evaluations" for (h, _), r in zip(pairs, heun_read, strict=True)
                          if r == "agrees") + ".")
    + " \"Fewer steps\" is only a saving if it means fewer network evaluations.")

# %% [markdown]
# ## 5. Which deterministic sampler is closest at few steps?
# A popular belief says DPM++ 2M is the best sampler at few steps. The study's table answers it for our model at
# 5 and 10 steps — printed here, smallest distance first:

# %%
for n in (5, 10):
    ranked = sorted(("euler", "ddim", "dpm++2m"), key=lambda s: study.run(s, n).distance)
    print(f"{n:>2} steps: " + ",  ".join(f"{s} {study.run(s, n).distance:.3f}" for s in ranked))

# %% [markdown]
# The verdict table at the end puts an interval on it (twelve prompts, paired). A reason to expect DPM++ 2M to lead:
# its correction reuses the previous step's prediction for free. Whether it is "best" depends on the model, the
# noise schedule (try `"dpm++2m_karras"`) and the step count — measure it on yours.
#
# ## 6. LCM on a model that is not LCM-distilled
# LCM (Latent Consistency Model) sampling is built for models *distilled* to jump from noise to a clean image in 4–8
# steps. Our model was trained the ordinary way. **Distance to the reference is the wrong yardstick for LCM**: it
# jumps to a clean estimate and then *re-noises* it with fresh random noise at every step, so it ends at a different
# picture even when that picture is a good one. So we judge it by what a learner cares about — does the judge read the
# prompt in the picture? — on the study's prompts, against DPM++ 2M at about as few steps and at 20.

# %%
for name, n in (("lcm", 4), ("dpm++2m", 5), ("lcm", 8), ("dpm++2m", 10), ("dpm++2m", 20)):
    r = study.run(name, n)
    print(f"{name:>8} {n:>2} steps: whole prompt read right {sum(r.right):>2} of {len(r.right)} ({r.adherence:.0%})")

# %%
v_lcm = samplers.lcm_verdicts(study)
summaries.say(
    f"**What we measured.** The judge reads the whole prompt right in {study.run('lcm', 4).adherence:.0%} of the "
    f"pictures with LCM at 4 steps, {study.run('dpm++2m', 5).adherence:.0%} with DPM++ 2M at 5 and "
    f"{study.run('dpm++2m', 20).adherence:.0%} with an ordinary 20-step run. That LCM at 4 steps falls short of the "
    f"ordinary run, the sample {summaries.reading(v_lcm, 'scenes-sd: LCM at 4 steps')}; that it falls short of DPM++ "
    f"2M at 5 steps, it {summaries.reading(v_lcm, 'scenes-sd: LCM sampling needs an LCM-distilled model: LCM 4')}. "
    "Few-step *quality* is a property of how a model was trained (distilled), not a setting you can switch on.")

# %% [markdown]
# ## 7. The paths in latent space
# Four samplers, same prompt, seed and 20 steps. Each path is the latents before every step, squeezed from all the
# latent's numbers (printed below) to 2 with PCA (principal component analysis: the two directions along which the
# points spread most). They start at the same noise (○) and should end near the same image (★).

# %%
traces = samplers.sampler_traces(pipe, prompt="a red fox sitting in autumn leaves")
shape = traces[0].steps[0].latents.shape[-3:]
print("latent numbers per step:", " x ".join(map(str, shape)), "=", int(np.prod(shape)))
plots.plot_trajectories(traces, labels=[t.settings["scheduler"] for t in traces])

# %%
from explainer.readouts import trajectory  # noqa: E402

paths = [trajectory(t).reshape(len(t.steps) + 1, -1) for t in traces]  # every latent number, not the 2-D map
gap = {end: max(float(np.linalg.norm(p[end] - q[end])) for p in paths for q in paths) for end in (0, -1)}
travel = float(np.mean([np.linalg.norm(p[-1] - p[0]) for p in paths]))
summaries.say(
    f"Measured on all {paths[0].shape[1]} latent numbers: the four paths start at most {gap[0]:.2f} apart and end at "
    f"most {gap[-1]:.2f} apart, while each travels {travel:.1f} from start to end: "
    + ("they start at the same noise (up to the scaling explained below) and " if gap[0] < 0.01 * travel else
       "they do *not* start at the same noise, and ")
    + (f"end near the same image (within {gap[-1] / travel:.0%} of the journey)." if gap[-1] < 0.1 * travel else
       f"end {gap[-1] / travel:.0%} of the journey apart: not at the same image."))

# %% [markdown]
# All four solve the same equation, and differ in where they put their steps (the dots) and how they step between
# them. (Euler and Heun keep their latents at a
# larger scale, x₀ + σ·noise; the plot divides them by √(σ² + 1), as these samplers do before every U-Net call, so all
# four share one map.)

# %% [markdown]
# ## 8. Explore: samplers × steps
# The grid explorer makes one picture per (row, column) setting. Here rows are samplers and columns step counts, for
# one prompt and seed; change the values and press **Generate grid** (without a browser the cell below runs it once).

# %%
from explainer import widgets  # noqa: E402

explorer = widgets.grid_explorer(pipe, prompt="a red fox sitting in autumn leaves")
explorer.rows_axis.value, explorer.rows_values.value = "schedulers", "dpm++2m, lcm"
explorer.cols_axis.value, explorer.cols_values.value = "steps", "4, 8, 20"
explorer.run()
explorer

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the per-prompt numbers (95 % intervals: paired bootstrap over prompts, the
# same prompt and seed under both settings).

# %%
v9 = (v_steps[:3] + v_tex + v_steps[3:] + v_heun + samplers.default_verdicts(study) + v_lcm)
summaries.export("09", v9, headline=(
    "scenes-sd: " + "; ".join(f"{a} → {b} steps changes the picture by {ch[(a, b)]:.4f}" for a, b in DOUBLINGS[1:])
    + f" (visible: > {samplers.VISIBLE}); shapes-sd 20 → 40: {flat_ch[(20, 40)]:.4f}; steps claim holds on "
    + (" and ".join(m for m, a in agree.items() if a) or "neither model") + "; Heun "
    + ", ".join(f"{h.steps} steps ({h.unet_evals} U-Net calls) vs Euler {e.steps}: {r}"
                for (h, e), r in zip(pairs, heun_read, strict=True))
    + f"; LCM 4 steps right {study.run('lcm', 4).adherence:.0%} vs DPM++ 2M 20 steps "
      f"{study.run('dpm++2m', 20).adherence:.0%}"),
    numbers={"prompts": study.prompts, "seeds": study.seeds,
             "change": {f"{a}-{b}": v for (a, b), v in ch.items()},
             "shapes_change": {f"{a}-{b}": v for (a, b), v in flat_ch.items()},
             "bands": {str(n): b for n, b in bt.items()},
             "distance": {f"{r.sampler} {r.steps}": r.distance for r in study.runs},
             "evals": {f"{r.sampler} {r.steps}": r.unet_evals for r in study.runs},
             "right": {f"{r.sampler} {r.steps}": r.right for r in study.runs}})
ex.verdict_table(v9, title="Lesson 9: samplers and steps on scenes-sd (and the steps claim on shapes-sd)")

# %% [markdown]
# ## Try it
# - Add `"dpm++2m_karras"` (DPM++ 2M with Karras noise levels) to a plan:
#   `scenes_samplers.study(pipe, plan={"dpm++2m_karras": (5, 10, 20), "dpm++2m": (5, 10, 20)})`.
# - Try an ancestral sampler (`"euler_a"`), which adds fresh noise every step. Does it converge to the reference as
#   steps grow? (Hint: it solves a different, random equation.)
# - Trace at 4 steps and look at the filmstrip: `plots.plot_filmstrip(ex.trace(pipe, "a fox", steps=4))`.

# %% [markdown]
# ## Check yourself
# 1. Why compare samplers per U-Net evaluation instead of per step?
# 2. Why can Euler, DDIM, DPM++ 2M and Heun all be compared to one reference image?
# 3. Why does LCM do badly here, when LCM models make good images in 4 steps?
#
# <details><summary>Answer</summary>
#
# 1. The U-Net call is the cost. Heun takes two per step, so 10 Heun steps cost as much as ~20 Euler steps.
# 2. All four are deterministic solvers of the same equation from the same starting noise; with enough steps they
#    converge to the same end point. (Ancestral samplers, which inject new noise, do not.)
# 3. The LCM sampler assumes a network that predicts the *final* clean image from any noise level in one jump — that
#    is what LCM distillation trains. Our U-Net was trained to predict the noise for small steps, so large jumps land
#    in the wrong place.
#
# </details>
