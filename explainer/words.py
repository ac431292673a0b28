"""Prompt words <-> token positions, for any tokenizer.

Users speak in words; text encoders see tokens. A real Stable Diffusion tokenizer (CLIP byte-level BPE) writes
"fox" as the piece "fox</w>" and splits rarer words into several pieces ("autumn" -> "aut", "umn</w>"); T5's
SentencePiece writes "▁fox"; the shipped shapes model's word-level tokenizer has one token per word. This module maps
the prompt's words (as the user wrote them) to the token positions each spans, per text encoder, so that
`tr.attention("autumn")` sums the maps of "aut" and "umn</w>" and says so.

* `split_words(prompt)`: the prompt's words: runs of letters/digits (with inner apostrophes: "fox's"), and runs of
  punctuation as their own words (",").
* `prompt_words(prompt, tokens, spans)`: `Word`s with their token positions. Tokens carry character offsets
  (`Token.start`/`.end`, from the fast tokenizer's offset mapping), so the mapping is exact for every tokenizer;
  without offsets (old traces, slow tokenizers) pieces are grouped by their markers (`</w>` ends a word, `▁` starts
  one, `##` continues one) and matched to the prompt's words in order.
* `lookup(query, words, tokens)`: the positions for a word (case-insensitive, exact per word: "redcircle" and
  "ared" match nothing in "a red circle"), a phrase of consecutive words ("red fox"), a token position (int), a
  `Token` or a `Word`; an unknown word raises ValueError listing the prompt's words.
* `clean_piece(piece)`: a tokenizer piece without its markers ("fox</w>" -> "fox", "▁fox" -> "fox").
"""

from __future__ import annotations

import numbers
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]+")
_MARKERS = ("</w>", "\u2581", "\u0120", "##")


def split_words(prompt: str) -> list[tuple[str, int, int]]:
    """(text, start, end) of each word of `prompt`: letters/digits runs (inner apostrophes kept), punctuation runs."""
    return [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(prompt)]


def clean_piece(piece: str) -> str:
    """A tokenizer piece as a reader writes it: no BPE end-of-word `</w>`, no SentencePiece `▁`, no GPT-2 `Ġ`, no
    WordPiece `##`. Special tokens are returned unchanged."""
    p = str(piece)
    if p.startswith("<") and p.endswith(">") and p != "</w>":
        return p
    if p.endswith("</w>"):
        p = p[:-4]
    for m in ("\u2581", "\u0120", "##"):
        if p.startswith(m):
            p = p[len(m):]
    return p


class Token(str):
    """One position of the text encoder's input. Compares and prints as its text without tokenizer markers ("red");
    carries .index (position = attention column), .id, .raw (the tokenizer's piece, e.g. "red</w>"),
    .special (start/end of text), .padding (filler after the end; the U-Net still attends to it), and .start/.end
    (the characters of the prompt it comes from; None for special tokens, padding, or old traces).
    The prompt's words and the positions each spans: `Trace.words` (explainer.words)."""

    index: int
    id: int
    raw: str
    special: bool
    padding: bool
    start: int | None
    end: int | None

    def __new__(cls, text: str, index: int, id: int, raw: str, special: bool, padding: bool,
                start: int | None = None, end: int | None = None) -> Token:
        obj = super().__new__(cls, text)
        obj.index, obj.id, obj.raw, obj.special, obj.padding = index, int(id), raw, bool(special), bool(padding)
        obj.start, obj.end = (None, None) if start is None or end is None else (int(start), int(end))
        return obj

    @property
    def kind(self) -> str:
        return "padding" if self.padding else "special" if self.special else "word"

    def moved(self, offset: int) -> Token:
        """The same token at position index + offset (a second encoder's part after the first's)."""
        return Token(str(self), self.index + offset, self.id, self.raw, self.special, self.padding, self.start,
                     self.end)

    def __repr__(self) -> str:
        mark = {"padding": "·pad", "special": "·special", "word": ""}[self.kind]
        return f"{str.__repr__(self)}{mark}"

    def __reduce__(self):  # copy/deepcopy support (no pickling of traces happens anywhere)
        return (Token, (str(self), self.index, self.id, self.raw, self.special, self.padding, self.start, self.end))

    def to_dict(self) -> dict:
        d = {"text": str(self), "index": self.index, "id": self.id, "raw": self.raw, "special": self.special,
             "padding": self.padding}
        if self.start is not None:
            d["start"], d["end"] = self.start, self.end
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Token:
        return cls(d["text"], d["index"], d["id"], d["raw"], d["special"], d["padding"], d.get("start"), d.get("end"))


def tokenize(tokenizer: Any, text: str) -> tuple[list[Token], list[str]]:
    """Tokens exactly as the pipeline feeds them to the text encoder (padded to max length, truncated), and the
    words the truncation dropped (the pipeline's own rule: ids between max_length-1 and the final end token).

    Each token keeps the characters of `text` it comes from (.start/.end, from a fast tokenizer's offset mapping),
    which is how `explainer.words` maps the prompt's words to token positions for any tokenizer."""
    max_len = tokenizer.model_max_length
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(text, padding="max_length", max_length=max_len, truncation=True,
                    **({"return_offsets_mapping": True} if fast else {}))
    ids, mask = enc["input_ids"], enc["attention_mask"]
    offsets = enc.get("offset_mapping") if fast else None
    special_ids = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    tokens = []
    for i, (tid, piece, m) in enumerate(zip(ids, pieces, mask, strict=True)):
        special, padding = tid in special_ids and m == 1, m == 0
        text_i = tokenizer.convert_tokens_to_string([piece]).strip() or piece
        text_i = text_i if special or padding else clean_piece(text_i) or text_i  # no "</w>" whatever the decoder
        s, e = offsets[i] if offsets is not None and not special and not padding else (None, None)
        tokens.append(Token(text_i, i, tid, piece, special=special, padding=padding, start=s, end=e))
    dropped: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = tokenizer(text, padding="longest", truncation=False)["input_ids"]
    if len(full) > max_len:
        kept_end = max((t.end for t in tokens if t.end is not None), default=None)
        if kept_end is not None:  # whole words, as the user wrote them
            dropped = [w for w, ws, we in split_words(text) if we > kept_end]
        else:
            dropped = [tokenizer.convert_tokens_to_string([p]).strip()
                       for p in tokenizer.convert_ids_to_tokens(full[max_len - 1:-1])]
    return tokens, dropped


class Word(str):
    """One word of the prompt. Compares and prints as its text as the user wrote it ("Autumn"); carries
    .index (word number in the prompt), .start/.end (its characters in the prompt, None if unknown),
    .positions (every token position it spans, over all text encoders: the attention columns to sum),
    .by_encoder ({encoder name: its positions in that encoder's part}), .pieces (the first encoder's raw pieces,
    e.g. ("aut", "umn</w>")), .punctuation (True for "," and the like)."""

    index: int
    start: int | None
    end: int | None
    positions: tuple[int, ...]
    by_encoder: dict[str, tuple[int, ...]]
    pieces: tuple[str, ...]

    def __new__(cls, text: str, index: int, positions: Sequence[int],
                by_encoder: dict[str, Sequence[int]] | None = None, pieces: Sequence[str] = (),
                start: int | None = None, end: int | None = None) -> Word:
        obj = super().__new__(cls, text)
        obj.index, obj.start, obj.end = int(index), start, end
        obj.positions = tuple(int(p) for p in positions)
        obj.by_encoder = {k: tuple(int(p) for p in v) for k, v in (by_encoder or {}).items()}
        obj.pieces = tuple(str(p) for p in pieces)
        return obj

    @property
    def punctuation(self) -> bool:
        return not any(ch.isalnum() for ch in self)

    @property
    def multi_piece(self) -> bool:
        """True when the first encoder writes this word as more than one piece."""
        return len(self.pieces) > 1

    def __repr__(self) -> str:
        return f"{str.__repr__(self)}@{list(self.positions)}"

    def __reduce__(self):
        return (Word, (str(self), self.index, self.positions, self.by_encoder, self.pieces, self.start, self.end))

    def to_dict(self) -> dict:
        return {"text": str(self), "index": self.index, "positions": list(self.positions),
                "by_encoder": {k: list(v) for k, v in self.by_encoder.items()}, "pieces": list(self.pieces),
                "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Lookup:
    """What a word / position query resolved to: the token positions to sum, and a label saying so."""

    query: Any
    positions: tuple[int, ...]
    label: str  # the word as the prompt writes it, or the token's text for a position
    note: str  # "" for one token, else e.g. "2 pieces summed: aut + umn" / "2 occurrences summed"
    words: tuple[Word, ...] = ()

    @property
    def title(self) -> str:
        """\u201clabel\u201d plus the note: what a figure should print for this map."""
        return f"\u201c{self.label}\u201d" + (f" ({self.note})" if self.note else "")

    @property
    def panel_title(self) -> str:
        """Two lines for a small panel: \u201clabel\u201d (#position), and the note when maps were summed."""
        if len(self.positions) == 1:
            return f"\u201c{self.label}\u201d (#{self.positions[0]})"
        return f"\u201c{self.label}\u201d\n{self.note}"


def _segments(n: int, spans: dict[str, Sequence[int]] | None) -> list[tuple[str, int, int]]:
    if not spans:
        return [("text_encoder", 0, n)]
    return [(name, int(a), int(b)) for name, (a, b) in spans.items()]


def _has_offsets(tokens: Sequence[Any]) -> bool:
    real = [t for t in tokens if not getattr(t, "special", False) and not getattr(t, "padding", False)]
    return bool(real) and all(getattr(t, "start", None) is not None for t in real)


def _groups_by_offsets(tokens: Sequence[Any], a: int, b: int,
                       spans: list[tuple[str, int, int]]) -> dict[int, list[int]]:
    """word index -> positions, from character offsets."""
    out: dict[int, list[int]] = {}
    pending: list[int] = []  # empty-span pieces (a lone SentencePiece "▁") join the next word
    for pos in range(a, b):
        t = tokens[pos]
        if getattr(t, "special", False) or getattr(t, "padding", False):
            continue
        s, e = t.start, t.end
        hit = None
        if e > s:
            for k, (_, ws, we) in enumerate(spans):
                if s < we and e > ws:
                    hit = k
                    break
        if hit is None:
            pending.append(pos)
            continue
        out.setdefault(hit, []).extend(pending + [pos])
        pending = []
    return out


def _groups_by_markers(tokens: Sequence[Any], a: int, b: int) -> list[tuple[str, list[int]]]:
    """(text, positions) per word, from piece markers (no offsets known): `</w>` ends a word (CLIP BPE), `▁`/`Ġ`
    starts one (SentencePiece, GPT-2), `##` continues one (WordPiece); without markers every token is a word."""
    real = [p for p in range(a, b)
            if not getattr(tokens[p], "special", False) and not getattr(tokens[p], "padding", False)]
    raws = {p: str(getattr(tokens[p], "raw", tokens[p])) for p in real}
    if any(r.endswith("</w>") for r in raws.values()):
        mode = "suffix"
    elif any(r.startswith(("\u2581", "\u0120")) for r in raws.values()):
        mode = "prefix"
    elif any(r.startswith("##") for r in raws.values()):
        mode = "wordpiece"
    else:
        mode = "word"
    groups: list[tuple[str, list[int]]] = []
    cur: list[int] = []
    for p in real:
        r = raws[p]
        if cur and (mode == "word" or mode == "prefix" and r.startswith(("\u2581", "\u0120"))
                    or mode == "wordpiece" and not r.startswith("##")):
            groups.append(("".join(clean_piece(raws[q]) for q in cur), cur))
            cur = []
        cur.append(p)
        if mode == "suffix" and r.endswith("</w>"):
            groups.append(("".join(clean_piece(raws[q]) for q in cur), cur))
            cur = []
    if cur:
        groups.append(("".join(clean_piece(raws[q]) for q in cur), cur))
    return groups


def prompt_words(prompt: str, tokens: Sequence[Any], spans: dict[str, Sequence[int]] | None = None) -> list[Word]:
    """The prompt's words with the token positions each spans, over every text encoder's part of `tokens`.

    tokens: the denoiser's text positions in order (`Token`s, as `Trace.tokens`); spans: {encoder: [start, stop)}
    of each encoder's part (None = one encoder holds them all). Words the encoders never saw (truncated) have no
    positions and are left out; a word an encoder splits gets all its pieces.
    """
    pw = split_words(prompt)
    segs = _segments(len(tokens), spans)
    per_word: dict[int, dict[str, list[int]]] = {}
    extra: list[tuple[str, dict[str, list[int]]]] = []  # marker groups that match no prompt word
    for name, a, b in segs:
        if _has_offsets(tokens[a:b]):
            for k, pos in _groups_by_offsets(tokens, a, b, pw).items():
                per_word.setdefault(k, {})[name] = pos
            continue
        k = 0
        for text, pos in _groups_by_markers(tokens, a, b):
            low = text.lower()
            j = next((j for j in range(k, len(pw)) if pw[j][0].lower() == low), None)
            if j is None:
                extra.append((text, {name: pos}))
                continue
            per_word.setdefault(j, {})[name] = pos
            k = j + 1
    words = []
    for k in sorted(per_word):
        by_enc = per_word[k]
        text, s, e = pw[k]
        first = by_enc[next(iter(by_enc))]
        pieces = [str(getattr(tokens[p], "raw", tokens[p])) for p in first]
        positions = sorted({p for v in by_enc.values() for p in v})
        words.append((s, Word(text, 0, positions, by_enc, pieces, s, e)))
    for text, by_enc in extra:
        first = by_enc[next(iter(by_enc))]
        words.append((None, Word(text, 0, first, by_enc, [str(getattr(tokens[p], "raw", tokens[p])) for p in first])))
    words.sort(key=lambda x: (x[0] is None, x[0] if x[0] is not None else x[1].positions[0]))
    return [Word(str(w), i, w.positions, w.by_encoder, w.pieces, w.start, w.end) for i, (_, w) in enumerate(words)]


def token_label(token: Any) -> str:
    """A token as a reader writes it (no BPE markers); special tokens keep their name."""
    raw = getattr(token, "raw", None)
    text = str(token)
    if raw is not None and (getattr(token, "special", False) or getattr(token, "padding", False)):
        return text
    return clean_piece(raw) or text if raw is not None else clean_piece(text)


def shown_words(words: Sequence[Word]) -> list[str]:
    """The words an error message or a menu lists (punctuation left out)."""
    return [str(w) for w in words if not w.punctuation] or [str(w) for w in words]


def _foreign(query: Any, here: Any, name: str, n: int) -> ValueError:
    return ValueError(f"{name} {query!r} comes from another prompt (position {query.index} here is "
                      f"{str(here)!r}): pass the word as a string, e.g. {str(query)!r}, or a position 0..{n - 1}")


def _missing(query: str, want: list[str], words: Sequence[Word], n: int, name: str, prompt: str | None,
             dropped: Sequence[str]) -> ValueError:
    """Why a word has no map: cut by the token limit, unknown to the tokenizer, or not in the prompt at all."""
    in_prompt = prompt is not None and all(w in {x.lower() for x, _, _ in split_words(prompt)} for w in want)
    if in_prompt and any(w in {d.lower() for d in dropped} for w in want):
        return ValueError(f"{name} {query!r} is past the text encoder's token limit: the pipeline cut it off, so "
                          f"the model never saw it and it has no attention map (the words it saw: "
                          f"{shown_words(words)})")
    if in_prompt:
        return ValueError(f"{name} {query!r} is in the prompt, but the tokenizer has no token for it (the text "
                          f"encoder reads its unknown token there), so it has no attention map of its own; the words "
                          f"it can read: {shown_words(words)}")
    return ValueError(f"{name} {query!r} is not in the prompt; its words are {shown_words(words)} "
                      f"(or pass a token position 0..{n - 1})")


def lookup(query: Any, words: Sequence[Word], tokens: Sequence[Any], name: str = "token", *,
           prompt: str | None = None, dropped: Sequence[str] = ()) -> Lookup:
    """Resolve a word, a phrase, a Word, a Token or a token position to the positions whose maps are summed.

    Strings match the prompt's words case-insensitively and exactly, one word at a time ("circle" matches the word
    "circle" whatever its pieces; "cir" or "redcircle" match nothing). A repeated word sums every occurrence; a
    phrase ("red fox") sums its consecutive words. BPE markers in a query are ignored ("fox</w>" = "fox").
    A `Token` or `Word` must belong to these tokens/words (one from another trace raises, naming the word to pass);
    `prompt` and `dropped` (the words the token limit cut) let a missing word's error say why it is missing.
    """
    n = len(tokens)
    if isinstance(query, Lookup):
        return query
    if isinstance(query, Word):
        mine = next((w for w in words if str(w) == str(query) and w.positions == query.positions), None)
        if mine is None:
            raise ValueError(f"{name} {query!r} is a word of another prompt (its positions are not this prompt's): "
                             f"pass it as a string, e.g. {str(query)!r}; this prompt's words are {shown_words(words)}")
        return Lookup(query, query.positions, str(query), _pieces_note([query]), (query,))
    if hasattr(query, "index") and hasattr(query, "padding") and isinstance(query, str):  # a Token
        i = int(query.index)
        here = tokens[i] if 0 <= i < n else None
        if here is None or str(here) != str(query) or getattr(here, "id", None) != getattr(query, "id", None):
            raise _foreign(query, here, name, n)
        return lookup(i, words, tokens, name)
    if isinstance(query, numbers.Integral) and not isinstance(query, bool):
        if not -n <= int(query) < n:
            raise ValueError(f"{name} position must be from 0 to {n - 1}, got {query}")
        pos = int(query) % n
        return Lookup(query, (pos,), token_label(tokens[pos]), f"token #{pos}")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{name} must be a prompt word (str) or a token position (int), got {query!r}")
    cleaned = " ".join(clean_piece(chunk) for chunk in query.split())
    want = [w.lower() for w, _, _ in split_words(cleaned)] or [cleaned.lower()]
    texts = [str(w).lower() for w in words]
    hits: list[list[Word]] = []
    for i in range(len(words) - len(want) + 1):
        if texts[i:i + len(want)] == want:
            hits.append(list(words[i:i + len(want)]))
    if not hits:
        raise _missing(query, want, words, n, name, prompt, dropped)
    matched = [w for h in hits for w in h]
    positions = tuple(sorted({p for w in matched for p in w.positions}))
    label = " ".join(str(w) for w in hits[0])
    if len(hits) > 1:
        note = f"{len(hits)} occurrences summed: {len(positions)} token positions"
    elif len(want) > 1:
        note = f"{len(want)} words summed: {len(positions)} token positions"
    else:
        note = _pieces_note(matched)
    return Lookup(query, positions, label, note, tuple(matched))


def _pieces_note(words: Sequence[Word]) -> str:
    n = sum(len(w.positions) for w in words)
    if n <= 1:
        return ""
    if len(words) == 1 and len(words[0].by_encoder) > 1 and all(len(v) == 1 for v in words[0].by_encoder.values()):
        return f"{n} positions summed: one per text encoder"
    pieces = [clean_piece(p) for w in words for p in w.pieces]
    if len(words) == 1 and len(words[0].by_encoder) <= 1:
        return f"{n} pieces summed: {' + '.join(pieces)}"
    return f"{n} token positions summed"


def words_of(tr: Any) -> list[Word]:
    """The words of a trace (or anything with .prompt and .tokens; .words used when present)."""
    if hasattr(tr, "words"):
        return list(tr.words)
    return prompt_words(tr.prompt, list(tr.tokens))
