"""Lesson 5: how the model learned. The objective, a tiny model trained live, data scale, and memorisation.

* `noising_example`: one training example as the U-Net sees it (x0 latent, noise, t, x_t) and the shipped U-Net's
  loss on it at several noise levels.
* `train_tiny`: a small `UNet2DConditionModel` trained from scratch for a fixed number of steps on the shipped VAE's
  latents of shapes-world scenes, with the shipped text encoder frozen; loss curve, held-out loss, snapshots.
* `sample`: images from a (tiny) U-Net, through the shipped VAE / text encoder.
* `nearest_training`: pixel-L2 nearest neighbours in a rendered training set (seeds 0..n-1, as training used).
* `held_out_combos`: colour x shape pairs that never appear in training, generated and judged.
"""

from __future__ import annotations

import copy
import functools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import judge as J
from .. import shapes
from ..generation import run_pipeline, seed_generator
from ..shapes import EVAL_SEED  # noqa: E402 (one definition, in the shapes world: never used in training)
from .latents import decode, encode


@functools.lru_cache(maxsize=2)
def training_images(n: int = 5000) -> tuple[np.ndarray, tuple[shapes.Scene, ...]]:
    """The first `n` training scenes (seeds 0..n-1, exactly as `python -m explainer.train` renders them)."""
    images, _, scenes = shapes.make_dataset(n, start_seed=0)
    images.setflags(write=False)
    return images, tuple(scenes)


def _noise_scheduler(pipe: Any):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipe.scheduler.config)


@torch.no_grad()
def _embed(pipe: Any, captions: list[str], batch: int = 512) -> torch.Tensor:
    tok, enc = pipe.tokenizer, pipe.text_encoder
    out = []
    for i in range(0, len(captions), batch):
        ids = tok(captions[i:i + batch], padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        out.append(enc(ids.to(enc.device))[0].float().cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------- objective
@dataclass
class NoisingExample:
    image: np.ndarray
    caption: str
    x0: torch.Tensor  # (4, 8, 8) scaled latent
    noise: torch.Tensor
    timesteps: list[int]
    noisy: list[torch.Tensor]  # x_t per timestep
    noisy_decoded: np.ndarray  # x_t per timestep, decoded by the VAE (what the noisy latent looks like)
    predicted: list[torch.Tensor]  # the shipped U-Net's noise prediction per timestep
    loss: list[float]  # mean squared error between predicted and true noise
    loss_if_guessing_zero: float  # the loss of predicting 0 (= mean of noise^2, about 1)
    seed: int = 3  # the training scene's seed, and the noise's


@torch.no_grad()
def noising_example(pipe: Any, seed: int = 3, timesteps: tuple[int, ...] = (50, 250, 500, 750, 950)) -> NoisingExample:
    scene = shapes.sample_scene(seed)
    img = np.asarray(shapes.render(scene))
    x0 = encode(pipe, [img])[0]
    noise = torch.randn(x0.shape, generator=seed_generator(seed))
    sched = _noise_scheduler(pipe)
    cond = _embed(pipe, [scene.caption])
    noisy, pred, loss = [], [], []
    for t in timesteps:
        tt = torch.tensor([t])
        xt = sched.add_noise(x0[None], noise[None], tt)
        p = pipe.unet(xt.to(pipe.device, pipe.unet.dtype), tt.to(pipe.device),
                      encoder_hidden_states=cond.to(pipe.device, pipe.unet.dtype)).sample[0].float().cpu()
        noisy.append(xt[0])
        pred.append(p)
        loss.append(float(F.mse_loss(p, noise)))
    return NoisingExample(img, scene.caption, x0, noise, list(timesteps), noisy, decode(pipe, torch.stack(noisy)),
                          pred, loss, float(noise.pow(2).mean()), seed)


# ---------------------------------------------------------------------------------------------------- tiny model
def build_tiny_unet(cross_attention_dim: int = 128, seed: int = 0):
    """A two-level U-Net on 8x8x4 latents (8x8 -> 4x4 -> back), cross-attention at both levels; about 1 M params."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=8)


@dataclass
class Dataset:
    latents: torch.Tensor  # (n, 4, 8, 8) scaled
    embeddings: torch.Tensor  # (n, T, D) caption embeddings (frozen text encoder)
    captions: list[str]
    images: np.ndarray


_DATASETS: dict[tuple[int, int, int], Dataset] = {}


def dataset(pipe: Any, n: int, start: int = 0) -> Dataset:
    """Latents and frozen caption embeddings of scenes start..start+n-1 (start=0: the training scenes). Cached."""
    key = (id(pipe), n, start)
    if key not in _DATASETS:
        if start == 0:
            images, scenes = training_images(max(n, 5000))
            images, scenes = images[:n], scenes[:n]
        else:
            images, _, scenes = shapes.make_dataset(n, start_seed=start)
        captions = [s.caption for s in scenes]
        _DATASETS[key] = Dataset(encode(pipe, images), _embed(pipe, captions), captions, images)
    return _DATASETS[key]


@dataclass
class TrainResult:
    n_images: int
    steps: int
    batch: int
    losses: list[float]  # training loss per step
    heldout: dict[int, float]  # step -> loss on held-out scenes (fixed noise and timesteps)
    train_eval: dict[int, float]  # step -> loss on (up to 256) training scenes, same fixed noise
    snapshots: dict[int, dict[str, torch.Tensor]] = field(repr=False, default_factory=dict)
    seconds: float = 0.0
    params: int = 0
    unet: Any = field(repr=False, default=None)

    def smoothed(self, window: int = 25) -> np.ndarray:
        x = np.asarray(self.losses)
        k = min(window, len(x))
        return np.convolve(x, np.ones(k) / k, mode="valid")


@torch.no_grad()
def _fixed_loss(unet: Any, sched: Any, data: Dataset, empty: torch.Tensor, seed: int = 123, n: int = 256) -> float:
    g = seed_generator(seed)
    z0 = data.latents[:n]
    noise = torch.randn(z0.shape, generator=g)
    t = torch.randint(0, sched.config.num_train_timesteps, (len(z0),), generator=g)
    pred = unet(sched.add_noise(z0, noise, t), t, encoder_hidden_states=data.embeddings[:n]).sample
    return float(F.mse_loss(pred, noise))


def train_tiny(pipe: Any, n_images: int = 4000, steps: int = 600, batch: int = 32, lr: float = 2e-3, seed: int = 0,
               checkpoints: tuple[int, ...] = (), eval_every: int = 100, n_heldout: int = 256,
               cond_dropout: float = 0.1) -> TrainResult:
    """Train a fresh tiny U-Net for `steps` steps on the first `n_images` training scenes. Deterministic (seeded).

    The objective: pick a scene, a timestep t and Gaussian noise; make x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise;
    ask the U-Net for the noise; loss = mean squared error. 10 % of captions are replaced by the empty prompt so the
    model also learns the unconditional prediction that classifier-free guidance needs.
    """
    train = dataset(pipe, n_images, 0)
    held = dataset(pipe, n_heldout, EVAL_SEED)
    sched = _noise_scheduler(pipe)
    empty = _embed(pipe, [""])[0]
    unet = build_tiny_unet(train.embeddings.shape[-1], seed)
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    g = seed_generator(seed)
    res = TrainResult(n_images, steps, batch, [], {}, {}, params=int(sum(p.numel() for p in unet.parameters())))
    want = set(checkpoints)
    t0 = time.perf_counter()

    def evaluate(step: int) -> None:
        unet.eval()
        res.heldout[step] = _fixed_loss(unet, sched, held, empty)
        res.train_eval[step] = _fixed_loss(unet, sched, train, empty)
        unet.train()

    if 0 in want:
        res.snapshots[0] = copy.deepcopy(unet.state_dict())
    evaluate(0)
    for step in range(1, steps + 1):
        for group in opt.param_groups:  # short warm-up, then constant
            group["lr"] = lr * min(1.0, step / 50)
        idx = torch.randint(0, n_images, (batch,), generator=g)
        z0 = train.latents[idx]
        cond = train.embeddings[idx].clone()
        drop = torch.rand(batch, generator=g) < cond_dropout
        cond[drop] = empty
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=g)
        pred = unet(sched.add_noise(z0, noise, t), t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        res.losses.append(loss.item())
        if step in want:
            res.snapshots[step] = copy.deepcopy(unet.state_dict())
        if step % eval_every == 0 or step == steps:
            evaluate(step)
    res.seconds = time.perf_counter() - t0
    unet.eval()
    res.unet = unet
    return res


def pipeline_with(pipe: Any, unet: Any):
    """A pipeline that shares the shipped tokenizer, text encoder, VAE and sampler, with another U-Net."""
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=unet,
                                scheduler=copy.deepcopy(pipe.scheduler), safety_checker=None, feature_extractor=None,
                                requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


@torch.no_grad()
def sample(pipe: Any, prompts: list[str], unet: Any = None, state: dict | None = None, seed: int = 0,
           steps: int = 20, cfg: float = 4.0) -> list[Any]:
    """Images for `prompts` (seeds seed, seed+1, ...) from `unet` (with weights `state`) or the shipped U-Net."""
    if unet is not None and state is not None:
        unet.load_state_dict(state)
    p = pipe if unet is None else pipeline_with(pipe, unet)
    return run_pipeline(p, prompts, [seed + i for i in range(len(prompts))], steps, cfg)


# ---------------------------------------------------------------------------------------------------- memorisation
@dataclass
class Nearest:
    generated: list[Any]
    prompts: list[str]
    nearest_index: list[int]  # index into the training set (= the scene's seed)
    nearest_images: np.ndarray
    gen_distance: list[float]  # pixel RMS distance (0..1 units) to the nearest training image
    real_distance: list[float]  # same for a fresh render of the scene the prompt came from (never trained on)
    nearest_captions: list[str]
    n_train: int
    seed: int = 0  # image k was generated from seed seed + k
    steps: int = 25
    cfg: float = 7.5


def _nearest(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = torch.from_numpy(queries.reshape(len(queries), -1).astype(np.float32) / 255.0)
    t = torch.from_numpy(train.reshape(len(train), -1).astype(np.float32) / 255.0)
    d2 = (q.pow(2).sum(1, keepdim=True) - 2 * q @ t.T + t.pow(2).sum(1)[None]).clamp(min=0)
    best = d2.min(dim=1)
    rms = (best.values / q.shape[1]).sqrt()
    return best.indices.numpy(), rms.numpy()


def nearest_training(pipe: Any, n: int = 8, n_train: int = 5000, seed: int = 0, steps: int = 25,
                     cfg: float = 7.5) -> Nearest:
    """Generate `n` images from captions of unseen scenes; find each one's nearest image among `n_train` training
    scenes; compare with how near a fresh render of the same unseen scene comes to the training set."""
    scenes = [shapes.sample_scene(EVAL_SEED + 5000 + i) for i in range(n)]
    prompts = [shapes.caption_for(s) for s in scenes]
    gen = sample(pipe, prompts, seed=seed, steps=steps, cfg=cfg)
    train, train_scenes = training_images(n_train)
    gi, gd = _nearest(np.stack([np.asarray(im.convert("RGB")) for im in gen]), train)
    real = np.stack([np.asarray(shapes.render(s)) for s in scenes])
    _, rd = _nearest(real, train)
    return Nearest(gen, prompts, gi.tolist(), train[gi], gd.tolist(), rd.tolist(),
                   [train_scenes[i].caption for i in gi], n_train, seed, steps, cfg)


@dataclass
class HeldOut:
    prompts: list[str]
    images: list[Any]
    colour: float  # share with the asked colour
    shape: float  # share with the asked shape
    both: float  # share with the asked colour on the asked shape (the combination)
    seen_prompts: list[str]
    seen_images: list[Any]
    seen_both: float  # the same measure for combinations the model did see
    in_training: int  # how many training scenes (of the first 5000) hold a held-out combination: 0
    right: list[bool] = field(default_factory=list)  # per held-out image: colour and shape both judged right
    seeds: list[int] = field(default_factory=list)  # per held-out image: its seed
    seen_right: list[bool] = field(default_factory=list)  # per seen-pair image: colour and shape both judged right
    steps: int = 25
    cfg: float = 7.5


def _combo_prompts(combos: list[tuple[str, str]], seeds_per: int, rng: random.Random) -> list[str]:
    out = []
    for c, s in combos:
        for _ in range(seeds_per):
            out.append(f"a large {c} {s} {shapes.POSITION_PHRASES[rng.choice(shapes.POSITIONS)][0]}")
    return out


def held_out_combos(pipe: Any, seeds_per: int = 3, seed: int = 0, steps: int = 25, cfg: float = 7.5) -> HeldOut:
    """Every HELD_OUT colour x shape pair, `seeds_per` times, and as many seen pairs (same colours, other shapes)."""
    rng = random.Random(seed)
    held = list(shapes.HELD_OUT)
    # the same colours on the next shape in SHAPES: red cross, blue circle, yellow square, green star, purple triangle
    seen = [(c, shapes.SHAPES[(shapes.SHAPES.index(s) + 1) % len(shapes.SHAPES)]) for c, s in held]
    assert not set(seen) & set(held)
    p_held = _combo_prompts(held, seeds_per, rng)
    p_seen = _combo_prompts(seen, seeds_per, rng)
    images = sample(pipe, p_held + p_seen, seed=seed, steps=steps, cfg=cfg)
    im_held, im_seen = images[:len(p_held)], images[len(p_held):]
    jh = [J.judge_against(im, p) for im, p in zip(im_held, p_held, strict=True)]
    js = [J.judge_against(im, p) for im, p in zip(im_seen, p_seen, strict=True)]
    right = lambda js_: [bool(j["color"]) and bool(j["shape"]) for j in js_]  # noqa: E731
    both = lambda js_: float(np.mean(right(js_)))  # noqa: E731
    _, scenes = training_images(5000)
    in_train = sum(any((o.color, o.shape) in shapes.HELD_OUT for o in s.objects) for s in scenes)
    return HeldOut(p_held, im_held, float(np.mean([bool(j["color"]) for j in jh])),
                   float(np.mean([bool(j["shape"]) for j in jh])), both(jh), p_seen, im_seen, both(js), in_train,
                   right(jh), [seed + k for k in range(len(p_held))], right(js), steps, cfg)
