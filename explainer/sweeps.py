"""Sweeps: image grids over seeds / CFG / steps / samplers / negative prompts, and interpolation filmstrips.

    res = ex.grid(pipe, "a red circle left of a blue square", seeds=[0, 1, 2], cfgs=[1, 3, 7.5, 12])
    res.image(row, col)     # PIL image of one cell
    ex.plots.plot_grid(res) # labelled grid: rows = seeds, columns = CFG; title = prompt + the fixed settings

Data only: the figures of a GridResult and a Filmstrip are `plots.plot_grid` and `plots.plot_interpolation`.

Every cell equals the single run (`generate`, which is also what `ex.trace(...).image` equals) bit for bit.

Cells that share steps and sampler and use CFG (> 1) run as one exact batched pipeline call; how that stays bit for
bit, and how it checks itself, is explained in `explainer.generation` (the one generation path).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import generation
from . import validation as V
from .schedulers import check_scheduler_name, scheduler_name_of

AXES = ("seeds", "cfgs", "steps", "schedulers", "negative_prompts")
_SINGULAR = {"seeds": "seed", "cfgs": "cfg", "steps": "steps", "schedulers": "scheduler",
             "negative_prompts": "negative_prompt"}
# the same default as ex.trace: None = the pipeline's own scheduler (it used to be "dpm++2m"; the shipped model's own
# scheduler is DPM++ 2M, so nothing changes there), so a cell equals a trace with the same settings
DEFAULT_SCHEDULER = None

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------- single runs
def _check_common(pipe: Any, height: int | None, width: int | None) -> tuple[int | None, int | None]:
    V.check_pipeline(pipe)
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    return V.check_image_size(pipe, height, width, math.lcm(8, factor))


def generate(pipe: Any, prompt: str, seed: int = 0, cfg: float = 7.5, steps: int = 25,
             scheduler: str | None = DEFAULT_SCHEDULER, negative_prompt: str | None = None,
             height: int | None = None, width: int | None = None) -> Any:
    """One plain, untraced pipeline call -> PIL image. The reference every grid cell equals (and `trace` too)."""
    V.check_prompt(prompt)
    seed, cfg, steps = V.check_seed(seed), V.check_cfg(cfg), V.check_steps(steps)
    negative_prompt = V.check_optional_prompt(negative_prompt)
    scheduler = generation.check_sampler(pipe, scheduler)
    height, width = _check_common(pipe, height, width)
    with generation.using_scheduler(pipe, scheduler):
        return generation.single_image(pipe, prompt, seed, cfg, steps, negative_prompt, height, width)


# --------------------------------------------------------------------------------------------- labels
def axis_label(axis: str, value: Any) -> str:
    """How a value of an axis is written on a grid: 'seed 3', 'CFG 7.5', '25 steps', 'euler_a', 'neg: “blue”'."""
    if axis == "seeds":
        return f"seed {value}"
    if axis == "cfgs":
        return f"CFG {value:g}"
    if axis == "steps":
        return f"{value} steps"
    if axis == "schedulers":
        return "pipeline's own sampler" if value is None else str(value)
    if axis == "negative_prompts":
        return "no negative" if value is None else f"neg: \u201c{value}\u201d"
    raise ValueError(f"axis must be one of {list(AXES)}, got {axis!r}")


def _caption(prompt: str, fixed: dict) -> str:
    parts = [f"\u201c{prompt}\u201d"]
    for axis in AXES:
        if axis in fixed:
            v = fixed[axis]
            if axis == "negative_prompts" and v is None:
                continue
            parts.append(_nobreak(axis_label(axis, v)))
    return " \u00b7 ".join(parts)


def _nobreak(label: str) -> str:
    """Keep a short setting ('25 steps') on one line when a title wraps."""
    return label if len(label) > 24 else label.replace(" ", "\u00a0")


# --------------------------------------------------------------------------------------------- grid
@dataclass
class GridResult:
    """Images of a grid sweep. `images[r][c]` is the cell at row value r, column value c (PIL images)."""

    prompt: str
    row_axis: str | None
    row_values: list
    col_axis: str
    col_values: list
    images: list[list[Any]]
    fixed: dict  # the scalar settings shared by every cell (axis name -> value), plus height/width
    seconds: float = 0.0
    pipeline_calls: int = 0
    batched_cells: int = 0  # cells computed inside a batched call (the rest ran one by one)
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.images), len(self.images[0])

    def image(self, row: int, col: int) -> Any:
        """The PIL image of one cell (row and col count from 0)."""
        rows, cols = self.shape
        if not (isinstance(row, (int, np.integer)) and isinstance(col, (int, np.integer))
                and 0 <= row < rows and 0 <= col < cols):
            raise IndexError(f"row must be from 0 to {rows - 1} and col from 0 to {cols - 1} for this "
                             f"{rows}x{cols} grid, got ({row!r}, {col!r})")
        return self.images[row][col]

    def cell_settings(self, row: int, col: int) -> dict:
        """Every setting of one cell (seed, cfg, steps, scheduler, negative_prompt), as `generate` takes them."""
        s = {_SINGULAR[a]: v for a, v in self.fixed.items() if a in _SINGULAR}
        if self.row_axis is not None:
            s[_SINGULAR[self.row_axis]] = self.row_values[row]
        s[_SINGULAR[self.col_axis]] = self.col_values[col]
        return s

    def row_labels(self) -> list[str]:
        return [axis_label(self.row_axis, v) for v in self.row_values] if self.row_axis else [""]

    def col_labels(self) -> list[str]:
        return [axis_label(self.col_axis, v) for v in self.col_values]

    def title(self) -> str:
        return _caption(self.prompt, self.fixed)

    def __repr__(self) -> str:
        return (f"GridResult({self.shape[0]}x{self.shape[1]}, rows={self.row_axis}, cols={self.col_axis}, "
                f"{self.seconds:.1f} s, {self.pipeline_calls} pipeline calls, {self.batched_cells} cells batched)")


def _as_axis(name: str, value: Any) -> tuple[bool, list]:
    """(is_axis, values): a list/tuple/range is an axis; anything else (including a string) is a fixed value."""
    if isinstance(value, (list, tuple, range, np.ndarray)):
        values = list(value)
        if not values:
            raise ValueError(f"{name} must not be an empty list")
        return True, values
    return False, [value]


def _check_value(axis: str, v: Any) -> Any:
    if axis == "seeds":
        return V.check_seed(v, "seeds")
    if axis == "cfgs":
        return V.check_cfg(v, "cfgs")
    if axis == "steps":
        return V.check_steps(v, "steps")
    if axis == "schedulers":
        return check_scheduler_name(v)
    return V.check_optional_prompt(v, "negative_prompts")


def grid(pipe: Any, prompt: str, seeds: int | Sequence[int] = 0, cfgs: float | Sequence[float] = 7.5,
         steps: int | Sequence[int] = 25, schedulers: str | None | Sequence[str | None] = DEFAULT_SCHEDULER,
         negative_prompts: str | None | Sequence[str | None] = None, height: int | None = None,
         width: int | None = None, rows: str | None = None, batch: bool = True, max_batch: int = 16,
         progress: Progress | bool | None = None) -> GridResult:
    """Images over one or two axes, the other settings fixed. Each cell equals `generate(...)` with its settings.

    An axis is any argument given as a list: seeds, cfgs, steps, schedulers (short names; None = the pipeline's own)
    or negative_prompts (None = no negative prompt). At most two lists. The first list (in the order above) gives
    the rows, the second the columns; one list gives a single row. `rows` names the row axis to transpose.
    batch: run cells that can share a pipeline call together (see the module docstring; the result is identical).
    max_batch: the most cells per pipeline call. progress: a callable (done, total) or True for a tqdm bar.
    """
    V.check_prompt(prompt)
    height, width = _check_common(pipe, height, width)
    V.check_bool(batch, "batch")
    max_batch = V.check_positive_int(max_batch, "max_batch")
    V.check_progress(progress)
    given = {"seeds": seeds, "cfgs": cfgs, "steps": steps, "schedulers": schedulers,
             "negative_prompts": negative_prompts}
    row_axis, col_axis, values, fixed = _grid_axes(given, rows)
    values["schedulers"] = [generation.check_sampler(pipe, s, "schedulers") for s in values["schedulers"]]
    row_vals = values[row_axis] if row_axis else [None]
    col_vals = values[col_axis]
    cells = _grid_cells(fixed, row_axis, row_vals, col_axis, col_vals)
    result = GridResult(prompt, row_axis, [] if row_axis is None else row_vals, col_axis, col_vals,
                        [[None] * len(col_vals) for _ in row_vals], _fixed_display(pipe, fixed, height, width))
    t0 = time.perf_counter()
    base_config = pipe.scheduler.config
    with _progress(progress, len(cells), "grid") as advance:
        groups: dict[tuple, list] = {}  # cells that can share a pipeline call: same steps and sampler
        for cell in cells:
            groups.setdefault((cell[2]["steps"], cell[2]["scheduler"]), []).append(cell)
        for (n_steps, sched), members in groups.items():
            settings = [s for _, _, s in members]
            run = generation.generate_images(
                pipe, [prompt] * len(members), [s["seed"] for s in settings], [s["cfg"] for s in settings],
                n_steps, generation.build_scheduler(pipe, sched, base_config),
                [s["negative_prompt"] for s in settings], height, width, batch=batch, max_batch=max_batch,
                progress=advance, what="grid")
            for (r, c, _), im in zip(members, run.images, strict=True):
                result.images[r][c] = im
            result.pipeline_calls += run.pipeline_calls
            result.batched_cells += run.batched
            result.notes.extend(n for n in run.notes if n not in result.notes)
    result.seconds = time.perf_counter() - t0
    return result


def _grid_axes(given: dict[str, Any], rows: str | None) -> tuple[str | None, str, dict[str, list], dict[str, Any]]:
    """(row axis or None, column axis, checked values of every argument, the fixed ones) from grid's arguments."""
    axes, fixed = [], {}
    values: dict[str, list] = {}
    for name in AXES:
        is_axis, vals = _as_axis(name, given[name])
        values[name] = [_check_value(name, v) for v in vals]
        if is_axis:
            axes.append(name)
        else:
            fixed[name] = values[name][0]
    if len(axes) > 2:
        raise ValueError(f"a grid has at most two axes, got lists for {axes}: give the others a single value")
    if not axes:
        axes = ["seeds"]  # one cell: a 1x1 grid labelled by its seed
        del fixed["seeds"]
    if rows is not None:
        if rows not in axes:
            raise ValueError(f"rows must name one of the grid's axes {axes}, got {rows!r}")
        axes = [rows] + [a for a in axes if a != rows]
    row_axis, col_axis = (axes[0], axes[1]) if len(axes) == 2 else (None, axes[0])
    return row_axis, col_axis, values, fixed


def _grid_cells(fixed: dict[str, Any], row_axis: str | None, row_vals: list, col_axis: str,
                col_vals: list) -> list[tuple[int, int, dict[str, Any]]]:
    """(row, col, settings as `generate` takes them) for every cell, row by row."""
    cells = []
    for r, rv in enumerate(row_vals):
        for c, cv in enumerate(col_vals):
            s = {_SINGULAR[a]: v for a, v in fixed.items()}
            if row_axis:
                s[_SINGULAR[row_axis]] = rv
            s[_SINGULAR[col_axis]] = cv
            cells.append((r, c, s))
    return cells


def _fixed_display(pipe: Any, fixed: dict[str, Any], height: int | None, width: int | None) -> dict[str, Any]:
    shown = dict(fixed)
    if shown.get("schedulers", "") is None:
        shown["schedulers"] = scheduler_name_of(pipe.scheduler)
    if height or width:
        shown.update(height=height, width=width)
    return shown


@contextlib.contextmanager
def _progress(progress: Progress | bool | None, total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """An `advance(k)` that moves a tqdm bar (progress=True) or calls progress(done, total) (a callable)."""
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="image")
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if bar is not None:
            bar.update(k)
        if callable(progress):
            progress(done, total)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.close()


# --------------------------------------------------------------------------------------------- interpolation
def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dim: int | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation from a (t=0) to b (t=1), over the whole tensor (dim=None) or along `dim`.

    Keeps Gaussian noise looking like Gaussian noise in between (a straight line would shrink its norm).
    Falls back to the straight line where a and b are (nearly) parallel. t=0 and t=1 return exact copies.
    """
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not abs(float(t)) <= 1e6:
        raise ValueError(f"t must be a finite number from -1e6 to 1e6 (0 = a, 1 = b; outside 0..1 extrapolates), "
                         f"got {t!r}")
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        raise ValueError(f"a and b must be tensors of the same shape, got {tuple(getattr(a, 'shape', ()))} and "
                         f"{tuple(getattr(b, 'shape', ()))}")
    if dim is not None:
        V.check_int(dim, "dim", -max(a.dim(), 1), max(a.dim(), 1) - 1)
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    a64, b64 = a.double(), b.double()
    if dim is None:
        dot, na, nb = (a64 * b64).sum(), a64.norm(), b64.norm()
    else:
        dot = (a64 * b64).sum(dim, keepdim=True)
        na, nb = a64.norm(dim=dim, keepdim=True), b64.norm(dim=dim, keepdim=True)
    cos = (dot / (na * nb).clamp_min(1e-300)).clamp(-1, 1)
    theta = torch.arccos(cos)
    sin = torch.sin(theta)
    straight = sin.abs() < eps
    safe = torch.where(straight, torch.ones_like(sin), sin)
    wa = torch.where(straight, torch.full_like(sin, 1 - t), torch.sin((1 - t) * theta) / safe)
    wb = torch.where(straight, torch.full_like(sin, t), torch.sin(t * theta) / safe)
    return (wa * a64 + wb * b64).to(a.dtype)


@dataclass
class Filmstrip:
    """Frames of an interpolation: `images[i]` at fraction `ts[i]` of the way from the first end to the second."""

    images: list[Any]
    ts: list[float]
    labels: list[str]
    title: str
    seconds: float = 0.0
    batched: bool = False

    def __repr__(self) -> str:
        return f"Filmstrip({len(self.images)} frames, {self.title!r})"


def _check_frames(frames: Any) -> list[float]:
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or not 2 <= frames <= 64:
        raise ValueError(f"frames must be an integer from 2 to 64, got {frames!r}")
    return [i / (frames - 1) for i in range(frames)]


def _check_interpolation(pipe: Any, frames: Any, cfg: Any, steps: Any, scheduler: Any, negative_prompt: Any,
                         height: Any, width: Any) -> tuple:
    """The settings both interpolations share, checked before any work: (frame fractions, cfg, steps, scheduler,
    negative_prompt, height, width)."""
    cfg, steps = V.check_cfg(cfg), V.check_steps(steps)
    negative_prompt, scheduler = V.check_optional_prompt(negative_prompt), generation.check_sampler(pipe, scheduler)
    height, width = _check_common(pipe, height, width)
    ts = _check_frames(frames)
    if generation.pipeline_kind(pipe) is None:
        raise V.UnsupportedPipelineError(f"pipe must be a Stable Diffusion or SDXL pipeline (interpolation feeds the "
                                         f"U-Net its own noise and embeddings), got {type(pipe).__name__}")
    return ts, cfg, steps, scheduler, negative_prompt, height, width


def _latent_shape(pipe: Any, height: int | None, width: int | None) -> tuple[int, int, int, int]:
    """The starting noise's shape, as the pipeline's family adapter gives the default size and the denoiser."""
    from .adapters import get_adapter

    adapter = get_adapter(pipe)
    dh, dw = adapter.default_size()
    f = adapter.vae_factor
    return (1, int(adapter.denoiser.config.in_channels), (height or dh) // f, (width or dw) // f)


def _run_frames(pipe: Any, embeds: list[dict], latents: list[torch.Tensor], generators: list[torch.Generator],
                cfg: float, steps: int, scheduler: str | None, height: int | None, width: int | None,
                batch: bool) -> tuple[list[Any], bool]:
    run = generation.generate_images(pipe, None, None, cfg, steps, scheduler, None, height, width, embeds=embeds,
                                     latents=latents, generators=generators, batch=batch, max_batch=len(embeds),
                                     what="interpolation")
    return run.images, run.batched > 0


def _advanced_generator(seed: int, shape: tuple, dtype: torch.dtype) -> torch.Generator:
    """The generator state a single run has after drawing its starting noise (ancestral samplers draw on from here)."""
    from diffusers.utils.torch_utils import randn_tensor

    g = generation.seed_generator(seed)
    randn_tensor(shape, generator=g, dtype=dtype)
    return g


def _settings_text(seed: Any, cfg: float, steps: int, scheduler: str | None, pipe: Any, negative: str | None) -> str:
    parts = [] if seed is None else [f"seed {seed}"]
    parts += [f"{steps} steps", f"CFG {cfg:g}", scheduler or scheduler_name_of(pipe.scheduler)]
    if negative:
        parts.append(f"neg: \u201c{negative}\u201d")
    return " \u00b7 ".join(_nobreak(p) for p in parts)


def interpolate_seeds(pipe: Any, prompt: str, seed_a: int = 0, seed_b: int = 1, frames: int = 7, cfg: float = 7.5,
                      steps: int = 25, scheduler: str | None = DEFAULT_SCHEDULER, negative_prompt: str | None = None,
                      height: int | None = None, width: int | None = None, batch: bool = True) -> Filmstrip:
    """Slerp between two seeds' starting noise, one image per frame; prompt and settings fixed.

    The first frame equals `generate(pipe, prompt, seed_a, ...)` exactly (for every sampler: ancestral samplers draw
    their later noise from seed_a's generator, as a single run does); the last one starts from seed_b's noise.
    """
    V.check_prompt(prompt)
    seed_a, seed_b = V.check_seed(seed_a, "seed_a"), V.check_seed(seed_b, "seed_b")
    ts, cfg, steps, scheduler, negative_prompt, height, width = _check_interpolation(
        pipe, frames, cfg, steps, scheduler, negative_prompt, height, width)
    t0 = time.perf_counter()
    emb = generation.encode(pipe, prompt, negative_prompt, cfg > 1)
    from diffusers.utils.torch_utils import randn_tensor

    shape, dtype = _latent_shape(pipe, height, width), emb["prompt_embeds"].dtype
    na = randn_tensor(shape, generator=generation.seed_generator(seed_a), dtype=dtype)
    nb = randn_tensor(shape, generator=generation.seed_generator(seed_b), dtype=dtype)
    latents = [slerp(na, nb, t) for t in ts]
    gens = [_advanced_generator(seed_a, shape, dtype) for _ in ts]
    images, batched = _run_frames(pipe, [emb] * len(ts), latents, gens, cfg, steps, scheduler, height, width, batch)
    labels = [f"seed {seed_a}" if t == 0 else f"seed {seed_b}" if t == 1 else f"t = {t:.2f}" for t in ts]
    title = (f"Noise slerp seed {seed_a} \u2192 {seed_b}: \u201c{prompt}\u201d \u00b7 "
             + _settings_text(None, cfg, steps, scheduler, pipe, negative_prompt))
    return Filmstrip(images, ts, labels, title, time.perf_counter() - t0, batched)


def interpolate_prompts(pipe: Any, prompt_a: str, prompt_b: str, seed: int = 0, frames: int = 7, cfg: float = 7.5,
                        steps: int = 25, scheduler: str | None = DEFAULT_SCHEDULER,
                        negative_prompt: str | None = None, height: int | None = None, width: int | None = None,
                        batch: bool = True) -> Filmstrip:
    """Slerp between two prompts' text embeddings (token by token; SDXL's pooled embedding too), seed fixed.

    The end frames equal `generate(pipe, prompt_a, seed, ...)` and `generate(pipe, prompt_b, seed, ...)` exactly.
    """
    V.check_prompt(prompt_a, "prompt_a")
    V.check_prompt(prompt_b, "prompt_b")
    seed = V.check_seed(seed)
    ts, cfg, steps, scheduler, negative_prompt, height, width = _check_interpolation(
        pipe, frames, cfg, steps, scheduler, negative_prompt, height, width)
    t0 = time.perf_counter()
    ea = generation.encode(pipe, prompt_a, negative_prompt, cfg > 1)
    eb = generation.encode(pipe, prompt_b, negative_prompt, cfg > 1)
    embeds = []
    for t in ts:
        e = dict(ea)  # the unconditional branch depends only on the negative prompt: the same for both
        e["prompt_embeds"] = slerp(ea["prompt_embeds"], eb["prompt_embeds"], t, dim=-1)
        if "pooled_prompt_embeds" in ea:
            e["pooled_prompt_embeds"] = slerp(ea["pooled_prompt_embeds"], eb["pooled_prompt_embeds"], t, dim=-1)
        embeds.append(e)
    from diffusers.utils.torch_utils import randn_tensor

    shape = _latent_shape(pipe, height, width)
    noise = randn_tensor(shape, generator=generation.seed_generator(seed), dtype=ea["prompt_embeds"].dtype)
    gens = [_advanced_generator(seed, shape, noise.dtype) for _ in ts]
    images, batched = _run_frames(pipe, embeds, [noise] * len(ts), gens, cfg, steps, scheduler, height, width,
                                  batch)
    labels = [f"\u201c{prompt_a}\u201d" if t == 0 else f"\u201c{prompt_b}\u201d" if t == 1 else f"t = {t:.2f}"
              for t in ts]
    title = (f"Prompt-embedding slerp \u201c{prompt_a}\u201d \u2192 \u201c{prompt_b}\u201d \u00b7 "
             + _settings_text(seed, cfg, steps, scheduler, pipe, negative_prompt))
    return Filmstrip(images, ts, labels, title, time.perf_counter() - t0, batched)
