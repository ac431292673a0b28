"""The shapes world: deterministic scenes, captions that say what is drawn, held-out combinations."""

import numpy as np
import pytest
import torch

from explainer import shapes
from explainer.train.components import MAX_TOKENS, build_tokenizer


def test_same_seed_same_scene_and_pixels():
    a, b = shapes.sample_scene(123), shapes.sample_scene(123)
    assert a == b and a.caption == b.caption
    assert np.array_equal(np.asarray(shapes.render(a)), np.asarray(shapes.render(b)))
    assert shapes.sample_scene(124) != a


def test_dataset_is_deterministic_and_uint8():
    im1, cap1, _ = shapes.make_dataset(20, start_seed=5)
    im2, cap2, _ = shapes.make_dataset(20, start_seed=5)
    assert im1.shape == (20, 32, 32, 3) and im1.dtype == np.uint8
    assert np.array_equal(im1, im2) and cap1 == cap2


def test_training_scenes_never_hold_held_out_combinations():
    for seed in range(3000):
        for obj in shapes.sample_scene(seed).objects:
            assert (obj.color, obj.shape) not in shapes.HELD_OUT
    assert len(shapes.HELD_OUT) >= 5
    held = shapes.sample_scene(7, held_out="only")
    assert all((o.color, o.shape) in shapes.HELD_OUT for o in held.objects)


def test_caption_names_what_is_drawn():
    for seed in range(200):
        scene = shapes.sample_scene(seed)
        cap = shapes.caption_for(scene)  # canonical caption
        for obj in scene.objects:
            assert obj.color in cap and obj.shape in cap
        if scene.relation:
            assert scene.relation in cap
        else:
            assert scene.objects[0].position in cap


def test_one_object_position_matches_pixels():
    scene = shapes.Scene((shapes.ShapeObject("red", "square", "large", *shapes.ANCHORS["left"]),), "black")
    img = np.asarray(shapes.render(scene)).astype(int)
    red = (img[..., 0] > 150) & (img[..., 1] < 100)
    ys, xs = np.nonzero(red)
    assert xs.mean() < 12 and abs(ys.mean() - 16) < 2


def test_two_object_relation_is_geometric():
    for seed in range(300):
        s = shapes.sample_scene(seed, two_object_p=1.0)
        a, b = s.objects
        expect = {"left of": a.x < b.x, "right of": a.x > b.x, "above": a.y < b.y, "below": a.y > b.y}
        assert expect[s.relation]
        assert a.color != b.color


def test_bad_held_out_argument():
    with pytest.raises(ValueError, match="held_out"):
        shapes.sample_scene(0, held_out="sometimes")


def test_tokenizer_round_trip_word_level():
    tok = build_tokenizer()
    for seed in range(100):
        cap = shapes.sample_scene(seed).caption
        ids = tok(cap).input_ids
        assert len(ids) <= MAX_TOKENS
        assert tok.convert_ids_to_tokens(ids)[0] == tok.bos_token and ids[-1] == tok.eos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == cap.lower()
        assert tok.unk_token_id not in ids  # every caption word is a whole token
    assert tok.convert_ids_to_tokens(tok("a purple dragon").input_ids)[1:-1] == ["a", "purple", "<unk>"]


@pytest.mark.parametrize("argv, message", [
    (["--two-object-p", "1.5"], "--two-object-p must be a finite number >= 0 and <= 1, got 1.5"),
    (["--data-seed", "9999999"], "--data-seed must be from 0 to 9,940,000"),
    (["--data-seed", "-1"], "--data-seed must be from 0 to 2**64-1, got -1"),
    (["--init-from", "/nonexistent"], "--init-from must be a pipeline folder"),
    (["--dec-object-weight", "0.5"], "--dec-object-weight must be >= 1"),
])
def test_training_command_rejects_bad_arguments_before_work(argv, message, capsys):
    from explainer.train.__main__ import main

    with pytest.raises(SystemExit) as err:
        main(["--stage", "unet", *argv])
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_decoder_loss_weighs_exactly_the_object_pixels():
    import numpy as np

    from explainer.train.common import to_pixels as _to_tensor
    from explainer.train.sd import _object_weight

    scene = shapes.sample_scene(3, two_object_p=0.0)
    img = np.asarray(shapes.render(scene))
    w = _object_weight(_to_tensor(img[None].copy()), 10.0)[0, 0].numpy()
    drawn = (np.abs(img.astype(int) - img[0, 0].astype(int)).max(-1) > 0.05 * 127.5)
    assert set(np.unique(w)) == {1.0, 10.0}
    assert np.array_equal(w == 10.0, drawn) and 10 < drawn.sum() < 0.3 * drawn.size
    # the weight reads the background off the top-left pixel: no object ever reaches it
    for seed in range(300):
        sc = shapes.sample_scene(seed, two_object_p=0.5)
        assert tuple(np.asarray(shapes.render(sc))[0, 0]) == shapes.BACKGROUNDS[sc.background]


def test_decoder_stage_changes_only_the_decoder(tmp_path):
    """`--stage vae-decoder` keeps the latent space: encoder, U-Net and text encoder come out bit-identical."""
    from safetensors.torch import load_file

    from explainer.models import SHIPPED_MODEL
    from explainer.train.__main__ import main

    out = tmp_path / "pipe"
    main(["--stage", "vae-decoder", "--init-from", str(SHIPPED_MODEL), "--out", str(out), "--work", str(tmp_path),
          "--vae-images", "32", "--dec-steps", "3", "--threads", "1"])
    for part in ("unet", "text_encoder"):
        old, new = (next((d / part).glob("*.safetensors")) for d in (SHIPPED_MODEL, out))
        assert old.read_bytes() == new.read_bytes()
    old = load_file(next((SHIPPED_MODEL / "vae").glob("*.safetensors")))
    new = load_file(next((out / "vae").glob("*.safetensors")))
    assert old.keys() == new.keys()
    enc = [k for k in old if k.startswith(("encoder.", "quant_conv."))]
    dec = [k for k in old if k.startswith(("decoder.", "post_quant_conv."))]
    assert enc and all(torch.equal(old[k], new[k]) for k in enc)
    assert any(not torch.equal(old[k], new[k]) for k in dec)
    assert "vae_decoder_finetune" in (out / "training.json").read_text()


def test_decoder_stage_inside_all_tunes_the_fresh_vae(tmp_path):
    """Within `--stage all` the decoder stage tunes the VAE just trained under --work, never --init-from's."""
    import argparse
    import shutil

    from explainer.models import SHIPPED_MODEL
    from explainer.train.common import FitConfig, fit
    from explainer.train.sd import VAEDecoderStage

    shutil.copytree(SHIPPED_MODEL / "vae", tmp_path / "vae")
    before = (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    args = argparse.Namespace(stage="all", init_from=tmp_path / "elsewhere", work=tmp_path, vae_images=32,
                              vae_batch=16, dec_steps=2, dec_lr=3e-4, dec_object_weight=10.0)
    # would fail to load from the missing init_from if it read it
    fit(VAEDecoderStage(args, tmp_path / "pipe"), FitConfig(steps=2, lr=3e-4, run_dir=tmp_path / "run",
                                                             out=tmp_path / "vae", device="cpu", progress=False))
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() != before
    assert not (tmp_path / "pipe").exists()  # no pipeline is written in the middle of --stage all
