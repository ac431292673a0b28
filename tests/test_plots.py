"""Figures show the trace's / pipeline's own numbers: checked through the artists' data, not just "a figure exists"."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from explainer import export, plots  # noqa: E402
from explainer.shapes import render, sample_scene  # noqa: E402
from explainer.trace import trace  # noqa: E402

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def tr(tiny_sd):
    return trace(tiny_sd, PROMPT, seed=0, steps=4, cfg=7.5, scheduler="dpm++2m")


@pytest.fixture(scope="module")
def tr_neg(tiny_sd):
    return trace(tiny_sd, PROMPT, seed=1, steps=3, cfg=5.0, scheduler="ddim", negative_prompt="a green star")


def _title(fig) -> str:
    return fig._suptitle.get_text()


def _assert_titled(fig, tr) -> None:
    t = _title(fig)
    for part in (PROMPT if tr.prompt == PROMPT else tr.prompt, f"seed {tr.settings['seed']}",
                 f"{tr.settings['steps']} steps", f"CFG {tr.settings['cfg']:g}", tr.settings["scheduler"]):
        assert part in t, (part, t)


def _images(fig):
    return [im for ax in fig.axes for im in ax.images]


# --------------------------------------------------------------------------------------------- pipeline / U-Net
def test_pipeline_summary_reads_the_real_objects(tiny_sd):
    s = plots.pipeline_summary(tiny_sd, PROMPT, steps=7)
    assert [x["stage"] for x in s] == ["prompt", "token ids", "embeddings", "noise latents", "U-Net \u00d7 7",
                                      "VAE decode", "pixels"]
    by = {x["stage"]: x for x in s}
    assert by["token ids"]["shape"] == (1, tiny_sd.tokenizer.model_max_length)
    assert by["embeddings"]["shape"] == (1, 16, 32)
    assert by["embeddings"]["params"] == sum(p.numel() for p in tiny_sd.text_encoder.parameters())
    assert by["U-Net \u00d7 7"]["params"] == sum(p.numel() for p in tiny_sd.unet.parameters())
    assert by["noise latents"]["shape"] == (1, 4, 8, 8)
    assert by["pixels"]["shape"] == (16, 16, 3)  # the tiny VAE's factor is 2
    fig = plots.plot_pipeline(tiny_sd, PROMPT, summary=s)
    assert "Pipeline at a glance" in _title(fig)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "1\u00d74\u00d78\u00d78" in texts and "UNet2DConditionModel" in texts


def test_pipeline_summary_sdxl_has_two_text_encoders(tiny_sdxl):
    stages = [x["component"] for x in plots.pipeline_summary(tiny_sdxl, PROMPT)]
    assert stages.count("text_encoder") == 1 and stages.count("text_encoder_2") == 1


def test_unet_anatomy_matches_the_config(tiny_sd):
    unet = tiny_sd.unet
    a = plots.unet_anatomy(unet)
    assert a["total_params"] == sum(p.numel() for p in unet.parameters())
    assert [d["channels_out"] for d in a["down"]] == list(unet.config.block_out_channels)
    assert [d["resolution"] for d in a["down"]] == [(8, 8), (4, 4)]
    assert a["mid"]["resolution"] == (4, 4)
    assert len(a["skips"]) == sum(len(b.resnets) for b in unet.up_blocks)
    # every skip lands on an up block working at the skip's resolution
    for s in a["skips"]:
        assert a["up"][s["up_level"]]["resolution"] == s["resolution"]
    fig = plots.plot_unet_anatomy(unet, anatomy=a)
    assert "U-Net anatomy" in _title(fig) and f"{len(a['skips'])} skip connections" in _title(fig)


# --------------------------------------------------------------------------------------------- text
def test_tokens_and_embedding_heatmap(tiny_sd):
    toks = plots.prompt_tokens(tiny_sd, PROMPT)
    words = [t["token"] for t in toks if t["kind"] == "word"]
    assert words == PROMPT.split()
    assert toks[0]["kind"] == "start" and toks[len(words) + 1]["kind"] == "end"
    fig = plots.plot_tokens(tiny_sd, PROMPT)
    shown = [t.get_text() for t in fig.axes[0].texts]
    assert all(w in shown for w in words)

    fig = plots.plot_embedding_heatmap(tiny_sd, PROMPT, include_padding=1)
    emb = plots.prompt_embeddings(tiny_sd, PROMPT)["hidden"][0]
    n = len(words) + 3
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), emb[:n])
    assert fig.axes[0].get_xlabel().startswith("embedding dimension")
    with torch.no_grad():
        ids = tiny_sd.tokenizer(PROMPT, padding="max_length", max_length=16, return_tensors="pt").input_ids
        ref = tiny_sd.text_encoder(ids)[0][0].numpy()
    np.testing.assert_allclose(emb, ref, rtol=0, atol=1e-6)


def test_trace_embeddings_show_the_traced_tensors(tr_neg):
    fig = plots.plot_trace_embeddings(tr_neg)
    e = tr_neg.text_embeddings["text_encoder"]
    a0, a1 = fig.axes[0].images[0].get_array(), fig.axes[1].images[0].get_array()
    np.testing.assert_array_equal(a0, e["cond"].numpy()[:len(a0)])
    np.testing.assert_array_equal(a1, e["uncond"].numpy()[:len(a1)])
    assert "a green star" in fig.axes[1].get_title()
    _assert_titled(fig, tr_neg)


def test_prompt_similarity(tiny_sd):
    prompts = ["a red circle", "a blue circle", "a big green star", "A  RED  circle"]
    sim = plots.prompt_similarity(tiny_sd, prompts)
    # the same words spelled otherwise (case, spacing) are the same tokens, so the same embedding; other words are not
    assert sim[0, 3] == pytest.approx(1.0, abs=1e-6)
    assert sim[0, 1] < 1 - 1e-3 and sim[0, 2] < 1 - 1e-3 and sim[1, 2] < 1 - 1e-3
    fig = plots.plot_prompt_similarity(tiny_sd, prompts)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), sim)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == prompts


def test_clip_similarity_matrix(tiny_sd):
    from transformers import CLIPConfig, CLIPModel

    from explainer.shapes import make_dataset

    tok = tiny_sd.tokenizer
    torch.manual_seed(0)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                max_position_embeddings=16, projection_dim=16, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=4, projection_dim=16)
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    images, _, _ = make_dataset(4, start_seed=5)
    captions = ["a red circle", "a blue square", "a green star", "a yellow triangle"]
    sim = plots.clip_similarity(clip, images, captions, tokenizer=tok)
    assert sim.shape == (4, 4) and np.all(np.abs(sim) <= 1 + 1e-9)
    with torch.no_grad():  # the training preprocessing: uint8 -> [-1, 1], channels first
        px = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        im = clip.get_image_features(pixel_values=px)
        im = getattr(im, "pooler_output", im)
    im = torch.nn.functional.normalize(im, dim=-1).numpy()
    ids = tok(captions, padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        tx = clip.get_text_features(input_ids=ids.input_ids, attention_mask=ids.attention_mask)
        tx = getattr(tx, "pooler_output", tx)
    tx = torch.nn.functional.normalize(tx, dim=-1).numpy()
    np.testing.assert_allclose(sim, im @ tx.T, atol=1e-5)
    fig = plots.plot_clip_similarity(clip, images, captions, tokenizer=tok)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), sim)
    assert len(ax.images) == 1 + len(images)  # the matrix and one thumbnail per image
    np.testing.assert_array_equal(ax.images[1].get_array(), images[0])
    assert ax.get_xlabel() == "caption" and ax.get_ylabel() == "image"


# --------------------------------------------------------------------------------------------- noise
def test_noise_schedules_plot_the_schedulers_noise_levels(tiny_sd):
    names = ["ddim", "euler", "dpm++2m_karras", "heun"]
    fig = plots.plot_noise_schedules(tiny_sd, names, steps=10)
    ax = fig.axes[0]
    assert len(ax.lines) == len(names)
    ac = tiny_sd.scheduler.alphas_cumprod.double().numpy()
    for line, name in zip(ax.lines, names, strict=True):
        s = plots.noise_schedule(name, tiny_sd, 10)
        np.testing.assert_allclose(line.get_ydata(), s["noise_level"])
        if name in ("ddim", "euler"):  # the same 10 timesteps: noise level = sqrt(1 - alpha_bar_t)
            np.testing.assert_allclose(s["noise_level"], np.sqrt(1 - ac[s["timesteps"].astype(int)]), atol=1e-5)
    assert len(plots.noise_schedule("heun", tiny_sd, 10)["timesteps"]) == 19  # two calls per step but the last
    assert ax.get_ylabel().startswith("noise level") and ax.get_xlabel().startswith("step")
    with pytest.raises(ValueError, match="scheduler"):
        plots.noise_schedule("nope", tiny_sd, 10)


def test_forward_process_dissolves_the_image(tiny_sd):
    """What the forward process must do, seen from the outside: at t = 0 the panel is the image, by t = 999 it has
    (almost) nothing of it left, in between it fades; the latent row has one decoded panel per timestep."""
    img = np.asarray(render(sample_scene(4, two_object_p=1.0), size=32))
    ts = [0, 500, 999]
    fig = plots.plot_forward_process(tiny_sd, image=img, timesteps=ts, seed=3)
    axes = fig.axes
    assert len(axes) == 2 * len(ts)  # pixel row and latent row
    panels = [np.asarray(ax.images[0].get_array(), dtype=np.float64) for ax in axes[:3]]
    corr = [np.corrcoef(p.ravel(), img.ravel().astype(np.float64))[0, 1] for p in panels]
    assert np.abs(panels[0] - img).mean() < 8  # t = 0: a trace of noise (sqrt(1 - abar_0) ~ 0.03 of the range)
    assert corr[0] > 0.99 > corr[1] > corr[2] and corr[2] < 0.2  # the image fades; at t = 999 it is all but gone
    assert all(ax.images[0].get_array().shape[:2] == (16, 16) for ax in axes[3:])  # decoded latents, 16 px tiny VAE
    again = plots.plot_forward_process(tiny_sd, image=img, timesteps=[500], seed=4)
    assert not np.array_equal(again.axes[0].images[0].get_array(), axes[1].images[0].get_array())  # seed = the noise
    assert "t = 999" in axes[2].get_title()


# --------------------------------------------------------------------------------------------- a trace
def test_filmstrip_shows_the_trace(tr):
    fig = plots.plot_filmstrip(tr, steps=[0, 2, 3])
    _assert_titled(fig, tr)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 9
    for c, i in enumerate([0, 2, 3]):
        np.testing.assert_array_equal(np.ma.filled(axes[c].images[0].get_array(), np.nan),
                                      plots.latent_mosaic(tr.steps[i].latents))
        np.testing.assert_array_equal(np.ma.filled(axes[3 + c].images[0].get_array(), np.nan),
                                      plots.latent_mosaic(tr.steps[i].noise_guided))
        np.testing.assert_array_equal(axes[6 + c].images[0].get_array(), np.asarray(tr.decode(i)))
        assert f"step {i + 1}/4" in axes[c].get_title()
    # the mosaic is the latent itself, channels as tiles
    m = plots.latent_mosaic(tr.steps[0].latents)
    np.testing.assert_array_equal(m[:8, :8], tr.steps[0].latents[0].numpy())
    np.testing.assert_array_equal(m[9:, 9:], tr.steps[0].latents[3].numpy())
    # each latent row names its channels on the first tiles, where the data of that channel starts
    first = {t.get_text(): t.get_position() for t in axes[0].texts}
    assert sorted(first) == ["ch 0", "ch 1", "ch 2", "ch 3"]
    assert first["ch 3"][0] > 8 > first["ch 0"][0] and first["ch 2"][1] > 8 > first["ch 1"][1]


def test_cfg_figures_equal_the_recorded_branches(tr, tr_neg):
    norms = np.array([torch.linalg.vector_norm(s.noise_cond - s.noise_uncond).item() for s in tr.steps])
    np.testing.assert_allclose(plots.cfg_delta_norms(tr), norms, rtol=1e-6)
    fig = plots.plot_cfg_delta_norm(tr)
    _assert_titled(fig, tr)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), norms, rtol=1e-6)
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), np.arange(1, 5))
    assert fig.axes[0].get_xlabel() == "step" and "norm" in fig.axes[0].get_ylabel()

    fig = plots.plot_cfg_delta_maps(tr, steps=[1, 3])
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(),
                               torch.linalg.vector_norm(tr.steps[1].cfg_delta, dim=0).numpy(), rtol=1e-6)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)

    fig = plots.plot_cfg_branches(tr_neg, step=1)
    _assert_titled(fig, tr_neg)
    st = tr_neg.steps[1]
    for ax, t in zip(fig.axes[:3], (st.noise_uncond, st.noise_cond, st.noise_guided), strict=True):
        np.testing.assert_array_equal(np.ma.filled(ax.images[0].get_array(), np.nan), plots.latent_mosaic(t))
    assert "negative \u201ca green star\u201d" in fig.axes[0].get_title()
    assert "negative \u201ca green star\u201d" in _title(fig)


def test_cfg_branches_decode_the_implied_x0(tr_neg, tiny_sd):
    fig = plots.plot_cfg_branches(tr_neg, step=2, pipe=tiny_sd)
    st = tr_neg.steps[2]
    # the guided branch's implied x0 is the trace's own x0
    torch.testing.assert_close(plots.implied_x0(tr_neg, 2, st.noise_guided), st.x0, rtol=1e-4, atol=1e-4)
    guided_ax = [ax for ax in fig.axes if ax.images][6]
    assert guided_ax.images[0].get_array().shape == (16, 16, 3)


def test_cfg_needs_an_unconditional_pass(tiny_sd):
    t1 = trace(tiny_sd, PROMPT, seed=0, steps=2, cfg=1.0, attention=False)
    with pytest.raises(ValueError, match="cfg <= 1"):
        plots.plot_cfg_delta_norm(t1)


def test_attention_maps_are_the_traced_maps(tr):
    fig = plots.plot_attention(tr, tokens=["circle", "square"])
    _assert_titled(fig, tr)
    axes = [ax for ax in fig.axes if ax.images]
    for ax, word in zip(axes, ["circle", "square"], strict=True):
        pos = [t.index for t in tr.tokens if str(t) == word][0]
        np.testing.assert_array_equal(ax.images[1].get_array(), tr.attention(pos).numpy())
        assert word in ax.get_title()
        assert ax.images[0].get_array().shape == (16, 16)  # the final image underneath, in grey
    fig = plots.plot_attention(tr, tokens=["circle"], step=2, level="8x8")
    np.testing.assert_array_equal(fig.axes[0].images[1].get_array(), tr.attention(3, step=2, level="8x8").numpy())

    fig = plots.plot_attention_levels(tr, "circle")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == len(tr.levels) + 1
    for ax, lv in zip(axes, tr.levels + [None], strict=True):
        np.testing.assert_array_equal(ax.images[1].get_array(), tr.attention(3, level=lv).numpy())

    fig = plots.plot_attention_grid(tr, tokens=["red", "blue"], steps=[0, 3])
    axes = [ax for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(axes[3].images[0].get_array(), tr.attention(7, step=3).numpy())
    assert "\u201cblue\u201d" in axes[2].get_ylabel()
    with pytest.raises(ValueError, match="not in the prompt"):
        plots.plot_attention(tr, tokens=["dog"])


def test_default_attention_tokens_are_the_words(tr):
    fig = plots.plot_attention(tr)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == len(PROMPT.split())


# --------------------------------------------------------------------------------------------- projections
def test_trajectories_plot_the_projected_latents(tiny_sd, tr):
    from explainer import projections

    t2 = trace(tiny_sd, PROMPT, seed=5, steps=4, cfg=7.5, attention=False)
    fig = plots.plot_trajectories([tr, t2])
    paths, _ = projections.trajectories([plots.trajectory(tr), plots.trajectory(t2)])
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_xydata(), paths[0])
    np.testing.assert_allclose(ax.lines[1].get_xydata(), paths[1])
    assert plots.trajectory(tr).shape == (5, 4, 8, 8)
    torch.testing.assert_close(torch.from_numpy(plots.trajectory(tr)[-1]), tr.steps[-1].latents_next)
    assert ax.get_xlabel().startswith("PC1") and "seed 5" in ax.get_legend().get_texts()[1].get_text()

    fig = plots.plot_latent_map([tr, t2], labels=["red", "blue"], attribute="colour")
    xy, _ = projections.project(plots.final_latents([tr, t2]))
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), xy)
    assert fig._suptitle.get_text().startswith("Final latents of 2 generations, coloured by colour")
    fig = plots.plot_latent_map(plots.final_latents([tr, t2]), attribute="colour", what="Latents of 2 encoded scenes")
    assert fig._suptitle.get_text().startswith("Latents of 2 encoded scenes, coloured by colour (PCA")


def test_prompt_map(tiny_sd):
    from explainer import projections

    prompts = ["a red circle", "a blue circle", "a red square", "a blue square", "a green star"]
    fig = plots.plot_prompt_map(tiny_sd, prompts, labels=["red", "blue", "red", "blue", "green"])
    xy, red = projections.project(plots.prompt_embeddings(tiny_sd, prompts)["pooled"])
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), xy)
    assert [t.get_text() for t in fig.axes[0].texts] == prompts
    assert red.method == "pca" and fig.axes[0].get_xlabel().startswith("PC1")


# --------------------------------------------------------------------------------------------- export
def test_png_at_slide_resolution(tmp_path, tr):
    fig = plots.plot_cfg_delta_norm(tr)
    p = export.save_png(fig, tmp_path / "slide.png")
    with Image.open(p) as im:
        assert im.width == export.SLIDE_WIDTH_PX
    p2 = export.save_png(fig, tmp_path / "small", width_px=800)
    assert p2.suffix == ".png" and Image.open(p2).width == 800
    with pytest.raises(ValueError, match="width_px"):
        export.save_png(fig, tmp_path / "x.png", width_px=5)


def test_gif_of_the_denoising(tmp_path, tr):
    frames = export.gif_frames(tr, "x0")
    assert len(frames) == len(tr.steps)
    np.testing.assert_array_equal(frames[1], np.asarray(tr.decode(1)))
    p = export.trace_to_gif(tr, tmp_path / "labelled.gif", size=64)
    with Image.open(p) as im:  # one frame per step + the final image (captions keep equal pictures apart)
        assert im.is_animated and im.n_frames == len(tr.steps) + 1
    p = export.trace_to_gif(tr, tmp_path / "d.gif", size=64, label=False)
    with Image.open(p) as im:
        assert im.is_animated and im.size == (64, 64)  # 16 px upscaled 4x with nearest
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"))[::4, ::4].astype(int)  # GIF: a 255-colour palette, so nearly equal
        assert np.abs(last - np.asarray(tr.image, dtype=int)).max() <= 12
    xt = export.gif_frames(tr, "xt")
    assert len(xt) == len(tr.steps) + 1
    lat = export.gif_frames(tr, "latents")
    assert lat[0].shape == (17, 17, 3)  # 2x2 tiles of 8x8 with a 1 px gap
    with pytest.raises(ValueError, match="frames"):
        export.gif_frames(tr, "nope")


def test_plot_images_lays_out_rows_with_labels():
    import numpy as np

    from explainer import plots

    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    grey = np.linspace(-1, 1, 64).reshape(8, 8)
    fig = plots.plot_images([[rgb, rgb, rgb], [grey, grey]], "two rows", row_labels=["a", "b"],
                            col_titles=["x", "y", "z"], col_labels=["1", "2", "3"], cmap="RdBu_r", vmin=-1, vmax=1)
    axes = np.array(fig.axes).reshape(2, 3)
    assert fig._suptitle.get_text() == "two rows"
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["a", "b"]
    assert [ax.get_title() for ax in axes[0]] == ["x", "y", "z"]
    assert [ax.get_xlabel() for ax in axes[1]] == ["1", "2", "3"]
    assert np.array_equal(axes[0, 0].images[0].get_array(), rgb)  # the data drawn is the data given
    assert np.allclose(axes[1, 1].images[0].get_array(), grey) and axes[1, 1].images[0].get_cmap().name == "RdBu_r"
    assert not axes[1, 2].axison and not axes[1, 2].images  # a short row leaves its last cell empty
    with pytest.raises(ValueError, match="rows"):
        plots.plot_images([], "nothing")


def test_wide_figures_fit_a_notebook_column(tmp_path, tiny_sd, tr):
    """A strip of 16 images, the pipeline boxes and a 9-step filmstrip, saved as the notebook draws them (100 dpi,
    tight box), are at most ~1,100 px wide; the images keep their square cells (the figure shrank, not the data)."""
    rgb = np.zeros((8, 8, 3), np.uint8)
    figs = {"strip": plots.plot_images([[rgb] * 16], "sixteen in a row", col_titles=[f"seed {i}" for i in range(16)]),
            "pipeline": plots.plot_pipeline(tiny_sd, PROMPT, steps=4),
            "tokens": plots.plot_tokens(tiny_sd, PROMPT)}
    for name, fig in figs.items():
        fig.savefig(tmp_path / f"{name}.png", dpi=100, bbox_inches="tight")
        assert Image.open(tmp_path / f"{name}.png").width <= 1150, name
    ax = figs["strip"].axes[0]
    figs["strip"].canvas.draw()
    box = ax.get_window_extent()
    assert box.width == pytest.approx(box.height, rel=0.02)


def test_sampler_examples_leave_no_panel_empty_and_name_the_run():
    import numpy as np

    from explainer import plots
    from explainer.experiments.samplers import Run, SamplerStudy

    im = lambda v: np.full((8, 8, 3), v, np.uint8)  # noqa: E731
    runs = [Run("dpm++2m", s, s, 0.0, 1.0, 0.1, [im(10 * s)]) for s in (5, 10)]
    study = SamplerStudy(["a fox"], [3], ("dpm++2m", 40), 1.0, runs, [im(200)], model="scenes-sd", cfg=5.0)
    detail = [np.full((8, 8), 0.05), np.zeros((8, 8))]
    fig = plots.plot_sampler_examples(study, detail=detail)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 6  # 2 step counts + the reference, and a detail map under each of the three
    assert np.allclose(shown[3].images[0].get_array(), 0.5)  # 0.05 of the 0.1 scale
    assert "CFG 5" in fig._suptitle.get_text() and "a fox" in fig._suptitle.get_text()
