"""A class at once: N students open the classroom page together, then all press Generate with their own prompt and
seed, twice. Playwright drives one headless Debian Chromium (one browser context per student) against
`python -m explainer.classroom` on 127.0.0.1.

    python benchmarks/classroom_load.py                       # N = 1, 5, 10, 20, 30
    python benchmarks/classroom_load.py --students 5 --rounds 2 --json out.json
    python benchmarks/classroom_load.py --students 30 --model scenes-sd     # what a class opens by default
    python benchmarks/classroom_load.py --students 30 --browsers 5          # 5 Chromium pages, 25 students over
                                                                            # the wire (their browsers elsewhere)

For each N a fresh classroom starts (`--students N` pages kept ready) and is stopped afterwards. Printed per N:
page ready (from opening the address to the Generate button shown, p50 / p95 / max), Generate -> that student's
image on screen for each round (p50 / p95 / max), then image -> that run's predicted x0 at the slider's step
on screen (the worker decodes a step when a page shows it), failures (pages never ready, runs that gave no image or an
error message) and the largest RSS of the classroom's processes together (worker, Voila, kernels; Chromium not counted).
Bounded: a page or a run that takes longer than --timeout counts as failed; before each new student the machine's
available memory and the classroom's RSS are checked (below --min-free-gb free or above --max-rss-gb: no more
students, and the table says so). Needs playwright (pip) and chromium (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
from browser_servers import CHROMIUM, CHROMIUM_ARGS, server_env, voila_server  # noqa: E402
from wire_student import WireStudent, page_assets  # noqa: E402

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle", "star")
SCENE_COLOURS = ("red", "blue", "yellow", "green", "purple", "white")
SCENE_THINGS = ("balloon", "car", "umbrella", "house", "tent")
SCENE_OTHERS = ("fox", "cat", "tree", "dog", "rabbit", "penguin")
SCENE_GROUNDS = ("on the grass", "in the snow", "in the autumn leaves", "on the beach")
GEN = ".explainer-playground .explainer-generate"
# Every wait polls each page 5 times a second: Playwright's default (every animation frame) makes N pages redraw
# 60 times a second while they wait, and the harness then eats the CPU it measures.
POLL_MS = 200
VISIBLE_JS = "(sel) => { const b = document.querySelector(sel); return !!b && b.getClientRects().length > 0; }"


def student_prompt(k: int, model: str = "shapes-sd") -> str:
    """Student k's own prompt: two objects and a relation, in the words of the model the class runs."""
    if model == "scenes-sd":
        return (f"a {SCENE_COLOURS[k % 6]} {SCENE_THINGS[(k // 6) % 5]} left of a {SCENE_OTHERS[(k + k // 6) % 6]} "
                f"{SCENE_GROUNDS[k % 4]}")
    a, b = COLOURS[k % 4], COLOURS[(k + 1 + k // 4) % 4]
    return f"a {a} {SHAPES[(k // 4) % 4]} left of a {b} {SHAPES[(k + 2) % 4]}"


def student_seed(k: int, round_: int) -> int:
    return 1000 * round_ + k


def tree_rss(pid: int) -> int:
    """Bytes: RSS of a process and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def cpu_by_kind(pids: list[int]) -> dict[str, float]:
    """CPU seconds used so far by the processes under `pids`, by kind: worker (the classroom process), voila,
    kernels, and Chromium by process type (chromium/browser, chromium/renderer: the pages, chromium/gpu-process,
    chromium/utility: network and storage services, chromium/zygote)."""
    out: dict[str, float] = {}
    seen = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                cmd = " ".join(p.cmdline())
                t = p.cpu_times()
            except psutil.Error:
                continue
            kind = ("kernels" if "ipykernel" in cmd else "voila" if "-m voila" in cmd else
                    "worker" if "explainer.classroom" in cmd else "other")
            if "chrom" in cmd and kind == "other":
                found = re.search(r"--type=([\w-]+)", cmd)
                kind = f"chromium/{found[1] if found else 'browser'}"
            out[kind] = out.get(kind, 0.0) + t.user + t.system
    return out


def renice_chromium(nice: int) -> None:
    """Lower the OS priority of this harness's Chromium processes (the students' browsers stand in for their own
    machines: let them yield the cores to the classroom)."""
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in " ".join(p.cmdline()):
                p.nice(nice)
        except psutil.Error:
            pass


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def worker_url(log_text: str) -> str | None:
    found = re.search(r"teacher's view: (http://127\.0\.0\.1:\d+)/", log_text)
    return found[1] if found else None


def _status(url: str | None) -> dict:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/status", timeout=5) as r:
            return json.loads(r.read())
    except (OSError, TypeError):
        return {}


async def _open(context, url: str, timeout_s: float) -> tuple[object, float | None]:
    page = await context.new_page()
    t0 = time.perf_counter()
    try:
        await page.goto(url, timeout=timeout_s * 1000)
        await page.wait_for_function(VISIBLE_JS, arg=GEN, timeout=timeout_s * 1000, polling=POLL_MS)
        return page, time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - a page that never became usable is a failure, counted
        return page, None


async def _src(page) -> str:
    return await page.evaluate("""() => { const i = document.querySelector('.explainer-playground .explainer-image');
        const img = i && (i.tagName === 'IMG' ? i : i.querySelector('img')); return img ? img.src : ''; }""")


PNG_JS = """async () => { const i = document.querySelector('.explainer-playground .explainer-image');
  const img = i.tagName === 'IMG' ? i : i.querySelector('img');
  const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let s = ''; for (let k = 0; k < buf.length; k += 0x8000) s += String.fromCharCode(...buf.subarray(k, k + 0x8000));
  return btoa(s); }"""


STEP_IMAGE_JS = """(old) => { const i = document.querySelector('.explainer-playground .explainer-step-image');
    const img = i && (i.tagName === 'IMG' ? i : i.querySelector('img'));
    return img && img.src && img.src !== old && img.complete && img.naturalWidth > 0; }"""


async def _step_src(page) -> str:
    return await page.evaluate("""() => {
        const i = document.querySelector('.explainer-playground .explainer-step-image');
        const img = i && (i.tagName === 'IMG' ? i : i.querySelector('img')); return img ? img.src : ''; }""")


async def _generate(page, k: int, round_: int, timeout_s: float, go: asyncio.Event,
                    model: str = "shapes-sd") -> tuple[float | None, str, float | None]:
    """Type student k's prompt and seed, wait for everyone, click Generate; seconds until a new image shows, then
    seconds from that until the run's x0 at the slider's step shows (None if it did not within the timeout)."""
    try:
        await page.fill(".explainer-prompt input", student_prompt(k, model))
        await page.press(".explainer-prompt input", "Enter")
        await page.fill(".explainer-seed input", str(student_seed(k, round_)))
        await page.press(".explainer-seed input", "Enter")
        await page.press(".explainer-seed input", "Tab")  # blur too: the value is committed before Generate
        await page.wait_for_timeout(300)  # let the widget's update reach the kernel ahead of the click, under load
        old, old_step = await _src(page), await _step_src(page)
        await go.wait()
        t0 = time.perf_counter()
        await page.click(GEN)
        await page.wait_for_function(
            """(old) => { const i = document.querySelector('.explainer-playground .explainer-image');
                const img = i && (i.tagName === 'IMG' ? i : i.querySelector('img'));
                return img && img.src && img.src !== old && img.complete && img.naturalWidth > 0; }""",
            arg=old, timeout=timeout_s * 1000, polling=POLL_MS)
        seconds = time.perf_counter() - t0
        message = (await page.inner_text(".explainer-playground .explainer-message")).strip()
        if "error" in (await page.inner_html(".explainer-playground .explainer-message")):
            return None, message, None
        png = await page.evaluate(PNG_JS)
        t1 = time.perf_counter()
        try:
            await page.wait_for_function(STEP_IMAGE_JS, arg=old_step, timeout=timeout_s * 1000, polling=POLL_MS)
            step_s = time.perf_counter() - t1
        except Exception:  # noqa: BLE001 - counted as a step view that did not arrive
            step_s = None
        return seconds, png, step_s
    except Exception as err:  # noqa: BLE001
        return None, f"{type(err).__name__}: {str(err)[:200]}", None


async def _wire_open(student: WireStudent, timeout_s: float) -> tuple[WireStudent, float | None]:
    try:
        return student, await student.open(timeout_s)
    except Exception as err:  # noqa: BLE001 - a page that never became usable is a failure, counted (and said why)
        student.error = f"{type(err).__name__}: {str(err)[:200]}"
        return student, None


async def _wire_generate(student: WireStudent, k: int, round_: int, timeout_s: float, go: asyncio.Event,
                         model: str) -> tuple[float | None, str]:
    """Student k's prompt and seed typed, then Generate with everyone: (seconds until the new image arrived, the image
    as base64 PNG), or (None, the error)."""
    try:
        await student.type_in(student_prompt(k, model), student_seed(k, round_))
        await asyncio.sleep(0.3)
        await go.wait()
        seconds, error = await student.generate(timeout_s)
        return seconds, (base64.b64encode(student.image).decode() if seconds is not None else error)
    except Exception as err:  # noqa: BLE001
        return None, f"{type(err).__name__}: {str(err)[:200]}"


async def measure_class(n: int, rounds: int = 2, timeout_s: float = 120.0, min_free_gb: float = 1.5,
                        max_rss_gb: float = 8.0, home: Path | None = None, log: Path | None = None,
                        shared: bool = False, model: str = "shapes-sd", threads: int = 1,
                        browser_nice: int = 0, browsers: int | None = None) -> dict:
    """One classroom with `n` students: page-ready and Generate latencies, failures, peak RSS, and per round each
    student's image as shown (base64 PNG; None for a failed run; the Chromium pages' first, then the wire
    students'). `browsers`: only that many students are Chromium pages, the rest `WireStudent`s (no browser drawing
    on this box); their numbers are kept apart (`*_wire`)."""
    from playwright.async_api import async_playwright

    home = home or Path("/tmp/explainer-classroom-load") / f"n{n}"
    log = log or home / "classroom.log"
    server = voila_server(ROOT / "notebooks" / "playground.ipynb", home, log, students=n, model=model, threads=threads)
    server.env.update(server_env(home))
    server.start()
    out: dict = {"students": n, "ready": [], "not_ready": 0, "rounds": [], "rss_gb": 0.0, "stopped": None,
                 "images": [], "browsers": n if browsers is None else min(browsers, n), "ready_wire": []}
    scouts = int(browsers is not None and browsers < n)  # a scout page learns what a page fetches (below)
    try:
        server.wait_ready(None, timeout=600)
        url = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # the pool: every ready page has said hello to the worker
            url = url or worker_url(server.log_text())
            if url:
                import urllib.request

                try:
                    with urllib.request.urlopen(url + "/status", timeout=5) as r:
                        if json.loads(r.read())["pages_open"] >= n + scouts:
                            break
                except OSError:
                    pass
            await asyncio.sleep(1)
        out["warm_s"] = round(time.monotonic() - (deadline - 600), 1)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            if browser_nice:  # its zygote too: the pages' renderers are forked from it and inherit the niceness
                renice_chromium(browser_nice)
            assets = []
            if out["browsers"] < n:  # what a page fetches: a scout page (not counted), its kernel then let go
                from tornado.httpclient import AsyncHTTPClient

                AsyncHTTPClient.configure(None, max_clients=6 * n)  # each student's six connections, not 10 for all
                scout = await browser.new_context()
                requested: list[str] = []
                scout.on("request", lambda r: requested.append(r.url))
                await _open(scout, server.url + "/", timeout_s)
                await scout.close()
                assets = page_assets(requested, server.url)
                out["assets"] = len(assets)
            contexts, wires = [], []
            for k in range(n):  # memory checked before each new student
                free = psutil.virtual_memory().available / 2**30
                rss = tree_rss(server.proc.pid) / 2**30
                if free < min_free_gb or rss > max_rss_gb:
                    out["stopped"] = f"after {k} students: {free:.1f} GiB free, classroom RSS {rss:.1f} GiB"
                    break
                if k >= out["browsers"]:
                    wires.append(WireStudent(server.url, assets))
                elif shared and contexts:  # one profile for every page: its HTTP and compiled-code caches shared
                    contexts.append(contexts[0])
                else:
                    contexts.append(await browser.new_context(viewport={"width": 1200, "height": 900}))
            cpu0 = cpu_by_kind([server.proc.pid, psutil.Process().pid])
            opened = await asyncio.gather(*[_open(c, server.url + "/", timeout_s) for c in contexts],
                                          *[_wire_open(w, timeout_s) for w in wires])
            cpu1 = cpu_by_kind([server.proc.pid, psutil.Process().pid])
            out["open_cpu_s"] = {k: round(cpu1[k] - cpu0.get(k, 0.0), 1) for k in cpu1}
            opened, opened_wire = opened[:len(contexts)], opened[len(contexts):]
            pages = [p for p, t in opened if t is not None]
            wires = [w for w, t in opened_wire if t is not None]
            out["open_errors"] = [w.error for w, t in opened_wire if t is None][:3]
            out["ready"] = [t for _, t in opened if t is not None]
            out["ready_wire"] = [t for _, t in opened_wire if t is not None]
            out["not_ready"] = n - len(pages) - len(wires)
            out["rss_gb"] = max(out["rss_gb"], tree_rss(server.proc.pid) / 2**30)
            for r in range(rounds):
                cpu0 = cpu_by_kind([server.proc.pid, psutil.Process().pid])
                go = asyncio.Event()
                tasks = [asyncio.create_task(_generate(p, k, r, timeout_s, go, model)) for k, p in enumerate(pages)]
                wired = [asyncio.create_task(_wire_generate(w, len(pages) + k, r, timeout_s, go, model))
                         for k, w in enumerate(wires)]
                await asyncio.sleep(1.0)  # everyone has typed: all press Generate together
                go.set()
                results = await asyncio.gather(*tasks)
                results_wire = await asyncio.gather(*wired)
                cpu1 = cpu_by_kind([server.proc.pid, psutil.Process().pid])
                out["rounds"].append({"cpu_s": {k: round(cpu1[k] - cpu0.get(k, 0.0), 1) for k in cpu1},
                                      "worker": _status(url),
                                      "seconds": [s for s, _, _ in results if s is not None],
                                      "step_seconds": [x for s, _, x in results if s is not None and x is not None],
                                      "step_missing": sum(s is not None and x is None for s, _, x in results),
                                      "seconds_wire": [s for s, _ in results_wire if s is not None],
                                      "failed": sum(s is None for s, _, _ in results)
                                      + sum(s is None for s, _ in results_wire),
                                      "errors": ([m for s, m, _ in results if s is None]
                                                 + [m for s, m in results_wire if s is None])[:3]})
                out["images"].append([m if s is not None else None for s, m, _ in results]
                                     + [m if s is not None else None for s, m in results_wire])
                out["rss_gb"] = max(out["rss_gb"], tree_rss(server.proc.pid) / 2**30)
            await browser.close()
            for w in wires:
                await w.close()
    finally:
        out["rss_gb"] = round(max(out["rss_gb"], tree_rss(server.proc.pid) / 2**30 if server.proc else 0), 2)
        server.stop()
    return out


def spread(values: list[float]) -> str:
    return f"{pct(values, 50):5.1f} / {pct(values, 95):5.1f} / {max(values, default=float('nan')):5.1f}"


def row(res: dict) -> str:
    """The table's row: every student (Chromium pages and wire students together)."""
    cells = [f"{res['students']:>3}", spread(res["ready"] + res.get("ready_wire", []))]
    failed = res["not_ready"]
    for rd in res["rounds"]:
        cells.append(spread(rd["seconds"] + rd.get("seconds_wire", [])))
        failed += rd["failed"]
    cells += [str(failed), f"{res['rss_gb']:.2f}"]
    return "| " + " | ".join(cells) + " |" + (f"  ({res['stopped']})" if res["stopped"] else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, nargs="+", default=[1, 5, 10, 20, 30])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a page or a run may take (default 120)")
    p.add_argument("--min-free-gb", type=float, default=1.5)
    p.add_argument("--max-rss-gb", type=float, default=8.0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--threads", type=int, default=1,
                   help="the shared worker's torch threads (the classroom's --threads, default 1)")
    p.add_argument("--model", default="shapes-sd", choices=("shapes-sd", "scenes-sd"),
                   help="the model the classroom opens on (its students type prompts in its words)")
    p.add_argument("--browser-nice", type=int, default=0, choices=range(0, 20), metavar="0-19",
                   help="run the harness's Chromium at this OS niceness (default 0): its pages then yield the cores "
                        "to the classroom, as students' browsers on their own machines would")
    p.add_argument("--browsers", type=int, default=None, metavar="K",
                   help="only K of the students are Chromium pages; the rest speak the kernel protocol without a "
                        "browser (benchmarks/wire_student.py), as if their browsers ran on their own machines "
                        "(default: every student a Chromium page)")
    p.add_argument("--shared-profile", action="store_true",
                   help="every page in one browser profile (shared caches): the harness's browser stands in for the "
                        "students' own machines at a fraction of the CPU; the pages keep their own kernels")
    args = p.parse_args(argv)
    if not all(1 <= n <= 60 for n in args.students) or not 1 <= args.rounds <= 5:
        p.error("--students must each be from 1 to 60 and --rounds from 1 to 5")
    if args.browsers is not None and not 0 <= args.browsers <= 60:
        p.error(f"--browsers must be from 0 to 60, got {args.browsers}")
    print(f"{args.model}, worker threads {args.threads}, browser niceness {args.browser_nice}"
          + (f", {args.browsers} Chromium pages, the other students over the wire" if args.browsers is not None else "")
          + "; "
          f"{psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; load average "
          f"{' '.join(f'{x:.1f}' for x in psutil.getloadavg())} at start", flush=True)
    header = ("| students | page ready s (p50 / p95 / max) | " + " | ".join(
        f"Generate -> image s, round {r + 1} (p50 / p95 / max)" for r in range(args.rounds))
        + " | failed | classroom RSS GB |")
    results = []
    for n in args.students:
        res = asyncio.run(measure_class(n, args.rounds, args.timeout, args.min_free_gb, args.max_rss_gb,
                                        shared=args.shared_profile, model=args.model, threads=args.threads,
                                        browser_nice=args.browser_nice, browsers=args.browsers))
        res.pop("images")
        results.append(res)
        print(row(res), f"load {psutil.getloadavg()[0]:.1f}", flush=True)
        print(f"    opening the pages: CPU s {res.get('open_cpu_s')}", flush=True)
        if res.get("open_errors"):
            print(f"    pages never usable: {res['open_errors']}", flush=True)
        if res["browsers"] < res["students"]:
            print(f"    {res['browsers']} Chromium pages: ready {spread(res['ready'])}, Generate "
                  + "; ".join(spread(rd["seconds"]) for rd in res["rounds"])
                  + f" | {res['students'] - res['browsers']} wire students: ready {spread(res['ready_wire'])}, "
                  "Generate " + "; ".join(spread(rd["seconds_wire"]) for rd in res["rounds"]), flush=True)
        for r, rd in enumerate(res["rounds"]):
            print(f"    round {r + 1}: CPU s {rd['cpu_s']}; worker's batches {rd['worker'].get('batches')}; "
                  f"image -> x0 at the slider's step {spread(rd['step_seconds'])} s, {rd['step_missing']} missing",
                  flush=True)
    print("\n" + header + "\n|" + "---|" * (args.rounds + 4))
    for res in results:
        print(row(res))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
