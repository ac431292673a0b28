# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11. Resolution, aspect ratio and memory
#
# **You will learn**
# - how the image size sets the latent size, and why attention makes big images expensive;
# - to measure time and peak memory of a generation yourself (and why a common tool gets memory wrong);
# - what a model trained at one size does at another: ours at 2× and at a wide aspect ratio, read by a judge.
#
# **The whole lesson in one picture**
# ```
#  image  H × W × 3  ──VAE encoder (÷8 per side, as in Stable Diffusion)──►  latents  C × H/8 × W/8
#  every latent position looks at every other in self-attention: 2× the side = 4× the positions = 16× the pairs
# ```
#
# **Claim under test** (popular claim #14): *Models are trained at one resolution; other sizes need more memory and may
# degrade.*
#
# **Which model, and why.** This lesson runs on `scenes-sd`, our model of real things on grounds under a sky, trained
# on 64×64 pictures only. "Degrade" in big models means extra heads, doubled subjects, a horizon that breaks: things a
# picture with a subject, a ground and a sky can show, and the scenes judge can read. (The shapes model, flat shapes on
# a flat background, has no ground or sky to break.)

# %% [markdown]
# ## Words first
# - **Resolution**: the image's height × width in pixels. **Aspect ratio**: width ÷ height (64×128, height × width,
#   is 2:1, "wide").
# - **VAE scale factor**: how many pixels per side one latent position stands for (8 for our model, as for Stable
#   Diffusion). The U-Net works on the latents, so its cost follows the latent size.
# - **Self-attention**: inside the U-Net every latent position looks at every other one (lesson 6). Its cost grows with
#   the *square* of the number of positions.
# - **Peak memory**: the most memory in use at any moment during the call: what decides whether it fits.

# %%
import warnings

import explainer as ex
from explainer import plots
from explainer.experiments import resolution, scenes_resolution, summaries

pipe = ex.load_pipeline("scenes-sd")  # the scenes model, trained at 64x64

# %% [markdown]
# ## 1. Latent size against image size
# The latent channels and the blocks with attention are read from the pipeline's own config; sizes are height ×
# width.

# %%
SIZES = [(64, 64), (64, 128), (128, 128), (256, 256), (512, 512)]
rows = resolution.latent_table(pipe, SIZES)
width = {k: max(len(k), *(len(f"{r[k]:,}" if isinstance(r[k], int) else str(r[k])) for r in rows)) for k in rows[0]}
print("  ".join(f"{k:>{width[k]}}" for k in rows[0]))
for row in rows:
    print("  ".join(f"{(f'{v:,}' if isinstance(v, int) else f'{v:g}' if isinstance(v, float) else v):>{width[k]}}"
                    for k, v in row.items()))

# %%
r0 = rows[0]
summaries.say(
    ("The latent is always " if len({r["compression"] for r in rows}) == 1 else f"At {r0['image']} the latent is ")
    + f"{r0['compression']:.0f} times smaller than the image here (3 colour values per pixel vs "
    f"{pipe.unet.config.in_channels} channels per {pipe.vae_scale_factor}×{pipe.vae_scale_factor} block). But the "
    f"self-attention pairs grow with the square of the positions: {r0['self-attention pairs']:,} at {r0['image']}, "
    f"{rows[-1]['self-attention pairs']:,} at {rows[-1]['image']} — {rows[-1]['latent positions'] // r0['latent positions']}"
    f"× the positions, {rows[-1]['self-attention pairs'] // max(r0['self-attention pairs'], 1):,}× the pairs.")

# %% [markdown]
# ## 2. Time and peak memory, measured
# One image at each size, 10 steps. Memory is the growth of the process's **peak resident memory** during the call
# (Linux tracks it as VmHWM; we reset it just before the call). Why not the usual Python tool, `tracemalloc`? It only
# counts memory handed out by Python's own allocator, and torch allocates its tensors in C++ outside it. Its reading
# for the largest size is set beside the peak resident memory after the figure.

# %%
costs = resolution.cost_vs_resolution(pipe, sizes=SIZES[:4], steps=10, prompt="a fox")
for c in costs:
    print(f"{c.size[0]:>3}x{c.size[1]:<3} latents {c.latent[0]:>2}x{c.latent[1]:<2}: {c.seconds:5.2f} s, "
          f"peak memory growth {c.peak_bytes / 2**20:6.1f} MiB")
print(f"{costs[-1].size[0] * costs[-1].size[1] // (costs[0].size[0] * costs[0].size[1])}x the pixels took "
      f"{costs[-1].seconds / costs[0].seconds:.1f}x the time")

# %%
plots.plot_cost(costs)

# %%
big = costs[-1].size
with warnings.catch_warnings(action="ignore"):  # the same size's warning was shown above: once is enough
    tm = resolution.tracemalloc_peak(lambda: resolution.generate_many(pipe, ["a fox"], [0], steps=10, height=big[0],
                                                                       width=big[1]))
rss = costs[-1].peak_bytes
summaries.say(f"For the {big[0]}×{big[1]} run tracemalloc reports a peak of {tm / 2**20:.2f} MiB; the process's peak "
              f"resident memory grew by {rss / 2**20:.1f} MiB. "
              + (f"tracemalloc saw {tm / rss:.0%} of it: torch's tensors live outside Python's allocator."
                 if rss > 4 * tm else "Here the two are close: this run's growth was small (memory the process "
                 "already held was reused), so the comparison says little."))

# %%
ratio_px = costs[-1].size[0] * costs[-1].size[1] / (costs[0].size[0] * costs[0].size[1])
ratio_t = costs[-1].seconds / costs[0].seconds
summaries.say(
    f"{ratio_px:.0f}× the pixels took {ratio_t:.1f}× the time here: "
    + ("*more slowly* than the pixel count. Each step has a fixed cost (dozens of small layers, each with its overhead) "
       "that does not depend on the size, and the attention's square-law cost only takes over for larger latents"
       if ratio_t < ratio_px else "as fast as the pixel count or faster: the attention's square-law cost shows")
    + " — at Stable Diffusion's 128×128 latents (1024 px) self-attention is what makes big images slow and "
      "memory-hungry. Memory can read near zero for the small sizes, which fit in memory the process already holds. "
      "(Measured on a shared 2-core CPU: expect some noise, and read the memory as a lower bound, because the C "
      "allocator reuses memory it already holds.)")

# %% [markdown]
# ## 3. Our model at sizes it never saw
# It was trained only on 64×64 pictures. Twelve unseen prompts, each naming one large thing, a ground and a sky, from
# the same seed at 64×64, at 2× (128×128) and wide (64×128). The judge reads 64×64 pictures, so the larger ones are
# scaled down first (the wide one is squeezed to half its width: things get narrower, but their number, the ground
# and the sky survive). Twelve, because the prompt is the unit that was drawn and an interval needs eight or more.

# %%
off = scenes_resolution.off_size(pipe)
plots.plot_off_size(off)

# %%
print(off.table())

# %%
v_off = scenes_resolution.off_size_verdicts(off)
base = scenes_resolution.TRAINED
lines = []
for s in off.sizes[1:]:
    n = scenes_resolution.name(s)
    lines.append(
        f"- **{n}**: whole prompt right {off.mean('all', s):.0%} (at {scenes_resolution.name(base)} "
        f"{off.mean('all', base):.0%}); more than one of the thing {off.mean('copies', s):.0%} (vs "
        f"{off.mean('copies', base):.0%}) — that it draws extra copies more often, the sample "
        f"{summaries.reading(v_off, f'scenes-sd: at {n}, a size it never saw, it draws extra copies')}; a thing not "
        f"asked for {off.mean('extra', s):.0%} (vs {off.mean('extra', base):.0%}), the sample "
        f"{summaries.reading(v_off, f'scenes-sd: at {n}, a size it never saw, it draws things')}; ground right "
        f"{off.mean('ground', s):.0%} and sky right {off.mean('sky', s):.0%} — that both stay right, the sample "
        f"{summaries.reading(v_off, f'scenes-sd: ... but keeps the ground right at {n}')} (ground) and "
        f"{summaries.reading(v_off, f'scenes-sd: ... but keeps the sky right at {n}')} (sky).")
summaries.say(f"**What our model says** ({len(off.prompts)} prompts, one seed each):\n" + "\n".join(lines)
              + "\n\n" + ("Where it draws extra things, the reason is the canvas: " if any(
                  v.agrees for v in v_off if "more often than" in v.claim and "whole prompt" not in v.claim) else
                  f"{len(off.prompts)} prompts cannot tell whether it draws extra things more often at the sizes it "
                  "never saw. Where big models do, the reason is the canvas: ")
              + "the U-Net's convolutions and attention learned what a training-size latent scene looks like, and on "
              "a bigger canvas several regions each look like a place for a thing (the same effect gives large Stable "
              "Diffusion 1.5 images two heads). Look at the figure for repeated things and for a second horizon: the "
              "judge reads one ground and one sky per (scaled-down) picture, and things that shrink to a few pixels "
              "can escape it, so it cannot see all of that.")

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# paired bootstrap over prompts for differences) and "within noise" where the interval cannot tell. The timings are
# one run each: never more than "too few to tell". Exact counts are checked exactly.

# %%
v11 = scenes_resolution.cost_verdicts(costs, resolution.latent_table(pipe, [c.size for c in costs])) + v_off
wide, double = off.sizes[2], off.sizes[1]
summaries.export("11", v11, headline=(
    f"scenes-sd: {costs[-1].size[0] * costs[-1].size[1] // (costs[0].size[0] * costs[0].size[1])}× the pixels took "
    f"{costs[-1].seconds / costs[0].seconds:.1f}× the time (one run each); at {scenes_resolution.name(double)} and "
    f"{scenes_resolution.name(wide)}, sizes it never saw, more than one of the thing in "
    f"{off.mean('copies', double):.0%} and {off.mean('copies', wide):.0%} of the pictures vs "
    f"{off.mean('copies', base):.0%} at {scenes_resolution.name(base)}; ground right {off.mean('ground', double):.0%} "
    f"and {off.mean('ground', wide):.0%}, sky right {off.mean('sky', double):.0%} and {off.mean('sky', wide):.0%} "
    f"({len(off.prompts)} prompts)"),
    numbers={"prompts": off.prompts, "seeds": off.seeds,
             "values": {k: {scenes_resolution.name(s): v for s, v in d.items()} for k, d in off.values.items()},
             "latent": {r["image"]: r for r in rows}, "seconds": [c.seconds for c in costs],
             "peak_bytes": [c.peak_bytes for c in costs]},
    varies=("seconds", "peak_bytes", "headline", "cost grows"))
ex.verdict_table(v11, title="Lesson 11: resolution, on scenes-sd")

# %% [markdown]
# ## Try it
# - A tall picture: `scenes_resolution.off_size(pipe, sizes=[(64, 64), (128, 64)])`.
# - Time a bigger picture, e.g. `resolution.cost_vs_resolution(pipe, sizes=[(384, 384)], steps=5)`. Predict the time
#   from the table first.
# - Halve the steps at 128×128: does the cost halve too?

# %% [markdown]
# ## Check yourself
# 1. An image twice as wide and twice as tall: how many times more latent positions, and roughly how much more
#    attention work?
# 2. Why might a model trained on 64×64 draw two foxes on a 128×128 canvas when asked for one?
# 3. Why is `tracemalloc` the wrong tool to measure a torch model's memory?
#
# <details><summary>Answer</summary>
#
# 1. 4× the positions; self-attention compares all pairs, so about 16× the attention work (the convolutions grow 4×).
# 2. The network's layers look at local neighbourhoods and at the whole (small) latent; it learned "one thing fills
#    this much of an 8×8 latent scene". On a 16×16 latent, several regions each look like a place for one.
# 3. It only traces allocations made through Python's memory allocator; torch's tensors are allocated by C++ code
#    directly, so tracemalloc sees only the small Python objects around them.
#
# </details>
