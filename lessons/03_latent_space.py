# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3 — Latent space and the VAE
#
# **You will learn**
# - what the VAE does: squeeze a picture into a small *latent* and expand it back;
# - how much smaller the latent is, and how much of the picture survives the round trip;
# - which of the world's things survive the round trip, and which the model misses even so;
# - whether "a forest at dawn" and "a forest at dusk" are neighbours and "a beach" and "a mountain" far apart — in the
#   latent space the U-Net works in, and in CLIP's space — measured, not assumed;
# - what you get when you walk in a straight line from one latent to another.
#
# **The picture to keep in mind**
# ```
#  picture ──VAE encoder──► latent ──(× scaling factor)──► what the U-Net works on
#  picture ◄──VAE decoder── latent ◄──(÷ scaling factor)── what the U-Net produced
# ```
#
# **Claim tested** (#3): *The model works in a compressed latent space where similar scenes sit close together and
# different ones far apart; a VAE decodes back to pixels.*
#
# **The model, and why this one.** `scenes-sd`, our model of the scenes world: its pictures have textures (leaves,
# grass, snow, sand, the sea) and light (dawn, day, dusk, night), so "a forest at dawn", "a forest at dusk", "a beach"
# and "a mountain" are real, different pictures, and its CLIP pair lets us measure the same pairs in a second space.
# The pictures we encode are drawn by the world's own renderer from unseen scenes: they are what each prompt *looks
# like*, not what a model made of it.

# %%
import numpy as np

import explainer as ex
from explainer import plots
from explainer.experiments import latents, scenes_clip, scenes_eval, scenes_findings, scenes_latents, summaries
from explainer.plots.spaces import plot_near_far, plot_what_survives

pipe = ex.load_pipeline("scenes-sd")

# %% [markdown]
# ## Why a latent space at all
# The U-Net runs 25 or more times per image, so every number it has to handle costs 25 times. Stable Diffusion
# therefore never denoises pixels: a **VAE** (variational auto-encoder, a network trained to compress and rebuild
# images) first maps pixels to a smaller grid of numbers, the **latent**, and the U-Net works there. The VAE's
# decoder turns the final latent into the picture. The latent is multiplied by a fixed **scaling factor** so that its
# values have a spread of about 1, like the noise that will be added to it.

# %%
c = latents.compression(pipe)
print(f"picture: 3 x {c['image_size']} x {c['image_size']} = {c['pixel_values']} numbers")
print(f"latent: {' x '.join(map(str, c['latent_shape']))} = {c['latent_values']} numbers")
print(f"compression factor: {c['factor']:.0f}x   (Stable Diffusion at 512 px: 3*512*512 / (4*64*64) = 48x)")
print(f"scaling factor: {pipe.vae.config.scaling_factor:.3f}")

# %% [markdown]
# ## A round trip
# Encode 32 scenes the VAE never saw, decode them, and compare. Top: originals. Middle: after the round trip. Bottom:
# the latents themselves, each channel as a little tile (blue below zero, red above).

# %%
rec = scenes_latents.reconstruction(pipe, n=32)
shape = "x".join(map(str, c["latent_shape"]))
plots.plot_images(
    [rec.originals[:6], rec.decoded[:6], [plots.latent_mosaic(z) for z in rec.latents[:6]]],
    f"The VAE round trip: {c['image_size']}x{c['image_size']}x3 pixels -> {shape} latent -> pixels (unseen scenes)",
    row_labels=["original", "encoded +\ndecoded", f"latent,\n{c['latent_shape'][0]} channels"], cmap="RdBu_r",
    vmin=-3, vmax=3, colorbar="latent value")

# %%
psnr_each = summaries.psnr_each(rec)
print(f"reconstruction error over {len(rec.originals)} unseen scenes: PSNR of the pooled error {rec.psnr:.1f} dB; "
      f"mean of each scene's own PSNR {np.mean(psnr_each):.1f} dB; mean absolute error {rec.mean_abs_255:.1f} of 255")

# %% [markdown]
# **PSNR** (peak signal-to-noise ratio) turns the error into decibels: above ~30 dB the difference is hard to see.
# The PSNR of the pooled error and the mean of the scenes' own PSNRs differ because decibels are a logarithm; the
# verdict uses the per-scene numbers, because each scene is one unit of evidence.

# %%
summaries.say(f"Our small VAE lands {'above' if np.mean(psnr_each) > 30 else 'below'} that line (mean per-scene "
              f"PSNR {np.mean(psnr_each):.1f} dB): " + (
                  "the round trip is hard to tell from the original by eye." if np.mean(psnr_each) > 30 else
                  "compare the rows above — textures such as leaves and grass come back softer, and fine detail is "
                  "where a small VAE loses most."))

# %% [markdown]
# ## What survives the round trip, thing by thing
# The U-Net only ever makes latents; the decoder turns them into the picture. A thing that the decoder cannot bring
# back from its own encoder's latent is hard for the whole model; a thing that survives the round trip but that the
# model still misses is the U-Net's doing. Measure both, thing by thing: for each of the world's 25 things, 8 unseen
# prompts asking for that one thing. Each scene is rendered (what its prompt looks like), sent through the VAE and
# back, and drawn by the model from its prompt; the scenes judge reads all three. (The U-Net's latents are its own, so
# it can sometimes draw a thing more clearly than a round trip brings it back.)

# %%
things = scenes_eval.thing_study(pipe, per_thing=8)
plot_what_survives(things, "scenes-sd")

# %%
lost = scenes_eval.thing_losses(things)
kept = [t for t in things if things[t]["round_trip"] >= 0.9]


def named(key: str, names: list[str]) -> str:
    return ", ".join(f"{t} ({100 * things[t][key]:.0f} %)" for t in names)


n = next(iter(things.values()))["n"]
said = [f"The judge finds the thing in at least 90 % of its round trips for {len(kept)} of the {len(things)} things."]
if lost["decoder"]:
    said.append(f"The round trip loses (renders read right, round trips less than 90 %): "
                f"{named('round_trip', lost['decoder'])}.")
if lost["unet"]:
    drawn_vs_trips = ", ".join(f"{t} ({100 * things[t]['drawn']:.0f} % drawn vs {100 * things[t]['round_trip']:.0f} % "
                               "of round trips)" for t in lost["unet"])
    said.append(f"Beyond noise, the model draws these less often than their round trips are read: {drawn_vs_trips}: "
                "the U-Net loses more of them than the decoder does.")
else:
    said.append(f"With {n} prompts per thing, no thing is drawn less often than its round trips are read beyond "
                "noise: too few to tell thing by thing.")
if lost["judge"]:
    said.append(f"The judge itself misreads some renders ({named('render', lost['judge'])} read right), so for those "
                "things the numbers say as much about the judge as about the model.")
summaries.say(" ".join(said))

# %% [markdown]
# The U-Net never sees the word "umbrella": it reads the text encoder's vectors for it (lesson 2). If the frozen text
# encoder reads two names almost alike, the U-Net has little to tell those things apart by. For each thing, which
# other thing's name comes out most alike (the cosine of the name's vectors in "a <name>"), and does that likeness go
# with how rarely the thing is drawn? One thing is one unit: Spearman's rank correlation over the things, its interval
# from resampling things.

# %%
for t in sorted(things, key=lambda t: -things[t]["text_cosine"])[:6]:
    print(f"{t:<10} reads most like {things[t]['text_nearest']:<10} (cosine {things[t]['text_cosine']:.2f}); "
          f"drawn {100 * things[t]['drawn']:3.0f} %")
confusion = ex.verdicts.from_interval(
    "the things the model draws least are those whose names the text encoder reads most like another's",
    scenes_eval.text_confusion(things), f"{len(things)} things", "Spearman's rho (name likeness vs share drawn)",
    claim_above=False)
summaries.say(f"Measured: {confusion.sentence()}.")

# %% [markdown]
# ## Near and far
# The article's examples: "a forest at dawn" and "a forest at dusk" should be **neighbours**, "a beach" and "a
# mountain" **far apart**. We draw 12 pictures of each prompt from unseen scenes — the second picture of each pair from
# other seeds than the first, so no pair shares its trees — and measure each pair twice:
# - in **latent space**: the Euclidean distance between the two VAE latents (what the U-Net works on);
# - in **CLIP space**: the cosine similarity of the two pictures' CLIP image vectors.
#
# As a yardstick, a third kind of pair: two independent pictures of the *same* prompt ("a forest at dawn" twice).

# %%
clip = plots.load_clip(pipe)
nf = scenes_latents.near_far(pipe, clip, n=12)
rows = [list(nf.images["neighbours"][0][:4]) + list(nf.images["far apart"][0][:4]),
        list(nf.images["neighbours"][1][:4]) + list(nf.images["far apart"][1][:4])]
(na, nb), (fa, fb) = nf.pairs["neighbours"], nf.pairs["far apart"]
plots.plot_images(rows, f"Four drawn pairs of each: \u201c{na}\u201d / \u201c{nb}\u201d (left), "
                        f"\u201c{fa}\u201d / \u201c{fb}\u201d (right)",
                  row_labels=["first of\nthe pair", "second of\nthe pair"],
                  col_titles=[f"pair {i + 1}" for i in range(4)] * 2)

# %%
plot_near_far(nf)

# %%
for kind in nf.pairs:
    print(f"{kind:<12} latent distance {nf.latent_distance[kind].mean():6.1f}   CLIP image similarity "
          f"{nf.clip_similarity[kind].mean():.3f}   CLIP text similarity of the prompts {nf.text_similarity[kind]:.3f}")
print(f"two unrelated scenes: latent distance {nf.latent_scale:.1f}")

# %% [markdown]
# The last column compares the *prompts* in CLIP's text space. CLIP reads one vector per prompt; where?

# %%
reads = {p: scenes_clip.pooled_token(clip, p) for p in (na, nb, fa, fb)}
for p, (pos, token) in reads.items():
    print(f"{p:<18} read at position {pos}: {token}")

# %%
v_nf = scenes_findings.near_far(nf)
IN_LATENT, IN_IMAGES = "in latent space", "in CLIP's image space"  # the starts of the two verdicts' claims
same_read = reads[na] == reads[nb] and nf.text_similarity["neighbours"] > 1 - 1e-6
summaries.say(
    f"**What we measured.** In latent space the neighbours lie {nf.latent_distance['neighbours'].mean():.1f} apart on "
    f"average and the far pair {nf.latent_distance['far apart'].mean():.1f} (two unrelated scenes: "
    f"{nf.latent_scale:.1f}; two pictures of the same prompt: {nf.latent_distance['same prompt'].mean():.1f}); that "
    f"the neighbours sit nearer, the sample {summaries.reading(v_nf, IN_LATENT)}. In CLIP's image space the "
    f"neighbours score {nf.clip_similarity['neighbours'].mean():.3f} and the far pair "
    f"{nf.clip_similarity['far apart'].mean():.3f}: the sample {summaries.reading(v_nf, IN_IMAGES)}. "
    + (f"In CLIP's text space \u201c{na}\u201d and \u201c{nb}\u201d get *the same vector* (similarity "
       f"{nf.text_similarity['neighbours']:.3f}): CLIP reads both at \u201c{reads[na][1]}\u201d, position "
       f"{reads[na][0]}, before the word that tells them apart — this CLIP cannot tell dawn from dusk in words at all."
       if same_read else f"In CLIP's text space the two prompts score {nf.text_similarity['neighbours']:.3f}, the far "
       f"pair {nf.text_similarity['far apart']:.3f}.")
    + " A latent is a small picture: it is near another when the pictures *look* alike, which is not always when "
    "they *mean* alike — the next experiment asks that directly.")

# %% [markdown]
# ## One thing changed
# Take 16 unseen scenes of one thing on the ground, change exactly one thing in each — move it by a pixel, swap the
# thing, swap the ground, swap the light — and measure how far the latent moves, beside how far the pixels move.

# %%
ch = scenes_latents.change_one_thing(pipe, n=16)
paths = scenes_latents.walks(pipe, nf)
v3 = scenes_findings.lesson3(c, rec, nf, ch, scenes_latents.worst_off_line(paths))
for change, lat in sorted(ch.mean("latent").items(), key=lambda kv: kv[1]):
    print(f"{change:<16} latent distance {lat:6.2f}    pixel distance {ch.mean('pixel')[change]:6.2f}")
plots.plot_images([[im for _, im in ch.examples]], "One unseen scene and the same scene with one thing changed",
                  col_titles=[name for name, _ in ch.examples])

# %%
order = sorted(ch.mean("latent"), key=ch.mean("latent").get)
summaries.say(
    f"**What we measured.** From the smallest to the largest latent move: {', '.join(order)}. Scene by scene, the "
    f"latent distances rank the changes like the pixel distances do (mean rank correlation "
    f"{ch.rank_agreement().mean():.2f}; the sample {summaries.reading(v3, 'latent distance follows pixel')}). "
    f"Another thing moves the latent {ch.mean('latent')['other thing']:.1f} on average, another light "
    f"{ch.mean('latent')['other light']:.1f}: that a different *thing* (a change of meaning) moves it further than a "
    f"different light on the same thing, the sample {summaries.reading(v3, 'latent distance is distance in meaning')}. "
    "The latent measures how different two pictures *look*.")

# %% [markdown]
# ## Walking between two latents
# Decode the points on the straight line from a beach's latent to a mountain's, and compare with simply cross-fading
# the two pictures' pixels. A cross-fade can only mix the two ends' colours, so a pixel whose colour lies far from
# every mix of them is a colour in neither end.

# %%
worst = scenes_latents.worst_off_line(paths)
it = paths[int(np.argmax(worst))]
plots.plot_images([it.latent_path, it.pixel_path],
                  f"(1 - a) * latent A + a * latent B, decoded, beside (1 - a) * A + a * B: \u201c{fa}\u201d to "
                  f"\u201c{fb}\u201d, the walk with the most off-mix pixels of {len(paths)}",
                  row_labels=["latent line,\ndecoded", "pixel\ncross-fade"],
                  col_titles=[f"a = {a:.2f}" for a in it.alphas])

# %%
k = sum(w < 0.05 for w in worst)
summaries.say(
    f"**What we measured.** Of {len(paths)} walks from \u201c{fa}\u201d to \u201c{fb}\u201d, {k} keep every inner frame "
    f"within the cross-fade's colours (fewer than 5 % of its pixels off), and the worst frame of the walk shown has "
    f"{max(worst):.0%} of its pixels in a colour of neither end; that a straight latent walk looks like a cross-fade, "
    f"the sample {summaries.reading(v3, 'a straight latent line')}. Either way nothing slides from one place to "
    "another: the latent keeps the picture's layout, and the decoder draws whatever it reads at each point of the "
    "line. Moving and morphing come from the U-Net, which starts from noise and *makes* layouts (lesson 10).")

# %% [markdown]
# ## The verdicts, computed
# Every claim of this lesson, judged from the numbers above: the sample size, a 95 % interval over the units that were
# drawn (unseen scenes, drawn pairs of pictures, walks; bootstrap for means and differences, Wilson for shares) and
# "within noise" where the interval cannot tell. Deterministic facts are checked exactly.

# %%
status = {start: next(v.status for v in v3 if v.claim.startswith(start)) for start in (IN_LATENT, IN_IMAGES)}
summaries.export("03", v3, headline=(
    f"{c['factor']:.0f}× fewer numbers than pixels; VAE round trip {np.mean(psnr_each):.1f} dB per scene; latent "
    f"distance \u201c{na}\u201d–\u201c{nb}\u201d {nf.latent_distance['neighbours'].mean():.1f} vs "
    f"\u201c{fa}\u201d–\u201c{fb}\u201d {nf.latent_distance['far apart'].mean():.1f} "
    f"({status[IN_LATENT]}); CLIP image similarity {nf.clip_similarity['neighbours'].mean():.2f}"
    f" vs {nf.clip_similarity['far apart'].mean():.2f} ({status[IN_IMAGES]}); "
    f"{k} of {len(paths)} latent walks look like a cross-fade"), numbers={
    "model": "scenes-sd", "factor": c["factor"], "latent_shape": list(c["latent_shape"]),
    "psnr_pooled": rec.psnr, "psnr_mean_each": float(np.mean(psnr_each)), "n_round_trip": len(rec.originals),
    "latent_distance": {kd: float(v.mean()) for kd, v in nf.latent_distance.items()},
    "clip_similarity": {kd: float(v.mean()) for kd, v in nf.clip_similarity.items()},
    "text_similarity": nf.text_similarity, "latent_scale": nf.latent_scale,
    "n_pairs": len(nf.latent_distance["neighbours"]), "change_latent": ch.mean("latent"),
    "change_pixel": ch.mean("pixel"), "rank_agreement": float(ch.rank_agreement().mean()), "n_changed": len(ch.latent),
    "walk_worst_off_line": worst})
ex.verdict_table(v3, title="Lesson 3: latent space and the VAE (scenes-sd)")

# %% [markdown]
# ## Try it
# - `rec.originals[rec.worst_index]` and `rec.decoded[rec.worst_index]`: what does the VAE get wrong when it does?
# - `scenes_latents.walk(pipe, nf.images["neighbours"][0][0], nf.images["neighbours"][1][0])`: walk from dawn to dusk.
# - `plots.plot_latent_map(rec.latents, labels=[...])`: colour the round-trip latents by their scene's light.
# - `scenes_eval.thing_study(pipe, per_thing=32)`: four times the prompts per thing; which findings above hold?
#
# ## Check yourself
# 1. Stable Diffusion's VAE turns 512×512×3 pixels into 4×64×64 latents. What is its compression factor, and why does
#    it make generation cheaper?
# 2. Why can a scene's latent be far from the same scene under another light, though a person calls them the same?
# 3. What does the scaling factor do, and why does the U-Net care?

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1. 786,432 / 16,384 = 48. The U-Net, which runs at every step, handles 48 times fewer numbers.
# 2. The latent is a small picture: the light changes the colour of every pixel, so it changes every latent position.
#    Distance counts differences position by position, not meaning.
# 3. It rescales the latents to a spread of about 1, the spread of the Gaussian noise the diffusion process mixes in,
#    so the noise schedule means the same thing for every VAE.
#
# </details>
