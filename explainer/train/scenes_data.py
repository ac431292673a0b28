"""The scenes world rendered once into a training set on disk (safetensors + JSON, chunked, resumable).

`scenes_dataset(work, n)` renders seeds 0…n-1 in chunks of `CHUNK` (a chunk already on disk is read, not redrawn),
so a stopped run picks up where it was, and every stage of the scenes model reads the same pictures. `mix_weight`
weighs a scene under `--unet-mix` (some kinds, things, grounds or skies drawn more often while the U-Net trains).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..worlds.scenes import GROUNDS, KINDS, RELATIONS, SKIES, THINGS, Scene, scene_from_dict

CHUNK = 2_000


@dataclass
class ScenesData:
    images: np.ndarray  # uint8 (n, 64, 64, 3)
    things: np.ndarray  # uint8 (n, 64, 64): 1 where a thing is drawn (loss weighting), 0 on sky and ground
    scenes: list[Scene]

    def __len__(self) -> int:
        return len(self.scenes)


def _render_chunk(start: int, n: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    from ..worlds.scenes import sample_scene
    from ..worlds.scenes_render import render

    images = np.zeros((n, 64, 64, 3), np.uint8)
    things = np.zeros((n, 64, 64), np.uint8)
    scenes = []
    for i in range(n):
        scene = sample_scene(start + i)
        images[i], masks = render(scene)
        for m in masks:
            things[i] |= m.astype(np.uint8)
        scenes.append(scene.to_dict())
    return images, things, scenes


def _write_chunk(folder: Path, s: int, chunk: int) -> None:
    from safetensors.numpy import save_file

    path = folder / f"scenes_{s:08d}_{chunk}.safetensors"
    im, th, sc = _render_chunk(s, chunk)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"images": im, "things": th}, str(tmp))
    path.with_suffix(".json").write_text(json.dumps(sc))
    os.replace(tmp, path)  # the picture file last: a chunk counts as done only when both are there


def scenes_dataset(work: Path, n: int, start: int = 0, progress: bool = True, chunk: int = CHUNK,
                   workers: int = 1) -> ScenesData:
    """Scenes of seeds start … start+n-1 (n and start multiples of `chunk`), rendered into `work/data` once
    (`workers` processes render the missing chunks)."""
    from safetensors.numpy import load_file
    from tqdm.auto import tqdm

    if n < 1 or n % chunk or start % chunk:
        raise ValueError(f"n and start must be multiples of {chunk} (n >= {chunk}), got n={n}, start={start}")
    folder = Path(work) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    starts = range(start, start + n, chunk)
    missing = [s for s in starts if not (folder / f"scenes_{s:08d}_{chunk}.safetensors").exists()]
    if workers > 1 and len(missing) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(tqdm(pool.map(_write_chunk, [folder] * len(missing), missing, [chunk] * len(missing)),
                      total=len(missing), desc="render scenes", disable=not progress))
    else:
        for s in tqdm(missing, desc="render scenes", disable=not progress):
            _write_chunk(folder, s, chunk)
    images, things, scenes = [], [], []
    for s in starts:
        path = folder / f"scenes_{s:08d}_{chunk}.safetensors"
        meta = path.with_suffix(".json")
        arrays = load_file(str(path))
        images.append(arrays["images"])
        things.append(arrays["things"])
        scenes += [scene_from_dict(d) for d in json.loads(meta.read_text())]
    return ScenesData(np.concatenate(images), np.concatenate(things), scenes)


# --- drawing some scenes more often (--unet-mix) -------------------------------------------------------------
# what --unet-mix can weigh: a scene's kind, things, ground, sky and relation (written with _ for the space: left_of;
# a pair's relation, and `above` also for a count with another thing above its copies)
RELATION_KEYS = {r.replace(" ", "_"): r for r in RELATIONS}  # "left_of" -> "left of"
MIX_KEYS = KINDS + THINGS + GROUNDS + SKIES + tuple(RELATION_KEYS)


def mix_weight(scene: Scene, mix: dict[str, float]) -> float:
    """A scene's weight under `mix`: the product of the weights of its kind, ground, sky, relation and each thing
    it holds."""
    keys = {scene.kind, scene.ground, scene.sky, scene.relation, *(t.name for t in scene.things)}
    return float(np.prod([w for k, w in mix.items() if RELATION_KEYS.get(k, k) in keys]))


def parse_mix(text: str) -> dict[str, float]:
    """`pair=2,boat=3` -> {"pair": 2.0, "boat": 3.0}: known keys, weights > 0 (argparse names the flag)."""
    mix = {}
    for part in text.split(","):
        key, _, w = part.partition("=")
        try:
            weight = float(w)
        except ValueError:
            weight = float("nan")
        if key.strip() not in MIX_KEYS or not 0 < weight <= 100:
            raise argparse.ArgumentTypeError(
                f"expected KEY=W, KEY a kind of scene ({', '.join(KINDS)}), a thing, a ground ({', '.join(GROUNDS)}), "
                f"a sky ({', '.join(SKIES)}) or a relation ({', '.join(RELATION_KEYS)}), and "
                f"0 < W <= 100, got {part!r}")
        mix[key.strip()] = weight
    return mix
