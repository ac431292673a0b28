"""The trace file: one safetensors file whose header carries the trace's JSON metadata (never pickle).

    write(path, tensors, meta)      # meta: settings, tokens, levels...; a checksum over everything is added
    tensors, meta = read(path)      # refuses, with TraceFileError, anything that is not a trace this module wrote

A safetensors file starts with the length of its JSON header as an 8-byte little-endian integer, then the header.
`read` parses that header itself before reading the body, so a foreign file (a pickle, a torch.save zip, a model's
weights, a truncated or edited trace) is refused from its first bytes, and the body is only read once the header is
a trace's. The first byte of a trace is the low byte of its header length, so it can be anything, 0x80 (pickle's
PROTO opcode) included: a pickle is told apart by the header length it would imply (larger than the file, or than
safetensors' own limit) and by its header not being JSON, never by one byte.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch

FORMAT = "explainer.trace"
FORMAT_VERSION = 1
META_KEY = "explainer.trace"
MAX_HEADER = 100_000_000  # safetensors' own limit for the JSON header
_NEEDED = ("settings", "tokens", "levels", "text_encoders", "checksum")


class TraceFileError(ValueError):
    """A trace file that cannot be read back: truncated, modified, or not a trace at all."""


def checksum(tensors: dict[str, torch.Tensor], meta: dict | None = None) -> str:
    """sha256 over the JSON metadata (everything but the checksum itself: prompt, seed, settings, tokens) and every
    tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    if meta is not None:
        h.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode())
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_save_path(path: str | Path) -> Path:
    """Where `write` writes: a file path whose folder exists, not a folder."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise ValueError(f"path must be a file name (str or Path), got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; give a file name, e.g. {str(path / 'trace.safetensors')!r}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot save to {str(path)!r}: the folder {str(path.parent)!r} does not exist "
                         "(create it first)")
    return path


def write(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """One safetensors file: the tensors, and `meta` (plus format, version and checksum) as JSON in its header."""
    from safetensors.torch import save_file

    path = check_save_path(path)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = dict(meta, format=FORMAT, version=FORMAT_VERSION)
    meta["checksum"] = checksum(tensors, meta)
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta)})
    return path


def _not_a_trace(path: Path, first: bytes) -> TraceFileError:
    if first[:2] == b"PK":
        what = "a zip archive (a torch.save file)"
    elif first[:1] == b"\x80":
        what = "a pickle (torch.save / pickle.dump)"
    else:
        return TraceFileError(f"{path} is not an explainer trace (no safetensors header)")
    return TraceFileError(f"{path} is {what}, not a trace, whatever its name: explainer never reads pickles. Make a "
                          "trace with ex.trace(...) and save it with tr.save('name.safetensors')")


def read_meta(path: Path) -> dict:
    """The trace metadata from the safetensors header, reading only the header: 8-byte little-endian length, JSON."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise TraceFileError(f"{path} is not a trace file (only {len(first)} bytes)")
        (n,) = struct.unpack("<Q", first)
        if n > size - 8 or n > MAX_HEADER:
            if first[:1] == b"\x80" or first[:2] == b"PK":  # a pickle or a zip: its "length" is its opcodes
                raise _not_a_trace(path, first)
            if n > size - 8:
                raise TraceFileError(f"{path} is truncated (or not a trace): its header says {n} bytes, the file "
                                     f"has {size - 8}")
            raise TraceFileError(f"{path} is not an explainer trace (a {n}-byte header)")
        head = f.read(n)
    try:
        header = json.loads(head)
    except (ValueError, UnicodeDecodeError):
        raise _not_a_trace(path, first) from None
    try:
        meta = json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError):
        raise TraceFileError(f"{path} is not an explainer trace (no readable trace metadata in its header)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TraceFileError(f"{path} is not an explainer trace")
    if meta.get("version") != FORMAT_VERSION:
        raise TraceFileError(f"{path} is a trace of format version {meta.get('version')}; this explainer reads "
                             f"version {FORMAT_VERSION}")
    for key in _NEEDED:
        if key not in meta:
            raise TraceFileError(f"{path} is damaged: its metadata lacks {key!r}")
    return meta


def check_layout(tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
    """The tensors a trace needs, one entry per step each; attention maps as wide as their columns say."""
    need = ["timesteps", "sigmas", "latents", "noise_cond", "noise_guided", "x0", "image"]
    missing = [k for k in need if k not in tensors]
    if "latents_next" not in tensors and "latents_final" not in tensors:
        missing.append("latents_final")
    if missing:
        raise TraceFileError(f"{path} is damaged: tensors {missing} are missing")
    n = tensors["timesteps"].shape[0]
    maps = [f"attention.{lv}" for lv in meta["levels"]]
    for k in need[1:6] + [k for k in ("latents_next",) if k in tensors] + maps:
        if k not in tensors or tensors[k].shape[0] != n:
            raise TraceFileError(f"{path} is damaged: tensor {k!r} does not have one entry per step ({n})")
    cols = meta.get("attention_columns")
    width = len(meta["tokens"]) if cols is None else len(cols) + 1
    for k in maps:
        if tensors[k].shape[-1] != width:
            raise TraceFileError(f"{path} is damaged: tensor {k!r} has {tensors[k].shape[-1]} columns, its "
                                 f"metadata says {width}")


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a file `write` wrote; TraceFileError (a ValueError) for a truncated, modified or foreign
    file."""
    path = Path(path)
    if not path.is_file():
        raise TraceFileError(f"no trace file at {str(path)!r}")
    meta = read_meta(path)  # the header alone: a foreign file is refused before its body is read
    from safetensors.torch import load as st_load

    try:
        tensors = st_load(path.read_bytes())
    except Exception as err:  # safetensors' own error for bad offsets / truncation
        raise TraceFileError(f"{path} is damaged (truncated or modified): {err}") from None
    if checksum(tensors, meta) != meta.get("checksum"):
        raise TraceFileError(f"{path} was modified or corrupted: its tensors or settings do not match the "
                             "checksum written when it was saved")
    check_layout(tensors, meta, path)
    return tensors, meta
