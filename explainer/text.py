"""What the text side of a pipeline computes: tokens of a prompt, the embeddings the denoiser reads, cosine similarity
between them, and the shipped CLIP pair's image <-> caption similarity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .adapters import get_adapter
from .arrays import to_numpy, to_rgb
from .capture import Recorder
from .validation import check_prompt, check_steps
from .words import Token

DEFAULT_PROMPT = "a red circle left of a blue square"


def text_pairs(pipe: Any) -> list[tuple[str, Any, str, Any]]:
    pairs = []
    for suffix in ("", "_2", "_3"):
        tok, enc = getattr(pipe, "tokenizer" + suffix, None), getattr(pipe, "text_encoder" + suffix, None)
        if tok is not None and enc is not None:
            pairs.append(("tokenizer" + suffix, tok, "text_encoder" + suffix, enc))
    if not pairs:
        raise ValueError(f"{type(pipe).__name__} has no tokenizer/text_encoder pair")
    return pairs


def prompt_tokens(pipe: Any, prompt: str) -> list[dict]:
    """The prompt as the (first) tokenizer sees it: index, token string, id and kind (start / word / end / padding).

    Tokens past the text encoder's limit are dropped by the tokenizer, as the pipeline drops them.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    tok = text_pairs(pipe)[0][1]
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    n_real = len(tok(prompt, truncation=True, max_length=tok.model_max_length).input_ids)
    out = []
    for i, (t, s) in enumerate(zip(ids, tok.convert_ids_to_tokens(ids), strict=True)):
        kind = "padding" if i >= n_real else "start" if t == tok.bos_token_id and i == 0 else \
            "end" if i == n_real - 1 and t == tok.eos_token_id else "word"
        out.append(dict(index=i, token=s, id=int(t), kind=kind))
    return out


def prompt_embeddings(pipe: Any, prompts: str | Sequence[str]) -> dict:
    """Text-encoder outputs for prompts, as the U-Net gets them (via `encode_prompts`):
    {"hidden": (n, L, D) (encoders concatenated, as SDXL feeds them), "pooled": (n, P) (the last encoder's pooled
    vector: the end-of-text state CLIP compares with images), "tokens": [[str, ...], ...], "n_real": [...]}, numpy.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a non-empty list of strings")
    e = encode_prompts(pipe, prompts)
    hidden = torch.cat(list(e.hidden_states.values()), dim=-1)
    pooled = list(e.pooled.values())[-1] if e.pooled else e.mean_tokens()
    return dict(hidden=to_numpy(hidden).astype(np.float32), pooled=to_numpy(pooled).astype(np.float32),
                tokens=[[str(t) for t in toks] for toks in e.tokens], n_real=[int(m.sum()) for m in e.mask])


def cosine_similarity(a: Any, b: Any | None = None) -> np.ndarray:
    """Cosine similarity between the rows of a and b (b = a when omitted), rows flattened."""
    x = to_numpy(a).reshape(len(a), -1).astype(np.float64)
    y = x if b is None else to_numpy(b).reshape(len(b), -1).astype(np.float64)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    yn = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return xn @ yn.T


def prompt_similarity(pipe: Any, prompts: Sequence[str], kind: str = "pooled") -> np.ndarray:
    """Cosine similarity matrix between prompts: kind="pooled" (CLIP's sentence vector) or "tokens" (the full
    token-by-dimension matrix the U-Net sees, flattened, padding included)."""
    if kind not in ("pooled", "tokens"):
        raise ValueError(f"kind must be 'pooled' or 'tokens', got {kind!r}")
    emb = prompt_embeddings(pipe, prompts)
    return cosine_similarity(emb["pooled"] if kind == "pooled" else emb["hidden"])


def load_clip(source: Any = None) -> Any:
    """The shipped model's `clip/` CLIPModel (text + vision). source: a pipeline loaded from a folder, a pipeline
    folder, or the clip folder itself; None = the shipped model."""
    from transformers import CLIPModel

    from .models import SHIPPED_MODEL

    if source is None:
        path = SHIPPED_MODEL
    elif isinstance(source, (str, Path)):
        path = Path(source)
    else:
        path = Path(getattr(source, "name_or_path", "") or "")
    folder = path if (path / "config.json").exists() and not (path / "model_index.json").exists() else path / "clip"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"no CLIP model at {folder}: the shipped model keeps its CLIP pair in a `clip/` "
                                "subfolder; other pipelines have no image tower to compare with")
    return CLIPModel.from_pretrained(folder, torch_dtype=torch.float32).eval()


def clip_similarity(clip: Any, images: Any, captions: Sequence[str], tokenizer: Any = None) -> np.ndarray:
    """Cosine similarity (n_images, n_captions) between CLIP image and text embeddings.

    images: uint8 (n, h, w, 3) (as `shapes.make_dataset` returns) or PIL images; preprocessed as in training:
    float in [-1, 1], (n, 3, h, w). tokenizer: defaults to the pipeline tokenizer saved beside the clip folder.
    """
    if tokenizer is None:
        from transformers import AutoTokenizer

        folder = Path(getattr(clip, "name_or_path", "") or "")
        tokenizer = AutoTokenizer.from_pretrained(folder.parent / "tokenizer")
    arr = np.stack([to_rgb(im) for im in images]) if not isinstance(images, np.ndarray) else images
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError(f"images must be uint8 (n, h, w, 3), got {arr.dtype} {arr.shape}")
    from .latents import to_pixels

    pixels = to_pixels(arr)
    ids = tokenizer(list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    with torch.no_grad():
        img = clip.get_image_features(pixel_values=pixels)
        txt = clip.get_text_features(input_ids=ids.input_ids, attention_mask=ids.attention_mask)
    img = getattr(img, "pooler_output", img)
    txt = getattr(txt, "pooler_output", txt)
    return cosine_similarity(img, txt)


# --------------------------------------------------------------------------------------------- embeddings
@dataclass
class PromptEmbeddings:
    """Text-encoder outputs for many prompts: what the U-Net would see for each (for maps of meaning, UMAP...)."""

    prompts: list[str]
    tokens: list[list[Token]]  # the denoiser's text positions per prompt (all encoders' parts, as in a Trace)
    hidden_states: dict[str, torch.Tensor]  # encoder name -> (N, T, D) per-token states as the denoiser gets them
    pooled: dict[str, torch.Tensor]  # encoder name -> (N, D') pooled output (end-of-text token, projected if any)
    mask: torch.Tensor  # (N, T) bool: True at real (non-padding) tokens of the first encoder
    masks: dict[str, torch.Tensor] | None = None  # encoder name -> (N, T_encoder) bool, for every encoder

    def mean_tokens(self, encoder: str | None = None) -> torch.Tensor:
        """(N, D) mean over each prompt's real tokens: a simple per-prompt vector besides the pooled one."""
        name = encoder or next(iter(self.hidden_states))
        h = self.hidden_states[name]
        m = (self.masks or {}).get(name, self.mask).to(h.dtype).unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp(min=1)


def encode_prompts(pipe: Any, prompts: Sequence[str], batch_size: int = 64) -> PromptEmbeddings:
    """Embed many prompts at once with the pipeline's own `encode_prompt` (no guidance branch)."""
    adapter = get_adapter(pipe)
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    prompts = [check_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    batch_size = check_steps(batch_size, "batch_size", maximum=100_000)
    rec = Recorder(1, (1, 1), attention=False)
    hidden: dict[str, list[torch.Tensor]] = {}
    pooled: dict[str, list[torch.Tensor]] = {}
    handles = [enc.register_forward_hook(rec.text_hook(name), with_kwargs=True) for name, enc in adapter.text_encoders]
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                chunk = prompts[i:i + batch_size]
                text, returned_pooled = adapter.encode_text(chunk)  # the family's own encode_prompt call
                for name, (c, _) in adapter.text_states(text, None, len(chunk), False).items():
                    hidden.setdefault(name, []).append(c.detach().cpu())
                for name, p in returned_pooled.items():
                    pooled.setdefault(name, []).append(p.detach().cpu())
    finally:
        for h in handles:
            h.remove()
    for name, calls in rec.text_calls.items():
        if name not in pooled and calls and calls[0]["pooled"] is not None:
            pooled[name] = [c["pooled"] for c in calls]
    hs = {name: torch.cat(parts).contiguous() for name, parts in hidden.items()}
    toks_spans = [adapter.tokens(p) for p in prompts]
    tokens = [toks for toks, _, _ in toks_spans]
    masks = {}
    for name, h in hs.items():
        rows = []
        for toks, _, spans in toks_spans:
            a, b = spans.get(adapter.token_span(name), (0, len(toks)))
            row = [not t.padding for t in toks[a:b]]
            rows.append(row if len(row) == h.shape[1] else [True] * h.shape[1])  # no token list: count them all
        masks[name] = torch.tensor(rows)
    mask = next(iter(masks.values()))
    return PromptEmbeddings(prompts, tokens, hs, {k: torch.cat(v) for k, v in pooled.items()}, mask, masks)
