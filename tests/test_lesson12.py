"""Lesson 12: the mechanics, by calling the experiment functions the lesson calls on short runs, and the claim's
verdicts from the numbers the lesson exported (docs/findings/12.json: its 16-prompt run is not repeated here)."""

from __future__ import annotations

import pytest
import torch

from explainer.experiments import families


@pytest.fixture(scope="module")
def pair():
    torch.set_num_threads(1)  # one core per test worker (conftest)
    return families.load_pair()


def test_same_prompt_runs_both_and_the_judge_reads_each(pair):
    sd, dit = pair
    sp = families.same_prompt(sd, dit, "a red star above a blue circle", seed=0, steps=20, cfg=5.0)
    assert set(sp.images) == {"U-Net (shapes-sd)", "DiT (shapes-dit)"}
    assert all(im.size == (32, 32) for im in sp.images.values())
    assert all(text.startswith(("a ", "nothing")) for text in sp.read_as.values())


def test_only_the_denoiser_differs(pair):
    sd, dit = pair
    c = families.param_comparison(sd, dit)
    assert c["shapes-sd"]["vae"] == c["shapes-dit"]["vae"]
    # the DiT's text_encoder_2 is the U-Net model's text encoder plus a 128x64 projection (no bias)
    assert c["shapes-dit"]["text_encoder_2"] == c["shapes-sd"]["text_encoder"] + 128 * 64
    assert c["shapes-dit"]["transformer"] < c["shapes-sd"]["unet"]  # "our DiT's is smaller"
    for m in c.values():
        denoiser = m.get("unet", m.get("transformer"))
        assert denoiser == max(m.values())  # "the denoiser is the biggest part of both"


def test_patches_are_tokens(pair):
    _, dit = pair
    tok = families.patch_tokens(dit)
    assert (tok.image_tokens, tok.values_per_token, tok.clip_tokens, tok.t5_zero_tokens) == (64, 4, 24, 256)
    assert tok.sequence == 344
    assert families.patch_tokens(dit, 2).image_tokens == 16


def test_down_up_path_and_skips_become_full_resolution_blocks(pair):
    sd, dit = pair
    path = families.resolution_path(sd, dit)
    unet = dict(path["U-Net"])
    assert "-> 128 x 2 x 2" in unet["middle"] and "8 x 8 ->" in unet["down 0"]
    assert sum("hands" in v for v in unet.values()) == 3 and sum("takes" in v for v in unet.values()) == 3
    dit_stages = path["DiT"]
    assert len(dit_stages) == len(dit.transformer.transformer_blocks)
    assert all(v.startswith("64 image tokens") for _, v in dit_stages)
    assert "text stream ends" in dit_stages[-1][1] and all("+ 280 text tokens" in v for _, v in dit_stages[:-1])


def test_attention_both_ways_changes_nothing_and_reads_per_block(pair):
    _, dit = pair
    bw = families.both_ways(dit, "a large red star on the left", seed=0, steps=10, cfg=5.0)
    assert bw.identical_to_plain  # the probe leaves the image bit-identical
    n = len(dit.transformer.transformer_blocks)
    assert bw.image_to_text.shape == (n, 64, 280) and bw.text_to_image.shape == (n, 280, 64)
    shares = bw.text_share()
    assert all(0.0 < s < 1.0 for s in shares)  # patches split attention between text and other patches
    # the 256 identical zero tokens take part in every softmax: a large share of the attention on text lands there
    assert all(p > 0.3 for p in bw.pad_share())
    # text -> image rows are real distributions over image patches plus text
    assert float(bw.text_to_image.sum(-1).max()) <= 1.0 + 1e-4
    cells = families.object_cells(bw.image)
    assert 0 < float(cells.sum()) < 64
    with pytest.raises(ValueError, match="word must be one of"):
        bw.word("banana")


def test_trace_of_the_dit_is_bit_identical_with_block_levels(pair):
    import numpy as np

    import explainer as ex

    _, dit = pair
    tr = ex.trace(dit, "a large red star on the left", seed=0, steps=10, cfg=5.0, scheduler=None)
    plain = dit("a large red star on the left", num_inference_steps=10, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(0)).images[0]
    assert np.array_equal(np.asarray(tr.image), np.asarray(plain))
    assert tr.levels == [f"block {i}" for i in range(len(dit.transformer.transformer_blocks))]


def test_the_claim_verdicts_are_computed_from_the_numbers():
    from types import SimpleNamespace

    from explainer import verdicts as vd
    from explainer.experiments import summaries

    f = summaries.load("12")
    rel = SimpleNamespace(hits=f["numbers"]["live_hits"], drawn=f["numbers"]["live_drawn"])
    table = families.benchmark_table()
    vs = families.claim_verdicts(rel, table)
    assert len(vs) == 9 and all(v.status in vd.STATUSES for v in vs)
    # the lesson's paired relation test: the verdict follows the interval of the measured difference
    iv = vd.bootstrap_difference(rel.hits["DiT"], rel.hits["U-Net"], paired=True)
    assert vs[0].status == vd.judge_interval(iv, 0.0, True)
    # every verdict's direction follows the table's numbers (DiT rate above / below the U-Net's)
    dit, unet = table["shapes-dit"]["main"], table["shapes-sd"]["main"]
    assert table["shapes-dit"]["n"] == table["shapes-sd"]["n"] == {"single": 200, "held_out": 100, "two": 200}
    for v, key in zip(vs[1:8], ("two_all", "two_objects", "held_out", "shape", "color", "position", "size"),
                      strict=True):
        assert families.COLUMNS[key] in v.claim
        if v.status == vd.AGREES:
            assert dit[key] > unet[key]
        if v.status == vd.DISAGREES:
            assert dit[key] <= unet[key]  # no value on the claimed side: equal rates do not agree either
    cond = dit["two_all"] / dit["two_objects"], unet["two_all"] / unet["two_objects"]
    assert "both objects are drawn" in vs[8].claim and (vs[8].status != vd.AGREES or cond[0] > cond[1])
    # the lesson's conclusion is written from these verdicts: each measured column named once, under its status
    text = families.answer(vs, table)
    for v in vs[1:]:
        label = v.claim.split("'")[1]
        assert text.count(label) == 1
        line = next(ln for ln in text.splitlines() if label in ln)
        col = {c: k for k, c in families.COLUMNS.items()}.get(label)
        tied = col is not None and dit[col] == unet[col]  # both rates equal: the claim of a gain does not agree
        assert line.startswith({vd.AGREES: "The DiT is better", vd.NOISE: "Within noise",
                                vd.DISAGREES: "Exactly equal" if tied else "The DiT is worse"}[v.status])
    assert f"{families.budgets()['shapes-dit']['updates']:,} updates" in text
    # what the lesson exported is what these numbers give
    assert [v.status for v in vs] == [v["status"] for v in f["verdicts"]] and f["headline"] == text
