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
# - how a change of wording moves that embedding, and whether prompts that mean the same end up close together;
# - how CLIP learned to link words to pictures, by matching images with their captions.
#
# **The picture to keep in mind**
# ```
# "a red fox sitting in autumn leaves" ─tokenizer─► <start> a red fox sitting in autumn leaves <end> <pad> …
#                                      ─ids──────►  1       4 …                                 2     0     …
#                                      ─text encoder (CLIP)─►  tokens × dimensions  ─► what the U-Net reads
# ```
#
# **Claims tested**
# - #1 *The prompt becomes a list of numbers (an embedding with hundreds of dimensions); wording changes its position.*
# - #2 *CLIP was trained to match images with their captions; this is what links words to visuals.*
#
# **The model, and why this one.** `scenes-sd`, our small model of the scenes world (foxes, trees, houses on autumn
# leaves, grass, snow or sand, at dawn, by day, at dusk or at night): the article's prompts are in its vocabulary, and
# it ships its whole CLIP pair — the text tower that is the pipeline's text encoder, and the image tower it was
# trained against — so we can put words and pictures side by side. Its tokenizer knows whole words (Stable Diffusion's
# splits rarer words into pieces); everything else is the Stable Diffusion 1.x machinery, smaller.

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import scenes_clip, scenes_findings, scenes_pictures, scenes_words, summaries

pipe = ex.load_pipeline("scenes-sd")
SHORT, FULL = "a fox", "a red fox sitting in autumn leaves"

# %% [markdown]
# ## Tokens
# Each word becomes one token with an id. The prompt is wrapped in a start and an end token and padded to a fixed
# length, so every prompt gives a table of the same size — the short prompt and the long one alike.

# %%
plots.plot_tokens(pipe, SHORT)

# %%
plots.plot_tokens(pipe, FULL)

# %% [markdown]
# ## The embedding
# The text encoder is a small transformer: every token looks at the tokens *before* it and comes out as a vector
# (Stable Diffusion 1.5: 768 numbers). Each row below is one token, each column one dimension. No single number means
# "fox"; the meaning is spread over the whole row, and depends on the words around it.

# %%
plots.plot_embedding_heatmap(pipe, FULL)

# %% [markdown]
# **Before and after.** "Looks only at the tokens before it" is a strong promise: the rows of "a fox" and of the long
# prompt must be *the same numbers* up to the first word where the two prompts part, and different from there on.
# Compare them position by position (cosine similarity: 1 when two vectors point the same way):

# %%
prefix = scenes_words.causal_prefix(pipe, SHORT, FULL)
for i, c in enumerate(prefix.cosine):
    print(f"position {i}: {prefix.tokens[0][i]:>16} vs {prefix.tokens[1][i]:<16} cosine {c:.4f}")
summaries.say(
    f"Positions 0..{prefix.first_different - 1} hold the same tokens, and their vectors differ by at most "
    f"{prefix.max_abs_before:.1e}: " + ("the same numbers. " if prefix.max_abs_before < 1e-5 else "*not* the same "
                                        "numbers. ")
    + f"From position {prefix.first_different} (\u201c{prefix.tokens[0][prefix.first_different]}\u201d vs "
    f"\u201c{prefix.tokens[1][prefix.first_different]}\u201d) on, they part: cosine "
    f"{prefix.cosine[prefix.first_different]:.3f} there. So the U-Net reads \u201c{SHORT}\u201d and "
    f"\u201c{FULL}\u201d as tables that share their first {prefix.first_different} rows — and every later row of the "
    "long prompt carries what came before it (the end token has seen every word).")

# %% [markdown]
# ## Wording moves the embedding
# The same measurement over many prompt pairs: 40 prompts such as "a large cat on the grass at dusk", each paired with
# a **synonym** wording ("a big cat in the grass at sunset": other words, same scene), with **one word of meaning
# changed** (another thing, another ground, another light), and with an **unrelated scene**. We compare the full
# token-by-dimension tables, as the U-Net reads them.

# %%
sims = scenes_words.wording_similarity(pipe, n=40)
for group, values in sims.items():
    print(f"{group:<24} mean cosine similarity {values.mean():.3f}   (lowest {values.min():.3f})")

# %% [markdown]
# Each base prompt is measured against all five of its partners, so the comparisons below are **paired by base
# prompt**: each of the 40 prompts is one unit, and the 95 % intervals resample prompts.

# %%
syn = sims["same meaning (synonym)"]
closest = max(("other thing", "other ground", "other light"), key=lambda k: sims[k].mean())
top_sim = max(float(v.max()) for v in sims.values())
summaries.say(
    "**What we measured.** "
    + (f"Every change of wording moves the embedding (the highest similarity of any pair is {top_sim:.3f}, below 1). "
       if top_sim < 1 - 1e-6 else f"Some changes of wording do not move the embedding (similarity {top_sim:.3f}). ")
    + f"A synonym wording scores {syn.mean():.3f} on average; of "
    f"the one-word changes of meaning, {closest.replace('other', 'another')} stays closest ({sims[closest].mean():.3f}), "
    f"and an unrelated scene scores {sims['unrelated scene'].mean():.3f}. Whether the synonym really stays nearer than "
    "each change of meaning, prompt by prompt, is in the verdict table at the end.")

# %% [markdown]
# ## A map of meaning
# Take 150 different captions of unseen scenes and one vector for each: the vector at its **end token**, the one
# position that has seen every word. Flatten it to 2 numbers with PCA (principal component analysis: the two
# directions along which the points spread the most) and colour each point by the light its caption names.

# %%
mm = scenes_words.meaning_map(pipe, n=150)
plots.plot_latent_map(mm.embeddings, labels=mm.labels["light"], attribute="light",
                      what=f"End-token vectors of {len(mm.prompts)} captions")

# %%
from explainer import projections  # noqa: E402

kept = float(projections.fit(mm.embeddings, "pca").explained_variance_ratio.sum())
summaries.say(f"The map's two axes keep {kept:.0%} of the vectors' variance"
              + (": the other dimensions hold most of it." if kept < 0.5 else "."))

# %% [markdown]
# So we also ask all the dimensions: do a caption's 5 nearest neighbours (by cosine similarity) mostly share its
# subject, its ground, its light? Chance is what always guessing the commonest label scores.

# %%
for attr in mm.knn_accuracy:
    print(f"{attr:<8} nearest-neighbour agreement {mm.knn_accuracy[attr]:.0%}   (chance {mm.chance[attr]:.0%})")

# %% [markdown]
# ## CLIP: linking words to pictures
# Our text encoder is half of a small **CLIP** model. CLIP has two towers: a text encoder and an image encoder, each
# ending in a vector of the same size. It was trained on picture–caption pairs with a **contrastive** objective: in
# every batch, make each picture's vector most similar to its own caption's vector and less similar to all the other
# captions. Below: 8 scenes it never saw, rendered by the world itself, against their captions.

# %%
clip = plots.load_clip(pipe)
ret = scenes_clip.retrieval(clip, n=64)
plots.plot_clip_similarity(clip, ret.images[:8], ret.captions[:8])

# %%
print(f"over {len(ret.captions)} unseen scenes: the best caption is the right one for {ret.image_to_caption:.0%} "
      f"of pictures (chance {ret.chance:.1%});\nthe best picture is the right one for {ret.caption_to_image:.0%} "
      "of captions")
print(f"mean similarity of matching pairs {ret.matched_mean:.2f}, of non-matching pairs {ret.unmatched_mean:.2f}")

# %% [markdown]
# ## "a fox" or "a red fox sitting in autumn leaves"?
# Now the article's two prompts, from the picture's side. We render 12 pictures of a red fox in autumn leaves (unseen
# scenes: the fox anywhere, any size, any light) and let CLIP score each against the long caption, the short one, and
# captions with one thing wrong.

# %%
WRONG = {"ground": "a red fox sitting in the snow", "thing": "a cat sitting in autumn leaves"}
captions = [FULL, SHORT, *WRONG.values(), "a boat on the sea at night"]
fox = scenes_clip.caption_scores(clip, scenes_pictures.foxes_in_leaves(12), captions)
plots.plot_clip_similarity(clip, fox.images[:6], captions, matched=False)

# %%
for c in captions:
    print(f"{c:<38} mean similarity {fox.column(c).mean():.3f}   best for {fox.best_share(c):.0%} of the pictures")

# %% [markdown]
# **Where CLIP reads its sentence vector.** CLIP compares a picture with *one* vector per caption. Which token of the
# caption is it read at?

# %%
for c in captions:
    pos, token = scenes_clip.pooled_token(clip, c)
    print(f"{c:<38} read at position {pos}: {token}")

# %%
v2 = scenes_findings.lesson2(prefix, sims, mm, ret, fox, full=FULL, short=SHORT, wrong=WRONG)
reads = {c: scenes_clip.pooled_token(clip, c) for c in captions}
n_words = {c: len(c.split()) + 1 for c in captions}  # words + the start token: the end token's position
early = [c for c in captions if reads[c][0] < n_words[c]]
summaries.say(
    f"**What we measured.** Matching picture–caption pairs score {ret.matched_mean:.2f} on average, non-matching ones "
    f"{ret.unmatched_mean:.2f}, and the most similar caption is the right one "
    f"{ret.image_to_caption / ret.chance:.0f}× as often as chance; that CLIP pairs pictures with their own captions far "
    f"above chance, the sample {summaries.reading(v2, 'CLIP pairs')}. On the fox pictures the full caption scores "
    f"{fox.column(FULL).mean():.3f} and \u201c{SHORT}\u201d {fox.column(SHORT).mean():.3f}: that the full caption scores "
    f"higher, the sample {summaries.reading(v2, 'CLIP scores “' + FULL)}; against the wrong ground, it "
    f"{summaries.reading(v2, 'CLIP scores the full caption above one with the wrong ground')}; against the wrong "
    f"thing, it {summaries.reading(v2, 'CLIP scores the full caption above one with the wrong thing')}. "
    + (f"Look where the sentence vector is read: for {len(early)} of these {len(captions)} captions it is *not* the end "
       "token but the token with the highest id (this CLIP's configuration uses transformers' old convention, "
       "`eos_token_id = 2`), and a causal encoder's vector there has not seen the words after it — so "
       "words after that position cannot change CLIP's score at all."
       if early else "Every caption's sentence vector is read at its end token, which has seen every word."))

# %% [markdown]
# The U-Net never sees CLIP's image tower, nor its one sentence vector: it reads *every* token's vector of the text
# encoder through cross-attention (lesson 6) — the whole table from the heat map above.

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval over the units that were
# drawn (base prompts, captions, unseen scenes, pictures; Wilson for shares, bootstrap for paired differences), and
# "within noise" where the interval cannot tell. Deterministic facts are checked exactly.

# %%
summaries.export("02", v2, headline=(
    f"the first {prefix.first_different} token vectors of \u201c{SHORT}\u201d and \u201c{FULL}\u201d are the same "
    f"numbers (largest difference {prefix.max_abs_before:.0e}); cosine similarity of a synonym "
    f"{syn.mean():.3f} vs one changed word {max(sims[k].mean() for k in ('other thing', 'other ground', 'other light')):.3f}"
    f" at most; CLIP finds the right caption for {ret.image_to_caption:.0%} of {len(ret.captions)} unseen scenes "
    f"(chance {ret.chance:.1%}); on {len(fox.images)} fox pictures the full caption scores "
    f"{fox.column(FULL).mean():.3f} vs \u201c{SHORT}\u201d {fox.column(SHORT).mean():.3f}"),
    numbers={"model": "scenes-sd", "prefix_first_different": prefix.first_different,
             "prefix_max_abs_before": prefix.max_abs_before, "prefix_cosine": prefix.cosine,
             "similarity": {k: float(v.mean()) for k, v in sims.items()}, "n_base_prompts": len(syn),
             "knn": mm.knn_accuracy, "chance": mm.chance, "n_captions": len(mm.prompts),
             "image_to_caption": ret.image_to_caption, "caption_to_image": ret.caption_to_image,
             "retrieval_chance": ret.chance, "matched": ret.matched_mean, "unmatched": ret.unmatched_mean,
             "n_scenes": len(ret.captions), "fox_pictures": len(fox.images),
             "fox_scores": {c: float(fox.column(c).mean()) for c in captions},
             "pooled_at": {c: reads[c][0] for c in captions}})
ex.verdict_table(v2, title="Lesson 2: words to numbers (scenes-sd)")

# %% [markdown]
# ## Try it
# - `plots.plot_tokens(pipe, "a purple dragon breathing fire")`: words the tokenizer does not know become `<unk>`.
#   Our model knows only the scenes world; Stable Diffusion's tokenizer knows ~49,000 pieces.
# - `scenes_words.causal_prefix(pipe, "a fox in the snow", "a fox in autumn leaves")`: where do they part?
# - Colour the meaning map by `mm.labels["subject"]` or `mm.labels["ground"]`.
#
# ## Check yourself
# 1. Two prompts differ in one word. Can their embeddings differ at positions *before* that word? After it?
# 2. Why is cosine similarity a natural choice for comparing embeddings?
# 3. What would go wrong in contrastive training if every batch held only one picture and its caption?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. Not before it: CLIP's text encoder uses a causal mask, each token sees only the tokens before it (the cell
#    "Before and after" measured it). After it, yes: every later token (and the end token) has seen the changed word.
# 2. It compares directions and ignores length; the CLIP objective itself is a cosine similarity between picture and
#    text vectors.
# 3. There would be nothing to contrast against: the objective needs wrong captions to push away from, and with one
#    pair any vectors would do.
#
# </details>
