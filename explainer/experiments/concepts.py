"""ConceptAttention (Helbling et al., 2025) on SD3-style pipelines: each concept word runs through every joint block
beside the real tokens, and its map is the softmax over concepts of attention outputs (explainer.probes.concept_block);
`score_concepts` scores those maps against the judged objects like the cross-attention maps of
`explainer.experiments.attention_quality` (split from it: same scenes, same scores)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import attention_scores as S
from .. import judge as J
from .. import validation as V
from ..generation import denoiser_name, run_pipeline
from ..probes import concept_block
from .attention_quality import METRICS, Scores, range_label, scenes_for


def concept_attention_available(pipe: Any) -> bool:
    """Whether `pipe` is a transformer pipeline that `ex.trace` can record (ConceptAttention needs the attention
    outputs of the joint blocks). False for U-Net pipelines."""
    try:
        return denoiser_name(pipe) == "transformer"
    except ValueError:  # no denoiser at all
        return False



@dataclass
class ConceptMaps:
    """ConceptAttention maps of one generation: maps[call, block, concept] over the latent patch grid."""

    prompt: str
    seed: int
    concepts: list[str]
    maps: torch.Tensor  # (denoiser calls, blocks, concepts, h, w)
    image: Any

    def map(self, concept: str, calls: slice | None = None, blocks: slice | None = None) -> torch.Tensor:
        """(h, w) mean over the chosen calls and blocks of one concept's map."""
        if concept not in self.concepts:
            raise ValueError(f"concept must be one of {self.concepts}, got {concept!r}")
        m = self.maps[calls or slice(None), blocks or slice(None), self.concepts.index(concept)]
        return m.mean((0, 1))


@torch.no_grad()
def concept_attention(pipe: Any, prompt: str, concepts: Sequence[str], seed: int = 0, steps: int = 20,
                      cfg: float = 7.5) -> ConceptMaps:
    """ConceptAttention (Helbling et al., 2025) on an SD3-style pipeline: each concept word, embedded like a prompt
    (its first token's joint text embedding, through the model's context embedder), runs through every joint block
    beside the real tokens. Concepts attend to the image and to each other; the image never attends to them, so the
    picture is unchanged (forward pre-hooks only read). The map of a concept: the softmax over concepts of the dot
    product between each image token's attention output and each concept's (heads concatenated, before the output
    projection), on the conditional branch. Supports pipelines whose denoiser is an SD3Transformer2DModel."""
    from ..words import tokenize

    tf = getattr(pipe, "transformer", None)
    if tf is None or not hasattr(tf, "transformer_blocks") or not hasattr(tf, "context_embedder") or \
            type(tf.transformer_blocks[0]).__name__ != "JointTransformerBlock":
        raise ValueError("concept_attention needs an SD3-style pipeline (a transformer of JointTransformerBlocks); "
                         f"got {type(pipe).__name__}")
    prompt = V.check_prompt(prompt)
    concepts = V.check_prompts(concepts, "concepts", single=False)  # a string would be one concept per letter
    seed, steps, cfg = V.check_seed(seed), V.check_steps(steps), V.check_cfg(cfg)
    if len(concepts) < 2:
        raise ValueError(f"concepts must name at least two words (the softmax is over concepts), got {concepts}")
    embs = []
    for c in concepts:
        pe = pipe.encode_prompt(prompt=c, prompt_2=None, prompt_3=None, do_classifier_free_guidance=False,
                                device=pipe.device)[0]
        toks = tokenize(pipe.tokenizer, c)[0]
        pos = next(t.index for t in toks if not t.special and not t.padding)
        embs.append(pe[0, pos])
    c0 = tf.context_embedder(torch.stack(embs)[None].to(tf.dtype))  # (1, C, D)
    blocks = list(tf.transformer_blocks)
    state: dict[str, Any] = {"c": None, "call": []}
    calls: list[list[torch.Tensor]] = []

    def pre(i: int):
        def hook(module, args, kwargs):
            names = ("hidden_states", "encoder_hidden_states", "temb")
            vals = {k: kwargs[k] if k in kwargs else args[j] for j, k in enumerate(names)}
            x, ctx, temb = (vals[k][-1:] for k in names)  # the conditional row (CFG batches [uncond, cond])
            if i == 0:
                state["c"], state["call"] = c0.to(x.dtype), []
                calls.append(state["call"])
            maps, state["c"] = concept_block(module, x, ctx, state["c"], temb)
            state["call"].append(maps[0].cpu())
        return hook

    handles = [b.register_forward_pre_hook(pre(i), with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        image = run_pipeline(pipe, prompt, seed, steps, cfg)[0]
    finally:
        for h in handles:
            h.remove()
    m = torch.stack([torch.stack(c) for c in calls])  # (calls, blocks, N, C)
    side = int(round(math.sqrt(m.shape[2])))
    m = m.view(*m.shape[:2], side, side, len(concepts)).permute(0, 1, 4, 2, 3)
    return ConceptMaps(prompt, seed, concepts, m, image)


def score_concepts(pipe: Any, n: int = 8, seed: int = 0, steps: int = 20, cfg: float = 7.5,
                   progress: bool = False) -> tuple[Scores, int]:
    """ConceptAttention on `n` two-object prompts: concepts = the prompt's colour and shape words plus "background";
    each word's map (mean over steps, per block and over all blocks) scored against the judged object (images where
    the judge finds both named colours). Returns the scores and the number of usable images."""
    if not concept_attention_available(pipe):
        raise ValueError(f"score_concepts needs an SD3-style pipeline (a transformer of JointTransformerBlocks); got "
                         f"{type(pipe).__name__}")
    seed, steps, cfg = V.check_seed(seed), V.check_steps(steps), V.check_cfg(cfg)
    progress = V.check_bool(progress, "progress")
    scenes = scenes_for(n, seed)
    out, usable = Scores(), 0
    it = enumerate(scenes)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=n, desc="ConceptAttention", unit="prompt")
    for i, scene in it:
        a, b = scene.objects
        words = [(a.color, "colour", 0), (a.shape, "shape", 0), (b.color, "colour", 1), (b.shape, "shape", 1)]
        concepts = list(dict.fromkeys([w for w, _, _ in words] + ["background"]))
        cm = concept_attention(pipe, scene.caption, concepts, seed=seed + i, steps=steps, cfg=cfg)
        found = S.judged_masks(cm.image)
        spec = J.parse_prompt(scene.caption)
        jd = J.Judgement([o for o, _ in found], "black")
        oa = J._match(jd, spec.objects[0])
        ob = J._match(jd, spec.objects[1], exclude=oa)
        if not (oa is not None and ob is not None and oa.color == a.color and ob.color == b.color):
            continue
        usable += 1
        mask_of = {id(o): m for o, m in found}
        masks = (mask_of[id(oa)], mask_of[id(ob)])
        n_blocks = cm.maps.shape[1]
        for word, cls, obj in words:
            if sum(w == word for w, _, _ in words) > 1:
                continue  # the same word names both objects: no single right answer
            maps = [cm.map(word, blocks=slice(k, k + 1)) for k in range(n_blocks)] + [cm.map(word)]
            keys = [f"block {k}" for k in range(n_blocks)] + ["all"]
            sc = S.score_maps(torch.stack(maps), masks[obj])
            for j, key in enumerate(keys):
                out.add(source="generated", item=i, word=word, word_class=cls, method="concept", level=key,
                        steps=range_label((0, steps)), **{m: float(sc[m][j]) for m in (*METRICS, "area")})
    return out, usable
