"""Attention probes: the attention math, and every probe that reads a diffusers attention layer while it runs.

A leaf module (it imports nothing from the package). A probe writes what it measures to a small *sink* (`Sink`
below: the recorder of `trace()`, or a plain list/dict store of an experiment), never to a particular recorder.

How `trace()` reads a layer (`AttentionProbe`): forward hooks, never a replaced processor, so the layer's output stays
on diffusers' own processor path (SDPA / the dispatch backend), bit for bit.
  * a forward pre-hook on the attention module notes the call (the rows to record, the text length, Flux's rotary
    embedding, PixArt's additive mask) and a forward hook on it computes the map when the layer has finished;
  * in between, forward hooks on the layer's own modules keep the queries and keys *as the processor computes them*:
    the QK-norm outputs `norm_q` and `norm_k` / `norm_added_k` where the layer has QK-norm, else the projections
    `to_q` and `to_k` / `add_k_proj`; only the recorded rows (the conditional half), as views (no copy);
  * Flux: the rotary embedding is applied to those rows exactly as the layer applies it (diffusers'
    `apply_rotary_emb`, in the model's dtype), image queries against text keys;
  * where a layer did not call those modules (fused projections: `fuse_qkv_projections` makes it call `to_qkv` /
    `to_kv`), the probe falls back to recomputing q and k from the layer's inputs with its own weights
    (`cross_attention_qk`, `joint_attention_qk`, `flux_attention_qk`).
The map: softmax(q k^T * scale) over the text keys in fp32 (q and k upcast *before* the product; `scale` the layer's
own `attn.scale`, or head_dim^-0.5 as SDPA uses when the layer has none), the mean over heads, and only the columns
the sink asks for (`sink.columns`: the prompt's real tokens) plus one last column summing the rest of each row (the
padding's share, so rows still sum to 1 and nothing is hidden), taken with one product by a 0/1 selector.

What each family's probe measures:
  - U-Net and PixArt cross-attention ("cross"): image queries x text keys (PixArt's T5 mask added as the layer gets it);
  - SD3 joint attention ("joint"): image queries x text keys, the text block of the joint softmax renormalised over
    the text tokens (= a softmax over the text keys alone);
  - Flux double-stream ("flux_double") the same with rotary; single-stream ("flux_single"): the block attends over
    [text; image], split at the text length the transformer got (`sink.n_text`).
Experiments' probes (kept here so the attention math is in one place): `SelfAttentionProbe` (one U-Net
self-attention layer), `BothWaysProbe` (an SD3 block's joint softmax, both ways), `record_cross_attention` (every
cross-attention map of a bare U-Net call) and `concept_block` (ConceptAttention's extra tokens through one SD3 block).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
import torch.nn.functional as F

KINDS = ("cross", "joint", "flux_double", "flux_single")


class Sink(Protocol):
    """Where `AttentionProbe` writes. `rows`: the batch rows of the current denoiser call to record (None: skip the
    call); `n_text`: the text length of the current call; `columns`: the text positions to keep (None: all);
    `add_attention(group, probs)`: probs (rows, queries, kept columns [+ 1 rest column]) fp32."""

    rows: slice | None
    n_text: int
    columns: torch.Tensor | None

    def add_attention(self, group: str | None, probs: torch.Tensor) -> None: ...


# --------------------------------------------------------------------------------------------- attention math
def layer_scale(attn: Any, head_dim: int) -> float:
    """The scale the layer's softmax uses: its own `attn.scale`, else head_dim^-0.5 (SDPA's default)."""
    s = getattr(attn, "scale", None)
    return float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else head_dim ** -0.5


def column_selector(columns: torch.Tensor, n_keys: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_keys, len(columns) + 1) 0/1 matrix: column j picks key `columns[j]`, the last column sums every other key
    (the padding). probs @ it keeps the chosen columns exactly and the rest's total; rows still sum to 1."""
    sel = torch.zeros(n_keys, len(columns) + 1, dtype=dtype, device=columns.device)
    sel[columns, torch.arange(len(columns), device=columns.device)] = 1.0
    rest = torch.ones(n_keys, dtype=torch.bool, device=columns.device)
    rest[columns] = False
    sel[rest, -1] = 1.0
    return sel


def attention_probs(q: torch.Tensor, k: torch.Tensor, scale: float, mask: torch.Tensor | None = None,
                    average_heads: bool = True, select: torch.Tensor | None = None) -> torch.Tensor:
    """q (b, heads, Q, d), k (b, heads, T, d) -> softmax(q k^T * scale) in fp32 (upcast before the product).

    mask: an additive bias (b, T) or (b, 1, T). select: a `column_selector` (T, C + 1) keeping C key positions and
    the rest's total as a last column. Returns (b, Q, T or C + 1) averaged over heads, or (b, heads, Q, ...)."""
    scores = torch.matmul(q.float() * scale, k.float().transpose(-1, -2))
    if mask is not None:
        scores = scores + mask.float().reshape(mask.shape[0], 1, 1, -1)
    probs = scores.softmax(dim=-1)
    if select is not None:
        probs = probs @ select
    return probs.mean(dim=1) if average_heads else probs


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(b, N, heads * d) -> (b, heads, N, d)."""
    return x.view(x.shape[0], -1, heads, x.shape[-1] // heads).transpose(1, 2)


def cross_attention_qk(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                       temb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """q (b, heads, Q, d), k (b, heads, T, d) of a diffusers `Attention` cross-attention layer, recomputed as
    AttnProcessor2_0 computes them (spatial/group norm, to_q/to_k, QK-norm)."""
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    q, k = _heads(attn.to_q(hidden_states), attn.heads), _heads(attn.to_k(encoder_hidden_states), attn.heads)
    if getattr(attn, "norm_q", None) is not None:
        q = attn.norm_q(q)
    if getattr(attn, "norm_k", None) is not None:
        k = attn.norm_k(k)
    return q, k


def cross_attention_probs(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                          temb: torch.Tensor | None = None, average_heads: bool = True,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T * scale) of a cross-attention layer (recomputed): (batch, queries, tokens) averaged over heads,
    or (batch, heads, queries, tokens); fp32, rows sum to 1. attention_mask: the additive bias the layer receives."""
    q, k = cross_attention_qk(attn, hidden_states, encoder_hidden_states, temb)
    return attention_probs(q, k, layer_scale(attn, q.shape[-1]), attention_mask, average_heads)


def joint_attention_qk(attn: Any, hidden_states: torch.Tensor,
                       encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SD3 (MMDiT) image queries and text keys, recomputed as JointAttnProcessor2_0 projects and normalises them."""
    q = _heads(attn.to_q(hidden_states), attn.heads)
    k = _heads(attn.add_k_proj(encoder_hidden_states), attn.heads)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_added_k is not None:
        k = attn.norm_added_k(k)
    return q, k


def joint_attention_probs(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                          average_heads: bool = True) -> torch.Tensor:
    """SD3 joint attention, image queries x text keys: the text block of the joint softmax renormalised over the
    text tokens (= softmax over the text keys alone)."""
    q, k = joint_attention_qk(attn, hidden_states, encoder_hidden_states)
    return attention_probs(q, k, layer_scale(attn, q.shape[-1]), None, average_heads)


def _rotary(x: torch.Tensor, rotary: Any, part: slice) -> torch.Tensor:
    """x (b, S, heads, d) with Flux's rotary embedding for the positions `part` of [text; image]."""
    if rotary is None:
        return x
    from diffusers.models.embeddings import apply_rotary_emb

    cos, sin = rotary
    return apply_rotary_emb(x, (cos[part], sin[part]), sequence_dim=1)


def flux_attention_qk(attn: Any, image: torch.Tensor, text: torch.Tensor, rotary: Any,
                      single: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Flux image queries and text keys (b, heads, N / T, d), recomputed: double-stream text keys from the added
    projections, single-stream from the layer's own on the text part; rotary as the layer applies it."""
    t = text.shape[1]
    q = attn.norm_q(attn.to_q(image).unflatten(-1, (-1, attn.head_dim)))
    if single:
        k = attn.norm_k(attn.to_k(text).unflatten(-1, (-1, attn.head_dim)))
    else:
        k = attn.norm_added_k(attn.add_k_proj(text).unflatten(-1, (-1, attn.head_dim)))
    q, k = _rotary(q, rotary, slice(t, None)), _rotary(k, rotary, slice(0, t))
    return q.transpose(1, 2), k.transpose(1, 2)


def flux_attention_probs(attn: Any, image: torch.Tensor, text: torch.Tensor, rotary: Any, single: bool,
                         average_heads: bool = True) -> torch.Tensor:
    """Flux image queries x text keys (recomputed). The rotary embedding covers [text; image]."""
    q, k = flux_attention_qk(attn, image, text, rotary, single)
    return attention_probs(q, k, layer_scale(attn, q.shape[-1]), None, average_heads)


# --------------------------------------------------------------------------------------------- trace's probe
def _arg(args: tuple, kwargs: dict, pos: int, name: str) -> Any:
    return args[pos] if len(args) > pos else kwargs.get(name)


class AttentionProbe:
    """Reads one attention layer during a run (see the module docstring); `install()` returns the hook handles."""

    def __init__(self, attn: Any, sink: Sink, group: str | None, kind: str, use_mask: bool = False):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.attn, self.sink, self.group, self.kind, self.use_mask = attn, sink, group, kind, use_mask
        self.recomputed = 0  # calls whose q/k were recomputed (fused projections), for tests and benchmarks
        self._call: dict[str, Any] | None = None
        self._q: torch.Tensor | None = None
        self._k: torch.Tensor | None = None
        self._sel: tuple[Any, torch.Tensor | None] = (None, None)

    def sources(self) -> tuple[tuple[Any, str], tuple[Any, str]]:
        """((module, layout), (module, layout)) giving q and k: "bnhd" (Flux norms), "bhnd" (Attention norms) or
        "linear" ((b, N, heads * d) projections)."""
        a = self.attn
        norm_layout = "bnhd" if self.kind.startswith("flux") else "bhnd"

        def pick(norm: str, proj: str) -> tuple[Any, str]:
            m = getattr(a, norm, None)
            return (m, norm_layout) if m is not None else (getattr(a, proj), "linear")

        k_norm, k_proj = ("norm_k", "to_k") if self.kind in ("cross", "flux_single") else ("norm_added_k", "add_k_proj")
        return pick("norm_q", "to_q"), pick(k_norm, k_proj)

    def install(self) -> list[Any]:
        (qm, self._q_layout), (km, self._k_layout) = self.sources()
        return [self.attn.register_forward_pre_hook(self._pre, with_kwargs=True),
                qm.register_forward_hook(self._keep_q), km.register_forward_hook(self._keep_k),
                self.attn.register_forward_hook(self._post, with_kwargs=True)]

    def _pre(self, module, args, kwargs):
        rows = self.sink.rows
        self._q = self._k = None
        if rows is None:
            self._call = None
            return None
        text = _arg(args, kwargs, 1, "encoder_hidden_states")
        if self.kind != "flux_single" and text is None:  # a self-attention call of the layer: nothing to read
            self._call = None
            return None
        self._call = {"rows": rows, "x": _arg(args, kwargs, 0, "hidden_states"), "text": text,
                      "mask": _arg(args, kwargs, 2, "attention_mask"), "rotary": kwargs.get("image_rotary_emb"),
                      "temb": kwargs.get("temb"), "n_text": self.sink.n_text}
        return None

    def _keep_q(self, module, args, output):
        if self._call is not None and self._q is None:
            self._q = output[self._call["rows"]]

    def _keep_k(self, module, args, output):
        if self._call is not None and self._k is None:
            self._k = output[self._call["rows"]]

    def _post(self, module, args, kwargs, output):
        call, q, k = self._call, self._q, self._k
        self._call = self._q = self._k = None
        if call is None:
            return None
        with torch.no_grad():
            q, k = self._read(call, q, k) if q is not None and k is not None else self._recompute(call)
            mask = call["mask"][call["rows"]] if self.use_mask and call["mask"] is not None else None
            self.sink.add_attention(self.group, attention_probs(q, k, layer_scale(self.attn, q.shape[-1]), mask,
                                                                select=self._selector(k.shape[2], k.device)))
        return None

    def _selector(self, n_keys: int, device: torch.device) -> torch.Tensor | None:
        """The sink's columns as a `column_selector` on the keys' device (built once per run and device)."""
        cols = self.sink.columns
        if cols is None:
            return None
        key = (id(cols), n_keys, device)
        if self._sel[0] != key:
            self._sel = (key, column_selector(cols.to(device), n_keys))
        return self._sel[1]

    def _as_bhnd(self, x: torch.Tensor, layout: str) -> torch.Tensor:
        if layout == "linear":
            return _heads(x, self.attn.heads)
        return x.transpose(1, 2) if layout == "bnhd" else x

    def _read(self, call: dict, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The kept outputs of the layer's own modules as (b, heads, N, d); Flux: split and rotated."""
        if self.kind.startswith("flux"):
            if self._q_layout == "linear":
                q = q.unflatten(-1, (-1, self.attn.head_dim))
            if self._k_layout == "linear":
                k = k.unflatten(-1, (-1, self.attn.head_dim))
            t = call["n_text"] if self.kind == "flux_single" else call["text"].shape[1]
            if self.kind == "flux_single":
                q, k = q[:, t:], k[:, :t]
            q, k = _rotary(q, call["rotary"], slice(t, None)), _rotary(k, call["rotary"], slice(0, t))
            return q.transpose(1, 2), k.transpose(1, 2)
        return self._as_bhnd(q, self._q_layout), self._as_bhnd(k, self._k_layout)

    def _recompute(self, call: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The fallback where the layer did not call the modules we read (fused projections)."""
        self.recomputed += 1
        rows, x, text = call["rows"], call["x"][call["rows"]], call["text"]
        if self.kind == "cross":
            return cross_attention_qk(self.attn, x, text[rows], None if call["temb"] is None else call["temb"][rows])
        if self.kind == "joint":
            return joint_attention_qk(self.attn, x, text[rows])
        if self.kind == "flux_single":
            t = call["n_text"]
            return flux_attention_qk(self.attn, x[:, t:], x[:, :t], call["rotary"], True)
        return flux_attention_qk(self.attn, x, text[rows], call["rotary"], False)


# --------------------------------------------------------------------------------------------- experiments' probes
class _Wrap:
    """Wraps a layer's processor: the output is the original processor's (unchanged); a subclass reads beside it."""

    def __init__(self, original: Any):
        self.original = original


class SelfAttentionProbe(_Wrap):
    """One self-attention layer: the probabilities softmax(QK^T * scale) of the last `n` batch rows (the conditional
    half under CFG) are kept, per call, on the CPU (`.calls`)."""

    def __init__(self, original: Any, n: int):
        super().__init__(original)
        self.n, self.calls = n, []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                            attention_mask=attention_mask, temb=temb, **kwargs)
        if encoder_hidden_states is None:  # self-attention: queries and keys both come from the image
            if attn.group_norm is not None or attn.spatial_norm is not None:
                raise ValueError("this probe handles self-attention layers without group/spatial norm "
                                 "(the attn1 of a transformer block)")
            hs = hidden_states[-self.n:]
            self.calls.append(cross_attention_probs(attn, hs, hs).cpu())
        return out


class BothWaysProbe(_Wrap):
    """An SD3 joint-attention processor: the output from the original; the joint softmax over [image; text] of
    `rows` (mean over heads, fp32) appended to `store` as (image -> text, text -> image, image -> image) blocks."""

    def __init__(self, original: Any, store: list, rows: slice):
        super().__init__(original)
        self.store, self.rows = store, rows

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        if encoder_hidden_states is not None:
            with torch.no_grad():
                x, c = hidden_states[self.rows], encoder_hidden_states[self.rows]
                n = x.shape[1]
                qx, kc = joint_attention_qk(attn, x, c)
                qc = _heads(attn.add_q_proj(c), attn.heads)
                qc = attn.norm_added_q(qc) if attn.norm_added_q is not None else qc
                kx = _heads(attn.to_k(x), attn.heads)
                kx = attn.norm_k(kx) if attn.norm_k is not None else kx
                q, k = torch.cat([qx, qc], 2), torch.cat([kx, kc], 2)
                probs = attention_probs(q, k, layer_scale(attn, q.shape[-1]))  # (b, n + T, n + T)
                self.store.append((probs[:, :n, n:], probs[:, n:, :n], probs[:, :n, :n]))
        return out


class _CrossStore(_Wrap):
    """Every cross-attention call of a bare U-Net call: probabilities kept per number of queries, on the CPU."""

    def __init__(self, original: Any, store: dict):
        super().__init__(original)
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        out = self.original(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                            attention_mask=attention_mask, temb=temb, **kw)
        if encoder_hidden_states is not None and hidden_states.ndim == 3:
            p = cross_attention_probs(attn, hidden_states, encoder_hidden_states).detach().cpu()
            self.store.setdefault(p.shape[1], []).append(p)
        return out


@contextmanager
def record_cross_attention(unet: Any) -> Iterator[dict[int, list[torch.Tensor]]]:
    """{queries: [(b, queries, tokens) per call]} of every `attn2` layer while the block runs; processors restored."""
    store: dict[int, list[torch.Tensor]] = {}
    mods = [m for name, m in unet.named_modules() if name.endswith("attn2")]
    originals = [m.processor for m in mods]
    for m, o in zip(mods, originals, strict=True):
        m.set_processor(_CrossStore(o, store))
    try:
        yield store
    finally:
        for m, o in zip(mods, originals, strict=True):
            m.set_processor(o)


def concept_block(block: Any, x: torch.Tensor, ctx: torch.Tensor, c: torch.Tensor, temb: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ConceptAttention through one SD3 JointTransformerBlock, read beside the real one: the image tokens' attention
    outputs (attending to the image and the prompt, exactly as the block computes them), the concept tokens' outputs
    (attending to the image and the concepts; nothing attends to them), and the concepts' next residual state (their
    own text-stream weights). Returns (softmax over concepts of o_x . o_c^T: (b, N, C), next concept state or None
    after the last block)."""
    attn = block.attn
    nx = block.norm1(x, emb=temb)[0]
    if block.context_pre_only:
        nctx, nc = block.norm1_context(ctx, temb), block.norm1_context(c, temb)
    else:
        nctx = block.norm1_context(ctx, emb=temb)[0]
        nc, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = block.norm1_context(c, emb=temb)
    h = attn.heads

    def proj(z, p, norm=None):
        y = _heads(p(z), h)
        return norm(y) if norm is not None else y

    qx, kx, vx = proj(nx, attn.to_q, attn.norm_q), proj(nx, attn.to_k, attn.norm_k), proj(nx, attn.to_v)
    kt, vt = proj(nctx, attn.add_k_proj, attn.norm_added_k), proj(nctx, attn.add_v_proj)
    qc, kc, vc = (proj(nc, attn.add_q_proj, attn.norm_added_q), proj(nc, attn.add_k_proj, attn.norm_added_k),
                  proj(nc, attn.add_v_proj))
    ox = F.scaled_dot_product_attention(qx, torch.cat([kx, kt], 2), torch.cat([vx, vt], 2))
    oc = F.scaled_dot_product_attention(qc, torch.cat([kx, kc], 2), torch.cat([vx, vc], 2))
    ox, oc = ox.transpose(1, 2).flatten(2), oc.transpose(1, 2).flatten(2)  # (b, N, heads*d), (b, C, heads*d)
    maps = torch.softmax(ox.float() @ oc.float().transpose(1, 2), dim=-1)
    if block.context_pre_only:
        return maps, None
    c = c + c_gate_msa.unsqueeze(1) * attn.to_add_out(oc)
    n2 = block.norm2_context(c) * (1 + c_scale_mlp[:, None]) + c_shift_mlp[:, None]
    return maps, c + c_gate_mlp.unsqueeze(1) * block.ff_context(n2)


def pool_to(m: torch.Tensor, max_res: int | None) -> torch.Tensor:
    """(b, h, w, T) maps average-pooled by a power of two until they fit max_res x max_res (rows still sum to 1)."""
    h, w = m.shape[1:3]
    if max_res is None or max(h, w) <= max_res:
        return m
    f = 2 ** math.ceil(math.log2(max(h, w) / max_res))
    return F.adaptive_avg_pool2d(m.permute(0, 3, 1, 2), (-(-h // f), -(-w // f))).permute(0, 2, 3, 1)
