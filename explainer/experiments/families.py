"""Lesson 12, model families: parameter counts per component of a loaded pipeline; a tiny Diffusion Transformer
(PixArt-alpha layout, built from a config with random weights, no download) beside our U-Net; and a table of facts
about widely used families with the sources they come from."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from ..anatomy import count_params
from ..generation import run_pipeline
from ..probes import BothWaysProbe

# Facts about widely used families. Denoiser = the network run at every step (U-Net or transformer).
# Sources are named so a reader can check them; numbers are as those sources state them.
FAMILIES: list[dict[str, str]] = [
    {"family": "Stable Diffusion 1.x (1.4, 1.5)", "year": "2022", "denoiser": "U-Net, 860 M",
     "text encoder": "CLIP ViT-L/14 text tower, 123 M", "native size": "512x512", "latents": "4x64x64 (VAE /8)",
     "source": "CompVis Stable Diffusion v1 model card and README ('860M UNet and 123M text encoder'); "
               "Rombach et al. 2022, High-Resolution Image Synthesis with Latent Diffusion Models"},
    {"family": "Stable Diffusion 2.x", "year": "2022", "denoiser": "U-Net, 865 M",
     "text encoder": "OpenCLIP ViT-H/14 text tower", "native size": "512 / 768", "latents": "4x96x96 at 768",
     "source": "Podell et al. 2023, SDXL paper, Table 1 (SD 2.0/2.1: 865M U-Net); stabilityai/stable-diffusion-2 "
               "model card"},
    {"family": "SDXL", "year": "2023", "denoiser": "U-Net, 2.6 B",
     "text encoder": "CLIP ViT-L + OpenCLIP ViT-bigG (817 M together)", "native size": "1024x1024",
     "latents": "4x128x128", "source": "Podell et al. 2023, SDXL: Improving Latent Diffusion Models for "
                                       "High-Resolution Image Synthesis (Table 1; '3x larger UNet')"},
    {"family": "DiT (ImageNet, class labels)", "year": "2022", "denoiser": "transformer, 675 M (DiT-XL/2)",
     "text encoder": "none: a class label", "native size": "256 / 512", "latents": "4x32x32 at 256",
     "source": "Peebles & Xie 2023, Scalable Diffusion Models with Transformers"},
    {"family": "PixArt-\u03b1", "year": "2023", "denoiser": "transformer (DiT + cross-attention), 0.6 B",
     "text encoder": "T5-XXL encoder", "native size": "up to 1024x1024", "latents": "4x128x128 at 1024",
     "source": "Chen et al. 2023, PixArt-\u03b1: Fast Training of Diffusion Transformer for Photorealistic "
               "Text-to-Image Synthesis; diffusers PixArt-\u03b1 docs"},
    {"family": "Stable Diffusion 3 / 3.5", "year": "2024", "denoiser": "MMDiT transformer: 2 B (Medium), 8 B (Large)",
     "text encoder": "CLIP ViT-L + OpenCLIP bigG + T5-XXL", "native size": "1024x1024",
     "latents": "16 channels (VAE /8)",
     "source": "Esser et al. 2024, Scaling Rectified Flow Transformers for High-Resolution Image Synthesis; Hugging "
               "Face blog 'Diffusers welcomes Stable Diffusion 3' (Medium: 2B); SD3 Medium model card"},
    {"family": "FLUX.1 (dev, schnell)", "year": "2024", "denoiser": "rectified-flow transformer, 12 B",
     "text encoder": "CLIP ViT-L + T5-XXL", "native size": "~1 megapixel, many ratios",
     "latents": "16 channels (VAE /8)",
     "source": "black-forest-labs FLUX.1 [dev] and [schnell] model cards ('a 12 billion parameter rectified flow "
               "transformer'); schnell is distilled for 1-4 steps"},
]


def component_params(pipe: Any) -> dict[str, tuple[str, int]]:
    """component name -> (class name, parameter count), for every component of the pipeline (0 for a tokenizer or
    scheduler, which hold no weights)."""
    out = {}
    for name, comp in pipe.components.items():
        if comp is None:
            continue
        out[name] = (type(comp).__name__, count_params(comp))
    return out


def params_table(pipe: Any) -> str:
    rows = component_params(pipe)
    total = sum(n for _, n in rows.values())
    lines = [f"{'component':<14} {'class':<30} {'parameters':>12} {'share':>6}", "-" * 66]
    for name, (cls, n) in rows.items():
        share = f"{100 * n / total:5.1f}%" if n else ""
        lines.append(f"{name:<14} {cls:<30} {n:>12,} {share:>6}")
    lines.append(f"{'total':<14} {'':<30} {total:>12,}")
    return "\n".join(lines)


def build_tiny_dit(pipe: Any, layers: int = 8, width: int = 256, heads: int = 4, patch: int = 1,
                   seed: int = 0) -> Any:
    """A PixArt-alpha pipeline (transformer denoiser, T5 text encoder) built from configs with random weights, using
    our VAE and tokenizer so its latents have the same shape as our U-Net's. It is untrained: it draws noise."""
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = pipe.tokenizer
    enc = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=width, d_kv=width // heads, d_ff=2 * width,
                                  num_layers=2, num_heads=heads, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)).eval()
    latent = int(pipe.unet.config.sample_size)
    transformer = PixArtTransformer2DModel(
        num_attention_heads=heads, attention_head_dim=width // heads, in_channels=int(pipe.unet.config.in_channels),
        out_channels=2 * int(pipe.unet.config.out_channels), num_layers=layers, cross_attention_dim=width,
        sample_size=latent, patch_size=patch, caption_channels=width, norm_num_groups=32).eval()
    sched = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    dit = PixArtAlphaPipeline(tokenizer=tok, text_encoder=enc, vae=pipe.vae, transformer=transformer, scheduler=sched)
    dit.set_progress_bar_config(disable=True)
    return dit


@dataclass
class DitRun:
    params: dict[str, tuple[str, int]]
    unet_params: int
    transformer_params: int
    image: Any = field(repr=False)
    seconds: float = 0.0
    traced: bool = False
    trace_message: str = ""


def run_dit(dit: Any, unet_pipe: Any, prompt: str = "a red circle", seed: int = 0, steps: int = 10) -> DitRun:
    """Generate once with the tiny DiT pipeline, and try to trace it with ex.trace (the answer is reported)."""
    from ..trace import trace

    t0 = time.perf_counter()
    image = run_pipeline(dit, prompt, seed, steps, 4.5, use_resolution_binning=False,
                         max_sequence_length=int(dit.tokenizer.model_max_length))[0]
    dt = time.perf_counter() - t0
    traced, message = False, ""
    try:
        trace(dit, prompt, seed=seed, steps=2)
        traced, message = True, "ex.trace recorded the transformer pipeline"
    except NotImplementedError as err:
        message = str(err)
    return DitRun(component_params(dit), count_params(unet_pipe.unet), count_params(dit.transformer), image, dt,
                  traced, message)


def families_table() -> str:
    """The facts table as Markdown (sources in the last column)."""
    keys = ["family", "year", "denoiser", "text encoder", "native size", "source"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in FAMILIES:
        lines.append("| " + " | ".join(row[k] for k in keys) + " |")
    return "\n".join(lines)


# ============================================================================ the pair: shapes-sd (U-Net) vs shapes-dit
# Lesson 12 compares our U-Net model with our diffusion transformer: same world, same VAE, same words.

def load_pair(device: str = "cpu") -> tuple[Any, Any]:
    """(shapes-sd, shapes-dit): the shipped U-Net pipeline and the shipped SD3-style diffusion transformer."""
    from ..models import load_pipeline

    return load_pipeline("shapes-sd", device=device), load_pipeline("shapes-dit", device=device)


@contextmanager
def collapsed_pad(dit: Any):
    """Run an SD3 pipeline with its 256 all-zero T5 tokens collapsed into one token whose attention logit carries
    log(256): the same arithmetic (those tokens are identical in every layer), a quarter of the work.
    Yields the extra call arguments ({"max_sequence_length": 1}); the standard processors come back afterwards."""
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    from ..train.dit import T5_ZEROS, CollapsedPadProcessor

    before = dit.transformer.attn_processors
    dit.transformer.set_attn_processor(CollapsedPadProcessor(T5_ZEROS))
    try:
        yield {"max_sequence_length": 1}
    finally:
        dit.transformer.set_attn_processor(before if before else JointAttnProcessor2_0())


@dataclass
class SamePrompt:
    prompt: str
    seed: int
    steps: int
    images: dict[str, Any] = field(repr=False)
    read_as: dict[str, str]
    seconds: dict[str, float]
    guidance: dict[str, float]


def same_prompt(sd: Any, dit: Any, prompt: str = "a red star above a blue circle", seed: int = 0, steps: int = 20,
                cfg: float = 5.0) -> SamePrompt:
    """One prompt, one seed, through both pipelines as their users call them (each with its own scheduler)."""
    from ..judge import judge

    images, read, secs = {}, {}, {}
    for name, pipe in (("U-Net (shapes-sd)", sd), ("DiT (shapes-dit)", dit)):
        t0 = time.perf_counter()
        images[name] = run_pipeline(pipe, prompt, seed, steps, cfg)[0]
        secs[name] = time.perf_counter() - t0
        read[name] = judge(images[name]).describe()
    return SamePrompt(prompt, seed, steps, images, read, secs, {k: cfg for k in images})


def param_comparison(sd: Any, dit: Any) -> dict[str, dict[str, int]]:
    """{model: {component: parameters}} for both pipelines (tokenizers and schedulers hold none)."""
    return {"shapes-sd": {k: n for k, (_, n) in component_params(sd).items()},
            "shapes-dit": {k: n for k, (_, n) in component_params(dit).items()}}


@dataclass
class Tokens:
    latent_shape: tuple[int, int, int]
    patch: int
    image_tokens: int
    values_per_token: int
    width: int
    clip_tokens: int
    t5_zero_tokens: int

    @property
    def sequence(self) -> int:
        """Tokens in every joint-attention softmax: image + CLIP text + zero T5."""
        return self.image_tokens + self.clip_tokens + self.t5_zero_tokens


def patch_tokens(dit: Any, patch: int | None = None) -> Tokens:
    """How the DiT turns the 4x8x8 latent into tokens (measured by running its patch embedding)."""
    tr = dit.transformer
    p = int(patch or tr.config.patch_size)
    c, s = int(tr.config.in_channels), int(tr.config.sample_size)
    with torch.no_grad():
        if p == tr.config.patch_size:
            n, width = tr.pos_embed(torch.zeros(1, c, s, s)).shape[1:]
        else:  # what another patch size would give (same arithmetic as the patch embedding's strided conv)
            n, width = (s // p) ** 2, int(tr.config.num_attention_heads * tr.config.attention_head_dim)
    emb, _, _, _ = dit.encode_prompt("a red circle", None, None, do_classifier_free_guidance=False)
    clip = int(dit.tokenizer.model_max_length)
    return Tokens((c, s, s), p, int(n), c * p * p, int(width), clip, int(emb.shape[1]) - clip)


def resolution_path(sd: Any, dit: Any, prompt: str = "a red circle") -> dict[str, list[tuple[str, str]]]:
    """What each stage of the two denoisers works on, recorded with forward hooks during one call each:
    the U-Net's blocks (channels x height x width, and the skip tensors each down block hands to the up path), the
    DiT's blocks (tokens x width)."""
    out: dict[str, list[tuple[str, str]]] = {"U-Net": [], "DiT": []}
    hooks = []
    unet = sd.unet

    def unet_hook(name):
        def f(_m, args, kwargs, o):
            x = args[0] if args else kwargs["hidden_states"]
            h = o[0] if isinstance(o, tuple) else o
            skips = f"; hands {len(o[1])} skip tensor(s) to the up path" if isinstance(o, tuple) and len(o) > 1 else ""
            took = ""
            if name.startswith("up"):
                res = kwargs.get("res_hidden_states_tuple", args[1] if len(args) > 1 else ())
                took = f"; takes {len(res)} skip tensor(s) from the down path"
            out["U-Net"].append((name, f"{x.shape[1]} x {x.shape[2]} x {x.shape[3]} -> "
                                       f"{h.shape[1]} x {h.shape[2]} x {h.shape[3]}{skips}{took}"))
        return f

    for i, b in enumerate(unet.down_blocks):
        hooks.append(b.register_forward_hook(unet_hook(f"down {i}"), with_kwargs=True))
    hooks.append(unet.mid_block.register_forward_hook(unet_hook("middle"), with_kwargs=True))
    for i, b in enumerate(unet.up_blocks):
        hooks.append(b.register_forward_hook(unet_hook(f"up {i}"), with_kwargs=True))

    def dit_hook(name):
        def f(_m, _a, o):
            ctx, img = o if isinstance(o, tuple) else (None, o)
            text = f" + {ctx.shape[1]} text tokens" if ctx is not None else " (text stream ends here)"
            out["DiT"].append((name, f"{img.shape[1]} image tokens x {img.shape[2]}{text}"))
        return f

    for i, b in enumerate(dit.transformer.transformer_blocks):
        hooks.append(b.register_forward_hook(dit_hook(f"block {i}")))
    try:
        for pipe in (sd, dit):
            run_pipeline(pipe, prompt, 0, 1, 1.0, output_type="latent")
    finally:
        for h in hooks:
            h.remove()
    return out


@dataclass
class BothWays:
    """Joint attention of the DiT in both directions, per block, averaged over steps (conditional branch).

    image_to_text[b]: (64, T) share of each image patch's attention that lands on each text token (rows of the full
    softmax, so a row sums to the patch's share on text; the rest is on image patches).
    text_to_image[b]: (T, 64) share of each text token's attention that lands on each image patch."""

    prompt: str
    tokens: list[str]
    blocks: list[str]
    image_to_text: torch.Tensor = field(repr=False)  # (blocks, 64, T)
    text_to_image: torch.Tensor = field(repr=False)  # (blocks, T, 64)
    image: Any = field(repr=False)
    identical_to_plain: bool = False
    seed: int = 0
    steps: int = 20
    cfg: float = 5.0

    def word(self, word: str) -> int:
        for i, t in enumerate(self.tokens):
            if t == word:
                return i
        raise ValueError(f"word must be one of the prompt's words {[t for t in self.tokens if t.isalpha()]}, "
                         f"got {word!r}")

    def text_share(self) -> list[float]:
        """Per block: mean share of an image patch's attention spent on text tokens (the rest: other patches)."""
        return [float(v) for v in self.image_to_text.sum(-1).mean(-1)]

    def pad_share(self) -> list[float]:
        """Per block: of an image patch's attention on text, the share spent on the 256 zero T5 tokens."""
        clip = 24
        return [float(v) for v in (self.image_to_text[:, :, clip:].sum(-1) / self.image_to_text.sum(-1)).mean(-1)]

    def word_to_image(self, word: str, block: int) -> torch.Tensor:
        """(8, 8) map: where the word's query looks in the image, in one block."""
        return self.text_to_image[block, self.word(word)].reshape(8, 8)

    def image_to_word(self, word: str, block: int) -> torch.Tensor:
        """(8, 8) map: how much each image patch attends to the word, in one block."""
        return self.image_to_text[block, :, self.word(word)].reshape(8, 8)


def both_ways(dit: Any, prompt: str = "a large red star on the left", seed: int = 0, steps: int = 20,
              cfg: float = 5.0) -> BothWays:
    """Record every block's joint attention in both directions during one plain pipeline call, and check the image
    equals the call without the probes (recording never changes the result)."""
    tr = dit.transformer
    originals = dict(tr.attn_processors)
    plain = run_pipeline(dit, prompt, seed, steps, cfg, output_type="np")[0]
    store: list = []
    rows = slice(1, 2) if cfg > 1 else slice(0, 1)  # CFG batches [uncond, cond]
    tr.set_attn_processor({k: BothWaysProbe(v, store, rows) for k, v in originals.items()})
    try:
        got = run_pipeline(dit, prompt, seed, steps, cfg, output_type="np")[0]
    finally:
        tr.set_attn_processor(originals)
    n_blocks = len(tr.transformer_blocks)
    i2t = torch.stack([s[0][0] for s in store]).view(steps, n_blocks, *store[0][0].shape[1:]).mean(0)
    t2i = torch.stack([s[1][0] for s in store]).view(steps, n_blocks, *store[0][1].shape[1:]).mean(0)
    ids = dit.tokenizer(prompt, padding="max_length", max_length=dit.tokenizer.model_max_length).input_ids
    toks = dit.tokenizer.convert_ids_to_tokens(ids) + ["<t5 zero>"] * (i2t.shape[-1] - len(ids))
    from PIL import Image

    image = Image.fromarray((got * 255).round().astype("uint8"))
    return BothWays(prompt, toks, [f"block {i}" for i in range(n_blocks)], i2t, t2i, image,
                    bool((plain == got).all()), seed, steps, cfg)


def object_cells(image: Any) -> torch.Tensor:
    """(8, 8) share of each latent cell (4x4 pixels) covered by the drawn objects (pixels unlike the background)."""
    import numpy as np

    a = np.asarray(image).astype(np.float32) / 255.0
    bg = a[:2, :2].reshape(-1, 3).mean(0)
    mask = (np.abs(a - bg).max(-1) > 0.15).astype(np.float32)
    return torch.from_numpy(mask.reshape(8, 4, 8, 4).mean((1, 3)))


def lift_on_object(attn_map: torch.Tensor, cells: torch.Tensor) -> float:
    """How many times more attention mass falls on the object's cells than their share of the image (1 = chance)."""
    share = float(cells.sum() / cells.numel())
    if share == 0:
        return float("nan")
    return float((attn_map / attn_map.sum() * cells).sum()) / share


def two_object_prompts(n: int, start: int = 100_000) -> list[str]:
    """The benchmark's two-object prompts (canonical captions of unseen scenes, seeds >= 10,100,000)."""
    from ..shapes import caption_for, sample_scene

    return [caption_for(sample_scene(10_000_000 + start + i, two_object_p=1.0, held_out="allow")) for i in range(n)]


@dataclass
class Relations:
    prompts: list[str]
    hits: dict[str, list[bool]]   # both objects drawn and their relation right, per prompt
    drawn: dict[str, list[bool]]  # both objects drawn
    seconds: dict[str, float]
    steps: int
    cfg: float


def relations(sd: Any, dit: Any, n: int = 16, steps: int = 20, cfg: float = 5.0, start: int = 100_000) -> Relations:
    """Both models on the same n two-object prompts and seeds (batched, each its own scheduler; the DiT with the
    collapsed zero-T5 pad, the same arithmetic at a quarter of the cost); judged by `explainer.judge`."""
    from ..judge import judge_against

    prompts = two_object_prompts(n, start)
    hits, drawn, secs = {}, {}, {}
    for name, pipe in (("U-Net", sd), ("DiT", dit)):
        t0 = time.perf_counter()
        with collapsed_pad(pipe) if name == "DiT" else nullcontext({}) as extra:
            ims = run_pipeline(pipe, prompts, list(range(n)), steps, cfg, **extra)
        secs[name] = time.perf_counter() - t0
        js = [judge_against(im, p) for im, p in zip(ims, prompts, strict=True)]
        drawn[name] = [bool(j["objects"]) for j in js]
        hits[name] = [bool(j["objects"] and j["relation"]) for j in js]
    return Relations(prompts, hits, drawn, secs, steps, cfg)


def benchmark_table(path: Any = None) -> dict[str, dict]:
    """The 500-prompt adherence table of both models (benchmarks/adherence.py), as shipped beside shapes-dit."""
    import json
    from pathlib import Path

    from ..models import SHIPPED_MODELS

    p = Path(path) if path is not None else SHIPPED_MODELS["shapes-dit"] / "adherence.json"
    return json.loads(p.read_text())


COLUMNS = {"color": "colour", "shape": "shape", "size": "size", "position": "position",
           "held_out": "held-out pair", "two_objects": "two objects drawn", "two_all": "two objects + relation"}
COLUMN_N = {"color": 200, "shape": 200, "size": 200, "position": 200, "held_out": 100, "two_objects": 200,
            "two_all": 200}  # prompts behind each column of the 500-prompt table (benchmarks/adherence.py, --n 200)


def _column_n(results: dict, key: str) -> int:
    """Prompts behind one column of a benchmark result (its "n" record; the 500-prompt defaults otherwise)."""
    n = results.get("n")
    if not n:
        return COLUMN_N[key]
    return int(n["held_out"] if key == "held_out" else n["two"] if key.startswith("two") else n["single"])


def _bools(rate: float, n: int) -> list[bool]:
    k = round(rate * n)
    return [True] * k + [False] * (n - k)


def claim_verdicts(rel: Relations, table: dict[str, dict] | None = None) -> list:
    """The claim "transformers improve long-range coherence and prompt adherence", measured: the lesson's own paired
    relation test, then every column of the 500-prompt table (same prompts and seeds for both models; compared
    unpaired from the rates, which only widens the intervals)."""
    from .. import verdicts as vd

    out = [vd.compare("the DiT gets two objects AND their relation right more often (this lesson's prompts)",
                      rel.hits["DiT"], rel.hits["U-Net"], labels=("DiT", "U-Net"), unit="prompts (same seeds)",
                      percent=True)]
    if table is not None:
        dit, unet = table["shapes-dit"]["main"], table["shapes-sd"]["main"]
        for key in ("two_all", "two_objects", "held_out", "shape", "color", "position", "size"):
            n = _column_n(table["shapes-dit"], key)
            out.append(vd.compare(f"the DiT is better on '{COLUMNS[key]}' (benchmark table)",
                                  _bools(dit[key], n),
                                  _bools(unet[key], _column_n(table["shapes-sd"], key)),
                                  labels=("DiT", "U-Net"), paired=False,
                                  unit="prompts", percent=True,
                                  note=f"CFG {_table_cfg(table['shapes-dit']):g} vs "
                                       f"{_table_cfg(table['shapes-sd']):g}"))
        # long-range coherence proper: of the images where both objects were drawn, how often is the relation right?
        # (rates conditional on drawing both; the counts behind them come from the same 200 prompts)
        n_d, n_u = _column_n(table["shapes-dit"], "two_all"), _column_n(table["shapes-sd"], "two_all")
        k_d, k_u = round(dit["two_objects"] * n_d), round(unet["two_objects"] * n_u)
        out.append(vd.compare("the DiT is better on 'relation right when both objects are drawn' (benchmark table)",
                              _bools(dit["two_all"] / max(dit["two_objects"], 1e-9), k_d),
                              _bools(unet["two_all"] / max(unet["two_objects"], 1e-9), k_u),
                              labels=("DiT", "U-Net"), paired=False, unit="images with both objects",
                              percent=True))
    return out


def _table_cfg(results: dict) -> float:
    """The CFG scale of a model's main table row (its recommended scale unless the row says otherwise)."""
    return float(results.get("main_cfg", results.get("recommended_cfg", 5.0)))


def budgets() -> dict[str, dict[str, float]]:
    """Training budgets of both shipped models, read from their training records: updates, minutes, parameters."""
    import json

    from ..models import SHIPPED_MODELS

    dit = json.loads((SHIPPED_MODELS["shapes-dit"] / "training.json").read_text())
    return {
        # shapes-sd's model card: 6,000 updates at 2 threads (72 min) + 3,500 continued at 1 thread (46 min), batch 32
        "shapes-sd": {"updates": 9_500, "minutes": 118.0, "batch": 32},
        "shapes-dit": {"updates": dit.get("total_steps", dit["dit_steps"]),
                       "minutes": dit.get("total_seconds", dit["dit_seconds"]) / 60, "batch": dit["batch"]},
    }


def answer(verdicts: list, table: dict[str, dict]) -> str:
    """The lesson's conclusion, written from the verdicts (never typed): where the DiT is better, worse, or within
    noise of the U-Net, and what the budgets were."""
    from .. import verdicts as vd

    def names(status: str) -> list[str]:
        return [v.claim.split("'")[1] if "'" in v.claim else v.claim.split(" (")[0] for v in verdicts[1:]
                if v.status == status]

    dit, unet = table["shapes-dit"]["main"], table["shapes-sd"]["main"]
    key = {label: k for k, label in COLUMNS.items()}
    better, same, disagree = names(vd.AGREES), names(vd.NOISE), names(vd.DISAGREES)
    # "does not agree" is either surely worse or the very same rate (a one-point interval at 0): name them apart
    equal = [n for n in disagree if n in key and dit.get(key[n]) == unet.get(key[n])]
    worse = [n for n in disagree if n not in equal]
    b = budgets()
    lines = [f"Budgets: U-Net {b['shapes-sd']['updates']:,} updates in {b['shapes-sd']['minutes']:.0f} min, DiT "
             f"{b['shapes-dit']['updates']:,} updates in {b['shapes-dit']['minutes']:.0f} min (batch 32, CPU)."]
    lines.append("The DiT is better on: " + (", ".join(better) if better else "nothing measured") + ".")
    lines.append("The DiT is worse on: " + (", ".join(worse) if worse else "nothing measured") + ".")
    if equal:
        lines.append("Exactly equal on: " + ", ".join(equal) + " (not better either).")
    if same:
        lines.append("Within noise of each other: " + ", ".join(same) + ".")
    return "\n".join(lines)
