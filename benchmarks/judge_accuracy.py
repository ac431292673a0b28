"""Accuracy of the judge (explainer.judge) on shapes-world scenes, clean and degraded, per attribute.

    python benchmarks/judge_accuracy.py [--n 2000] [--start-seed 10000000]

Each judged object is matched to the true object nearest to it; colour, shape and size are scored per object,
position on one-object scenes, relation on two-object scenes, count on all scenes.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from explainer import shapes
from explainer.judge import degrade, judge, judge_against, relation_between


def score(images: list, scenes: list[shapes.Scene]) -> dict[str, float]:
    """Per-attribute accuracy (fraction) of judge() against the true scenes."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for image, scene in zip(images, scenes, strict=True):
        j = judge(image)
        hits["count"].append(j.count == len(scene.objects))
        hits["judge_against all"].append(bool(judge_against(image, scene)["all"]))
        if j.count != len(scene.objects):  # a missed or extra object counts as wrong on every attribute
            for attr in ("color", "shape", "size"):
                hits[attr] += [False] * len(scene.objects)
            hits["position" if len(scene.objects) == 1 else "relation"].append(False)
            continue
        truth = list(scene.objects)
        if len(truth) == 2:  # pair judged and true objects by distance (two permutations)
            a, b = j.objects
            d = lambda o, t: (o.x - t.x) ** 2 + (o.y - t.y) ** 2  # noqa: E731
            if d(a, truth[0]) + d(b, truth[1]) > d(a, truth[1]) + d(b, truth[0]):
                truth = truth[::-1]
        for obj, true in zip(j.objects, truth, strict=True):
            for attr in ("color", "shape", "size"):
                hits[attr].append(getattr(obj, attr) == getattr(true, attr))
        if len(truth) == 1:
            hits["position"].append(j.objects[0].position == truth[0].position)
        else:
            first = j.objects[0] if truth[0] is scene.objects[0] else j.objects[1]
            second = j.objects[1] if first is j.objects[0] else j.objects[0]
            hits["relation"].append(relation_between(first, second) == scene.relation)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--start-seed", type=int, default=10_000_000)
    args = parser.parse_args()
    scenes = [shapes.sample_scene(args.start_seed + i, held_out="allow") for i in range(args.n)]
    clean = [shapes.render(s) for s in scenes]
    rng = np.random.default_rng(0)
    conditions = {
        "clean": clean,
        "blur 0.7": [degrade(im, 0.7, 0.0, rng) for im in clean],
        "blur 0.7 + noise 6": [degrade(im, 0.7, 6.0, rng) for im in clean],
        "blur 1.0 + noise 10": [degrade(im, 1.0, 10.0, rng) for im in clean],
        "64px bicubic upscale": [im.resize((64, 64), 3) for im in clean],
    }
    n1 = sum(len(s.objects) == 1 for s in scenes)
    print(f"{args.n} scenes from seed {args.start_seed} (held_out='allow'): {n1} one-object, {args.n - n1} two-object")
    attrs = ("color", "shape", "size", "position", "relation", "count", "judge_against all")
    print(f"{'condition':<22}" + "".join(f"{a:>19}" for a in attrs) + f"{'ms/image':>10}")
    for name, images in conditions.items():
        t0 = time.perf_counter()
        acc = score(images, scenes)
        ms = (time.perf_counter() - t0) / len(images) * 1000 / 2  # judge runs twice per image (judge_against)
        print(f"{name:<22}" + "".join(f"{acc[a] * 100:>18.2f}%" for a in attrs) + f"{ms:>10.1f}")


if __name__ == "__main__":
    main()
