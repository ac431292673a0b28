"""The scenes judge's training stage: rendered scenes, augmented, and VAE round trips (the pictures it must read are
generated ones), with what it reads right per question (`judge_accuracy`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..latents import to_uint8
from ..worlds.scenes import IMAGE_SIZE
from .common import Stage, to_pixels
from .scenes_data import ScenesData

SHIFT = 3  # px: the judge's training pictures are moved up to this far each way


class JudgeStage(Stage):
    """The scenes judge on rendered scenes, augmented (noise, blur, light, mirror, shift) and, with a VAE, on its round
    trips (the pictures the judge must read are generated ones)."""

    name = "judge"

    def __init__(self, data: ScenesData, val: ScenesData, batch: int = 64, round_trips: np.ndarray | None = None,
                 val_round_trips: np.ndarray | None = None):
        from ..worlds.scenes_judge import SceneJudgeNet, targets

        self.data, self.val, self.batch, self.round_trips = data, val, batch, round_trips
        self.val_round_trips = val_round_trips
        self.net = SceneJudgeNet()
        self.t = {k: np.stack([targets(s)[k] for s in data.scenes]) for k in targets(data.scenes[0])}

    def model(self):
        return self.net

    def batches(self, generator):
        s = SHIFT
        while True:
            idx = torch.randint(0, len(self.data), (self.batch,), generator=generator).numpy()
            use = np.zeros(self.batch, bool)
            if self.round_trips is not None:  # half the batch: VAE round trips of the scenes that have one
                use = (torch.rand(self.batch, generator=generator) < 0.5).numpy()
                idx[use] = torch.randint(0, len(self.round_trips), (int(use.sum()),), generator=generator).numpy()
            images = self.data.images[idx].copy()
            images[use] = self.round_trips[idx[use]] if use.any() else images[use]
            x = to_pixels(images)
            t = {k: torch.from_numpy(v[idx]) for k, v in self.t.items()}
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x[flip] = x[flip].flip(-1)
            t["xy"] = t["xy"].clone()
            t["xy"][flip, :, 0] = IMAGE_SIZE - t["xy"][flip, :, 0]
            # shifted by up to SHIFT px each way (edges replicated); the centres move with the picture
            shift = torch.randint(-s, s + 1, (len(idx), 2), generator=generator)
            padded = F.pad(x, (s, s, s, s), mode="replicate")
            x = torch.stack([padded[i, :, s - dy:s - dy + IMAGE_SIZE, s - dx:s - dx + IMAGE_SIZE]
                             for i, (dx, dy) in enumerate(shift.tolist())])
            t["xy"] += shift[:, None, :].to(t["xy"].dtype)
            x = x * (1 + 0.15 * (torch.rand(len(idx), 1, 1, 1, generator=generator) - 0.5))
            x = x + torch.randn(x.shape, generator=generator) * 0.06 * torch.rand(len(idx), 1, 1, 1,
                                                                                   generator=generator)
            blur = torch.rand(len(idx), generator=generator) < 0.3
            x[blur] = F.avg_pool2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            yield x.clamp(-1, 1), t

    def loss(self, batch):
        x, t = batch
        p = (self.prepared or self.net)(x)
        count = F.cross_entropy(p["count"].flatten(0, 1), t["count"].flatten())
        color = F.cross_entropy(p["color"].flatten(0, 1), t["color"].flatten(), ignore_index=-1)
        where = ((p["xy"] - t["xy"]).abs().sum(-1) * t["xy_mask"]).sum() / t["xy_mask"].sum().clamp(min=1) / 8
        loss = count + color + where + F.cross_entropy(p["ground"], t["ground"]) + F.cross_entropy(p["sky"], t["sky"])
        return loss, {"count": count, "color": color, "where_px": where * 8}

    def evaluate(self, net) -> dict[str, float]:
        """Per question on 1,000 unseen renders, and (`round_trip_*`) on their VAE round trips when there is a VAE."""
        out = judge_accuracy(net, self.val.images[:1000], self.val.scenes[:1000])
        if self.val_round_trips is not None:
            rt = judge_accuracy(net, self.val_round_trips[:1000], self.val.scenes[:1000])
            out |= {f"round_trip_{k}": v for k, v in rt.items() if k != "n"}
        return out

    def save(self, net, out: Path) -> None:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(out / "model.safetensors"))
        (out / "config.json").write_text(json.dumps({"width": 32}))


def judge_accuracy(net, images: np.ndarray, scenes) -> dict[str, float]:
    """Share of pictures the judge reads right, per question (only the questions each scene's caption asks)."""
    from ..worlds.scenes import held_out_things
    from ..worlds.scenes_judge import JUDGE_THINGS, check, read

    hits: dict[str, list[bool]] = {}
    for r, s in zip(read(images, net), scenes, strict=True):
        for k, v in check(r, s).items():
            hits.setdefault(k, []).append(v)
        drawn = {t.name for t in s.things}  # every thing read present or absent as drawn (false alarms count)
        hits.setdefault("presence_all_things", []).append(all(r.has(t) == (t in drawn) for t in JUDGE_THINGS))
        for t in held_out_things(s):  # in a combination the U-Net never trains on: is the thing found?
            hits.setdefault("held_out_things", []).append(r.has(t.name))
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())} | {"n": len(scenes)}


# --- running the stages -----------------------------------------------------------------------------------------


def round_trips(vae, images: np.ndarray, progress: bool = True) -> np.ndarray:
    """uint8 pictures through the VAE and back (posterior mean -> decoder)."""
    from tqdm.auto import tqdm

    device = next(vae.parameters()).device
    starts = tqdm(range(0, len(images), 128), desc="VAE round trips", disable=not progress or len(images) <= 1000)
    with torch.no_grad():
        return np.concatenate([to_uint8(vae.decode(vae.encode(to_pixels(images[i:i + 128]).to(device))
                                                   .latent_dist.mean).sample) for i in starts])
