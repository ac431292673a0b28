"""A small text-conditional GAN of the shapes world, driven by the same text encoder as the diffusion model.

Recipe (standard practice, BigGAN / SNGAN lineage, chosen so the GAN is a fair opponent and not a straw man):

- Conditioning: the shipped pipeline's frozen ``CLIPTextModel`` (``shapes-sd/text_encoder``); a prompt becomes the
  concatenation of its pooled (end-of-text) state and the mean of its token states (256 numbers). The same prompts drive
  both models.
- Generator: a linear map of [z, text] to a 4x4 grid, three residual up-sampling blocks (4 -> 8 -> 16 -> 32) whose
  batch norms take their gain and bias from [z, text] (conditional batch norm, as BigGAN), then BN-ReLU-conv-tanh.
  Sampling uses the exponential moving average of the generator's weights (EMA, as BigGAN/StyleGAN) with "standing"
  batch-norm statistics re-estimated for the EMA weights.
- Discriminator: residual down-sampling blocks with spectral normalisation on every layer (Miyato et al. 2018), global
  sum pooling and a projection head (Miyato & Koyama 2018): D(x, t) = psi(h) + <W t, h>.
- Loss: hinge; the discriminator also sees real images with another scene's caption as negatives (GAN-INT-CLS,
  Reed et al. 2016), which pushes the generator to follow the prompt and costs nothing with a projection head.
- Optimiser: Adam with betas (0, 0.9) and a discriminator learning rate 4x the generator's (TTUR, Heusel et al. 2017).

`load_gan()` reads the shipped folder (config.json + safetensors; no pickle); `generate()` samples from prompts;
the diversity measures (`attribute_distribution`, `coverage_entropy`, `prdc_scores`) compare generated and real images.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from . import validation as V
from .generation import seed_generator
from .latents import to_pixels, to_uint8

DEFAULT_GAN = Path(__file__).parent / "assets" / "shapes-gan"
DEFAULT_TEXT = Path(__file__).parent / "assets" / "shapes-sd"
TEXT_FEATURES = 256  # pooled state (128) + mean of token states (128)
TEXT_PARTS = ("tokenizer", "text_encoder", "vae")  # what a `text_encoder` pipeline folder must hold
MAX_FRAMES = 256  # interpolate_latents: the most frames one call draws


# ---------------------------------------------------------------------------------------------------- text
class TextConditioner:
    """Prompts -> (n, 256) features from the frozen shipped text encoder (pooled state ++ mean of token states)."""

    def __init__(self, pipeline_dir: str | os.PathLike = DEFAULT_TEXT, device: str = "cpu") -> None:
        from transformers import CLIPTextModel, PreTrainedTokenizerFast

        from .models import quiet_libraries

        folder = V.check_folder(pipeline_dir, "pipeline_dir", TEXT_PARTS[:2])
        device = V.check_device(device)
        quiet_libraries()
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer", local_files_only=True)
        self.encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32,
                                                     local_files_only=True)
        self.encoder.to(device).eval().requires_grad_(False)
        self.device = device
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        prompts = V.check_prompts(prompts, "prompts", allow_empty=True)
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            tok = self.tokenizer(list(missing), padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt")
            ids, mask = tok.input_ids.to(self.device), tok.attention_mask.to(self.device)
            out = self.encoder(input_ids=ids, attention_mask=mask)
            m = mask.unsqueeze(-1).float()
            mean = (out.last_hidden_state * m).sum(1) / m.sum(1)
            feats = torch.cat([out.pooler_output, mean], dim=1).cpu()
            if len(self._cache) > 200_000:
                self._cache.clear()
            for p, f in zip(missing, feats, strict=True):
                self._cache[p] = f
        return torch.stack([self._cache[p] for p in prompts]).to(self.device)


# ---------------------------------------------------------------------------------------------------- generator
class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine part; gain (1 + .) and bias come from the conditioning vector."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.gain.bias)
        nn.init.zeros_(self.bias.weight)
        nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        g = 1 + self.gain(cond)[:, :, None, None]
        b = self.bias(cond)[:, :, None, None]
        return self.bn(x) * g + b


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, up: bool = True) -> None:
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(cin, cond_dim), ConditionalBatchNorm(cout, cond_dim)
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or up) else None
        self.up = up

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.up else x

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self._up(F.relu(self.bn1(x, cond)))
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        s = self._up(x)
        return h + (self.skip(s) if self.skip is not None else s)


class Generator(nn.Module):
    """G(z, text features) -> (n, out_channels, 4 * 2**ups, same): the VAE's scaled latents (8x8x4) by default.

    channels[0] is the 4x4 grid's width; each later entry is one residual block, up-sampling x2 where `ups` says.
    """

    def __init__(self, z_dim: int = 64, text_dim: int = TEXT_FEATURES, embed_dim: int = 128,
                 channels: Sequence[int] = (256, 128, 128), ups: Sequence[bool] = (True, False),
                 out_channels: int = 4) -> None:
        super().__init__()
        if len(ups) != len(channels) - 1:
            raise ValueError(f"ups must hold one flag per block ({len(channels) - 1}), got {len(ups)}")
        self.config = {"z_dim": z_dim, "text_dim": text_dim, "embed_dim": embed_dim, "channels": list(channels),
                       "ups": list(ups), "out_channels": out_channels}
        self.z_dim = z_dim
        self.embed = nn.Sequential(nn.Linear(text_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
        cond = z_dim + embed_dim
        self.c0 = channels[0]
        self.fc = nn.Linear(cond, 4 * 4 * channels[0])
        self.blocks = nn.ModuleList(GBlock(a, b, cond, up) for a, b, up in zip(channels[:-1], channels[1:], ups,
                                                                               strict=True))
        self.bn_out = nn.BatchNorm2d(channels[-1])
        self.out = nn.Conv2d(channels[-1], out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([z, self.embed(text)], dim=1)
        h = self.fc(cond).view(len(z), self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(F.relu(self.bn_out(h)))


# ---------------------------------------------------------------------------------------------------- discriminator
def _sn(module: nn.Module) -> nn.Module:
    return nn.utils.spectral_norm(module)


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool = True, first: bool = False) -> None:
        super().__init__()
        self.conv1, self.conv2 = _sn(nn.Conv2d(cin, cout, 3, padding=1)), _sn(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = _sn(nn.Conv2d(cin, cout, 1)) if (cin != cout or down) else None
        self.down, self.first = down, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.skip is not None:
            s = self.skip(s)
            if self.down:
                s = F.avg_pool2d(s, 2)
        return h + s


class Discriminator(nn.Module):
    """D(x, text features) -> one score per image (projection discriminator, spectral norm everywhere)."""

    def __init__(self, text_dim: int = TEXT_FEATURES, channels: Sequence[int] = (128, 256, 256),
                 downs: Sequence[bool] = (True, False, False), in_channels: int = 4) -> None:
        super().__init__()
        self.config = {"text_dim": text_dim, "channels": list(channels), "downs": list(downs),
                       "in_channels": in_channels}
        ins = [in_channels, *channels[:-1]]
        self.blocks = nn.ModuleList(
            DBlock(a, b, down=d, first=i == 0) for i, (a, b, d) in enumerate(zip(ins, channels, downs, strict=True)))
        self.psi = _sn(nn.Linear(channels[-1], 1))
        self.proj = _sn(nn.Linear(text_dim, channels[-1]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.blocks:
            h = block(h)
        return F.relu(h).sum(dim=(2, 3))

    def score(self, h: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.psi(h).squeeze(1) + (self.proj(text) * h).sum(1)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), text)


# ---------------------------------------------------------------------------------------------------- loading
@dataclass
class ShapesGAN:
    """The shipped generator (EMA weights) with the text encoder that conditions it and the VAE that draws its
    latents: one generator call and one VAE decode per image (the diffusion model: 25 steps x 2 U-Net calls)."""

    generator: Generator
    text: TextConditioner
    vae: nn.Module
    config: dict
    path: Path

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    def latents(self, seeds: Sequence[int] | int) -> torch.Tensor:
        """One z per seed (a standard normal vector drawn from torch.Generator(seed)), shape (n, z_dim)."""
        seeds = V.check_seeds(seeds)
        return torch.stack([torch.randn(self.z_dim, generator=seed_generator(s)) for s in seeds])

    @torch.no_grad()
    def images_from_latents(self, z: torch.Tensor, prompts: Sequence[str], batch: int = 256) -> np.ndarray:
        """uint8 (n, 32, 32, 3) for latents z (n, z_dim), all finite, and one prompt per latent."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be a tensor of shape (n, {self.z_dim}), got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        V.check_finite(z, "z")  # NaN latents would decode to a black image, not an error
        prompts = V.check_prompts(prompts, "prompts", single=False, allow_empty=True)
        batch = V.check_positive_int(batch, "batch", 65_536)
        if len(prompts) != len(z):
            raise ValueError(f"prompts must hold one prompt per latent ({len(z)}), got {len(prompts)}")
        out = []
        for i in range(0, len(z), batch):
            t = self.text(list(prompts[i:i + batch]))
            lat = self.generator(z[i:i + batch].to(t.device).float(), t)
            x = self.vae.decode(lat / self.scaling_factor).sample
            out.append(to_uint8(x))
        return np.concatenate(out) if out else np.zeros((0, 32, 32, 3), np.uint8)


def load_gan(path: str | os.PathLike | None = None, text_encoder: str | os.PathLike | None = None,
             device: str = "cpu") -> ShapesGAN:
    """Load the shipped GAN folder (config.json + generator.safetensors) and the text encoder and VAE it was trained
    with (`text_encoder`: a pipeline folder; default the shipped shapes-sd)."""
    from safetensors.torch import load_file

    from .models import quiet_libraries

    folder = DEFAULT_GAN if path is None else V.check_folder(path, "path")
    if not (folder / "config.json").is_file() or not (folder / "generator.safetensors").is_file():
        raise FileNotFoundError(f"path must be a GAN folder with config.json and generator.safetensors, got {folder}")
    text_dir = DEFAULT_TEXT if text_encoder is None else V.check_folder(text_encoder, "text_encoder", TEXT_PARTS)
    device = V.check_device(device)
    quiet_libraries()
    config = _read_config(folder)
    gen = Generator(**config["generator"])
    state = {k: v.float() for k, v in load_file(folder / "generator.safetensors").items()}
    gen.load_state_dict(state)
    gen.to(device).eval().requires_grad_(False)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(text_dir / "vae", torch_dtype=torch.float32, local_files_only=True)
    vae = vae.to(device).eval()
    return ShapesGAN(gen, TextConditioner(text_dir, device=device), vae.requires_grad_(False), config, folder)


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
        Generator(**config["generator"])  # the shapes it names build a generator
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"path {str(folder)!r}: config.json is not a GAN config ({type(err).__name__}: {err})"
                         ) from None
    return config


def to_images(array: np.ndarray) -> list[Image.Image]:
    """uint8 (n, h, w, 3) -> n PIL images."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"array must be a uint8 array of shape (n, h, w, 3), got "
                         f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}")
    return [Image.fromarray(a) for a in array]


def check_gan(gan: object, name: str = "gan") -> ShapesGAN:
    if not isinstance(gan, ShapesGAN):
        raise ValueError(f"{name} must be the GAN explainer.gan.load_gan() returns, got {type(gan).__name__}")
    return gan


def generate(gan: ShapesGAN, prompts: str | Sequence[str], seeds: Sequence[int] | int = 0) -> list[Image.Image]:
    """Images for prompts x seeds (every prompt with every seed, prompt-major), one generator call per batch.

    Same shape of call as the diffusion generation helpers: a prompt (one string is one prompt) or a list of them,
    and a seed or a list of seeds (integers from 0 to 2**64-1; a string is refused).
    """
    check_gan(gan)
    prompts = V.check_prompts(prompts, "prompts", allow_empty=True)
    seeds = V.check_seeds(seeds, "seeds")
    z = gan.latents(seeds)
    zs = z.repeat(len(prompts), 1)
    ps = [p for p in prompts for _ in seeds]
    return to_images(gan.images_from_latents(zs, ps))


def slerp_path(za: torch.Tensor, zb: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` points from za to zb along the great circle (norms interpolated linearly); where the two directions
    (nearly) coincide, the straight line, so seed_a == seed_b gives a constant path, not 0 / sin 0."""
    if torch.equal(za, zb):
        return za.expand(steps, *za.shape).clone()
    a, b = za.double(), zb.double()
    cos = (a / a.norm() * b / b.norm()).sum().clamp(-1, 1)
    omega = torch.arccos(cos)
    ts = torch.linspace(0, 1, steps, dtype=torch.float64)
    if float(torch.sin(omega).abs()) < 1e-6:
        return torch.stack([(1 - t) * a + t * b for t in ts]).to(za.dtype)
    return torch.stack([(torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
                        for t in ts]).to(za.dtype)


def interpolate_latents(gan: ShapesGAN, prompt: str, seed_a: int, seed_b: int, steps: int = 8) -> list[Image.Image]:
    """Spherical interpolation between the latents of two seeds, same prompt: how smooth is the GAN's latent space?
    steps: frames, 2 to 256, both ends included. seed_a == seed_b gives `steps` copies of that seed's image."""
    check_gan(gan)
    prompt = V.check_prompt(prompt)
    seed_a, seed_b = V.check_seed(seed_a, "seed_a"), V.check_seed(seed_b, "seed_b")
    steps = V.check_int(steps, "steps", 2, MAX_FRAMES)
    za, zb = gan.latents([seed_a, seed_b])
    return to_images(gan.images_from_latents(slerp_path(za, zb, steps), [prompt] * steps))


def seconds_per_image(fn, n: int) -> float:
    """Wall-clock seconds per image of `fn()` that makes n images (n >= 1)."""
    if not callable(fn):
        raise ValueError(f"fn must be a callable that makes n images, got {type(fn).__name__}")
    n = V.check_positive_int(n, "n")
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n


# ---------------------------------------------------------------------------------------------------- diversity
FREE_KEYS = ("position", "size", "background")


def check_images(images: object, name: str = "images") -> list:
    """A non-empty list of images (PIL images or (h, w, 3) uint8 arrays), e.g. what `generate` returns."""
    if isinstance(images, (Image.Image, np.ndarray)) and not (isinstance(images, np.ndarray) and images.ndim == 4):
        raise ValueError(f"{name} must be a list of images, got one {type(images).__name__} (write [image])")
    if isinstance(images, (str, bytes, dict)) or not hasattr(images, "__len__"):
        raise ValueError(f"{name} must be a list of images (PIL or (h, w, 3) uint8 arrays), got "
                         f"{type(images).__name__}")
    out = list(images)
    if not out:
        raise ValueError(f"{name} must hold at least one image, got none")
    for i, im in enumerate(out):
        if not isinstance(im, (Image.Image, np.ndarray)):
            raise ValueError(f"{name}[{i}] must be a PIL image or an (h, w, 3) uint8 array, got {type(im).__name__}")
    return out


def check_embeddings(real: object, fake: object, k: object) -> tuple[np.ndarray, np.ndarray, int]:
    """real (n, d) and fake (m, d) finite embeddings, each with more than k rows (prdc's k-NN balls); k >= 1."""
    k = V.check_positive_int(k, "k", 1000)
    out = []
    for name, x in (("real", real), ("fake", fake)):
        a = np.zeros(0) if isinstance(x, (str, bytes)) else np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or len(a) <= k:
            raise ValueError(f"{name} must be an (n, d) array of embeddings with n > k={k}, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite (no NaN or infinity)")
        out.append(a)
    if out[0].shape[1] != out[1].shape[1]:
        raise ValueError(f"real and fake must have the same embedding size, got {out[0].shape[1]} and "
                         f"{out[1].shape[1]}")
    return out[0], out[1], k


def attribute_combo(image: Image.Image | np.ndarray, color: str | None = None, shape: str | None = None
                    ) -> tuple[str, str, str] | None:
    """(position, size, background) of the object the judge finds (matching colour/shape when given), else None."""
    from .judge import judge
    from .shapes import COLORS, SHAPES

    if color is not None:
        V.check_choice(color, list(COLORS), "color")
    if shape is not None:
        V.check_choice(shape, list(SHAPES), "shape")
    j = judge(image)
    obj = j.find(color=color, shape=shape)
    if obj is None:
        return None
    return (obj.position, obj.size, j.background)


def all_combos() -> list[tuple[str, str, str]]:
    """Every (position, size, background) the world can draw for one object: 5 x 2 x 3 = 30."""
    from .shapes import BACKGROUNDS, POSITIONS, SIZES

    return [(p, s, b) for p in POSITIONS for s in SIZES for b in BACKGROUNDS]


def attribute_distribution(images: Sequence, color: str | None = None, shape: str | None = None) -> Counter:
    """Counts of judged (position, size, background) combos; None counts images where the object was not found."""
    return Counter(attribute_combo(im, color, shape) for im in check_images(images))


def coverage_entropy(counts: Counter, reference: Sequence[tuple[str, str, str]] | None = None) -> dict[str, float]:
    """Coverage (share of the world's combos seen at least once), entropy in bits of the judged combos (misses
    excluded), the entropy's ceiling log2(#combos), and the share of images where the asked object was found."""
    if not isinstance(counts, Counter):
        raise ValueError(f"counts must be a collections.Counter of combos (attribute_distribution), got "
                         f"{type(counts).__name__}")
    ref = list(reference) if reference is not None else all_combos()
    if not ref:
        raise ValueError("reference must hold at least one (position, size, background) combo, got none")
    found = {k: v for k, v in counts.items() if k is not None}
    n_found, n = sum(found.values()), sum(counts.values())
    p = np.array(list(found.values()), dtype=float) / max(1, n_found)
    entropy = float(-(p * np.log2(p)).sum()) if n_found else 0.0
    return {"coverage": sum(1 for k in ref if found.get(k, 0) > 0) / len(ref), "entropy_bits": entropy,
            "max_entropy_bits": math.log2(len(ref)), "found": n_found / max(1, n), "n": n}


def real_distribution(color: str, shape: str, n: int, start_seed: int = 20_000_000) -> list[Image.Image]:
    """n rendered one-object scenes of this colour and shape, position / size / background drawn as the data draws
    them (uniformly), from seeds far from training and evaluation."""
    import random

    from .shapes import ANCHORS, BACKGROUNDS, COLORS, POSITIONS, SHAPES, SIZES, Scene, ShapeObject, render

    V.check_choice(color, list(COLORS), "color")
    V.check_choice(shape, list(SHAPES), "shape")
    n = V.check_int(n, "n", 0, 1_000_000)
    start_seed = V.check_seed(start_seed, "start_seed")
    out = []
    for i in range(n):
        rng = random.Random(start_seed + i)
        bg = rng.choice(tuple(BACKGROUNDS))
        size, pos = rng.choice(SIZES), rng.choice(POSITIONS)
        ax, ay = ANCHORS[pos]
        obj = ShapeObject(color, shape, size, ax + rng.uniform(-1.5, 1.5), ay + rng.uniform(-1.5, 1.5))
        out.append(render(Scene((obj,), bg)))
    return out


def judge_features(images: Sequence) -> np.ndarray:
    """Per image, the judge's reading as numbers: background one-hot (3), colour one-hot (7), shape one-hot (5),
    centre x/y / 32, sqrt(area) / 10, object count / 2 (largest object; zeros if none). 19 numbers."""
    from .judge import _BG_NAMES, _COLOR_NAMES, judge
    from .shapes import SHAPES

    rows = []
    for im in check_images(images):
        j = judge(im)
        v = np.zeros(19)
        v[_BG_NAMES.index(j.background)] = 1
        if j.objects:
            o = j.objects[0]
            v[3 + _COLOR_NAMES.index(o.color)] = 1
            v[10 + SHAPES.index(o.shape)] = 1
            v[15], v[16], v[17] = o.x / 32, o.y / 32, math.sqrt(max(o.area, 0)) / 10
        v[18] = j.count / 2
        rows.append(v)
    return np.stack(rows)


_CLIP_CACHE: dict[str, object] = {}


@torch.no_grad()
def clip_image_embeddings(images: Sequence, clip_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Unit-length image embeddings from the shipped CLIP's vision tower (shapes-sd/clip), shape (n, 64)."""
    from transformers import CLIPModel

    images = check_images(images)
    key = str(DEFAULT_TEXT / "clip" if clip_dir is None else V.check_folder(clip_dir, "clip_dir", ["config.json"]))
    if key not in _CLIP_CACHE:
        _CLIP_CACHE[key] = CLIPModel.from_pretrained(key, torch_dtype=torch.float32, local_files_only=True).eval()
    clip = _CLIP_CACHE[key]
    x = to_pixels(images)
    out = []
    for i in range(0, len(x), 256):
        e = clip.get_image_features(pixel_values=x[i:i + 256])
        e = getattr(e, "pooler_output", e)
        out.append(F.normalize(e, dim=-1))
    return torch.cat(out).numpy()


def prdc_scores(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of fake vs real embeddings (the `prdc` package)."""
    import contextlib
    import io

    from prdc import compute_prdc

    real, fake, k = check_embeddings(real, fake, k)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        scores = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(v) for name, v in scores.items()}
