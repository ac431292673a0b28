"""Our trace next to the peer tool attention-map-diffusers 1.0.0, on the same config-built tiny SD3 and Flux pipelines.

    /path/to/peer-venv/bin/python benchmarks/peer_attention_maps.py                 # SD3 and Flux, 20 steps, 1 thread
    /path/to/peer-venv/bin/python benchmarks/peer_attention_maps.py --only flux --repeats 9 --json peer.json
    /path/to/peer-venv/bin/python benchmarks/peer_attention_maps.py --width real --steps 3 --repeats 3 --threads 2
        # real block widths (benchmarks/real_width.py): 2 SD3-medium joint blocks (CLIP 77 + T5 256 tokens, CFG) and
        # a Flux-dev double + single block (T5 512), 128 px images = 1,024 image tokens

The peer is NOT a dependency of this project. The script imports it only when it is installed and otherwise exits
with the commands that install it into a separate virtual environment (see INSTALL below).

Same pipelines (explainer.testing.build_tiny_sd3 / build_tiny_flux: random weights, 16x16 images), same prompt, seed,
20 steps, CFG / guidance 7.5, the pipeline's own scheduler, torch pinned to 1 thread. Three runs per model:

* plain: `pipe(prompt, generator=manual_seed(seed), ...)`;
* ours:  `explainer.trace(pipe, prompt, seed=..., steps=..., cfg=..., attention=True)`: image->text attention of
         every block at every step (conditional row, mean over heads, fp16 on the CPU), plus latents, predictions,
         embeddings (Trace.nbytes, reported apart);
* peer:  `with AttentionCapture(pipe, relations="image->text", timesteps="all", heads="mean", mode="fast"): pipe(...)`
         then `capture.compute()`: its default mode keeps q/k during the run and recomputes the maps afterwards, so
         the timed run includes compute() (its share is reported apart).

Timings are interleaved (plain, ours, peer, rotated each round) so drifting machine load hits all three alike; the
table gives medians and the ratio of medians to plain. "peak RSS +" is each configuration's first run (right after
one plain call), its resident set sampled from /proc every 5 ms by a watcher thread (real_width.PeakRSS): the peak
during the call minus the resident set just before it, the result still held. It counts what is kept plus the call's
transient buffers (the plain row is the pipeline's own) and first-call lazy set-up; differences of a few hundred kB
are allocator noise. (It used to fork the process per run, which hangs once torch's thread pool has started:
`--threads 2`.)
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEER = "attention_map_diffusers"
PEER_VERSION = "1.0.0"
INSTALL = f"""the peer tool {PEER} is not installed in this Python ({sys.executable}).
It is kept out of this project's dependencies; install it into a separate virtual environment that sees this one's
packages, without its declared dependencies (it declares torchvision, which it needs only to save PNG files):

    python -m venv --system-site-packages peer-venv
    peer-venv/bin/pip install --no-deps attention-map-diffusers=={PEER_VERSION}
    peer-venv/bin/python benchmarks/peer_attention_maps.py
"""

PROMPT = "a red circle left of a blue square"
SEED, CFG = 0, 7.5
SIZES = {"tiny": 16, "real": 128}
MODELS = {"sd3": ("SD3", "build_tiny_sd3"), "flux": ("Flux", "build_tiny_flux")}
MODES = ("plain", "ours", "peer")
LABELS = {"plain": "plain pipeline call", "ours": "ours: trace(attention=True)",
          "peer": 'peer: AttentionCapture(timesteps="all")'}


def import_peer():
    try:
        import attention_map_diffusers as peer
    except ImportError:
        sys.exit(INSTALL)
    if getattr(peer, "__version__", None) != PEER_VERSION:
        print(f"warning: {PEER} {getattr(peer, '__version__', '?')} found; this benchmark was written for "
              f"{PEER_VERSION}", file=sys.stderr)
    return peer


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


# ------------------------------------------------------------------------------------------------ the three runs
class Bench:
    """One tiny pipeline and the three ways of running it, each returning (image, what it kept)."""

    def __init__(self, model: str, steps: int, width: str = "tiny"):
        from explainer import testing
        from explainer.adapters import get_adapter
        from explainer.trace import trace

        self.peer = import_peer()
        self._trace = trace
        self.model, self.steps, self.size = model, steps, SIZES[width]
        if width == "real":
            sys.path.insert(0, str(ROOT / "benchmarks"))
            import real_width

            self.pipe = real_width.build(model, "few")
        else:
            self.pipe = getattr(testing, MODELS[model][1])()
        self.call = get_adapter(self.pipe).call_kwargs(CFG, None, 1.0)  # what trace() passes the pipeline
        self.compute_s: list[float] = []

    def plain(self):
        return self.pipe(PROMPT, num_inference_steps=self.steps, height=self.size, width=self.size,
                         generator=torch.Generator().manual_seed(SEED), **self.call).images[0]

    def ours(self):
        tr = self._trace(self.pipe, PROMPT, seed=SEED, steps=self.steps, cfg=CFG, height=self.size, width=self.size,
                         attention=True)
        return tr.image, tr

    def peer_run(self):
        with self.peer.AttentionCapture(self.pipe, relations="image->text", timesteps="all", heads="mean",
                                        mode="fast", offload="cpu") as cap:
            image = self.plain()
        t0 = time.perf_counter()
        maps = cap.compute()
        self.compute_s.append(time.perf_counter() - t0)
        return image, (cap, maps)

    def run(self, mode: str):
        return {"plain": lambda: (self.plain(), None), "ours": self.ours, "peer": self.peer_run}[mode]()

    # what each kept -----------------------------------------------------------------------------------
    def block_totals(self) -> dict[str, int]:
        t = self.pipe.transformer
        if self.model == "flux":
            return {"double": len(t.transformer_blocks), "single": len(t.single_transformer_blocks)}
        return {"joint": len(t.transformer_blocks)}

    def _kind(self, name: str) -> str:
        """A block's kind from our level name ("block 0", "double 1", "single 0") or the peer's layer id
        ("transformer.transformer_blocks.0.attn", "transformer.single_transformer_blocks.1.attn")."""
        if name.startswith("single") or ".single_transformer_blocks." in name:
            return "single"
        return "double" if self.model == "flux" else "joint"

    def blocks(self, names) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {k: [] for k in self.block_totals()}
        for n in sorted(set(names)):
            out[self._kind(n)].append(n)
        return out

    def describe(self, mode: str, kept) -> dict:
        if mode == "plain":
            return {}
        if mode == "ours":
            tr = kept
            attn = [tr._t[f"attention.{name}"] for name in tr.levels]  # (steps, h, w, tokens) per block
            return {"attention_bytes": sum(a.numel() * a.element_size() for a in attn),
                    "trace_nbytes": tr.nbytes, "steps_kept": int(attn[0].shape[0]) if attn else 0,
                    "dtype": str(attn[0].dtype).replace("torch.", "") if attn else None, "rows": 1,
                    "map_shape": list(attn[0].shape[1:]) if attn else None, "blocks": self.blocks(tr.levels)}
        cap, maps = kept
        data = [r.data for r in maps.records if r.data is not None]
        return {"attention_bytes": sum(d.numel() * d.element_size() for d in data),
                "qk_bytes_held_during_run": int(maps.metadata.get("peak_capture_bytes", 0)),
                "records": len(maps.records), "steps_kept": len({r.timestep for r in maps.records}),
                "dtype": str(data[0].dtype).replace("torch.", "") if data else None,
                "rows": int(data[0].shape[0]) if data else 0, "map_shape": list(data[0].shape[1:]) if data else None,
                "blocks": self.blocks(r.layer_id for r in maps.records),
                "coverage": {k: cap.coverage.get(k) for k in ("attention_modules", "captured_modules", "unsupported")}}


def same_image(a, b) -> tuple[bool, int]:
    x, y = np.asarray(a.convert("RGB"), dtype=np.int16), np.asarray(b.convert("RGB"), dtype=np.int16)
    return a.tobytes() == b.tobytes() and a.size == b.size, int(np.abs(x - y).max()) if x.shape == y.shape else -1


# ------------------------------------------------------------------------------------------------ peak RSS
def measure_rss(bench: Bench, mode: str) -> dict:
    """One call of `mode` in this process (warmed up: pipeline built, one plain call done): its peak RSS increase
    during the call and the RSS retained after it (result still held); Linux /proc only, elsewhere nothing."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_width import PeakRSS

    gc.collect()
    with PeakRSS() as p:
        kept = bench.run(mode)
    after = PeakRSS.rss()
    out = {} if p.increase is None else {"peak_rss_increase": p.increase,
                                         "rss_retained": after - p._base if after is not None else None}
    del kept
    gc.collect()
    return out


# ------------------------------------------------------------------------------------------------ the benchmark
def bench_model(model: str, steps: int, repeats: int, bar, rss: bool, width: str = "tiny") -> dict:
    b = Bench(model, steps, width)
    ref = b.plain()  # warm-up and the reference image
    out: dict = {"model": MODELS[model][0], "block_totals": b.block_totals(), "modes": {m: {} for m in MODES}}
    if rss:  # before anything else ran in this process
        for mode in MODES:
            out["modes"][mode].update(measure_rss(b, mode))
    for mode in MODES[1:]:  # warm-up, and what each run keeps / whether it leaves the image alone
        image, kept = b.run(mode)
        same, diff = same_image(image, ref)
        out["modes"][mode].update(identical_to_plain=same, max_pixel_diff=diff, **b.describe(mode, kept))
        del kept
    b.compute_s.clear()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(repeats):
        for mode in MODES[r % 3:] + MODES[:r % 3]:  # rotate the order each round
            t0 = time.perf_counter()
            b.run(mode)
            times[mode].append(time.perf_counter() - t0)
            bar.update(1)
    after, _ = same_image(b.plain(), ref)  # ours and the peer restored the pipeline as they found it
    out["plain_after_restore_identical"] = after
    med = {m: statistics.median(v) for m, v in times.items()}
    for m in MODES:
        out["modes"][m].update(median_s=med[m], ratio_to_plain=med[m] / med["plain"], times_s=times[m])
    out["modes"]["peer"]["compute_median_s"] = statistics.median(b.compute_s)
    return out


def blocks_cell(info: dict, totals: dict[str, int]) -> str:
    if "blocks" not in info:
        return "—"
    return ", ".join(f"{kind} {len(info['blocks'][kind])}/{n}" for kind, n in totals.items())


def table(results: list[dict], steps: int) -> str:
    rows = ["| model | run | median s | × plain | attention kept | peak RSS + | steps kept | blocks captured "
            "| image == plain |", "|---|---|---:|---:|---|---:|---:|---|---|"]
    for res in results:
        for mode in MODES:
            m = res["modes"][mode]
            if mode == "plain":
                kept, same = "—", "(reference)"
            else:
                kept = f"{fmt_bytes(m['attention_bytes'])} ({m['dtype']}, {m['rows']} row{'s' * (m['rows'] != 1)})"
                if mode == "peer":
                    kept += f"; q/k held until compute(): {fmt_bytes(m['qk_bytes_held_during_run'])}"
                else:
                    kept += f"; whole trace {fmt_bytes(m['trace_nbytes'])}"
                same = "yes" if m["identical_to_plain"] else f"**no** (max pixel diff {m['max_pixel_diff']})"
            rss = fmt_bytes(m.get("peak_rss_increase")) if "peak_rss_increase" in m else "not measured"
            steps_kept = f"{m['steps_kept']}/{steps}" if mode != "plain" else "—"
            rows.append(f"| {res['model']} | {LABELS[mode]} | {m['median_s']:.4f} | {m['ratio_to_plain']:.2f} | "
                        f"{kept} | {rss} | {steps_kept} | {blocks_cell(m, res['block_totals'])} | {same} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=list(MODELS), nargs="*", default=None, help="a subset of the models")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions of each run")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (pinned)")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS measurements (one extra run each)")
    ap.add_argument("--width", choices=list(SIZES), default="tiny",
                    help="tiny configs (explainer.testing) or real block widths (benchmarks/real_width.py)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every number as JSON")
    args = ap.parse_args()

    peer = import_peer()
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    models = args.only or list(MODELS)
    results = []
    with tqdm(total=len(models) * len(MODES) * args.repeats, desc="timed runs", unit="run") as bar:
        for model in models:
            bar.set_postfix_str(MODELS[model][0])
            results.append(bench_model(model, args.steps, args.repeats, bar, not args.no_rss, args.width))

    import diffusers

    what = "tiny config-built pipelines (explainer.testing)" if args.width == "tiny" else \
        "real block widths (benchmarks/real_width.py)"
    side = SIZES[args.width]
    print(f"\n{what}, CPU, {args.threads} torch thread(s), {args.steps} steps, {side}x{side} px, seed {SEED}, "
          f"CFG/guidance {CFG}, prompt {PROMPT!r}, {args.repeats} interleaved repetitions; torch {torch.__version__}, "
          f"diffusers {diffusers.__version__}, "
          f"{PEER} {peer.__version__}\n")
    print(table(results, args.steps))
    print()
    for res in results:
        p, ours = res["modes"]["peer"], res["modes"]["ours"]
        cov = p["coverage"]
        restored = "identical" if res["plain_after_restore_identical"] else "DIFFERENT"
        print(f"- {res['model']}: peer compute() median {p['compute_median_s']:.4f} s of its run; it found "
              f"{cov['attention_modules']} attention modules and installed its processor on "
              f"{cov['captured_modules']}; it recorded {p['records']} maps (block x step) of {p['rows']} CFG row(s) x "
              f"{p['map_shape']} (heads, image queries, text keys); ours keeps {ours['map_shape']} (h, w, tokens) "
              f"per block and step; a plain call after both had restored the pipeline: {restored}")
        missed = {k: n - len(p["blocks"][k]) for k, n in res["block_totals"].items() if len(p["blocks"][k]) < n}
        if missed:
            print(f"  peer recorded nothing for {', '.join(f'{n} {k}-stream block(s)' for k, n in missed.items())} "
                  "although it reported them as covered")
    if args.json:
        args.json.write_text(json.dumps({"settings": {"steps": args.steps, "repeats": args.repeats,
                                                      "threads": args.threads, "size": SIZES[args.width], "seed": SEED,
                                                      "cfg": CFG, "prompt": PROMPT, "peer_version": peer.__version__,
                                                      "torch": torch.__version__,
                                                      "diffusers": diffusers.__version__},
                                         "results": results}, indent=1))
        print(f"wrote {args.json}")
    bad = [r["model"] for r in results if not r["modes"]["ours"]["identical_to_plain"]]
    if bad:
        sys.exit(f"ours changed the image on {bad}: trace() must be bit-identical to the plain pipeline")


if __name__ == "__main__":
    main()
