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
# - *cross-attention*: how each position of the latent reads the words, and where "fox" and "leaves" land;
# - *self-attention*: how each position looks at every other position, and whether a patch of ground looks mostly at
#   other ground.
#
# **The picture to keep in mind**
# ```
#  x_t ─► [down] ─► [down] ─► [down] ─► [middle] ─► [up] ─► [up] ─► [up] ─► ε̂      (each level halves / doubles)
#           └────────┴────────┴───── skip connections ──────┴───────┴──────┘
#  every block: resnet (+ timestep embedding)  →  self-attention (positions ↔ positions)
#                                              →  cross-attention (positions → words)
# ```
#
# **Claims tested** (popular claim #8): *Each word's cross-attention lands on the thing it names; self-attention lets
# every region see every other region, and looks far.*
#
# **Which model, and why.** This lesson runs on `scenes-sd`, our model of real things on textured grounds: the claim
# is about what generators do with a *thing* and the *ground* it stands on, and its pictures have both — a fox the
# scenes judge can find, and autumn leaves that the world always lays below its horizon. So every map can be checked
# against where the fox and the ground really are.

# %%
import matplotlib.pyplot as plt
import numpy as np

import explainer as ex
from explainer import plots, widgets
from explainer.experiments import scenes_attention as sa
from explainer.experiments import summaries

pipe = ex.load_pipeline("scenes-sd")

# %% [markdown]
# ## The U shape, read from the model
# Down blocks (left) halve the resolution and widen the channels; the middle works at the coarsest grid; up blocks
# (right) double the resolution back. **Skip connections** (dashed) hand each down block's output straight across to
# the up block at the same resolution, so fine detail does not have to squeeze through the bottleneck.

# %%
plots.plot_unet_anatomy(pipe.unet)

# %%
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
# them at every step (averaged over the attention heads and layers of each level). The maps below are the mean over
# steps at the finest level (the one with the most positions), for the words that name something: a word that names
# nothing can take much of the attention everywhere and would then set the colour scale (the cell after the figure
# measures every word; `plots.plot_attention(tr)` draws them all).

# %%
PROMPT = "a red fox sitting in autumn leaves"
tr = ex.trace(pipe, PROMPT, seed=0, steps=20)
plots.plot_attention(tr, tokens=["red", "fox", "sitting", "autumn", "leaves"], level=0)

# %%
share = {w: float(tr.attention(w, level=0).mean()) for w in dict.fromkeys(PROMPT.split())}  # each word once
top = max(share, key=share.get)
summaries.say("Mean attention a position gives each word (finest level, mean over steps): "
              + ", ".join(f"\u201c{w}\u201d {v:.3f}" for w, v in share.items())
              + f". \u201c{top}\u201d takes the most, {share[top] / sorted(share.values())[-2]:.1f}\u00d7 the next word; "
              "the rest of each position's attention goes to the start, end and padding tokens.")

# %% [markdown]
# **Explore it**: the attention explorer shows one word's map over the image, per U-Net level, for one step or the
# mean over steps. Pick "fox", then "leaves": does one sit on the fox and the other on the ground? (Without a browser
# the explorer is built with "fox" chosen; nothing waits for a click.)

# %%
widgets.attention_explorer(tr, token="fox")

# %% [markdown]
# ## Does "fox" land on the fox, and "leaves" on the ground?
# One picture is one example. We trace twelve fox-in-leaves prompts (the article's and its rewordings: "a fox in
# fallen leaves", "a red fox standing on autumn leaves", ...), one seed each, and score each word's map at the finest
# level (the one with the most positions):
# - **on the fox**: the share of the map on the cells within 10 px of the fox's centre as the scenes judge reads it;
# - **on the ground**: the share on the cells below the highest horizon the world draws (those are ground in every
#   scene).
#
# A map that looks nowhere in particular — a **uniform** map — puts on each region exactly that region's share of
# the area. That is the baseline: a word "lands" on a region only if its share beats the region's area.

# %%
cs = sa.cross_study(pipe)
fig, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
groups = [("on the fox", cs.on_fox, cs.judged(cs.fox_area)), ("on the ground", cs.on_ground,
                                                                 [cs.ground_area] * len(cs.prompts))]
for g, (name, shares, area) in enumerate(groups):
    for i, word in enumerate(sa.WORDS):
        vals = cs.judged(shares[word]) if name == "on the fox" else shares[word]
        x = 3 * g + i
        ax.bar(x, np.mean(vals), 0.8, color=("#d6604d", "#e0a030")[i], label=f"\u201c{word}\u201d" if g == 0 else None)
        ax.plot([x] * len(vals), vals, "k.", markersize=3)
    ax.bar(3 * g + 2, np.mean(area), 0.8, color="#bbbbbb", label="uniform map (the area)" if g == 0 else None)
ax.set_xticks([1, 4], [f"on the fox ({sum(cs.fox_found)} prompts with a judged fox)",
                       f"on the ground ({len(cs.prompts)} prompts)"])
ax.set_ylabel("share of the word's map")
ax.set_ylim(0, None)
ax.set_title(f"Where the words look: {cs.level} level, mean over {cs.steps} steps, CFG {cs.cfg:g}, seeds "
             f"{cs.seeds[0]}\u2013{cs.seeds[-1]} (dots: one prompt each)", fontsize=9)
ax.legend(fontsize=8)
plt.show()

# %%
v_cross = sa.cross_verdicts(cs)
fox_on, fox_area = np.mean(cs.judged(cs.on_fox["fox"])), np.mean(cs.judged(cs.fox_area))
lv_fox = np.mean(cs.judged(cs.on_fox["leaves"]))
lv_g, fx_g = np.mean(cs.on_ground["leaves"]), np.mean(cs.on_ground["fox"])
summaries.say(
    f"**What we measured.** \u201cfox\u201d puts {fox_on:.3f} of its map on the fox's cells, which cover "
    f"{fox_area:.3f} of the picture ({fox_on / fox_area:.2f} times a uniform map): that it lands on the fox, the "
    f"sample {summaries.READING[v_cross[0].status]}. \u201cleaves\u201d puts {lv_fox:.3f} on the same cells: that "
    f"\u201cfox\u201d looks at the fox more than \u201cleaves\u201d does, the sample "
    f"{summaries.READING[v_cross[1].status]}. On the ground, \u201cleaves\u201d puts {lv_g:.3f} of its map "
    f"(the ground is {cs.ground_area:.3f} of the area; \u201cfox\u201d puts {fx_g:.3f}): that it lands on the ground, "
    f"{summaries.READING[v_cross[2].status]}; more than \u201cfox\u201d does, {summaries.READING[v_cross[3].status]}."
    f" Intervals resample the prompts; the table at the end gives them.")

# %% [markdown]
# ## Self-attention: does a patch of ground look at other ground?
# In **self-attention** the keys come from the latent itself: each position takes information from every other
# position. We record it on the first self-attention layer with a small probe (`attention.record_self_attention`,
# which computes the weights beside the layer without changing its output) and read it from every ground cell that is
# not the fox's: how much of its attention goes to **other ground cells** (texture looking at texture), to its **8
# neighbours**, and **far** (more than 2 cells away) — each beside what a uniform map gives, because "much of the
# attention goes far" is no finding when most positions *are* far.

# %%
ss = sa.self_study(pipe, cs.prompts, fox_cells=cs.fox_masks)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), layout="constrained", width_ratios=[1, 1, 2])
cell = 64 / ss.size[0]
axes[0].imshow(ss.example_image, interpolation="nearest")
axes[0].add_patch(plt.Rectangle((ss.example_query[1] * cell - 0.5, ss.example_query[0] * cell - 0.5), cell, cell,
                                fill=False, edgecolor="lime", linewidth=2))
axes[0].set_title(f"\u201c{cs.prompts[0]}\u201d, seed {cs.seeds[0]}:\nquery cell (green)", fontsize=8)
im = axes[1].imshow(ss.example, cmap="inferno", vmin=0, interpolation="nearest")
axes[1].add_patch(plt.Rectangle((ss.example_query[1] - 0.5, ss.example_query[0] - 0.5), 1, 1, fill=False,
                                edgecolor="lime", linewidth=2))
axes[1].set_title("its self-attention,\nmean over steps", fontsize=8)
fig.colorbar(im, ax=axes[1], shrink=0.8, label="attention probability")
for ax in axes[:2]:
    ax.set_xticks([])
    ax.set_yticks([])
for i, key in enumerate(("on_ground", "near", "far")):
    axes[2].bar(i - 0.18, np.mean(ss.values[key]), 0.36, color="#d6604d", label="measured" if i == 0 else None)
    axes[2].bar(i + 0.18, np.mean(ss.values[f"uniform_{key}"]), 0.36, color="#bbbbbb",
                label="uniform map" if i == 0 else None)
axes[2].set_xticks(range(3), ["other ground", "8 neighbours", "> 2 cells away"])
axes[2].set_ylabel("share of a ground cell's attention")
axes[2].set_title(f"{len(ss.prompts)} prompts, {ss.layer.split('.transformer')[0]}", fontsize=8)
axes[2].legend(fontsize=8)
fig.suptitle(f"Self-attention from the ground ({ss.size[0]}x{ss.size[1]} positions)", fontsize=10)
plt.show()

# %%
v_self = sa.self_verdicts(ss)
m = {k: np.mean(v) for k, v in ss.values.items()}
summaries.say(
    f"**What we measured.** Every position gets some weight, so in one layer information can travel from any position "
    f"to any other. From a ground cell, {m['on_ground']:.3f} of the attention goes to ground cells (uniform: "
    f"{m['uniform_on_ground']:.3f}): that texture looks at texture, the sample {summaries.READING[v_self[0].status]}. "
    f"{m['near']:.3f} goes to the 8 neighbours (uniform {m['uniform_near']:.3f}): that it looks near, the sample "
    f"{summaries.READING[v_self[1].status]}; {m['far']:.3f} goes more than 2 cells away (uniform "
    f"{m['uniform_far']:.3f}): that it looks far, the sample {summaries.READING[v_self[2].status]}. The largest "
    f"difference from a uniform map is {max(abs(m[k] - m[f'uniform_{k}']) for k in ('on_ground', 'near', 'far')):.3f}"
    " of the attention, however sure its sign.")

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, from the numbers above, with its sample size and 95 % interval (paired bootstrap over
# prompts).

# %%
v6 = v_cross + v_self
summaries.export("06", v6, headline=(
    f"scenes-sd, {cs.level} maps: \u201cfox\u201d {fox_on:.3f} on the judged fox vs its area {fox_area:.3f} "
    f"({summaries.READING[v_cross[0].status]}), \u201cleaves\u201d {lv_fox:.3f} there; \u201cleaves\u201d "
    f"{lv_g:.3f} on the ground vs {cs.ground_area:.3f} ({summaries.READING[v_cross[2].status]}); self-attention far "
    f"{m['far']:.3f} vs uniform {m['uniform_far']:.3f} ({summaries.READING[v_self[2].status]})"), numbers={
    "model": "scenes-sd", "prompts": cs.prompts, "seeds": cs.seeds, "level": cs.level, "fox_found": cs.fox_found,
    "on_fox": cs.on_fox, "on_ground": cs.on_ground, "fox_area": cs.fox_area, "ground_area": cs.ground_area,
    "self_layer": ss.layer, "self": ss.values})
ex.verdict_table(v6, title="Lesson 6: attention inside the U-Net, on scenes-sd")

# %% [markdown]
# ## Try it
# - `plots.plot_attention_levels(tr, "fox")`: which resolution level has the sharpest map?
# - `sa.cross_study(pipe, level=1)` scores the next coarser level; `sa.self_study(pipe, layer=...)` another layer from
#   `attention.self_attention_layers(pipe.unet)`.
# - Score a map against a region of your own: `explainer.attention_scores.score_map(tr.attention("fox"), mask)`
#   (pointing game, mass inside, AUC, IoU); `python benchmarks/attention_quality.py` does it on the shapes model,
#   whose renderer knows every object's pixels exactly.
#
# ## Check yourself
# 1. A skip connection carries a down block's output to the up block at the same resolution. What would the up block
#    lack without it?
# 2. Why is "the word's map puts most of its weight on the ground" no evidence that it looks at the ground, when the
#    ground is most of the picture?
# 3. Why can self-attention reach far in one layer while a convolution cannot?
#
# <details><summary>Answer</summary>
#
# 1. Everything the bottleneck could not pass on: exact positions and edges. The decoder would have to guess them.
# 2. A map that looks nowhere in particular puts on each region that region's share of the area; only a share above
#    the area (the grey bars) says the word prefers the region. The lesson's verdicts compare with that baseline.
# 3. Self-attention weighs every position against every other in one step; a 3×3 convolution only mixes neighbours,
#    so information needs many layers to cross the picture.
#
# </details>
