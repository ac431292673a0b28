# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14. ControlNet: structure from a map
#
# **You will learn**
# - what a ControlNet *is*, read from the model itself: which U-Net blocks it copies, the zero convolutions, and
#   where its residuals enter the frozen U-Net;
# - how much the output follows a map (edges or segmentation), across `controlnet_conditioning_scale`, and who wins
#   when the map and the prompt disagree;
# - when in the denoising the ControlNet pushes hardest (is structure decided early?);
# - how a ControlNet is trained, and when in training it starts to follow the map (the "sudden convergence" its
#   authors describe).
#
# **The whole lesson in one picture**
# ```
#  control map ─► [map embedding 32×32→8×8] ─┐
#  noisy latent ─► conv_in ──────────────────┴► copied down blocks + mid block ─► zero 1×1 convs ─► residuals
#                                                                                                     │ (+)
#  noisy latent ─► frozen U-Net: conv_in ─► down blocks ─(skips + residuals)─► mid (+ residual) ─► up blocks ─► ε̂
# ```
# Our world renders its own exact maps: the edge map (object outlines) and the segmentation map (one fixed colour per
# shape class: circle red, square green, triangle blue, star yellow, cross magenta) come from the scene's geometry.

# %%
import textwrap

import numpy as np

import explainer as ex
from explainer import plots, shapes
from explainer.experiments import controlnet as X
from explainer.experiments import summaries

scene = shapes.sample_scene(10_300_003)
plots.plot_control_maps(scene)

# %% [markdown]
# ## 1. The mechanism, from the model
# `ex.load_pipeline(controlnet="edges")` gives a standard diffusers `StableDiffusionControlNetPipeline`: our U-Net,
# VAE and text encoder, plus a `ControlNetModel` built with `ControlNetModel.from_unet` and trained by us. Compare its
# parameters with the U-Net's: what has the same name and shape was **copied** from the U-Net when training started;
# the rest was **added**.

# %%
pipe = ex.load_pipeline(controlnet="edges")
anat = X.anatomy(pipe)
print("copied from the U-Net:", ", ".join(f"{k} ({v:,})" for k, v in anat["copied"]))
print("added:                ", ", ".join(f"{k} ({v:,})" for k, v in anat["added"]))
print(f"copied {anat['copied_params']:,} of the U-Net's {anat['unet_params']:,} parameters "
      f"({anat['copied_params'] / anat['unet_params']:.0%}); added {anat['added_params']:,}")
print("residuals it hands to the U-Net (name, channels, size):", anat["residuals"])

# %% [markdown]
# The copy is the **encoder half**: `conv_in`, the time embedding, the three down blocks and the mid block. No up
# block is copied. The added parts are the *map embedding* (`controlnet_cond_embedding`: a few small convolutions,
# two with stride 2, turning the 32×32 map into 8×8 features to add after the copy's `conv_in`, because our VAE makes
# 8×8 latents from 32×32 pixels) and one 1×1 convolution per residual (`controlnet_down_blocks.k`,
# `controlnet_mid_block`). Those 1×1 convolutions start at **exactly zero**, so on the first training step the
# ControlNet adds nothing and the U-Net's prediction is unchanged:

# %%
fresh = X.fresh_controlnet_changes_nothing(pipe)
print(fresh)

# %% [markdown]
# ## 2. Does the output follow the map?
# Prompts that name *what* but not *where* ("a large red circle"); the map says where. Layout IoU compares the output's
# foreground with the map's regions (1 = the same pixels). Same scenes and seeds for every setting; "without" is the
# plain U-Net. This cell measures everything the verdicts at the end judge (about a minute on 2 cores).

# %%
STEPS = 8
F = X.lesson_findings(pipe, "edges", n=8, steps=STEPS, conflict_n=8)
sweep = F["sweep"]
print(f"without: IoU {sweep['without'].iou:.2f} (n={sweep['without'].n})")
for s, sc in sorted(sweep["scales"].items()):
    print(f"scale {s:g}: IoU {sc.iou:.2f}, centre within 3 px {sc.position:.0%}")
print("scale 0 == no ControlNet, pixel for pixel:", F["scale0_equals_without"])
plots.plot_scale_sweep(sweep, "edges", show=3, steps=STEPS)

# %% [markdown]
# ## 3. Map against prompt
# A square's edge map, the prompt "a red circle". Which shape comes out, and does the colour survive?

# %%
for s, r in sorted(F["conflict"]["scales"].items()):
    print(f"scale {s:g}: square {r['map_shape']:.0%}, circle {r['prompt_shape']:.0%}, red {r['prompt_color']:.0%} "
          f"(n={F['conflict']['n']})")
plots.plot_conflict(F["conflict"], "edges")

# %% [markdown]
# ## 4. When does the ControlNet push? Its residuals, traced
# `ex.trace` on a ControlNet pipeline records the control image and, per step, each residual's norm and where it is
# large. The claim "structure is decided early" predicts large residuals in the first steps.

# %%
tr = F["early"]["last_trace"]
print("first-half share of the residual norm, per run:", [round(v, 2) for v in F["early"]["shares"]])
plots.plot_residual_norms(tr)

# %%
plots.plot_residual_maps(tr)

# %% [markdown]
# ## 5. Training: when does it start to follow the map?
# The shipped ControlNets were trained with `python -m explainer.train --stage controlnet --condition edges` (and
# `segmentation`): U-Net, VAE and text encoder frozen, the ordinary ε-prediction loss, re-worded captions and 10 %
# empty ones. Every 50 steps the run generated its validation scenes from their maps and measured the layout IoU.
# The ControlNet paper reports a "sudden convergence": the model ignores the map for a while, then follows it within
# few steps. Does ours? And does the loss show it? (The training-time IoU read the foreground with a looser
# colour-distance rule than this lesson's, so its values run a little lower.)

# %%
curve = X.training_curve("edges")
half_way = X.convergence_step(curve)
print(f"{len(curve['eval_steps'])} measurements on {curve['n']} scenes; IoU {curve['iou'][0]:.2f} at step 0, best "
      f"{max(curve['iou']):.2f}; half of the rise reached at step {half_way}")
print("how the run ended:", curve["stopped"] or "its planned number of steps")
plots.plot_training_curve(curve, "edges")

# %%
iou, ev = np.array(curve["iou"]), np.array(curve["eval_steps"])
risen = iou > iou[0] + 2 * curve["iou_se"][0]
flat_until = int(ev[risen.argmax()]) if risen.any() else None
loss = np.array(curve["loss"])
quarter = max(1, len(loss) // 4)
first, last = loss[:quarter], loss[-quarter:]
best_step, jitter = int(ev[iou.argmax()]), float(np.abs(np.diff(loss)).mean())
summaries.say(
    f"**What the curve shows.** The IoU starts at {iou[0]:.2f} and "
    + (f"stays within two standard errors of that before step {flat_until}; it reaches half of its rise at step "
       f"{half_way} and {iou.max():.2f} at step {best_step}"
       + (" — the last measurement: the run was stopped while the IoU was still rising" if best_step == ev[-1] else "")
       if flat_until is not None else "never rises above its start by more than two standard errors")
    + f". The loss, meanwhile, averages {first.mean():.4f} over its first quarter and {last.mean():.4f} over its last "
    f"(a change of {last.mean() - first.mean():+.4f}), while it moves by {jitter:.4f} on average from one logged "
    "point to the next: "
    + ("its drift is smaller than its jitter, so it does not say when the ControlNet starts to work; the IoU does."
       if abs(first.mean() - last.mean()) < jitter else
       "it does move, though the IoU shows far more plainly when the ControlNet starts to work."))

# %% [markdown]
# A live run, short enough to watch: a fresh ControlNet from our U-Net, the same loss. In a few steps you will not see
# the IoU rise (that took hundreds of steps above), but you can see the zero convolutions leave zero.

# %%
live = X.live_training(pipe, "edges", steps=8, batch=4)  # progress=True shows a progress bar
print("loss:", [round(v, 4) for v in live["loss"]])
print("largest zero-conv weight:", [round(v, 4) for v in live["zero_conv_max"]])

# %% [markdown]
# ## 6. Try it: your own map
# Place shapes with the renderer (or take the scene of any generated image), draw its map, and generate. Below, two
# maps with the same two shapes: side by side, as every two-object scene of the shapes world is laid out (the
# objects share a row or a column, `shapes.sample_scene`), and diagonal, a layout the world never draws, so the
# ControlNet never trained on one. Change the prompt's colour, the places or the scale and see what moves.

# %%
MY_STEPS, MY_SEED, MY_CFG = 12, 0, 5.0
maps = {
    "side by side": (shapes.Scene((shapes.ShapeObject("blue", "triangle", "large", 9.0, 17.0),
                                   shapes.ShapeObject("yellow", "star", "small", 24.0, 16.0)), "black", "left of"),
                     "a blue triangle left of a yellow star"),
    "diagonal": (shapes.Scene((shapes.ShapeObject("blue", "triangle", "large", 10.0, 22.0),
                               shapes.ShapeObject("yellow", "star", "small", 23.0, 9.0)), "black"),
                 "a blue triangle below a yellow star"),
}
rows, own = [], {}
for name, (mine, prompt) in maps.items():
    with_cn, without_cn = (X.generate(pipe, [mine], "edges", prompts=[prompt], steps=MY_STEPS, cfg=MY_CFG,
                                      seeds=[MY_SEED], scale=scale)[0] for scale in (1.0, 0.0))
    own[name] = (X.layout_iou(with_cn, mine), X.layout_iou(without_cn, mine))
    rows.append([shapes.render_edges(mine), without_cn, with_cn])
    print(f"{name}: \u201c{prompt}\u201d, layout IoU {own[name][0]:.2f} with the ControlNet, {own[name][1]:.2f} without it "
          f"(scale 0)")
plots.plot_images(rows, f"Your maps and what the edges ControlNet made of them (seed {MY_SEED}, {MY_STEPS} steps, "
                  f"CFG {MY_CFG:g}, scale 1)", row_labels=[f"{n}\n" + textwrap.fill(f"\u201c{p}\u201d", 18)
                                                          for n, (_, p) in maps.items()],
                  col_titles=["your edge map", "without (scale 0)", "with the ControlNet"])

# %%
def outcome(gap: float) -> str:
    return ("it followed your map better than no ControlNet" if gap > 0.05 else
            "it did worse than no ControlNet at all" if gap < -0.05 else "it made little difference (within 0.05)")


summaries.say(
    "**One map is one example.** "
    + " ".join(f"On the {name} map the ControlNet scores {w:.2f} against {wo:.2f} without it: {outcome(w - wo)}."
               for name, (w, wo) in own.items())
    + f" The {sweep['without'].n} validation scenes above average {sweep['scales'][1.0].iou:.2f} with it (scale 1) and "
    f"{sweep['without'].iou:.2f} without; one scene and one seed can go either way, so look at the pictures: which "
    "object moved, which was lost? Try other seeds (`seeds=[1]`), `scale=1.5`, or move the diagonal map's shapes "
    "onto one row.")

# %% [markdown]
# ## Verdicts
# Each line is computed from the numbers above (sample size and 95 % interval in the row).

# %%
tab = F["table"]
summaries.export("14", list(tab), headline=(
    f"layout IoU without {sweep['without'].iou:.2f} → {sweep['scales'][1.0].iou:.2f} at scale 1 and "
    f"{sweep['scales'][max(sweep['scales'])].iou:.2f} at {max(sweep['scales']):g} (edges, {sweep['without'].n} "
    f"scenes, {STEPS} steps); a fresh ControlNet changes the prediction by {fresh['max_output_change']:g}; two "
    "hand-made maps, one seed each: " + ", ".join(f"{name} {w:.2f} with vs {wo:.2f} without"
                                                 for name, (w, wo) in own.items())), numbers={
    "iou_without": sweep["without"].iou, "iou": {s: sc.iou for s, sc in sweep["scales"].items()},
    "scale0_equals_without": F["scale0_equals_without"], "early_shares": F["early"]["shares"],
    "conflict": {s: r for s, r in F["conflict"]["scales"].items()}, "own_maps": {k: list(v) for k, v in own.items()}})
tab

# %% [markdown]
# ## Check yourself
# 1. Why does a fresh ControlNet not change the picture at all, even though its copied blocks are fully trained?
#    *(The 1×1 output convolutions are zero, so every residual is zero.)*
# 2. Which half of the U-Net is copied, and why is the decoder half not needed? *(The encoder half; its outputs are
#    added to the skips the frozen decoder already reads.)*
# 3. In the map-vs-prompt test, which of shape and colour followed the map, which the prompt? Would a segmentation
#    map change the colour? *(Read section 3's numbers: the judged shape and colour say which input won each, the IoU
#    whether the layout still followed the map. The segmentation map's colours name the shape class — circle red,
#    square green, ... — not the object's colour, so neither map tells the model what colour to paint.)*
# 4. Why is scale 0 *exactly* the plain model? *(Every residual is multiplied by 0 before it is added.)*
# 5. Why watch the IoU and not the loss to see a ControlNet start working? *(The loss scores the noise prediction of
#    the frozen U-Net plus the ControlNet's small residuals, at random noise levels: most of it is the U-Net's and
#    the noise level's, and section 5 compares its drift with its jitter. The IoU measures the one thing the
#    ControlNet adds: following the map.)*
