"""The judge reads shapes-world images correctly and scores prompts sensibly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from explainer import shapes
from explainer.judge import (
    WEIGHTS_PATH,
    Judgement,
    ObjectSpec,
    degrade,
    judge,
    judge_against,
    parse_prompt,
    relation_between,
)
from explainer.shapes import Scene, ShapeObject


def _accuracy(images: list, scenes: list[Scene]) -> dict[str, float]:
    hits: dict[str, list[bool]] = {k: [] for k in ("count", "color", "shape", "size", "position", "relation")}
    for image, scene in zip(images, scenes, strict=True):
        j = judge(image)
        hits["count"].append(j.count == len(scene.objects))
        for obj in scene.objects:  # the judged object nearest to each true one
            seen = min(j.objects, key=lambda o: (o.x - obj.x) ** 2 + (o.y - obj.y) ** 2) if j.objects else None
            for attr in ("color", "shape", "size"):
                hits[attr].append(seen is not None and getattr(seen, attr) == getattr(obj, attr))
        if len(scene.objects) == 1:
            hits["position"].append(j.count == 1 and j.objects[0].position == scene.objects[0].position)
        else:
            a, b = (j.find(color=o.color) for o in scene.objects)
            hits["relation"].append(a is not None and b is not None and relation_between(a, b) == scene.relation)
    return {k: float(np.mean(v)) for k, v in hits.items()}


@pytest.fixture(scope="module")
def clean_set() -> tuple[list[Image.Image], list[Scene]]:
    scenes = [shapes.sample_scene(10_000_000 + i, held_out="allow") for i in range(500)]
    return [shapes.render(s) for s in scenes], scenes


def test_accuracy_on_clean_scenes(clean_set):
    acc = _accuracy(*clean_set)
    assert all(v >= 0.98 for v in acc.values()), acc


def test_accuracy_on_blurred_noisy_scenes(clean_set):
    images, scenes = clean_set
    rng = np.random.default_rng(0)
    degraded = [degrade(im, 0.7, 6.0, rng) for im in images[:200]]
    acc = _accuracy(degraded, scenes[:200])
    assert all(v >= 0.95 for v in acc.values()), acc


def test_judgement_fields_and_order():
    scene = Scene(
        (ShapeObject("red", "star", "small", 8.5, 16.0), ShapeObject("blue", "square", "large", 23.5, 16.0)),
        "gray",
        "left of",
    )
    j = judge(shapes.render(scene))
    assert isinstance(j, Judgement) and j.background == "gray" and j.count == 2
    assert [o.color for o in j.objects] == ["blue", "red"]  # largest first
    assert j.relation == "right of"  # objects[0] (the blue square) is right of objects[1]
    blue = j.objects[0]
    assert (blue.shape, blue.size) == ("square", "large") and abs(blue.x - 23.5) < 0.5 and abs(blue.y - 16) < 0.5
    assert "a large blue square right of a small red star" in j.describe()


def test_input_types_and_sizes():
    scene = Scene((ShapeObject("green", "cross", "large", 16.0, 8.5),), "brown")
    img = shapes.render(scene)
    expected = ("green", "cross", "large", "top")
    for variant in (img, np.asarray(img), np.asarray(img) / 255.0, shapes.render(scene, size=64), img.resize((96, 96))):
        o = judge(variant).objects[0]
        assert (o.color, o.shape, o.size, o.position) == expected
    with pytest.raises(ValueError):
        judge(np.zeros((32, 32)))


def test_empty_image_has_no_objects():
    j = judge(Image.new("RGB", (32, 32), shapes.BACKGROUNDS["black"]))
    assert j.objects == [] and j.background == "black" and j.relation is None
    assert judge_against(Image.new("RGB", (32, 32)), "a red circle") == {
        "color": False,
        "shape": False,
        "size": None,
        "position": None,
        "count": False,
        "all": False,
    }


@pytest.mark.parametrize(
    "prompt, objects, relation, background",
    [
        (
            "a photo of a big red circle over a tiny blue star on a gray background",
            [("red", "circle", "large", None), ("blue", "star", "small", None)],
            "above",
            "gray",
        ),
        (
            "a little green square to the left of a large white cross",
            [("green", "square", "small", None), ("white", "cross", "large", None)],
            "left of",
            None,
        ),
        ("An image of a purple triangle in the middle.", [("purple", "triangle", None, "center")], None, None),
        (
            "an orange star beneath a yellow cross on a brown background",
            [("orange", "star", None, None), ("yellow", "cross", None, None)],
            "below",
            "brown",
        ),
        ("a picture of a tiny white cross at the top", [("white", "cross", "small", "top")], None, None),
        (
            "a large blue square to the right of a red circle",
            [("blue", "square", "large", None), ("red", "circle", None, None)],
            "right of",
            None,
        ),
        (
            "a small yellow star under a green circle",
            [("yellow", "star", "small", None), ("green", "circle", None, None)],
            "below",
            None,
        ),
        ("a big red cross on the left on a black background", [("red", "cross", "large", "left")], None, "black"),
    ],
)
def test_parse_prompt_synonyms(prompt, objects, relation, background):
    spec = parse_prompt(prompt)
    assert spec.objects == tuple(ObjectSpec(*o) for o in objects)
    assert spec.relation == relation and spec.background == background


def test_parse_prompt_reads_every_caption_form():
    for seed in range(400):
        scene = shapes.sample_scene(seed, two_object_p=0.5, held_out="allow")
        spec = parse_prompt(scene.caption)
        assert len(spec.objects) == len(scene.objects), scene.caption
        assert spec.relation == scene.relation, scene.caption
        for want, true in zip(spec.objects, scene.objects, strict=True):
            assert (want.color, want.shape) == (true.color, true.shape), scene.caption
            assert want.size in (None, true.size), scene.caption
            assert want.position in (None, true.position if len(scene.objects) == 1 else None), scene.caption
        assert spec.background in (None, scene.background), scene.caption


def test_judge_against_one_object():
    img = shapes.render(Scene((ShapeObject("red", "circle", "large", 8.5, 16.0),), "black"))
    assert judge_against(img, "a big red circle on the left")["all"] is True
    assert judge_against(img, "a photo of a red circle") == {
        "color": True,
        "shape": True,
        "size": None,
        "position": None,
        "count": True,
        "all": True,
    }
    r = judge_against(img, "a blue circle")
    assert r["color"] is False and r["shape"] is True and r["all"] is False
    assert judge_against(img, "a red square")["shape"] is False
    assert judge_against(img, "a tiny red circle")["size"] is False
    assert judge_against(img, "a red circle on the right")["position"] is False
    assert judge_against(img, "a red circle on a gray background")["background"] is False
    r = judge_against(img, "a red circle left of a blue star")
    assert r["count"] is False and r["objects"] is False and r["all"] is False


def test_judge_against_two_objects():
    scene = Scene(
        (ShapeObject("yellow", "star", "large", 16.0, 8.5), ShapeObject("white", "cross", "small", 16.0, 23.5)),
        "brown",
        "above",
    )
    img = shapes.render(scene)
    assert judge_against(img, scene)["all"] is True
    assert judge_against(img, "a big yellow star over a little white cross")["all"] is True
    assert judge_against(img, "a white cross beneath a yellow star")["all"] is True
    r = judge_against(img, "a yellow star below a white cross")
    assert r["objects"] is True and r["relation"] is False and r["all"] is False
    r = judge_against(img, "a yellow star above a red cross")
    assert r["objects"] is False and r["color"] is False and r["shape"] is True
    assert judge_against(img, "a yellow circle above a white cross")["shape"] is False
    assert judge_against(img, "a yellow star on the top")["count"] is False


def test_matching_renders_agree_with_their_captions():
    for seed in range(100):
        scene = shapes.sample_scene(20_000_000 + seed, held_out="allow")
        assert judge_against(shapes.render(scene), scene.caption)["all"] is True, scene.caption


def test_weights_are_small_safetensors():
    from safetensors import safe_open

    assert WEIGHTS_PATH.stat().st_size < 200_000
    with safe_open(str(WEIGHTS_PATH), "np") as f:
        assert set(f.keys()) == {"w1", "b1", "w2", "b2", "w3", "b3"}


def test_training_runs(tmp_path):
    """`python -m explainer.train --stage judge` trains the shape classifier through the one loop, into --out."""
    from explainer.train.__main__ import main

    out = tmp_path / "judge-model"
    main(["--stage", "judge", "--work", str(tmp_path / "work"), "--out", str(out), "--judge-n", "400",
          "--judge-steps", "40"])
    from safetensors import safe_open

    with safe_open(str(out / WEIGHTS_PATH.name), "np") as f:
        acc = float(f.metadata()["val_accuracy"])
    assert acc > 0.25  # learns: above the 20 % of guessing among 5 shapes
