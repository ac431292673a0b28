# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Negative prompts: the unconditional branch, replaced
#
# **You will learn**
# - that a negative prompt is not a separate "avoid this" mechanism: it takes the place of the empty prompt in
#   classifier-free guidance (lesson 7);
# - to see that in a trace's recorded embeddings and predictions;
# - to measure its effect over many seeds, instead of trusting one lucky picture.
#
# **The whole lesson in one picture**
# ```
#  without:  ε = ε("")    + s · (ε("a circle") − ε(""))       the result moves away from "nothing in particular"
#  with:     ε = ε("red") + s · (ε("a circle") − ε("red"))    the result moves away from "red"
# ```
#
# **Claim under test** (popular claim #10): *Negative prompts work by a second pass whose prediction the result moves
# away from.*

# %% [markdown]
# ## Words first
# - **Unconditional branch**: in lesson 7 every step ran the U-Net twice, once with your prompt and once with the
#   empty prompt "". The empty-prompt prediction is the unconditional one, ε_uncond.
# - **Negative prompt**: text you give the pipeline as `negative_prompt=`. The pipeline encodes it exactly like a
#   prompt and uses it *instead of* "" in the unconditional branch. Nothing else changes.
# - **Embedding**: the list of vectors the text encoder makes from a prompt, one per token (lesson 2); the U-Net
#   reads these through cross-attention.

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import negative

pipe = ex.load_pipeline()

# %% [markdown]
# ## 1. What the trace recorded
# We trace "a circle" twice with the same seed: once plainly, once with the negative prompt "red". Then we compare the
# embeddings the U-Net received in its unconditional branch with what the text encoder makes of "red" and of "".

# %%
what, tr_neg, tr_plain = negative.what_negative_is(pipe, prompt="a circle", negative="red", seed=0)
print("unconditional branch tokens, with the negative prompt:", what.negative_tokens)
print("unconditional branch tokens, without:                 ", what.plain_uncond_tokens)

# %%
print(f"recorded uncond embeddings vs encode('red'): max difference {what.uncond_vs_negative_encoding:.1e}")
print(f"recorded uncond embeddings vs encode('')   : max difference {what.uncond_vs_empty_encoding:.1e}  (no negative)")
print(f"the prompt's own embeddings, with vs without : max difference {what.cond_same:.1e}")
print(f"neg + 7.5*(cond - neg) vs the guided prediction: max difference {what.formula_error:.1e}")

# %% [markdown]
# All four are (close to) zero: the negative prompt *is* the unconditional branch. The guided prediction can be
# written ε_cond + (s − 1) · (ε_cond − ε_neg): starting from the prompt's prediction, it steps further, in the
# direction pointing *away from* the negative prompt's prediction. The cosine between that step and the direction
# "away from the negative" is:

# %%
print(f"mean cosine over the steps: {what.moved_away:.3f}  (1.0 = exactly away from the negative prompt)")

# %% [markdown]
# The same CFG views as in lesson 7, now against "red" (left: how big the delta is per step; right: relative size):

# %%
plots.plot_cfg_delta_norm(tr_neg)

# %% [markdown]
# ## 2. Does it push away? Measured over 24 seeds
# "a circle" names no colour, so the model picks one (the shapes world has seven). Our model's favourite is white
# (a colour it rarely picks would be a poor test: there would be nothing to push away). We make 24 circles
# without a negative prompt and 24 with the negative prompt "white" (same seeds), and the judge reads each colour.

# %%
effect = negative.negative_effect(pipe, prompt="a circle", negative="white", seeds=range(24))
plots.plot_negative_effect(effect)

# %%
plots.plot_negative_examples(effect, n=8)

# %%
print(f"white circles: {100 * effect.share('white', False):.0f}% without the negative prompt, "
      f"{100 * effect.share('white', True):.0f}% with it")
print(f"images the judge still accepts as 'a circle': {100 * effect.asked_kept_without:.0f}% without, "
      f"{100 * effect.asked_kept_with:.0f}% with")

# %% [markdown]
# **A caption it never saw.** Every caption our model trained on names a colour ("a red circle ..."), so "a circle" is
# new to it — we chose it because it leaves the colour free, which is what a colour negative needs. Look at the second
# line above: how often does the judge accept the picture as "a circle" at all? A prompt outside the training captions
# is a weaker test of the second half of the claim ("and the rest stays"): the asked object is shaky to begin with.

# %%
from explainer.experiments import summaries  # noqa: E402

v8 = summaries.lesson8(what, effect)
top = max(effect.colours_without, key=effect.colours_without.get)
summaries.say(
    f"**What our small model says.** Without a negative prompt, {top} is the colour our model picks most often for "
    f"\u201c{effect.prompt}\u201d ({effect.colours_without[top]} of {len(effect.seeds)}); with \u201c{effect.negative}"
    f"\u201d as the negative prompt, {effect.negative} circles go from {effect.share(effect.negative, False):.0%} to "
    f"{effect.share(effect.negative, True):.0%} — the sample {summaries.reading(v8, chr(8220) + effect.negative)} that "
    f"the negative removes them. The judge accepts the picture as \u201c{effect.prompt}\u201d in "
    f"{effect.asked_kept_without:.0%} of the images without and {effect.asked_kept_with:.0%} with it; whether the "
    f"circle survives: the sample {summaries.reading(v8, 'the asked object survives')}. The prediction made for "
    f"\u201c{effect.negative}\u201d is the one the result is pushed away from.")

# %% [markdown]
# A subtlety: the push is *relative*. The result moves away from "white" only as far as "white" differs from your
# prompt. If the prompt itself says "a white circle", the two branches disagree about much less, and the negative
# prompt fights the prompt (try it below).

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
summaries.export("08", v8, headline=(
    f"the negative prompt is the unconditional branch (recorded vs encoded: largest difference "
    f"{what.uncond_vs_negative_encoding:.1e}); "
    f"\u201c{effect.negative}\u201d as negative: {effect.negative} circles {effect.share(effect.negative, False):.0%} → "
    f"{effect.share(effect.negative, True):.0%} on \u201c{effect.prompt}\u201d (a caption it never saw: judged as "
    f"asked {effect.asked_kept_without:.0%} → {effect.asked_kept_with:.0%})"), numbers={
    "uncond_vs_negative": what.uncond_vs_negative_encoding, "moved_away": what.moved_away,
    "share_without": effect.share(effect.negative, False), "share_with": effect.share(effect.negative, True),
    "kept_without": effect.asked_kept_without, "kept_with": effect.asked_kept_with, "seeds": len(effect.seeds),
    "colours_without": effect.colours_without, "colours_with": effect.colours_with})
ex.verdict_table(v8, title="Lesson 8: negative prompts")

# %% [markdown]
# ## Try it
# - `negative.negative_effect(pipe, prompt="a white circle", negative="white", seeds=range(12))`: who wins?
# - A negative prompt about something else: `prompt="a square", negative="large"` and look at the judged sizes
#   (`explainer.judge.judge(image).objects[0].size`).
# - Make the effect weaker or stronger with the scale: `negative_effect(..., cfg=3)` vs `cfg=12`.

# %% [markdown]
# ## Check yourself
# 1. With no negative prompt, what does the unconditional branch read?
# 2. With CFG scale 1, what does a negative prompt do?
# 3. Why do we count over 24 seeds instead of looking at one image?
#
# <details><summary>Answer</summary>
#
# 1. The empty prompt "" (its tokens are just the start and end markers plus padding).
# 2. Nothing: at scale 1 the guided prediction is ε_cond, and the pipeline does not even run the unconditional
#    branch (the trace warns that the negative prompt is ignored).
# 3. One seed may give a blue circle with or without the negative prompt. The claim is about how often, so we
#    measure a frequency, and with a handful of seeds only big differences mean anything.
#
# </details>
