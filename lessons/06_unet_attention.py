# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 6 — Inside the U-Net: attention
#
# **You will learn**
# - the shape of the U-Net: levels that shrink the latent and grow it back, joined by skip connections;
# - *cross-attention*: how each position of the latent reads the words, and where each word "lands";
# - *self-attention*: how each position looks at every other position;
# - how the two conditions enter: the text through cross-attention, the noise level through the timestep embedding.
#
# **The picture to keep in mind**
# ```
#  x_t 8×8 ─► [down 8×8] ─► [down 4×4] ─► [down 2×2] ─► [middle] ─► [up 2×2] ─► [up 4×4] ─► [up 8×8] ─► ε̂ 8×8
#                 └──────────────┴──────────── skip connections ────────────────────┴──────────┘
#  every block: resnet (+ timestep embedding)  →  self-attention (positions ↔ positions)
#                                              →  cross-attention (positions → words)
# ```
#
# **Claims tested** (from the list of popular claims)
# - #8 *The U-Net compresses then expands, with skip connections; attention lets every region see every other region
#   and the text.*
# - #9 *Conditioning enters through cross-attention (text) and the timestep (noise level).*

# %%
import matplotlib.pyplot as plt
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import attention, guidance

pipe = ex.load_pipeline()

# %% [markdown]
# ## The U shape, read from the model
# Down blocks (left) halve the resolution and widen the channels; the middle works at the coarsest grid; up blocks
# (right) double the resolution back. **Skip connections** (dashed) hand each down block's output straight across to
# the up block at the same resolution, so fine detail does not have to squeeze through the 2×2 bottleneck.

# %%
plots.plot_unet_anatomy(pipe.unet)
a = plots.unet_anatomy(pipe.unet)
for d in a["down"]:
    print(f"down {d['level']}: {d['channels_in']:>3} -> {d['channels_out']:>3} channels at {d['resolution']}, "
          f"{d['params']:,} parameters, attention layers: {d['transformer_layers']}")
print(f"middle: {a['mid']['channels']} channels at {a['mid']['resolution']}, {a['mid']['params']:,} parameters")
print(f"{len(a['skips'])} skip connections; the whole U-Net: {a['total_params']:,} parameters")

# %% [markdown]
# ## Cross-attention: where each word looks
# In **cross-attention**, every position of the latent asks a question (a *query* vector) and every token of the
# prompt offers an answer key; the softmax of their match says how much of each token's information that position
# takes in. Those weights, for one token over all positions, form that token's **attention map**. `ex.trace` records
# them at every step (averaged over the attention heads and layers of each level).

# %%
tr = ex.trace(pipe, "a red circle left of a blue square", seed=0, steps=20)
plots.plot_attention(tr)

# %%
# first, what was drawn, read by the judge: is the picture itself right before we read its maps? (a relation drawn
# the wrong way round is our model's commonest mistake; lesson 7 measures how often)
print(guidance.running_example(tr).sentence())

# %% [markdown]
# **Explore it**: the attention explorer shows one word's map over the image, per U-Net level, for one step or the
# mean over steps (`plots.plot_attention_grid(tr, tokens=["red", "circle"])` draws words × steps at once). Pick "red", then "circle": which map is sharper? (Without a browser the explorer is built with
# "circle" chosen; nothing waits for a click.)

# %%
from explainer import widgets  # noqa: E402

widgets.attention_explorer(tr, token="circle")

# %% [markdown]
# Does "circle" really land on the circle? Over 12 seeds with random colours and relations ("a green circle above a
# white square", ...), we take the attention-weighted centre of the "circle" map and ask whether it lies nearer the
# circle the judge finds in the final image than the square. Same for "square" — and for the two **colour words**,
# which should land on the object they describe. With two objects, a map that points nowhere in particular is nearer
# the right one half the time, so **chance is 50 %**. We also measure how peaked each map is: its largest value over
# its mean (1 = perfectly flat).

# %%
hits = attention.word_lands_on_object(pipe, n=12, steps=20)
print(f"images where the judge found both objects: {hits.judged} of {len(hits.prompts)}")
print(f"'circle' map centred nearer the circle: {hits.circle_hits}/{hits.judged}   "
      f"'square' map nearer the square: {hits.square_hits}/{hits.judged}")
print(f"first colour word nearer the circle:    {hits.colour_hits}/{hits.judged}   "
      f"second colour word nearer the square: {hits.colour2_hits}/{hits.judged}")
for word, c in hits.contrast.items():
    print(f"peak / mean of the {word:<13} maps: {sum(c) / len(c):.2f} (mean over {len(c)} images)")

# %% [markdown]
# **What we measured.** Compare each ratio with chance (half), and the nouns with the colour words: the verdict table
# at the end of the lesson puts a 95 % interval on each, because a dozen images are few (and only the images where
# the judge finds both objects count). (Attention averaged over all steps includes the first, noisy steps, where no
# object exists yet and maps are spread out; the token × step grid shows them sharpening.) Are the colour words' maps
# the flatter ones? The table at the end says whether these images can tell;
# the reason to expect it: a colour is one property of the whole object, and the shape word carries where it is.
#
# ## Self-attention: every position sees every other
# In **self-attention** the keys come from the latent itself: each position takes information from every other
# position. We record it on one layer with a small probe (`attention.record_self_attention`, which computes the
# attention weights beside the layer without changing its output), and look at the row of one query position: the
# centre of the circle.

# %%
sa = attention.self_attention_at(pipe, "a red circle left of a blue square", seed=0, steps=20)
fig, axes = plt.subplots(1, 4, figsize=(11, 3), layout="constrained")
axes[0].imshow(sa.image)
cell = 32 / sa.size[0]  # pixels per attention position
axes[0].add_patch(plt.Rectangle((sa.query[1] * cell - 0.5, sa.query[0] * cell - 0.5), cell, cell, fill=False,
                                edgecolor="lime", linewidth=2))
axes[0].set_title("final image, query position", fontsize=9)
for ax, s in zip(axes[1:], [0, len(sa.maps) // 2, len(sa.maps) - 1], strict=False):
    im = ax.imshow(sa.maps[s], cmap="inferno", vmin=0)
    ax.set_title(f"step {s + 1}/{len(sa.maps)}", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"Self-attention of one position over all {sa.size[0]}x{sa.size[1]} positions ({sa.layer})", fontsize=10)
plt.show()

# %% [markdown]
# One query is one example. The same measurement on 8 prompts and seeds, each share beside what a **uniform** map
# (every position the same weight) would give — the baseline any "reaches far" or "spotlight" claim must beat:

# %%
sa_study = attention.self_attention_study(pipe, n=8, steps=20)
fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
pairs = [("own object", "own_object_share", "own_object_area"), ("other object", "other_object_share",
         "other_object_area"), ("> 2 positions away", "far_share", "uniform_far_share")]
for i, (_label, got, base) in enumerate(pairs):
    g, b = np.array(sa_study.values(got)), np.array(sa_study.values(base))
    ax.bar(i - 0.18, g.mean(), 0.36, yerr=g.std(), capsize=3, color="#d6604d", label="measured" if i == 0 else None)
    ax.bar(i + 0.18, b.mean(), 0.36, yerr=b.std(), capsize=3, color="#bbbbbb",
           label="uniform map (baseline)" if i == 0 else None)
ax.set_xticks(range(len(pairs)), [p[0] for p in pairs])
ax.set_ylabel("share of the attention (mean; bars: sd)")
ax.set_title(f"Self-attention of an object's centre vs a uniform map ({len(sa_study.runs)} prompts/seeds, "
             f"{sa.layer.split('.attentions')[0]})", fontsize=9)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **What we measured.** Every position gets some weight: in one layer, information can travel from any position to any
# other — no convolution can do that in one step. But "much of the attention goes far away" is not a finding by
# itself: a uniform map sends most of its weight far too, simply because most positions *are* far. Read the bars
# against their grey baselines. Whether they are surely apart, at 8 queries, is for the verdict table at the end — it
# is easy to see a difference of 0.02 as a finding.

# %%
far, far_u = np.mean(sa_study.values("far_share")), np.mean(sa_study.values("uniform_far_share"))
own, own_a = np.mean(sa_study.values("own_object_share")), np.mean(sa_study.values("own_object_area"))
print(f"more than 2 positions away: {far:.2f} measured vs {far_u:.2f} for a uniform map")
print(f"on the query's own object:  {own:.2f} of the attention, on {own_a:.2f} of the area")

# %% [markdown]
# ## How the text enters: take it away
# With classifier-free guidance the U-Net runs twice per step, with the prompt and with the empty prompt. The relative
# difference between the two predictions measures how much the text changes what the U-Net does, step by step.

# %% [markdown]
# A test: give the U-Net the prompt only for the first k of 20 steps, then the empty prompt. How many steps
# of text does a picture need? (8 one-object prompts; the judge scores colour, shape and position.)

# %%
abl = attention.text_for_first_k(pipe, n=8, ks=(0, 2, 5, 10, 20), steps=20)
print(f"{'text for the first k steps':<28}" + "".join(f"{a:>10}" for a in ("color", "shape", "position", "all")))
for k, row in abl.adherence.items():
    print(f"k = {k:<24}" + "".join(f"{row[a]:>10.0%}" for a in ("color", "shape", "position", "all")))

# %% [markdown]
# **What we measured.** With k = 0 (no text at all) the model still draws *something* — it learned the unconditional
# picture too; the k = 0 row says how often that happens to match the prompt. Compare the k = 5 row with k = 0 and
# with k = 20: the verdict table says whether the first quarter of the steps recovers the adherence, and whether the
# remaining steps of text add anything 8 prompts can detect. Taking the text away is a causal test: it asks *when*
# the prompt matters, not just where its numbers are large.
#
# ## How time enters: tell the U-Net the wrong noise level
# The timestep goes through a small network (the **timestep embedding**) whose output is added inside every resnet
# block. Test: noise 16 real latents to a true timestep, then ask the U-Net for the noise while *telling* it another
# timestep.

# %%
sweep = attention.timestep_sweep(pipe, true_ts=(100, 400, 700), n=16)
fig, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
for t, row in zip(sweep.true_ts, sweep.loss, strict=False):
    ax.plot(sweep.told_ts, row, "o-", label=f"true t = {t}")
    ax.axvline(t, color=ax.lines[-1].get_color(), linestyle=":")
ax.set_xlabel("timestep the U-Net is told")
ax.set_ylabel("error of the predicted noise (MSE)")
ax.set_yscale("log")
ax.set_title("The U-Net needs to know the noise level")
ax.legend()
plt.show()
print("best told timestep for each true timestep:", dict(zip(sweep.true_ts, sweep.best_told, strict=False)))

# %% [markdown]
# **What we measured.** The error is lowest when the U-Net is told (close to) the true timestep and grows as the lie
# grows: the same latent calls for a different answer depending on how noisy the U-Net believes it is. The noise level
# enters through the timestep embedding, and the U-Net relies on it.
#
# ## The verdicts, computed
# Every claim of this lesson, from the numbers above, with its sample size and 95 % interval (Wilson for shares,
# paired bootstrap for differences); the running example is judged too.

# %%
from IPython.display import display  # noqa: E402

from explainer.experiments import summaries  # noqa: E402

lesson6 = attention.lesson6_verdicts(hits, sa_study, abl, sweep) + [guidance.running_example(tr)]
display(ex.verdict_table(lesson6, title="Lesson 6: inside the U-Net, on our model"))

summaries.say(
    f"**Reading the table.** Nouns' maps: the sample {summaries.reading(lesson6, 'each noun')} that they land on their "
    f"object; colour words: {summaries.reading(lesson6, 'each colour word')}; colour-word maps flatter than nouns': "
    f"{summaries.reading(lesson6, 'colour-word maps')}. Self-attention reaching further than a uniform map "
    f"({far:.2f} vs {far_u:.2f}): {summaries.reading(lesson6, 'self-attention reaches')}; spotlighting its own object "
    f"({own:.2f} on {own_a:.2f} of the area): {summaries.reading(lesson6, 'self-attention spotlights')}. Text for the "
    f"first steps beats no text: {summaries.reading(lesson6, 'text helps')}; the last steps of text add little: "
    f"{summaries.reading(lesson6, 'text matters most early')}.")

# %%
summaries.export("06", lesson6, headline=(
    f"noun maps nearer their object in {hits.circle_hits + hits.square_hits}/{2 * hits.judged} (colour words "
    f"{hits.colour_hits + hits.colour2_hits}/{2 * hits.judged}); self-attention far share {far:.2f} vs uniform "
    f"{far_u:.2f} ({summaries.reading(lesson6, 'self-attention reaches')}); the U-Net's error is lowest at the "
    "timestep it is told"), numbers={
    "judged": hits.judged, "noun_hits": hits.circle_hits + hits.square_hits,
    "colour_hits": hits.colour_hits + hits.colour2_hits, "far": far, "far_uniform": far_u, "own": own,
    "own_area": own_a, "ablation": abl.adherence, "best_told": dict(zip(sweep.true_ts, sweep.best_told, strict=True))})

# %% [markdown]
# ## Try it
# - `plots.plot_attention_levels(tr, "circle")`: which resolution level has the sharpest map?
# - `attention.self_attention_at(pipe, layer=...)` with another layer from `attention.self_attention_layers(pipe.unet)`
#   (the 4×4 and 2×2 levels have 16 and 4 positions).
# - `attention.text_for_first_k(pipe, ks=(0, 1, 3), steps=20)`: how few steps of text are enough?
# - Is a heat map right? `python benchmarks/attention_quality.py` scores every word's map against the object the judge
#   finds (pointing game, mass inside, AUC, IoU) on 240 prompts; `explainer.attention_scores` does it for your trace.
#
# ## Check yourself
# 1. A skip connection carries the 8×8 down block's output to the 8×8 up block. What would the up block lack without it?
# 2. The attention weights of one position over all tokens sum to 1. Why do padding tokens often get much of it?
# 3. Why can the U-Net not simply estimate the noise level from the latent itself, instead of being told?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. Everything the 2×2 bottleneck could not pass on: exact positions and edges. The decoder would have to guess them.
# 2. The weights must go somewhere; padding and the end token carry a summary of the whole prompt (CLIP's end token is
#    what it was trained to summarise with), and act as a resting place when no word is relevant to a position.
# 3. It partly can, but it is ambiguous — a flat grey area looks the same with or without a little noise — and the
#    right answer depends strongly on the level; being told removes the guesswork, as the sweep shows.
#
# </details>
