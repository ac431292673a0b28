# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 2 — Your words become numbers
#
# **You will learn**
# - how a prompt is cut into tokens and each token replaced by an id;
# - what the text encoder makes of them: an *embedding*, one vector of numbers per token;
# - how a change of wording moves that embedding, and how prompts with the same meaning end up close together;
# - how CLIP learned to link words to pictures, by matching images with their captions.
#
# **The picture to keep in mind**
# ```
# "a red circle"  ─tokenizer─►  <start> a red circle <end> <pad> … <pad>   (24 positions)
#                 ─ids──────►   1       4 38  18     2     0     …  0
#                 ─text encoder (CLIP)─►  24 × 128 numbers   ─► what the U-Net reads
# ```
#
# **Claims tested**
# - #1 *The prompt becomes a list of numbers (an embedding with hundreds of dimensions); wording changes its position.*
# - #2 *CLIP was trained to match images with their captions; this is what links words to visuals.*

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import words

pipe = ex.load_pipeline()
PROMPT = "a large red circle on the left"

# %% [markdown]
# ## Tokens
# Our tokenizer knows one token per word (Stable Diffusion's splits rarer words into pieces). The prompt is wrapped in
# a start and an end token and padded to a fixed length, so every prompt gives a table of the same size.

# %%
plots.plot_tokens(pipe, PROMPT)

# %% [markdown]
# ## The embedding
# The text encoder is a small transformer: every token looks at the tokens before it and comes out as a vector of 128
# numbers (Stable Diffusion 1.5: 768). Each row below is one token, each column one of the 128 dimensions. No single
# number means "red"; the meaning is spread over the whole row, and depends on the words around it.

# %%
plots.plot_embedding_heatmap(pipe, PROMPT)

# %% [markdown]
# ## Wording moves the embedding
# To compare two embeddings we use **cosine similarity**: 1 when two vectors point the same way, 0 when they are
# unrelated. Below, the full token-by-dimension table of each prompt is compared with every other.

# %%
prompts = ["a large red circle on the left", "a big red circle at the left", "a large blue circle on the left",
           "a large red square on the left", "a large red circle on the right", "a small green star at the top"]
plots.plot_prompt_similarity(pipe, prompts, kind="tokens")

# %% [markdown]
# Now the same measurement over many prompt pairs: 40 random prompts, each paired with a synonym version ("big" for
# "large", "at the left" for "on the left"), with one word changed, and with an unrelated prompt.

# %%
sims = words.wording_similarity(pipe, n=40)
for group, value in sims.items():
    print(f"{group:<24} mean cosine similarity {value:.3f}")

# %% [markdown]
# **What we measured.** Every change of wording moves the embedding: even a synonym gives a different table of
# numbers. But the moves have sizes. A synonym leaves the embedding almost where it was; changing one word that
# changes the meaning (colour, shape or position) moves it further; an unrelated prompt moves it furthest. That is
# claim #1 in numbers: the embedding's position follows the wording, and mostly the meaning behind it.
#
# ## A map of meaning
# Take 150 prompts, one embedding vector each (the text encoder's summary vector, read at the end token), and flatten
# the 128 dimensions to 2 with PCA (principal component analysis: the two directions along which the points spread the
# most). Colour each point by the colour word in its prompt.

# %%
mm = words.meaning_map(pipe, n=150)
plots.plot_prompt_map(pipe, mm.prompts, labels=mm.labels["colour"], annotate=False)

# %% [markdown]
# Two dimensions hide most of the structure, so we also ask the full 128 dimensions: for each prompt, do its 5 nearest
# neighbours (by cosine similarity) mostly share its colour / shape / position? Chance is what always guessing the
# commonest label would score.

# %%
for attr in mm.knn_accuracy:
    print(f"{attr:<9} nearest-neighbour agreement {mm.knn_accuracy[attr]:.0%}   (chance {mm.chance[attr]:.0%})")

# %% [markdown]
# **What we measured.** The summary vector clearly groups prompts by colour and size; by shape less, and by position
# hardly better than chance: one summary vector per prompt does not keep everything. The U-Net does not rely on the
# summary: it reads every token's vector, including the position words' (lesson 6).
#
# ## CLIP: linking words to pictures
# Our text encoder started life as half of a small **CLIP** model. CLIP has two towers: a text encoder and an image
# encoder, each ending in a vector of the same size. It was trained on image–caption pairs with a **contrastive**
# objective: in every batch, make each image's vector most similar to its own caption's vector, and less similar to
# all the other captions in the batch. Below: 8 scenes it never saw during training, against their captions.

# %%
clip = plots.load_clip(pipe)
ret = words.clip_retrieval(clip, n=64)
plots.plot_clip_similarity(clip, ret.images[:8], ret.captions[:8])

# %%
print(f"over {len(ret.captions)} unseen scenes: the best caption is the right one for {ret.image_to_caption:.0%} "
      f"of images (chance {ret.chance:.1%});\nthe best image is the right one for {ret.caption_to_image:.0%} "
      "of captions")
print(f"mean similarity of matching pairs {ret.matched_mean:.2f}, of non-matching pairs {ret.unmatched_mean:.2f}")

# %%
from explainer.experiments import summaries  # noqa: E402

v2 = summaries.lesson2(sims, mm, ret, n_pairs=40)
summaries.say(
    f"**What we measured.** Matching image–caption pairs score {ret.matched_mean:.2f} on average, non-matching ones "
    f"{ret.unmatched_mean:.2f}, and picking the most similar caption finds the right one "
    f"{ret.image_to_caption / ret.chance:.0f}× as often as chance; that CLIP pairs images with their own captions far "
    f"above chance, the sample {summaries.reading(v2, 'CLIP pairs')}. (Where it misses, look at what it picked: often "
    "a caption that differs by one word — size, or a relation — which is exactly where small CLIPs are weak.)")

# %% [markdown]
# The U-Net never sees CLIP's image tower. It reads the text encoder's token vectors through cross-attention
# (lesson 6), and during the U-Net's training the text encoder was fine-tuned further beside it.

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
summaries.export("02", v2, headline=(
    f"cosine similarity of a synonym {sims['same meaning (synonym)']:.3f} vs one changed word "
    f"{max(sims[k] for k in ('other colour', 'other shape', 'other position')):.3f} at most; CLIP finds the right "
    f"caption for {ret.image_to_caption:.0%} of {len(ret.captions)} unseen scenes (chance {ret.chance:.1%})"),
    numbers={"similarity": sims, "knn": mm.knn_accuracy, "chance": mm.chance,
             "image_to_caption": ret.image_to_caption, "caption_to_image": ret.caption_to_image,
             "retrieval_chance": ret.chance, "matched": ret.matched_mean, "unmatched": ret.unmatched_mean})
ex.verdict_table(v2, title="Lesson 2: words to numbers")

# %% [markdown]
# ## Try it
# - `plots.plot_tokens(pipe, "a purple dragon breathing fire")`: words the tokenizer does not know become `<unk>`.
#   Our model knows only the shapes world; Stable Diffusion's tokenizer knows ~49,000 pieces.
# - Add your own prompts to `prompts` above: is "a big red circle" closer to "a large red circle" than to
#   "a big blue circle"?
# - Colour the meaning map by `mm.labels["shape"]` or `mm.labels["position"]`; try `method="umap"` (the first UMAP
#   call compiles for ~16 s).
#
# ## Check yourself
# 1. Two prompts differ in one word. Can their embeddings differ at positions *before* that word? After it?
# 2. Why is cosine similarity a natural choice for comparing embeddings?
# 3. What would go wrong in contrastive training if every batch held only one image and its caption?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. Not before it: CLIP's text encoder uses a causal mask, each token sees only the tokens before it. After it, yes:
#    every later token (and the end token) has seen the changed word.
# 2. It compares directions and ignores length; the CLIP objective itself is a cosine similarity between image and
#    text vectors.
# 3. There would be nothing to contrast against: the objective needs wrong captions to push away from, and with one
#    pair any vectors would do.
#
# </details>
