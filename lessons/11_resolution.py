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
# - what a model trained at one size does at another: ours at 2× and at a wide aspect ratio.
#
# **The whole lesson in one picture**
# ```
#  image  H × W × 3  ──VAE encoder (÷4 per side here, ÷8 in Stable Diffusion)──►  latents  4 × H/4 × W/4
#  32×32  →  4×8×8    (64 positions:   self-attention compares 64² ≈ 4 thousand pairs)
#  64×64  →  4×16×16  (256 positions:  256² ≈ 65 thousand pairs: 16× more for 4× the pixels)
# ```
#
# **Claim under test** (popular claim #14): *Models are trained at one resolution; other sizes need more memory and may
# degrade.*

# %% [markdown]
# ## Words first
# - **Resolution**: the image's height × width in pixels. **Aspect ratio**: width ÷ height (32×64 is 2:1, "wide").
# - **VAE scale factor**: how many pixels per side one latent position stands for (4 for our model, 8 for Stable
#   Diffusion). The U-Net works on the latents, so its cost follows the latent size.
# - **Self-attention**: inside the U-Net every latent position looks at every other one (lesson 6). Its cost grows with
#   the *square* of the number of positions.
# - **Peak memory**: the most memory in use at any moment during the call: what decides whether it fits.

# %%
import explainer as ex
from explainer import plots
from explainer.experiments import resolution

pipe = ex.load_pipeline()

# %% [markdown]
# ## 1. Latent size against image size

# %%
for row in resolution.latent_table(pipe):
    print(row)

# %% [markdown]
# The latent is always 12 times smaller than the image here (3 colour values per pixel vs 4 channels per 4×4
# block: 48 ÷ 4); Stable Diffusion's ÷8 VAE compresses 48 times. But the number of attention pairs grows with the
# square of the positions, which is why 512×512 (a Stable Diffusion 1.x size) would be hopeless on our CPU.

# %% [markdown]
# ## 2. Time and peak memory, measured
# One image at each size, 10 steps. Memory is the growth of the process's **peak resident memory** during the call
# (Linux tracks it as VmHWM; we reset it just before the call). Why not the usual Python tool, `tracemalloc`? It only
# counts memory handed out by Python's own allocator, and torch allocates its tensors in C++ outside it. Watch it
# miss almost everything:

# %%
costs = resolution.cost_vs_resolution(pipe, sizes=[(32, 32), (64, 64), (96, 96), (128, 128)], steps=10)
for c in costs:
    print(f"{c.size[0]:>3}x{c.size[1]:<3} latents {c.latent[0]:>2}x{c.latent[1]:<2}: {c.seconds:5.2f} s, "
          f"peak memory growth {c.peak_bytes / 2**20:6.1f} MiB")
print(f"{costs[-1].size[0] ** 2 // costs[0].size[0] ** 2}x the pixels took {costs[-1].seconds / costs[0].seconds:.1f}x "
      "the time")

# %%
plots.plot_cost(costs, steps=10)

# %%
tm = resolution.tracemalloc_peak(lambda: resolution.generate_many(pipe, ["a red circle"], [0], steps=10,
                                                                   height=128, width=128))
print(f"tracemalloc's peak for the 128x128 run: {tm / 2**20:.2f} MiB (compare the line above)")

# %% [markdown]
# Time and memory grow with the image. At these tiny sizes the time grows *more slowly* than the pixel count: each
# step has a fixed cost (dozens of small layers, each with its overhead) that does not depend on the size, and the
# attention's square-law cost only takes over for much larger latents — at Stable Diffusion's 64×64 latents
# self-attention is what makes 1024×1024 images slow and memory-hungry. Memory starts near zero because the first
# size fits in memory the process already holds. (Measured on a shared 2-core CPU: expect some noise, and read the
# memory as a lower bound, because the C allocator reuses memory it already holds.)

# ## 3. Our model at sizes it never saw
# It was trained only on 32×32 images. The same ten one-object prompts and seed at 32×32, at 2× (64×64) and wide
# (32×64) — ten, because a verdict needs at least 8 prompts to give an interval. The judge works at 32×32, so larger images are scaled down first (the wide one gets squeezed: shapes
# distort, but colours and the number of objects survive).

# %%
OFF_PROMPTS = resolution.OFF_SIZE_PROMPTS + ("a large purple star on the right", "a small orange cross at the bottom",
                                             "a large white triangle in the center", "a small green circle on the left")
off = resolution.off_size(pipe, prompts=OFF_PROMPTS[:10])
plots.plot_off_size(off)

# %%
for s in off.sizes:
    print(f"{s[0]}x{s[1]}: whole prompt right {off.adherence[s]:.2f}, colour right {off.colour[s]:.2f}, "
          f"exactly one object {off.one_object[s]:.2f} (mean {off.mean_objects[s]:.1f} objects)")

# %%
from explainer.experiments import summaries  # noqa: E402

v11 = summaries.lesson11(costs, off)
base, big = (32, 32), (64, 64)
summaries.say(
    f"**What our small model says.** At its training size the whole prompt is right for {off.adherence[base]:.0%} of "
    f"the {len(off.prompts)} prompts, with {off.mean_objects[base]:.1f} objects on average; at 64×64 "
    f"{off.adherence[big]:.0%}, with {off.mean_objects[big]:.1f} objects, while the colour stays right for "
    f"{off.colour[big]:.0%}. Drawing exactly one object less often at 64×64: the sample "
    f"{summaries.reading(v11, 'at 64x64')}. Where it draws *extra objects*, the reason is the canvas: the U-Net's "
    "convolutions and attention learned what an 8×8 latent scene looks like, and on a bigger canvas several regions "
    "each look like a place for an object (the same effect gives large Stable Diffusion 1.5 images two heads).")

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval (Wilson for shares,
# bootstrap for means and differences) and "within noise" where the interval cannot tell. Deterministic facts are
# checked exactly.

# %%
summaries.export("11", v11, headline=(
    f"{costs[-1].size[0] ** 2 // costs[0].size[0] ** 2}× the pixels cost more time (one timed run per size); at "
    f"64×64, a size it never saw, whole prompt right {off.adherence[base]:.0%} → {off.adherence[big]:.0%} and "
    f"{off.mean_objects[base]:.1f} → {off.mean_objects[big]:.1f} objects per image ({len(off.prompts)} prompts)"),
    numbers={"adherence": off.adherence, "colour": off.colour, "one_object": off.one_object,
             "mean_objects": off.mean_objects, "seconds": [c.seconds for c in costs]},
    varies=("seconds", "cost grows"))
ex.verdict_table(v11, title="Lesson 11: resolution")

# %% [markdown]
# ## Try it
# - A tall image: `resolution.off_size(pipe, sizes=[(64, 32)])`.
# - Time a bigger image, e.g. `resolution.cost_vs_resolution(pipe, sizes=[(160, 160)], steps=5)`. Predict the time
#   from the table first.
# - Halve the steps at 64×64: does the cost halve too?

# %% [markdown]
# ## Check yourself
# 1. An image twice as wide and twice as tall: how many times more latent positions, and roughly how much more
#    attention work?
# 2. Why might a model trained on 32×32 draw two objects on a 64×64 canvas when asked for one?
# 3. Why is `tracemalloc` the wrong tool to measure a torch model's memory?
#
# <details><summary>Answer</summary>
#
# 1. 4× the positions; self-attention compares all pairs, so about 16× the attention work (the convolutions grow 4×).
# 2. The network's layers look at local neighbourhoods and at the whole (small) latent; it learned "one object fills
#    this much of an 8×8 scene". On a 16×16 latent, several regions each look like a place for an object.
# 3. It only traces allocations made through Python's memory allocator; torch's tensors are allocated by C++ code
#    directly, so tracemalloc sees only the small Python objects around them.
#
# </details>
