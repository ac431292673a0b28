# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13. Your turn: a playground
#
# **You will learn**
# - to use every control from lessons 7–12 in one place, and to look inside each run you make;
# - to think like an experimenter: state what you expect, change one thing, check with a number over many seeds.
#
# **The whole lesson in one picture**
# ```
#  prompt ─┐  negative ─┐  seed ─┐  CFG ─┐  steps ─┐  sampler ─┐
#          └────────────┴────────┴───────┴─────────┴───────────┴──► [Generate] ──► image + the run's insides
#                                                                               (predicted x₀ per step, where a word
#                                                                                attends, how hard CFG pushed)
# ```
#
# **Which model, and why.** This lesson runs on `scenes-sd`, our model of real things (foxes, cats, trees, houses)
# on textured grounds under the light of dawn, day, dusk or night. Its challenges are about what generators do with
# a picture's things, ground and light, and its judge reads all three, so every challenge below has an answer the
# lesson measures over twelve seeds before it tells you what you should find.

# %% [markdown]
# ## The playground
# Type a prompt, set the knobs, press **Generate**. Under the image: a step slider (the clean image the model
# predicts at that step), a word menu (where that word's cross-attention looks), and the size of the CFG delta per
# step (lesson 7). The model knows the scenes world's words: things (fox, cat, dog, rabbit, owl, penguin, frog, tree,
# pine tree, house, car, tent, balloon, boat, the sun, the moon, ...), grounds ("in autumn leaves", "on the grass",
# "in the snow", "on the beach", "on the sea"), skies ("at dawn", "in the day", "at dusk", "at night"), positions
# ("on the left"), relations ("left of", "above") and counts ("two", "three").
#
# (If you run this notebook without a browser, e.g. in a test, the widget is built and one generation is run from code
# below, so nothing waits for a click.)

# %%
import numpy as np

import explainer as ex
from explainer import plots, widgets
from explainer.experiments import scenes_challenges as ch
from explainer.experiments import scenes_seeds, summaries
from explainer.experiments.scenes_eval import article_checks
from explainer.worlds.scenes_judge import read

pipe = ex.load_pipeline("scenes-sd")
FIRST = "a red fox sitting in autumn leaves"
pg = widgets.playground(pipe, prompt=FIRST, seed=0, cfg=7.5, steps=20)
pg

# %% [markdown]
# Pressing Generate is the same as calling `pg.run()`; the cell below does it once so there is something to look at,
# and prints what the scenes judge reads in the picture and whether that is what the prompt asked for.

# %%
pg.run()
first = read(np.asarray(pg.trace.image.convert("RGB")))[0]
checks = article_checks(first, FIRST)
print(pg.status.value, "| the judge reads:", ch.describe(first).replace("\n", "; "), "| as asked: "
      + ", ".join(f"{what} {'yes' if ok else 'no'}" for what, ok in checks.items()))

# %% [markdown]
# ## Challenge 1: make the model fail
# Find a prompt the model gets wrong, and say *why* you expected it to. Ideas: two things in one picture ("a dog right
# of a house"), a count ("three foxes"), a combination it never saw in training (`explainer.worlds.scenes.HELD_OUT_COLORS`
# and `HELD_OUT_GROUNDS`: a purple car, a penguin on the beach), a word it does not know. Read the picture with the
# judge rather than by eye: `ch.describe(read(np.asarray(pg.trace.image.convert("RGB")))[0])`.
#
# Then compare with this measurement: "a fox" and "a fox left of a tree", twelve seeds each.

# %%
two = ch.two_things(pipe)
A, B = ch.TWO_THINGS
plots.plot_images(**two.figure("Challenge 1: one thing, then two"))

# %%
v1 = ch.two_things_verdict(two)
summaries.say(
    f"**What you should find.** The judge finds the {A} in {ch.share(two.found('one', A))} pictures of "
    f"{two.prompts['one']!r}, and both the {A} and the {B} in {ch.share(two.found('two', A, B))} of "
    f"{two.prompts['two']!r} (the same seeds); that one thing is drawn more often than two, the sample "
    f"{summaries.READING[v1.status]} ({v1.numbers}).")

# %% [markdown]
# ## Challenge 2: what does CFG 1 leave out?
# Generate the fox at CFG 1, then at 7.5, with the same seed. Which part of the prompt is there already at CFG 1 —
# the fox or the autumn leaves it sits in? Try three seeds before you look at the measurement:

# %%
cfg = ch.cfg_parts(pipe, FIRST)
plots.plot_images(**cfg.figure("Challenge 2: " + " vs ".join(f"CFG {c:g}" for c in cfg.cfgs.values())))

# %%
v2 = ch.cfg_verdicts(cfg)
lo, hi = cfg.prompts
summaries.say(
    f"**What you should find.** At CFG {cfg.cfgs[lo]:g} the judge finds the fox in {ch.share(cfg.found(lo, 'fox'))} "
    f"pictures and reads the ground as autumn leaves in {ch.share(cfg.ground(lo, 'leaves'))}; at CFG "
    f"{cfg.cfgs[hi]:g}, the fox in {ch.share(cfg.found(hi, 'fox'))} and the leaves in "
    f"{ch.share(cfg.ground(hi, 'leaves'))}. That CFG {cfg.cfgs[hi]:g} draws the fox more often, the sample "
    f"{summaries.READING[v2[0].status]} ({v2[0].numbers}); that CFG {cfg.cfgs[lo]:g} already draws the leaves, "
    f"{summaries.READING[v2[1].status]} ({v2[1].numbers}).")

# %% [markdown]
# ## Challenge 3: what does a seed keep?
# Keep the seed and change the thing: "a fox", then "a cat", then "an owl". Does the sky stay? Does the picture's
# light and dark stay where it was? Look for a seed where it does and one where it does not, then compare with
# lesson 10's measurement, made here on three things and twelve seeds:

# %%
keep = scenes_seeds.layout_study(pipe, things=("fox", "cat", "owl"), seeds=ch.SEEDS)
plots.plot_scene_layout(keep)

# %%
v3 = scenes_seeds.verdicts(keep)
ss, so = keep.paired("same_sky")
cs, co = keep.paired("coarse_corr")
try:
    l10 = summaries.verdict(summaries.load("10"), "scenes-sd: the same seed keeps the lighting")
    cite = f" Lesson 10's own run read the lighting claim as **{l10['status']}** ({l10['numbers']}; n = {l10['n']})."
except (FileNotFoundError, KeyError):
    cite = ""
summaries.say(
    f"**What you should find.** With the same seed the judge reads the same sky in {np.mean(ss):.0%} of the pairs of "
    f"different things, with other seeds in {np.mean(so):.0%}: that the seed keeps the lighting, the sample "
    f"{summaries.reading(v3, 'scenes-sd: the same seed keeps the lighting')}. The coarse light and dark (8 × 8 "
    f"brightness) correlate {np.mean(cs):.2f} with the same seed, {np.mean(co):.2f} with others: "
    f"{summaries.reading(v3, 'scenes-sd: the same seed keeps the picture')}.{cite}")

# %% [markdown]
# ## Challenge 4: change the sky, change the light
# "a fox in the day", then "a fox at night", the same seed. What changes besides the sky: the ground, the fox? How
# much darker is the whole picture? Guess a number (the mean pixel value, 0–255) and check:

# %%
night = ch.light(pipe)
plots.plot_images(**night.figure("Challenge 4: day vs night"))

# %%
v4 = ch.light_verdicts(night)
day_b, night_b = np.mean(night.brightness("day")), np.mean(night.brightness("night"))
summaries.say(
    f"**What you should find.** The mean pixel value is {day_b:.0f} of 255 in the day and {night_b:.0f} at night "
    f"(the same seeds): that the night picture is darker, the sample {summaries.READING[v4[0].status]} "
    f"({v4[0].numbers}). The judge reads the asked sky in {ch.share(night.sky('day', 'day'))} day pictures and "
    f"{ch.share(night.sky('night', 'night'))} night pictures.")

# %% [markdown]
# ## Challenge 5 (open): your own claim
# Pick a popular claim (lessons 7–12 list them) you are not yet convinced of. Write down what you would expect to see
# if it were true, and what if it were false. Then measure it as the challenges above do: `ch.draw(pipe,
# [(label, prompt, cfg), ...])` draws each condition with twelve seeds and reads every picture with the judge.

# %% [markdown]
# ## The verdicts, computed
# The playground's first run, then each challenge's measurement, with its sample size and 95 % interval over seeds.

# %%
v13 = summaries.lesson13(checks, FIRST) + [v1] + v2 + v3 + v4
summaries.export("13", v13, headline=(
    f"scenes-sd: the fox at CFG {cfg.cfgs[lo]:g} in {ch.share(cfg.found(lo, 'fox'))} seeds vs CFG {cfg.cfgs[hi]:g} "
    f"{ch.share(cfg.found(hi, 'fox'))}; one thing drawn in {ch.share(two.found('one', A))} vs two in "
    f"{ch.share(two.found('two', A, B))}; same sky with the same seed {np.mean(ss):.0%} vs {np.mean(so):.0%}; "
    f"night {night_b:.0f} vs day {day_b:.0f} of 255"), numbers={
    "model": "scenes-sd", "prompt": FIRST, "seeds": list(ch.SEEDS), "first_checks": checks,
    "two_things": {"prompts": two.prompts, "one": two.found("one", A), "both": two.found("two", A, B)},
    "cfg": {"scales": list(cfg.cfgs.values()), "fox": {k: cfg.found(k, "fox") for k in cfg.prompts},
            "leaves": {k: cfg.ground(k, "leaves") for k in cfg.prompts}},
    "seed": {"same_sky": [ss, so], "coarse_corr": [cs, co]},
    "light": {"brightness": {k: night.brightness(k) for k in night.prompts},
              "sky_right": {k: night.sky(k, k) for k in night.prompts}}})
ex.verdict_table(v13, title="Lesson 13: the playground's first run and the challenges, on scenes-sd")

# %% [markdown]
# ## Check yourself
# 1. In challenge 2 you compared CFG 1 and 7.5 on one seed and on twelve. Why might one seed mislead you?
# 2. You found a prompt the model fails on. How would you tell whether the model *cannot* draw it or was unlucky?
# 3. In challenge 4, did only the sky get darker, or the ground and the fox too? Why would a model learn to darken
#    them all?
#
# <details><summary>Answer</summary>
#
# 1. The starting noise already favours some pictures: with one seed the fox may appear at CFG 1 by luck, or be
#    missing at 7.5. A difference between two conditions is only evidence when it holds across many seeds, and the
#    interval over seeds says how sure that is.
# 2. Try many seeds and count with the judge, as the challenges do. One failure is an anecdote; 0 successes in 12
#    seeds, against many for a simpler prompt, is evidence.
# 3. In its training pictures the light of the sky tints everything under it (the renderer lights the ground and the
#    things by the sky's colour), so "at night" goes with a dark ground and a dark fox: a model that learned its
#    training pictures darkens them together (the mean pixel values above say whether this one did).
#
# </details>
