"""One generation path: seeded generators, the sampler swap, the one plain pipeline call, exact batching (with its
self-check), the family's answers (denoiser, default size: asked of the adapter) and counting denoiser calls.

Every image the package makes without tracing goes through here: `run_pipeline` is the one place a pipeline is
called (`single_image`, `batched_call`, and every experiment's own call, with its extra arguments: a control map,
an img2img strength, a step callback), `seed_generator(s)` the one place noise generators are made. `sweeps.generate`,
`grid`, the interpolations and `experiments.guidance.generate_many` add exact batching on top (`generate_images`).
`trace` / `trace_batch` do not: they build a named sampler with
`schedulers.make_scheduler` (the function `build_scheduler` calls) and `capture.capture` installs it for the one
traced call and puts the pipeline's own back; their noise comes from CPU generators seeded as `seed_generator`
seeds them; and `trace_batch` is one plain batched pipeline call, without the exact batching below (so its images may
differ in the last bits from single runs).

    with using_scheduler(pipe, "euler"):            # None keeps pipe.scheduler; the old one is back afterwards
        ...
    images = run_pipeline(pipe, prompts, seeds, steps=25, cfg=7.5, image=maps)   # one plain call, its images
    run = generate_images(pipe, prompts, seeds, cfgs=7.5, steps=25)   # run.images[k] == single run k, bit for bit
    with count_denoiser_calls(pipe) as count: ...   # count.calls: U-Net / transformer evaluations
    expected_denoiser_calls(pipe, "heun", 25)       # 49: what the pipeline's loop will evaluate

How cells are batched, and why it stays exact (measured on CPU, fp32, 1 and 2 threads)
------------------------------------------------------------------------------------
Samples that share steps and sampler run as one pipeline call: a list of generators (one per sample, so each
sample's noise is its own seed's), per-sample text embeddings and, with CFG (> 1), per-sample guidance scales.
Batching alone changes the last bits of the result, because some CPU kernels pick their algorithm by batch size:
  * matrix products (every Linear layer): with few rows the kernel depends on the row count -- the timestep-embedding
    linears (one row per sample), and on some CPUs also a feed-forward linear over a small latent's tokens (measured
    on this project's 2-core box: down_blocks.2's ff over a 2x2 latent, 8 rows in a single CFG run vs 32 for four
    samples, differed in the last bit, so every batched trace fell back to one-by-one runs);
  * 1x1 convolutions (attention proj_in/proj_out, resnet shortcuts) at batch 2 vs batch 2n;
  * every convolution at batch 1 vs batch >= 2 (a single run without CFG calls the U-Net at batch 1), and the VAE
    decoder, which a single run calls at batch 1.
So inside a batched call those layers run in chunks of the single run's batch (the "unit": 2 samples with CFG, whose
single run batches the (uncond, cond) pair; 1 without), and the VAE decodes one image at a time. The chunks of a
Linear or a 1x1 convolution are one batched product (`baddbmm`: each chunk's rows, or each sample's pixels, a matrix
of its own; the chunk loop's bits, checked on the first input of each shape), other convolutions a loop. Everything else
(3x3 convolutions at batch 2n, attention, norms, the sampler) gives the same bits batched.
Because this is an empirical property of kernels, each batched call also checks itself: on its first U-Net
evaluation sample 0 (its (uncond, cond) pair with CFG) is recomputed at the unit's batch and compared bit for bit; on
any difference the samples are rerun one by one (a warning says so). The verdict is cached per U-Net and shape.
CFG > 1 and CFG <= 1 samples never share a call (their U-Net batches differ). Not batched: pipelines other than SD /
SDXL (they run one by one, still exact).
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .schedulers import check_scheduler_name, make_scheduler

Progress = Callable[[int], None]  # called with the number of images just finished


# --------------------------------------------------------------------------------------------- seeds and samplers
def seed_generator(seed: int) -> torch.Generator:
    """The generator every run draws its noise from: a CPU generator, so a seed gives the same noise on any device."""
    return torch.Generator().manual_seed(int(seed))


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One `seed_generator` per image of a batched call (image k's noise is seeds[k]'s, whatever the batch)."""
    return [seed_generator(s) for s in seeds]


def run_pipeline(pipe: Any, prompt: Any = None, seeds: int | Sequence[int] | None = None, steps: int | None = None,
                 cfg: float | None = None, *, generator: Any = None, scheduler: Any = None, **call: Any) -> list[Any]:
    """One plain pipeline call, as its users write it: the images of `pipe(prompt, ...)`, in order.

    seeds: an int (one generator: one image, or a batch drawn from one stream) or one seed per image (one generator
    each); `generator` instead passes generators made elsewhere. steps / cfg: `num_inference_steps` /
    `guidance_scale` (None: the pipeline's default). scheduler: see `using_scheduler` (None keeps the pipeline's own).
    Everything else (image=, negative_prompt=, prompt_embeds=, output_type=, callbacks, ...) goes to the call as it is.
    Every untraced image in the package is made here (`single_image` and `batched_call` included).
    """
    if generator is None and seeds is not None:
        generator = seed_generator(seeds) if isinstance(seeds, (int, np.integer)) else seed_generators(seeds)
    if steps is not None:
        call["num_inference_steps"] = steps
    if cfg is not None:
        call["guidance_scale"] = cfg
    with using_scheduler(pipe, scheduler):
        return list(pipe(prompt, generator=generator, **call).images)


def build_scheduler(pipe: Any, scheduler: Any = None, base_config: Any = None) -> Any | None:
    """The sampler a run should install: None keeps the pipeline's own (returns None); a short name
    ("dpm++2m", any case) is built fresh from `base_config` or the pipeline's own scheduler config; a scheduler
    object is used as it is."""
    if scheduler is None:
        return None
    if hasattr(scheduler, "set_timesteps") and hasattr(scheduler, "step"):
        return scheduler
    name = check_sampler(pipe, scheduler)
    return make_scheduler(name, base_config if base_config is not None else pipe.scheduler.config)


def check_sampler(pipe: Any, scheduler: Any, param: str = "scheduler") -> Any:
    """The sampler check `trace` makes, for any generation: None (the pipeline's own), a scheduler object, or a
    short name that fits this pipeline's family (`adapter.samplers()`: no U-Net sampler on a flow-matching model)."""
    if scheduler is None or (hasattr(scheduler, "set_timesteps") and hasattr(scheduler, "step")):
        return scheduler
    adapter = family(pipe)
    if adapter is None:  # a pipeline explainer does not trace: any known name
        return check_scheduler_name(scheduler)
    return adapter.check_sampler(scheduler, param)


@contextlib.contextmanager
def using_scheduler(pipe: Any, scheduler: Any = None, base_config: Any = None) -> Iterator[Any]:
    """Install a sampler for the duration (see `build_scheduler`; None keeps `pipe.scheduler`), yield the one in
    use, and put the original back whatever happens."""
    original = pipe.scheduler
    built = build_scheduler(pipe, scheduler, base_config)
    if built is not None:
        pipe.scheduler = built
    try:
        yield pipe.scheduler
    finally:
        pipe.scheduler = original


# --------------------------------------------------------------------------------------------- the family's answers
def family(pipe: Any) -> Any:
    """The pipeline's family adapter (`explainer.adapters`), which answers every question about its family; None
    for a pipeline no adapter knows (e.g. an img2img pipeline an experiment builds from our parts)."""
    from .adapters import get_adapter

    try:
        return get_adapter(pipe)
    except NotImplementedError:
        return None


def denoiser_name(pipe: Any) -> str:
    """The pipeline attribute holding the network the sampler evaluates, as the family adapter names it; for a
    pipeline no adapter knows, whichever of `unet` / `transformer` it has."""
    adapter = family(pipe)
    if adapter is not None:
        return adapter.denoiser_name
    for name in ("unet", "transformer"):
        if getattr(pipe, name, None) is not None:
            return name
    raise ValueError(f"{type(pipe).__name__} has neither a `unet` nor a `transformer` to denoise with")


def denoiser(pipe: Any) -> torch.nn.Module:
    """The network the sampler evaluates (`denoiser_name`): the U-Net or the transformer."""
    return getattr(pipe, denoiser_name(pipe))


def default_size(pipe: Any) -> tuple[int, int]:
    """(height, width) in pixels the pipeline draws when none is given: the family adapter's answer; for a pipeline
    no adapter knows, what `validation.default_image_size` reads from its configs."""
    from .validation import default_image_size

    adapter = family(pipe)
    return adapter.default_size() if adapter is not None else default_image_size(pipe)


# --------------------------------------------------------------------------------------------- counting calls


@dataclass
class CallCount:
    """How many times the denoiser ran inside `count_denoiser_calls` (each call holds the cond and uncond halves)."""

    calls: int = 0


@contextlib.contextmanager
def count_denoiser_calls(pipe: Any, callback: Callable[[int], None] | None = None) -> Iterator[CallCount]:
    """Count denoiser evaluations (an observing forward hook, removed afterwards); `callback(n)` after the n-th."""
    count = CallCount()

    def hook(module: Any, args: Any, output: Any) -> None:
        count.calls += 1
        if callback is not None:
            callback(count.calls)

    handle = denoiser(pipe).register_forward_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def expected_denoiser_calls(pipe: Any, scheduler: Any, steps: int) -> int:
    """How many denoiser evaluations a run with `steps` steps makes under `scheduler` (name, object or None for the
    pipeline's own): the length of the sampler's timestep schedule, which the pipeline loops over (Heun: 2n - 1,
    PLMS: n + 1, one-step-per-call samplers: n). Computed on a fresh copy; the pipeline is not touched."""
    sched = build_scheduler(pipe, scheduler) if scheduler is not None else pipe.scheduler
    fresh = type(sched).from_config(sched.config)
    fresh.set_timesteps(int(steps))
    return len(fresh.timesteps)


# --------------------------------------------------------------------------------------------- exact batching
class NotExact(RuntimeError):
    """A batched call would not reproduce the single runs bit for bit."""


class _PerSampleScale(float):
    """A guidance scale that is one number per sample: `scale * tensor` multiplies row i by scale i.

    Its float value is the smallest scale (> 1 here), so the pipeline's `guidance_scale > 1` test holds. `calls`
    counts the multiplications it served: if a pipeline ever multiplied the other way round (tensor * scale), torch
    would read the float value instead and `calls` stays 0; the caller checks that and refuses the result.
    """

    values: list[float]
    calls: int

    def __new__(cls, values: Sequence[float]) -> _PerSampleScale:
        obj = super().__new__(cls, min(values))
        obj.values = [float(v) for v in values]
        obj.calls = 0
        return obj

    def __mul__(self, other: Any) -> Any:
        if isinstance(other, torch.Tensor):
            if other.shape[0] != len(self.values):
                raise NotExact(f"per-sample guidance got a batch of {other.shape[0]}, expected {len(self.values)}")
            self.calls += 1
            col = torch.tensor(self.values, dtype=other.dtype, device=other.device)
            return col.view(-1, *([1] * (other.dim() - 1))) * other
        return float(self) * other

    __rmul__ = __mul__


VERDICTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # unet -> {signature: bool}


def _slice_batch(obj: Any, idx: torch.Tensor, batch: int) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.index_select(0, idx.to(obj.device)) if obj.dim() and obj.shape[0] == batch else obj
    if isinstance(obj, dict):
        return {k: _slice_batch(v, idx, batch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_slice_batch(v, idx, batch) for v in obj)
    return obj


# (layer's kind and shape, input shape, unit, dtype, device, threads) -> one batched product gives the chunk loop's bits
_BMM_EXACT: dict[tuple, bool] = {}


def _one_product(module: torch.nn.Module, x: torch.Tensor, unit: int) -> torch.Tensor | None:
    """The chunk loop's products as one `baddbmm`: a Linear's rows per chunk of `unit` samples, a 1x1 convolution's
    pixels per sample (as the batch-2 convolution of a single run computes each sample). None for other layers."""
    if type(module) is torch.nn.Linear and x.shape[0] % unit == 0:
        k = x.shape[0] // unit
        rows = x.reshape(k, -1, x.shape[-1])
        w = module.weight.t().unsqueeze(0).expand(k, -1, -1)
        out = (torch.bmm(rows, w) if module.bias is None else
               torch.baddbmm(module.bias.expand(k, rows.shape[1], -1), rows, w))
        return out.reshape(*x.shape[:-1], -1)
    if (type(module) is torch.nn.Conv2d and x.dim() == 4 and module.kernel_size == (1, 1)
            and module.stride == (1, 1) and module.padding == (0, 0) and module.dilation == (1, 1)
            and module.groups == 1 and module.padding_mode == "zeros"):
        b, c, h, w_ = x.shape
        weight = module.weight.view(module.out_channels, c).unsqueeze(0).expand(b, -1, -1)
        pixels = x.reshape(b, c, h * w_)
        out = (torch.bmm(weight, pixels) if module.bias is None else
               torch.baddbmm(module.bias.view(1, -1, 1).expand(b, -1, h * w_), weight, pixels))
        return out.view(b, -1, h, w_)
    return None


def _by_chunks(module: torch.nn.Module, forward: Callable, x: torch.Tensor, unit: int) -> torch.Tensor:
    """`module(x)` as single runs of `unit` samples compute it. The chunk loop's many small calls cost ~a fifth of a
    batched U-Net's time; one batched product (`_one_product`) computes the same products in one call and, measured
    on this project's CPUs, the same bits. Kernels are empirical, so the first input of each shape runs both ways and
    the batched product is used only where they agree."""
    key = (type(module).__name__, tuple(module.weight.shape), module.bias is not None, tuple(x.shape),
           x.is_contiguous(), unit, x.dtype, x.device, torch.get_num_threads())
    known = _BMM_EXACT.get(key)
    out = _one_product(module, x, unit) if known is not False else None
    if known:
        return out
    loop = torch.cat([forward(c) for c in x.split(unit)])
    if known is None:  # first sight of this shape: the batched product is used from now on only if it agrees
        _BMM_EXACT[key] = out is not None and torch.equal(out, loop)
    return loop


def _chunk_small_kernels(unet: torch.nn.Module, unit: int) -> Callable[[], None]:
    """Run Linear layers and 1x1 convolutions (every convolution when `unit` is 1) in chunks of `unit` samples;
    returns the undo."""
    patched: list[tuple[torch.nn.Module, Any]] = []

    def chunked(module: torch.nn.Module) -> None:
        forward = module.forward

        def fwd(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            if x.shape[0] <= unit:
                return forward(x, *args, **kwargs)
            if not args and not kwargs:
                return _by_chunks(module, forward, x, unit)
            return torch.cat([forward(c, *args, **kwargs) for c in x.split(unit)])

        patched.append((module, module.__dict__.get("forward")))
        module.forward = fwd

    for m in unet.modules():
        if isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv2d)
                                              and (unit == 1 or m.kernel_size == (1, 1))):
            chunked(m)

    def undo() -> None:
        for module, own in patched:
            if own is None:
                del module.forward
            else:
                module.forward = own

    return undo


def _decode_one_by_one(vae: torch.nn.Module) -> Callable[[], None]:
    """Make `vae.decode` decode a batch one latent at a time (as single runs do); returns the undo."""
    own = vae.__dict__.get("decode")
    decode = vae.decode

    def decode_each(z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        gen = kwargs.pop("generator", None)
        outs = []
        for i in range(z.shape[0]):
            g = gen[i] if isinstance(gen, list) else gen
            outs.append(decode(z[i:i + 1], *args, **({**kwargs, "generator": g} if gen is not None else kwargs)))
        if isinstance(outs[0], tuple):
            return (torch.cat([o[0] for o in outs]),) + tuple(outs[0][1:])
        first = outs[0]
        first.sample = torch.cat([o.sample for o in outs])
        return first

    vae.decode = decode_each

    def undo() -> None:
        if own is None:
            del vae.decode
        else:
            vae.decode = own

    return undo


def _self_check(unet: torch.nn.Module, unit: int) -> Any:
    """A forward hook that, on the U-Net's first batched evaluation, recomputes sample 0 (its (uncond, cond) pair
    when `unit` is 2) at batch `unit` and compares bit for bit; the verdict is cached per U-Net and input signature.
    Raises NotExact."""
    state = {"checked": False, "inside": False}
    verdicts = VERDICTS.setdefault(unet, {})

    def check(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        if state["checked"] or state["inside"]:
            return
        state["checked"] = True
        sample = args[0] if args else kwargs["sample"]
        batch = sample.shape[0]
        signature = (unit, batch, tuple(sample.shape[1:]), str(sample.dtype), str(sample.device),
                     torch.get_num_threads())
        if signature in verdicts:
            if not verdicts[signature]:
                raise NotExact("batched U-Net differs from single runs here (cached verdict)")
            return
        if batch <= unit:
            return
        batched_out = output[0] if isinstance(output, tuple) else output.sample
        # sample 0 as its single run computes it: alone, or its (uncond, cond) pair as a single CFG run batches it
        pair = torch.tensor([0] if unit == 1 else [0, batch // 2])
        state["inside"] = True
        try:
            single = module(*_slice_batch(args, pair, batch), **_slice_batch(kwargs, pair, batch))
        finally:
            state["inside"] = False
        single = single[0] if isinstance(single, tuple) else single.sample
        verdicts[signature] = bool(torch.equal(batched_out.index_select(0, pair.to(batched_out.device)), single))
        if not verdicts[signature]:
            raise NotExact("batched U-Net differs from single runs in the last bits on this machine")

    return check


@contextlib.contextmanager
def exact_batching(pipe: Any, unit: int = 2, verify: bool = True, chunk: bool = True) -> Iterator[None]:
    """Make a batched call compute each sample as a single (batch `unit`: 2 with CFG, 1 without) run does. See the
    module docstring.

    chunk=False leaves the layers alone (only for tests: the self-check must then catch the difference).
    """
    undo_layers = _chunk_small_kernels(pipe.unet, unit) if chunk else (lambda: None)
    undo_vae = _decode_one_by_one(pipe.vae)
    handle = pipe.unet.register_forward_hook(_self_check(pipe.unet, unit), with_kwargs=True) if verify else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
        undo_layers()
        undo_vae()


def pipeline_kind(pipe: Any) -> str | None:
    """"sd" or "sdxl" for the pipelines exact batching knows, else None."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if isinstance(pipe, StableDiffusionXLPipeline):
        return "sdxl"
    if isinstance(pipe, StableDiffusionPipeline):
        return "sd"
    return None


def can_batch(pipe: Any) -> bool:
    """Whether samples of this pipeline can share an exact batched call (SD / SDXL U-Nets without LCM's guidance
    embedding)."""
    return pipeline_kind(pipe) is not None and pipe.unet.config.get("time_cond_proj_dim") is None


def encode(pipe: Any, prompt: str, negative_prompt: str | None, cfg_on: bool) -> dict[str, torch.Tensor]:
    """The text embeddings a single run computes (batch 1), as keyword arguments for `pipe(...)`."""
    out = pipe.encode_prompt(prompt=prompt, device=pipe._execution_device, num_images_per_prompt=1,
                             do_classifier_free_guidance=cfg_on, negative_prompt=negative_prompt)
    names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    return {k: v for k, v in zip(names, out, strict=False) if v is not None}


def _cat_embeds(embeds: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([e[k] for e in embeds]) for k in embeds[0]}


def batched_call(pipe: Any, embeds: Sequence[dict[str, torch.Tensor]], generators: list[torch.Generator],
                 cfgs: Sequence[float], steps: int, height: int | None, width: int | None,
                 latents: torch.Tensor | None = None, output_type: str = "pil") -> list[Any]:
    """One pipeline call for n samples (all with CFG > 1, or all without), each computed as its single run. Raises
    NotExact."""
    guided = min(cfgs) > 1
    if guided != (max(cfgs) > 1):
        raise ValueError("batched_call: CFG > 1 and CFG <= 1 samples cannot share a call")
    # without CFG the pipeline never reads the scale (it makes no unconditional pass): any value <= 1 is the same run
    scale: float | _PerSampleScale = (cfgs[0] if len(set(cfgs)) == 1 or not guided else _PerSampleScale(cfgs))
    with exact_batching(pipe, unit=2 if guided else 1):
        images = run_pipeline(pipe, None, None, steps, scale, generator=generators, height=height, width=width,
                              latents=latents, output_type=output_type, **_cat_embeds(embeds))
    if isinstance(scale, _PerSampleScale) and scale.calls == 0:
        raise NotExact(f"{type(pipe).__name__} did not apply the guidance scale as `scale * (cond - uncond)`")
    return list(images)


# --------------------------------------------------------------------------------------------- the one entry point
@dataclass
class Generation:
    """Images of `generate_images`, in input order, and how they were made."""

    images: list[Any]
    pipeline_calls: int = 0
    batched: int = 0  # images computed inside a batched call (the rest ran one by one)
    notes: list[str] = field(default_factory=list)


def _broadcast(name: str, value: Any, n: int) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name} must be one value or one per image ({n}), got {len(values)}")
    return values


def single_image(pipe: Any, prompt: str | None, seed: int | None, cfg: float, steps: int,
                 negative_prompt: str | None = None, height: int | None = None, width: int | None = None,
                 embeds: dict[str, torch.Tensor] | None = None, latents: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, output_type: str = "pil") -> Any:
    """One plain pipeline call with the sampler already installed: the reference every batched image equals."""
    text = dict(embeds) if embeds is not None else dict(negative_prompt=negative_prompt)
    extra = {} if latents is None else {"latents": latents}
    return run_pipeline(pipe, prompt if embeds is None else None, seed, steps, cfg, generator=generator,
                        height=height, width=width, output_type=output_type, **text, **extra)[0]


def generate_images(pipe: Any, prompts: Sequence[str] | None, seeds: Sequence[int] | None, cfgs: Any = 7.5,
                    steps: int = 25, scheduler: Any = None, negative_prompts: Any = None,
                    height: int | None = None, width: int | None = None, *,
                    embeds: Sequence[dict[str, torch.Tensor]] | None = None,
                    latents: Sequence[torch.Tensor] | None = None,
                    generators: Sequence[torch.Generator] | None = None, batch: bool = True, max_batch: int = 16,
                    output_type: str = "pil", progress: Progress | None = None, what: str = "generate") -> Generation:
    """Image k of `prompts[k]` (or of precomputed `embeds[k]`) from `seeds[k]`'s noise (or `latents[k]` with
    `generators[k]`), each bit-identical to its single run, several per pipeline call where that stays exact.

    cfgs / negative_prompts: one value or one per image. scheduler: a short name, a scheduler, or None (keep the
    pipeline's own). batch=False runs every image alone. Arguments are taken as validated (callers check them).
    """
    n = len(embeds) if embeds is not None else len(prompts)
    cfg_list = [float(c) for c in _broadcast("cfgs", cfgs, n)]
    neg_list = _broadcast("negative_prompts", negative_prompts, n)
    seed_list = _broadcast("seeds", seeds, n) if seeds is not None else [None] * n
    lat_list = list(latents) if latents is not None else [None] * n
    gen_list = list(generators) if generators is not None else [None] * n
    result = Generation([None] * n)
    warned = False
    with using_scheduler(pipe, scheduler):
        batchable = batch and can_batch(pipe)
        groups: dict[bool, list[int]] = {}  # CFG on -> images
        for k in range(n):
            groups.setdefault(cfg_list[k] > 1, []).append(k)
        for cfg_on, members in groups.items():
            chunks = ([members[i:i + max_batch] for i in range(0, len(members), max_batch)] if batchable
                      else [[k] for k in members])
            for chunk in chunks:
                if len(chunk) > 1:
                    try:
                        cache: dict[tuple, dict] = {}
                        chunk_embeds = []
                        for k in chunk:
                            if embeds is not None:
                                chunk_embeds.append(embeds[k])
                                continue
                            key = (prompts[k], neg_list[k])
                            if key not in cache:
                                cache[key] = encode(pipe, prompts[k], neg_list[k], cfg_on)
                            chunk_embeds.append(cache[key])
                        gens = [gen_list[k] if gen_list[k] is not None else seed_generator(seed_list[k])
                                for k in chunk]
                        lat = torch.cat([lat_list[k] for k in chunk]) if latents is not None else None
                        out = batched_call(pipe, chunk_embeds, gens, [cfg_list[k] for k in chunk], steps, height,
                                           width, latents=lat, output_type=output_type)
                        for k, im in zip(chunk, out, strict=True):
                            result.images[k] = im
                        result.pipeline_calls += 1
                        result.batched += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
                        continue
                    except NotExact as err:
                        if not warned:
                            warnings.warn(f"{what}: not batching ({err}); running the images one by one",
                                          stacklevel=3)
                            result.notes.append(f"batching refused: {err}")
                        warned = True
                for k in chunk:
                    result.images[k] = single_image(
                        pipe, None if prompts is None else prompts[k], seed_list[k], cfg_list[k], steps, neg_list[k],
                        height, width, embeds=None if embeds is None else embeds[k], latents=lat_list[k],
                        generator=gen_list[k], output_type=output_type)
                    result.pipeline_calls += 1
                    if progress is not None:
                        progress(1)
    return result
