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
#  prompt: "a large red circle in the center"            negative prompt: "brown background"
#  without:  ε = ε("")                 + s · (ε(prompt) − ε(""))                   moves away from "nothing in particular"
#  with:     ε = ε("brown background") + s · (ε(prompt) − ε("brown background"))   moves away from "brown background"
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
# We trace "a large red circle in the center" twice with the same seed: once plainly, once with the negative prompt
# "brown background". Then we compare the embeddings the U-Net received in its unconditional branch with what the
# text encoder makes of "brown background" and of "".

# %%
PROMPT, NEGATIVE = "a large red circle in the center", "brown background"
what, tr_neg, tr_plain = negative.what_negative_is(pipe, prompt=PROMPT, negative=NEGATIVE, seed=0)
print("unconditional branch tokens, with the negative prompt:", what.negative_tokens)
print("unconditional branch tokens, without:                 ", what.plain_uncond_tokens)

# %%
print(f"recorded uncond embeddings vs encode({NEGATIVE!r}): max difference {what.uncond_vs_negative_encoding:.1e}")
print(f"recorded uncond embeddings vs encode('')   : max difference {what.uncond_vs_empty_encoding:.1e}  (no negative)")
print(f"the prompt's own embeddings, with vs without : max difference {what.cond_same:.1e}")
print(f"neg + 7.5*(cond - neg) vs the guided prediction: max difference {what.formula_error:.1e}")

# %%
from explainer.experiments import summaries  # noqa: E402

diffs = (what.uncond_vs_negative_encoding, what.uncond_vs_empty_encoding, what.cond_same, what.formula_error)
summaries.say(
    f"All four are zero up to float rounding (largest {max(diffs):.1e}): the negative prompt *is* the unconditional "
     "branch." if max(diffs) < 1e-4 else
     f"Not all four are zero (largest {max(diffs):.1e}): something besides the unconditional branch changed — look "
     "at which line.")

# %% [markdown]
# The guided prediction can be written ε_cond + (s − 1) · (ε_cond − ε_neg): starting from the prompt's prediction, it steps further, in the
# direction pointing *away from* the negative prompt's prediction. The cosine between that step and the direction
# "away from the negative" is:

# %%
print(f"mean cosine over the steps: {what.moved_away:.3f}  (1.0 = exactly away from the negative prompt)")

# %% [markdown]
# The same CFG views as in lesson 7, now against "brown background" (left: how big the delta is per step; right:
# relative size):

# %%
plots.plot_cfg_delta_norm(tr_neg)

# %% [markdown]
# ## 2. Does it push away? Measured over 24 seeds
# The test needs a prompt the model knows, with something left free for the negative prompt to push on. Every
# caption our model trained on names a colour and a shape, and most name a size and a position; 60 % of them name no
# background. So "a large red circle in the center" is a caption of the kind it trained on, and the background is its
# free choice: black, gray or brown (the shapes world has three). A negative prompt about a background the model
# never picks would have nothing to push away, so we take its favourite: we make 24 pictures without a negative
# prompt, count the judged backgrounds, and 24 more with the negative prompt "brown background" (same seeds).

# %%
effect = negative.negative_effect(pipe, prompt=PROMPT, negative=NEGATIVE, attribute="background", seeds=range(24))
plots.plot_negative_effect(effect)

# %%
plots.plot_negative_examples(effect, n=8)

# %%
print(f"{effect.target} backgrounds: {100 * effect.share(effect.target, False):.0f}% without the negative prompt, "
      f"{100 * effect.share(effect.target, True):.0f}% with it")
print(f"images the judge accepts as \u201c{effect.prompt}\u201d (colour, shape, size and position): "
      f"{100 * effect.asked_kept_without:.0f}% without, {100 * effect.asked_kept_with:.0f}% with")

# %%
v8 = summaries.lesson8(what, effect)
top = max(effect.judged_without, key=effect.judged_without.get)
summaries.say(
    f"**What our small model says.** Without a negative prompt, {top} is the background our model picks most often "
    f"for \u201c{effect.prompt}\u201d ({effect.judged_without[top]} of {len(effect.seeds)}); with \u201c"
    f"{effect.negative}\u201d as the negative prompt, {effect.target} backgrounds go from "
    f"{effect.share(effect.target, False):.0%} to {effect.share(effect.target, True):.0%} — the sample "
    f"{summaries.reading(v8, chr(8220) + effect.negative)} that the negative removes them. The judge accepts the "
    f"picture as \u201c{effect.prompt}\u201d in {effect.asked_kept_without:.0%} of the images without and "
    f"{effect.asked_kept_with:.0%} with it; that the asked circle survives (a drop surely under 10 points): the sample "
    f"{summaries.reading(v8, 'the asked object survives')}. The prediction made for \u201c{effect.negative}\u201d is "
    "the one the result is pushed away from.")

# %% [markdown]
# A subtlety: the push is *relative*. The result moves away from "brown background" only as far as it differs from
# your prompt. If the prompt itself says "on a brown background", the two branches disagree about much less, and the
# negative prompt fights the prompt (try it below).

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
summaries.export("08", v8, headline=(
    f"the negative prompt is the unconditional branch (recorded vs encoded: largest difference "
    f"{what.uncond_vs_negative_encoding:.1e}); "
    f"\u201c{effect.negative}\u201d as negative: {effect.target} backgrounds {effect.share(effect.target, False):.0%} "
    f"→ {effect.share(effect.target, True):.0%} on \u201c{effect.prompt}\u201d (a caption of the kind it trained on; "
    f"judged as asked {effect.asked_kept_without:.0%} → {effect.asked_kept_with:.0%})"), numbers={
    "uncond_vs_negative": what.uncond_vs_negative_encoding, "moved_away": what.moved_away,
    "prompt": effect.prompt, "negative": effect.negative, "attribute": effect.attribute, "target": effect.target,
    "share_without": effect.share(effect.target, False), "share_with": effect.share(effect.target, True),
    "kept_without": effect.asked_kept_without, "kept_with": effect.asked_kept_with, "seeds": len(effect.seeds),
    "judged_without": effect.judged_without, "judged_with": effect.judged_with})
ex.verdict_table(v8, title="Lesson 8: negative prompts")

# %% [markdown]
# ## Try it
# - `negative.negative_effect(pipe, prompt="a large red circle in the center on a brown background",
#   negative="brown background", seeds=range(12))`: who wins when the prompt asks for what the negative pushes away?
# - A negative prompt about something else: `prompt="a red circle in the center", negative="large",
#   attribute="size"` (about 15 % of the training captions name no size) and look at the judged sizes.
# - Make the effect weaker or stronger with the scale: `negative_effect(..., cfg=3)` vs `cfg=12`.

# %% [markdown]
# ## Check yourself
# 1. With no negative prompt, what does the unconditional branch read?
# 2. With CFG scale 1, what does a negative prompt do?
# 3. Why do we count over 24 seeds instead of looking at one image?
# 4. Why test on "a large red circle in the center" and not on a shorter prompt such as "a circle"?
#
# <details><summary>Answer</summary>
#
# 1. The empty prompt "" (its tokens are just the start and end markers plus padding).
# 2. Nothing: at scale 1 the guided prediction is ε_cond, and the pipeline does not even run the unconditional
#    branch (the trace warns that the negative prompt is ignored).
# 3. One seed may give a gray background with or without the negative prompt. The claim is about how often, so we
#    measure a frequency, and with a handful of seeds only big differences mean anything.
# 4. Every caption the model trained on names a colour: "a circle" is a prompt it never saw, and a small model
#    draws what it never saw unreliably, so a failure would not tell the negative prompt's fault from the prompt's.
#    A caption of the kind it trained on leaves the background free and lets "does the rest survive?" be tested
#    (run `negative.negative_effect(pipe, prompt="a circle", negative="white", attribute="color")` and compare the
#    second printed line).
#
# </details>
