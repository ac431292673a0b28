"""The GPU check: full-depth, random-weight SD 1.5 (512 px), SDXL (1024 px), SD3-medium (24 joint blocks, 1024 px)
and Flux-dev (19 double + 38 single blocks, 1024 px), in fp16 / bf16 on CUDA, plain vs traced.

    python benchmarks/gpu_check.py                    # one H100: about 5-8 minutes (building Flux-dev's 12 B
                                                      # random parameters is part of it)
    python benchmarks/gpu_check.py --only sd3 flux --steps 8
    python benchmarks/gpu_check.py --tiny             # the same script on the CPU with tiny configs (a smoke test:
                                                      # tests/test_trace_cases.py runs it)

Per family (benchmarks/real_width.py builds them; nothing is downloaded): a warm-up plain call and a warm-up trace,
then `--repeats` interleaved plain / traced calls (CUDA synchronised around each), and prints the median seconds of
each and their ratio, the attention bytes the trace keeps, the peak GPU memory of a plain and of a traced call
(torch.cuda.max_memory_allocated, reset before each), whether the traced image is bit-identical to the plain one,
and the attention bytes the same run would keep at the family's full step count. Exits non-zero when an image
differs. Parameters are created on the GPU in the target dtype (Flux-dev in bf16 is 24 GB; fp32 would not fit
beside its activations on one 80 GB card).

Status: written without a GPU; on a GPU it has NOT been run yet. `--tiny` runs on the CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_width as R  # noqa: E402

from explainer.adapters import get_adapter  # noqa: E402
from explainer.schedulers import make_scheduler  # noqa: E402
from explainer.trace import trace  # noqa: E402

PROMPT = "a red circle left of a blue square"
DTYPES = {"sd15": torch.float16, "sdxl": torch.float16, "sd3": torch.bfloat16, "flux": torch.bfloat16}
STEPS = {"sd15": 25, "sdxl": 20, "sd3": 20, "flux": 12}


def check_family(family: str, device: str, depth: str, steps: int, repeats: int) -> dict:
    cuda = device.startswith("cuda")
    dtype = DTYPES[family] if cuda else torch.float32
    t0 = time.perf_counter()
    previous = torch.get_default_dtype()
    try:
        if cuda:
            torch.set_default_dtype(dtype)  # parameters are born in the target dtype, on the GPU
        pipe = R.build(family, depth, device, dtype)
    finally:
        torch.set_default_dtype(previous)
    built_s = time.perf_counter() - t0
    size, sched = R.image_size(family, depth), R.sampler(family)
    pipe.scheduler = make_scheduler(sched, pipe.scheduler.config)
    call = get_adapter(pipe).call_kwargs(7.5, None, 1.0)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def plain():
        return pipe(PROMPT, num_inference_steps=steps, height=size, width=size,
                    generator=torch.Generator().manual_seed(0), **call).images[0]

    def traced():
        return trace(pipe, PROMPT, seed=0, steps=steps, cfg=7.5, scheduler=sched, height=size, width=size)

    def peak(fn):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out = fn()
        sync()
        return out, (torch.cuda.max_memory_allocated() if cuda else None)

    ref, peak_plain = peak(plain)  # warm-ups, measured
    tr, peak_traced = peak(traced)
    times: dict[str, list[float]] = {"plain": [], "traced": []}
    for r in range(repeats):
        for mode in (("plain", "traced") if r % 2 == 0 else ("traced", "plain")):
            sync()
            t1 = time.perf_counter()
            plain() if mode == "plain" else traced()
            sync()
            times[mode].append(time.perf_counter() - t1)
    med = {m: statistics.median(v) for m, v in times.items()}
    attn = sum(tr._t[f"attention.{lv}"].numel() * 2 for lv in tr.levels)
    full_steps = R.FULL[family][1]
    out = {"family": family, "label": R.LABELS[family], "dtype": str(dtype).replace("torch.", ""), "size": size,
           "steps": steps, "built_s": built_s, "plain_s": med["plain"], "traced_s": med["traced"],
           "ratio": med["traced"] / med["plain"], "attention_bytes": attn,
           "attention_bytes_at_full_steps": attn * full_steps // steps, "trace_bytes": tr.nbytes,
           "groups": len(tr.levels), "columns": int(tr._t[f"attention.{tr.levels[0]}"].shape[-1]),
           "text_positions": len(tr.tokens), "peak_plain": peak_plain, "peak_traced": peak_traced,
           "identical": tr.image.tobytes() == ref.tobytes()}
    return out


def line(r: dict) -> str:
    gb = (lambda b: f"{b / 2**30:.2f} GiB") if r["peak_plain"] is not None else (lambda b: "n/a")
    return (f"{r['label']:26s} {r['dtype']:8s} {r['size']:>5d} px {r['steps']:>3d} steps  plain {r['plain_s']:7.3f} s"
            f"  traced {r['traced_s']:7.3f} s  x{r['ratio']:.3f}  attention {r['attention_bytes'] / 1e6:8.2f} MB"
            f" ({r['groups']} groups x {r['columns']} of {r['text_positions']} columns; "
            f"{r['attention_bytes_at_full_steps'] / 1e6:.1f} MB at {R.FULL[r['family']][1]} steps)"
            f"  peak GPU plain {gb(r['peak_plain'])} traced {gb(r['peak_traced'])}"
            f"  bit-identical {'yes' if r['identical'] else 'NO'}  (built in {r['built_s']:.0f} s)")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (a smoke test of this script)")
    ap.add_argument("--only", nargs="*", choices=R.FAMILIES, default=None)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default per family, 2 with --tiny)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved plain/traced pairs (3; 1 with --tiny)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("no CUDA device: this check is for a GPU (use --tiny to smoke-test it on the CPU)")
    device, depth = ("cpu", "tiny") if args.tiny else ("cuda", "full")
    repeats = args.repeats or (1 if args.tiny else 3)
    where = "CPU (tiny configs)" if args.tiny else torch.cuda.get_device_name()
    print(f"{where}; torch {torch.__version__}; prompt {PROMPT!r}; cfg 7.5 (Flux: guidance embedding); "
          f"{repeats} interleaved pair(s)")
    results = []
    for fam in args.only or R.FAMILIES:
        steps = args.steps or (2 if args.tiny else STEPS[fam])
        results.append(check_family(fam, device, depth, steps, repeats))
        print(line(results[-1]), flush=True)
        gc.collect()  # the family's pipeline and trace are gone with check_family's frame
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not all(r["identical"] for r in results):
        sys.exit("a traced image differs from the plain pipeline's")
    return results


if __name__ == "__main__":
    main()
