"""CLIP on the scenes world: the scenes model's CLIP pair (text + vision towers, shipped in `<model>/clip`).

* `retrieval`: on unseen rendered scenes, does the most similar caption belong to the image (and back)?
* `caption_scores`: one set of pictures against a few captions: which caption does CLIP score highest, picture by
  picture (the unit drawn is the picture)?
* `image_features` / `text_features`: CLIP's unit vectors, for distances in CLIP space (lesson 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..latents import to_pixels
from ..text import clip_similarity
from ..worlds.scenes import EVAL_SEED
from .scenes_pictures import find_scenes, render_all


def _tokenizer(clip: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(getattr(clip, "name_or_path", "") or "").parent / "tokenizer")


def _unit(x: Any) -> np.ndarray:
    x = getattr(x, "pooler_output", x)
    x = x.detach().double().numpy()
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@torch.no_grad()
def image_features(clip: Any, images: np.ndarray) -> np.ndarray:
    """CLIP image vectors of uint8 pictures (n, h, w, 3), unit length (n, D)."""
    return _unit(clip.get_image_features(pixel_values=to_pixels(images)))


@torch.no_grad()
def text_features(clip: Any, captions: Sequence[str], tokenizer: Any = None) -> np.ndarray:
    """CLIP text vectors of captions, unit length (n, D)."""
    tok = tokenizer or _tokenizer(clip)
    ids = tok(list(captions), padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt")
    return _unit(clip.get_text_features(input_ids=ids.input_ids, attention_mask=ids.attention_mask))


def pooled_token(clip: Any, caption: str, tokenizer: Any = None) -> tuple[int, str]:
    """Where CLIP's text tower reads its sentence vector for `caption`: (position, token). transformers' CLIP reads
    the end token -- except for a config whose eos_token_id is 2 (the old convention), where it reads the token with
    the highest id, whatever word that is; a causal encoder's vector there has not seen the words after it."""
    tok = tokenizer or _tokenizer(clip)
    ids = tok(caption).input_ids
    eos = clip.text_model.eos_token_id
    pos = int(np.argmax(ids)) if eos == 2 else ids.index(eos)
    return pos, tok.convert_ids_to_tokens(ids)[pos]


@dataclass
class Retrieval:
    images: np.ndarray  # (n, 64, 64, 3) uint8
    captions: list[str]
    similarity: np.ndarray  # (n images, n captions)
    image_hits: list[bool]  # per image: its most similar caption is its own (or a caption identical to it)
    caption_hits: list[bool]  # per caption: its most similar image is its own
    chance: float  # expected share of image hits when the best caption is picked at random
    matched_mean: float  # mean similarity of matching pairs (the diagonal)
    unmatched_mean: float  # mean similarity of the other pairs

    @property
    def image_to_caption(self) -> float:
        return float(np.mean(self.image_hits))

    @property
    def caption_to_image(self) -> float:
        return float(np.mean(self.caption_hits))


def retrieval(clip: Any, n: int = 64, start: int = EVAL_SEED + 500) -> Retrieval:
    """CLIP on `n` unseen scenes (every kind) with their canonical captions."""
    scenes = find_scenes(lambda s: True, n, start)
    images, captions = render_all(scenes), [s.caption for s in scenes]
    sim = clip_similarity(clip, images, captions)
    cap = np.asarray(captions)
    same = cap[:, None] == cap[None, :]  # repeated captions ("a beach at dawn") are all right answers
    off = ~np.eye(n, dtype=bool)
    return Retrieval(images, captions, sim, [bool(x) for x in same[np.arange(n), sim.argmax(axis=1)]],
                     [bool(x) for x in same[sim.argmax(axis=0), np.arange(n)]], float(same.sum(1).mean() / n),
                     float(sim.diagonal().mean()), float(sim[off].mean()))


@dataclass
class CaptionScores:
    images: np.ndarray  # (n, 64, 64, 3) uint8
    truths: list[str]  # each picture's own canonical caption
    captions: list[str]  # the captions every picture is scored against
    similarity: np.ndarray  # (n pictures, len(captions)) cosine similarity

    def column(self, caption: str) -> np.ndarray:
        return self.similarity[:, self.captions.index(caption)]

    def best_share(self, caption: str) -> float:
        """Share of pictures whose highest-scoring caption is `caption`."""
        return float(np.mean(self.similarity.argmax(axis=1) == self.captions.index(caption)))


def caption_scores(clip: Any, scenes: Sequence[Any], captions: Sequence[str]) -> CaptionScores:
    """Render `scenes` and score every picture against every caption."""
    images = render_all(scenes)
    return CaptionScores(images, [s.caption for s in scenes], list(captions),
                         clip_similarity(clip, images, list(captions)))
