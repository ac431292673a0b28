"""Argument checks shared by the trace, the sweeps, the GAN, the ControlNet helpers, the attention scores and the
views: raised before any heavy work, each naming the parameter and what is allowed. All raise ValueError (TypeError-like
mistakes included, so one `except ValueError` catches them; a missing folder raises MissingPathError, which is both a
FileNotFoundError and a ValueError).

The one check per kind of argument: prompts (`check_prompt`, `check_prompts`: one string is one prompt, never split into
letters), seeds (`check_seed`, `check_seeds`: integers 0..2**64-1, not bool / float / str), numbers (`check_cfg`,
`check_number`, `check_numbers`, `check_int`, `check_steps`, `check_positive_int`), samplers (`check_sampler_name`: the
adapters' and `generation.check_sampler`'s one check, so U-Net samplers are refused on flow-matching models everywhere),
image sizes and memory (`check_image_size`: a run is refused when its estimate exceeds MEMORY_SHARE = 80 % of the free
memory, and the message says so), control maps (`check_control_image`: finite, and the image's own size), devices and
folders (`check_device`, `check_folder`: local only, nothing downloaded), pipelines (`check_pipeline`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

MAX_STEPS = 1000
MAX_PROMPT_CHARS = 10_000  # far above any text encoder's limit (77 CLIP / 512 T5 tokens); refused before tokenizing
MAX_LISTED_WORDS = 20  # a warning lists at most this many words, then says how many more
MAX_SEED = 2**64 - 1
MAX_CFG = 100.0  # above this the guided prediction only saturates (and huge values overflow to NaN: a black image)
SLOW_AREA_FACTOR = 16  # warn when an image has this many times the model's default pixel count
MEMORY_SHARE = 0.8  # a run whose memory estimate exceeds this share of the free memory is refused before it starts


def check_prompt(prompt: object, name: str = "prompt", allow_empty: bool = True) -> str:
    """A string of at most MAX_PROMPT_CHARS characters. Empty (or blank) is allowed where the pipeline allows it: it is
    the unconditional prompt."""
    if not isinstance(prompt, str):
        raise ValueError(f"{name} must be a string, got {type(prompt).__name__} {prompt!r:.60}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name} must be at most {MAX_PROMPT_CHARS:,} characters, got {len(prompt):,} characters "
                         "(a text encoder reads at most a few hundred tokens of it anyway)")
    if not allow_empty and not prompt.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return prompt


def check_optional_prompt(prompt: object, name: str = "negative_prompt") -> str | None:
    return None if prompt is None else check_prompt(prompt, name)


def check_steps(steps: object, name: str = "steps", maximum: int = MAX_STEPS) -> int:
    """An integer number of denoising steps, 1..maximum."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, got {steps!r}")
    steps = int(steps)
    if not 1 <= steps <= maximum:
        raise ValueError(f"{name} must be from 1 to {maximum}, got {steps}")
    return steps


def check_cfg(cfg: object, name: str = "cfg", maximum: float = MAX_CFG) -> float:
    """Classifier-free guidance scale: a number from 0 to `maximum` (<= 1 means no unconditional pass)."""
    if isinstance(cfg, bool) or not isinstance(cfg, numbers.Real):
        raise ValueError(f"{name} must be a number from 0 to {maximum:g} (e.g. 7.5), got {cfg!r}")
    cfg = float(cfg)
    if not math.isfinite(cfg) or not 0 <= cfg <= maximum:
        raise ValueError(f"{name} must be a number from 0 to {maximum:g} (e.g. 7.5), got {cfg}")
    return cfg


def check_seed(seed: object, name: str = "seed") -> int:
    """An integer from 0 to 2**64 - 1 (what torch.Generator.manual_seed accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{name} must be an integer from 0 to 2**64-1, got {type(seed).__name__} {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{name} must be from 0 to 2**64-1, got {seed}")
    return int(seed)


def check_size(value: object, name: str, multiple: int, maximum: int = 8192) -> int | None:
    """Image height or width in pixels: None (the model's default) or a positive multiple of `multiple`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be None or an integer multiple of {multiple}, got {value!r}")
    value = int(value)
    if value <= 0 or value % multiple or value > maximum:
        raise ValueError(f"{name} must be a positive multiple of {multiple} (at most {maximum}) for this pipeline, "
                         f"got {value}")
    return value


def default_image_size(pipe: object) -> tuple[int, int]:
    """(height, width) in pixels the pipeline draws when none is given: its denoiser's sample size x the VAE factor."""
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    size = getattr(pipe, "default_sample_size", None)
    if size is None:
        den = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        size = den.config.sample_size if den is not None else 64
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return int(h) * factor, int(w) * factor


def available_memory(device: object = "cpu") -> int | None:
    """Bytes free for a run on `device` (CUDA: the device's free memory; CPU: MemAvailable), None if unknown."""
    try:
        import torch

        if str(device).startswith("cuda") and torch.cuda.is_available():
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
    except Exception:  # noqa: BLE001 (no reading: no refusal)
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def estimate_run_bytes(pipe: object, height: int, width: int, batch: int = 1) -> int:
    """A lower bound on the memory one generation needs at this size: the VAE decoder's widest full-resolution
    activation (about five live at once) or the denoiser's first-level activations with CFG's two branches, whichever is
    larger. Used only to refuse sizes that cannot fit before any work starts."""
    import torch

    den = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    vae = getattr(pipe, "vae", None)
    item = torch.empty((), dtype=getattr(den, "dtype", torch.float32)).element_size()
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    latent_px = (height // factor) * (width // factor)
    den_ch = int(max(den.config.get("block_out_channels", None) or [den.config.get("num_attention_heads", 8) *
                                                                     den.config.get("attention_head_dim", 64)]))
    den_bytes = 2 * batch * den_ch * latent_px * item * 4
    vae_ch = int(max(vae.config.get("block_out_channels", [128]))) if vae is not None else 0
    vae_bytes = vae_ch * height * width * item * 5  # a conv's input and output and the norm's temporaries
    return int(max(den_bytes, vae_bytes))


def _bytes_text(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 0.1 * 2**30 else f"{n / 2**20:.1f} MiB"


def check_image_size(pipe: object, height: object, width: object, multiple: int, batch: int = 1,
                     device: object = None) -> tuple[int | None, int | None]:
    """Check height / width (None = the model's default) before any work: a positive multiple of `multiple`; one
    side alone gets the other from the model's default (so image, trace and attention maps agree); a size whose
    memory estimate exceeds the free memory is refused naming height and width; a size far above the model's
    default draws a warning (the run grows with the pixel count)."""
    height, width = check_size(height, "height", multiple), check_size(width, "width", multiple)
    if height is None and width is None:
        return None, None
    dh, dw = default_image_size(pipe)
    height, width = height or dh, width or dw
    device = device if device is not None else getattr(pipe, "device", "cpu")
    need, free = estimate_run_bytes(pipe, height, width, batch), available_memory(device)
    if free is not None and need > MEMORY_SHARE * free:
        raise ValueError(f"height x width = {height} x {width} needs at least {_bytes_text(need)} for one run, "
                         f"more than the limit of {MEMORY_SHARE:.0%} of the memory free on {device}: "
                         f"{_bytes_text(MEMORY_SHARE * free)} ({_bytes_text(free)} free). Choose a smaller "
                         f"height/width (this model's own size is {dh} x {dw})")
    ratio = height * width / (dh * dw)
    if ratio >= SLOW_AREA_FACTOR:
        import warnings

        warnings.warn(f"height x width = {height} x {width} is {ratio:g} times the pixels of this model's own "
                      f"{dh} x {dw}: the run takes roughly {ratio:g} times as long (or more), and a model drawn far "
                      "from its training size tends to repeat or break its objects", UserWarning, stacklevel=3)
    return height, width


def _listed(words: Sequence[str]) -> str:
    shown = ", ".join(repr(str(w)) for w in words[:MAX_LISTED_WORDS])
    more = len(words) - MAX_LISTED_WORDS
    return shown + (f" and {more:,} more" if more > 0 else "")


def warn_dropped_words(dropped: Sequence[str], limit: int, name: str = "prompt", stacklevel: int = 3) -> None:
    """Warn that the text encoder's token limit cut words off `name` (the pipeline drops them too)."""
    if dropped:
        import warnings

        n = len(dropped)
        what = f"{n:,} words past the limit are" if n != 1 else "1 word past the limit is"
        warnings.warn(f"{name} is longer than the text encoder's {limit} tokens; {what} dropped (the model never "
                      f"sees them): {_listed(list(dropped))}", UserWarning, stacklevel + 1)


def _pipeline_tokenizers(pipe: object) -> list:
    out: list = []
    for attr in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        tok = getattr(pipe, attr, None)
        if tok is not None and all(tok is not t for t in out):
            out.append(tok)
    return out


def unknown_words(tokenizer: object, text: str) -> list[str]:
    """The words of `text` (as `explainer.words.split_words` splits it) that `tokenizer` writes as its unknown token,
    in order, each once (case-insensitive). A tokenizer without an unknown token (byte-level BPE) returns []."""
    import warnings

    from .words import split_words

    unk = getattr(tokenizer, "unk_token_id", None)
    others = {getattr(tokenizer, f"{k}_token_id", None) for k in ("bos", "eos", "pad")}
    if unk is None or unk in others or not text.strip():  # CLIP's unk is its end token: its BPE never needs it
        return []
    words = split_words(text)
    hits: list[str] = []
    if getattr(tokenizer, "is_fast", False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sequence longer than the maximum": only the offsets are read
            enc = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        for tid, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            if tid == unk and e > s:
                hits.extend([w for w, ws, we in words if s < we and e > ws] or [text[s:e]])
    else:  # no offsets: one word at a time
        for w, _, _ in words:
            if unk in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)):
                hits.append(w)
    return _distinct(hits)


def _distinct(words: Sequence[str]) -> list[str]:
    """`words` in order, each once (case-insensitive: the first spelling is kept)."""
    out: dict[str, str] = {}
    for w in words:
        out.setdefault(w.lower(), w)
    return list(out.values())


def check_vocabulary(pipe: object, texts: Sequence[str], name: str = "prompt", stacklevel: int = 3) -> list[str]:
    """Warn once when words of `texts` become a tokenizer's unknown token (`<unk>`): the model cannot read them.

    Not an error: a learner may type a word the model never learned on purpose. Returns the unknown words."""
    tokenizers = _pipeline_tokenizers(pipe)
    found = _distinct([w for tok in tokenizers for text in dict.fromkeys(texts) for w in unknown_words(tok, text)])
    if found:
        import warnings

        unk = next((t.unk_token for t in tokenizers if getattr(t, "unk_token", None)), "<unk>")
        warnings.warn(f"{name}: the model cannot read {_listed(found)}: its tokenizer has no token for "
                      f"{'it' if len(found) == 1 else 'them'}, so the text encoder sees only {unk} there"
                      f"{_known_words_note(tokenizers[0], found, texts)}", UserWarning, stacklevel + 1)
    return found


_FILLER = {"a", "an", "the", "of", "in", "on", "at", "with", "and", "to", "photo", "picture", "image", "is", "are"}


def _known_words_note(tok: object, unknown: Sequence[str], texts: Sequence[str]) -> str:
    """For a word-level vocabulary (our own models): the known words nearest each unknown one, and whether a prompt
    names nothing the model knows at all."""
    import difflib

    model = getattr(getattr(tok, "backend_tokenizer", None), "model", None)
    if type(model).__name__ != "WordLevel":
        return ""
    special = set(getattr(tok, "all_special_tokens", []))
    vocab = sorted(w for w in tok.get_vocab() if w not in special)
    near = []
    for w in unknown:
        close = difflib.get_close_matches(w.lower(), vocab, n=3, cutoff=0.6)
        near.append(f"{w!r}: nearest known {', '.join(close)}" if close else f"{w!r}: no known word is close")
    note = "; " + "; ".join(near)
    lost = {w.lower() for w in unknown}
    from .words import split_words

    for text in texts:
        content = [w.lower() for w, _, _ in split_words(text) if w.lower() not in _FILLER and w.isalpha()]
        if content and all(w in lost for w in content):
            note += f". {text!r} names nothing this model knows: every word that would name something is unknown to it"
    return note


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_step_index(step: object, n_steps: int, name: str = "step") -> int:
    """A step index in -n..n-1 (negative counts from the end); returns it as 0..n-1."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"{name} must be an integer step index from 0 to {n_steps - 1}, got {step!r}")
    step = int(step)
    if not -n_steps <= step < n_steps:
        raise ValueError(f"{name} must be from 0 to {n_steps - 1} (or -{n_steps} to -1 from the end): "
                         f"this trace has {n_steps} steps, got {step}")
    return step % n_steps


def check_positive_int(value: object, name: str, maximum: int | None = None) -> int:
    """An integer >= 1 (numpy integers too), at most `maximum` when given."""
    top = f" to {maximum:,}" if maximum is not None else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer from 1{top}, got {value!r}")
    value = int(value)
    if value < 1 or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be from 1{top}, got {value}")
    return value


def check_real(value: object, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite real number (numpy floats too, never a bool or a string), in [low, high] when they are given."""
    span = (f" from {low:g} to {high:g}" if low is not None and high is not None
            else f" >= {low:g}" if low is not None else f" <= {high:g}" if high is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number{span}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be a finite number{span}, got {value}")
    return value


def check_progress(progress: object, name: str = "progress") -> object:
    """None / False (quiet), True (a tqdm bar) or a callable(done, total)."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return progress
    raise ValueError(f"{name} must be None, True (a progress bar), False or a callable(done, total), got {progress!r}")


def check_choice(value: object, allowed: Sequence, name: str) -> object:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _bounds_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def check_number(value: object, name: str, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (numpy scalars too; not bool, not a string) within the bounds: low <= value <= high
    (`low_open` / `high_open` make that end strict; None = unbounded). Returns it as a float."""
    bounds = _bounds_text(low, high, low_open, high_open)
    want = f"{name} must be a finite number" + (f" {bounds}" if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{want}, got {type(value).__name__} {value!r:.60}")
    v = float(value)
    if (not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low))
            or (high is not None and (v >= high if high_open else v > high))):
        raise ValueError(f"{want}, got {v:g}")
    return v


def check_int(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    """An integer (numpy integers too; not bool, not a float such as 1.0) with low <= value <= high (None =
    unbounded)."""
    bounds = _bounds_text(low, high, False, False)
    want = f"{name} must be an integer" + (f" {bounds}" if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{want}, got {type(value).__name__} {value!r:.60}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{want}, got {v}")
    return v


def _is_list_like(value: object) -> bool:
    """A list, tuple, range or 1-D numpy array (not a string, a dict, a set or a generator)."""
    if isinstance(value, (list, tuple, range)):
        return True
    return type(value).__name__ == "ndarray" and getattr(value, "ndim", None) == 1


def check_seeds(seeds: object, name: str = "seeds", single: bool = True, allow_empty: bool = False) -> list[int]:
    """A non-empty list of seeds (integers from 0 to 2**64-1; numpy integers too, not bool, not float, not str); a
    single integer is one seed when `single`. A string is refused, never read character by character."""
    if single and isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        return [check_seed(seeds, name)]
    if not _is_list_like(seeds):
        what = "an integer or a list of integers" if single else "a list of integers"
        raise ValueError(f"{name} must be {what} from 0 to 2**64-1, got {type(seeds).__name__} {seeds!r:.60}")
    out = [check_seed(s, f"{name}[{i}]") for i, s in enumerate(seeds)]
    if not out and not allow_empty:
        raise ValueError(f"{name} must hold at least one seed, got an empty {type(seeds).__name__}")
    return out


def check_prompts(prompts: object, name: str = "prompts", single: bool = True, allow_empty: bool = False
                  ) -> list[str]:
    """A non-empty list of prompt strings, each checked by `check_prompt` (and non-blank unless `allow_empty`).
    A single string is ONE prompt (wrapped in a list) when `single`, never split into characters; else refused."""
    if isinstance(prompts, str):
        if not single:
            raise ValueError(f"{name} must be a list of prompt strings, got a single string {prompts!r:.60} "
                             f"(write [{prompts!r:.40}] for one prompt)")
        return [check_prompt(prompts, name, allow_empty=allow_empty)]
    if not isinstance(prompts, (list, tuple)):
        raise ValueError(f"{name} must be a prompt string or a list of prompt strings, got {type(prompts).__name__} "
                         f"{prompts!r:.60}")
    if not prompts:
        raise ValueError(f"{name} must hold at least one prompt, got an empty {type(prompts).__name__}")
    return [check_prompt(p, f"{name}[{i}]", allow_empty=allow_empty) for i, p in enumerate(prompts)]


def check_numbers(values: object, name: str, low: float | None = None, high: float | None = None, *,
                  low_open: bool = False, high_open: bool = False, single: bool = True) -> list[float]:
    """A non-empty list of finite numbers within the bounds (see `check_number`); one number alone when `single`."""
    if single and isinstance(values, numbers.Real) and not isinstance(values, bool):
        return [check_number(values, name, low, high, low_open=low_open, high_open=high_open)]
    if not _is_list_like(values):
        bounds = _bounds_text(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a list of finite numbers {bounds}, got {type(values).__name__} "
                         f"{values!r:.60}")
    out = [check_number(v, f"{name}[{i}]", low, high, low_open=low_open, high_open=high_open)
           for i, v in enumerate(values)]
    if not out:
        raise ValueError(f"{name} must hold at least one value, got an empty {type(values).__name__}")
    return out


def check_same_length(name_a: str, a: Sequence, name_b: str, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length (one {name_b} per {name_a}), got "
                         f"{len(a)} and {len(b)}")


def check_finite(tensor: object, name: str) -> None:
    """Refuse a tensor / array holding NaN or infinity (it would decode to a black image, not an error)."""
    import torch

    t = tensor if isinstance(tensor, torch.Tensor) else torch.as_tensor(tensor)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite: it holds {bad:,} NaN or infinite value(s)")


def check_pipeline(pipe: object, name: str = "pipe") -> object:
    """A diffusers text-to-image pipeline (explainer.load_pipeline(...)): callable, with a scheduler and a U-Net or a
    transformer to denoise with."""
    den = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if not callable(pipe) or getattr(pipe, "scheduler", None) is None or den is None:
        raise ValueError(f"{name} must be a diffusers pipeline (e.g. explainer.load_pipeline()), got "
                         f"{type(pipe).__name__} {pipe!r:.40}")
    return pipe


# --------------------------------------------------------------------------------------------- samplers
def check_sampler_name(name: object, valid: Sequence[str], pipeline: str, param: str = "scheduler") -> str | None:
    """None keeps the pipeline's own sampler; otherwise one of `valid`, the short names that fit this pipeline's
    family (adapter.samplers()): the one sampler check of `trace`, `generate`, `grid`, the interpolations and every
    generation through `explainer.generation`."""
    if name is None:
        return None
    if not isinstance(name, str) or name.lower() not in valid:
        from .schedulers import FLOW_SCHEDULERS, SCHEDULERS

        why = ""
        if isinstance(name, str) and name.lower() in SCHEDULERS and set(valid) <= set(FLOW_SCHEDULERS):
            why = (f" ({name!r} is a U-Net (noise-prediction) sampler; {pipeline} is a flow-matching model, which "
                   "only flow-matching samplers draw correctly)")
        elif isinstance(name, str) and name.lower() in FLOW_SCHEDULERS:
            why = f" ({name!r} is a flow-matching sampler, for SD3 / Flux / DiT pipelines)"
        raise ValueError(f"{param} must be None (keep the pipeline's own) or one of {list(valid)} for {pipeline}, "
                         f"got {name!r}{why}")
    return name.lower()


# --------------------------------------------------------------------------------------------- devices and folders
def check_device(device: object, name: str = "device") -> str:
    """"cpu", "cuda", "cuda:N" or "mps" (or a torch.device), refused when this machine does not have it."""
    import torch

    text = str(device) if isinstance(device, (str, torch.device)) else None
    kind = text.split(":")[0] if text else None
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={text!r} needs a CUDA GPU, and torch sees none on this machine "
                             f"(torch {torch.__version__}); use device='cpu'")
        index = text.split(":")[1] if ":" in text else "0"
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ValueError(f"{name}={text!r}: this machine has CUDA devices 0 to {torch.cuda.device_count() - 1}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{name}='mps' needs Apple's Metal backend, which torch does not see here; use 'cpu'")
    return text


class UnsupportedPipelineError(NotImplementedError, ValueError):
    """A pipeline family this function does not handle: both a NotImplementedError and a ValueError naming `pipe`."""


class MissingPathError(FileNotFoundError, ValueError):
    """A path argument that names no such folder or file: both a FileNotFoundError and a ValueError (so one
    `except ValueError` catches every bad argument)."""


def check_folder(path: object, name: str, needs: Sequence[str] = ()) -> object:
    """A local folder (str or os.PathLike) holding each of `needs` (relative paths). Never a hub id: nothing is
    downloaded. Returns it as a pathlib.Path."""
    import os
    from pathlib import Path

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError(f"{name} must be a local folder (str or path), got {type(path).__name__} {path!r:.60}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise MissingPathError(f"{name} must be a local folder, and {str(folder)!r} is not one (nothing is "
                                "downloaded: give the path of a folder on this machine)")
    missing = [n for n in needs if not (folder / n).exists()]
    if missing:
        raise MissingPathError(f"{name} {str(folder)!r} lacks {', '.join(missing)}: it must hold "
                                f"{', '.join(needs)}")
    return folder


# --------------------------------------------------------------------------------------------- control maps
CONTROL_RANGE = (0.0, 10.0)  # controlnet_conditioning_scale


def check_control_image(image: object, name: str, size: tuple[int, int] | None = None) -> object:
    """A control map: a PIL image, or an (h, w, 3) numpy array (uint8 0..255, or floats in [0, 1], all finite).
    With `size` = (height, width) of the image to draw, the map must have that size: the pipeline would otherwise
    draw at the map's size (or stretch it) without saying so. Returns an RGB PIL image."""
    import numpy as np
    from PIL import Image

    if isinstance(image, Image.Image):
        out = image.convert("RGB")
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"{name} must be a PIL image or an (h, w, 3) array, got an array of shape {image.shape}")
        if image.dtype == np.uint8:
            out = Image.fromarray(image)
        elif image.dtype.kind in "fiub":
            a = image.astype(np.float64)
            if not np.isfinite(a).all():
                raise ValueError(f"{name} must be finite: it holds {int((~np.isfinite(a)).sum()):,} NaN or infinite "
                                 "value(s) (a float map holds values in [0, 1])")
            if a.min() < 0 or a.max() > 1:
                raise ValueError(f"{name}: a float array must hold values in [0, 1] (or pass uint8 0..255), "
                                 f"got {image.dtype} values in [{a.min():.3g}, {a.max():.3g}]")
            out = Image.fromarray((a * 255).round().astype(np.uint8))
        else:
            raise ValueError(f"{name} must hold numbers (uint8 0..255 or floats in [0, 1]), got dtype {image.dtype}")
    else:
        raise ValueError(f"{name} must be a PIL image or an (h, w, 3) numpy array, got {type(image).__name__}")
    if size is not None and (out.height, out.width) != tuple(size):
        h, w = size
        raise ValueError(f"{name} is {out.height} x {out.width} (height x width), but the image is drawn at "
                         f"{h} x {w}: the map must have the image's size. Resize it yourself "
                         f"(map.resize(({w}, {h}))) or pass height={out.height}, width={out.width} to draw at the "
                         "map's size")
    return out
