"""The classroom experience in a real browser: the Voila playground app and the lessons in JupyterLab, driven with
Playwright through Debian's headless Chromium (never a downloaded browser build).

Each test starts its own server on 127.0.0.1 with a free port and stops it (kernels included) on success or failure.
Screenshots, server logs and timings land in test-artifacts/browser/ for a person to look at.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from browser_servers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    chromium_missing_reason,
    copy_notebooks,
    lab_server,
    running,
    voila_server,
)

_missing = chromium_missing_reason()
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(_missing is not None, reason=_missing or "")]

# Generous waits: the first kernel imports torch and loads the model, and CI machines are small and shared.
# EXPLAINER_BROWSER_SLOWDOWN=N stretches every wait N times (a machine busy with training, say).
SLOWDOWN = float(os.environ.get("EXPLAINER_BROWSER_SLOWDOWN", "1"))
SERVER_S = 120 * SLOWDOWN
RENDER_MS = 240_000 * SLOWDOWN
GENERATE_MS = 180_000 * SLOWDOWN
STEP_MS = 60_000 * SLOWDOWN
RUN_MS = 480_000 * SLOWDOWN  # one notebook's Run All, cold caches on a busy machine included
PROMPT = "a large green triangle left of a red circle"
TIMINGS = ARTIFACTS / "timings.json"


def _record(**values) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data.update(values)
    TIMINGS.write_text(json.dumps(data, indent=1, sort_keys=True))


def _playground_notebook() -> Path:
    return Path(os.environ.get("EXPLAINER_PLAYGROUND_NOTEBOOK", ROOT / "notebooks" / "playground.ipynb"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch() gives every run a fresh temporary profile (user-data dir), removed on close.
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_factory(browser):
    """New pages in a fresh context; on teardown the context closes (and with it any page a failure left open)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 1100}, device_scale_factor=1)
    ctx.set_default_timeout(STEP_MS)
    errors: list[str] = []

    def new_page():
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        return page

    new_page.errors = errors
    yield new_page
    ctx.close()


@contextlib.contextmanager
def _shot_on_failure(page, name: str):
    """On any failure, keep a screenshot of the page as it was (test-artifacts/browser/<name>_FAILED.png)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            _shot(page, f"{name}_FAILED", full_page=True)
        raise


# ------------------------------------------------------------------------------------------------ picture helpers
IMG_READY_JS = """([sel, old]) => {
  const img = document.querySelector(sel);
  return !!img && !!img.src && img.src !== old && img.complete && img.naturalWidth > 0
      && img.getBoundingClientRect().width > 0;
}"""

IMG_BYTES_JS = """async (sel) => {
  const img = document.querySelector(sel);
  const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let s = ''; for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
  return btoa(s);
}"""


def _src(page, sel: str) -> str:
    return page.eval_on_selector(sel, "img => img.src || ''") if page.query_selector(sel) else ""


def _wait_new_image(page, sel: str, old: str, timeout: float = GENERATE_MS) -> str:
    page.wait_for_function(IMG_READY_JS, arg=[sel, old], timeout=timeout, polling=50)
    return _src(page, sel)


def _pixels(page, sel: str) -> np.ndarray:
    """The decoded picture an <img> shows (its PNG bytes, fetched from the blob/data URL inside the page)."""
    from PIL import Image

    png = base64.b64decode(page.evaluate(IMG_BYTES_JS, sel))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference (0..255); pictures of different sizes count as different."""
    return 255.0 if a.shape != b.shape else float(np.abs(a - b).mean())


def _shot(page, name: str, **kw) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), **kw)


# ------------------------------------------------------------------------------------------------ Voila
def test_voila_playground(tmp_path, page_factory):
    """The classroom app as a student uses it: generate, scrub steps, change the word, survive a bad value."""
    nb = _playground_notebook()
    assert nb.exists(), f"{nb} is missing: the Voila app (`make demo`) serves it"
    t_start = time.perf_counter()
    server = voila_server(nb, tmp_path / "home", ARTIFACTS / "voila.log")
    with running(server, ready_path=None, timeout=SERVER_S) as srv:
        page = page_factory()
        with _shot_on_failure(page, "voila"):
            page.goto(srv.url + "/", timeout=RENDER_MS)
            gen = ".explainer-playground .explainer-generate"
            page.wait_for_selector(gen, state="visible", timeout=RENDER_MS)
            t_ready = time.perf_counter() - t_start
            _shot(page, "voila_1_opened", full_page=True)

            page.fill(".explainer-prompt input", PROMPT)
            page.fill(".explainer-steps input", "25")
            page.press(".explainer-steps input", "Enter")

            # Generate -> the image on screen (25 steps), timed from the click to the decoded <img> being laid out.
            img = ".explainer-playground .explainer-image"
            old = _src(page, img)
            t0 = time.perf_counter()
            page.click(gen)
            first = _wait_new_image(page, img, old)
            t_first = time.perf_counter() - t0
            page.wait_for_function("s => !document.querySelector(s).disabled", arg=gen)
            _shot(page, "voila_2_generated", full_page=True)
            status = page.inner_text(".explainer-status")
            assert not page.inner_text(".explainer-message").strip(), page.inner_text(".explainer-message")
            assert _pixels(page, img).std() > 5, "the generated image is flat"

            # Step slider: move it to step 0 -> the predicted-x0 picture changes.
            step_img = ".explainer-playground .explainer-step-image"
            before_src = _wait_new_image(page, step_img, "")
            before = _pixels(page, step_img)
            info_before = page.inner_text(".explainer-step-info")
            page.focus(".explainer-step .noUi-handle")
            page.keyboard.press("Home")
            after_src = _wait_new_image(page, step_img, before_src, timeout=STEP_MS)
            diff = _differ(before, _pixels(page, step_img))
            assert diff > 2, f"moving the step slider barely changed the picture (mean |diff| {diff:.2f})"
            assert page.inner_text(".explainer-step-info") != info_before
            assert after_src
            _shot(page, "voila_3_step0", full_page=True)

            # Another word -> the attention map changes.
            att = ".explainer-playground .explainer-attention"
            att_src = _wait_new_image(page, att, "")
            att_before = _pixels(page, att)
            options = page.eval_on_selector_all(".explainer-word select option",
                                                "os => os.map(o => [o.value, o.label])")
            current = page.eval_on_selector(".explainer-word select", "s => s.value")
            assert len(options) >= 2, f"the word menu offers {options}"
            other = next(v for v, label in options if v != current and label.split(" ")[0] in PROMPT.split()[2:])
            page.select_option(".explainer-word select", other)
            _wait_new_image(page, att, att_src, timeout=STEP_MS)
            diff = _differ(att_before, _pixels(page, att))
            assert diff > 2, f"choosing another word barely changed the attention map (mean |diff| {diff:.2f})"
            _shot(page, "voila_4_other_word", full_page=True)

            # A bad value: steps 0 -> a readable message in the page, no traceback.
            page.fill(".explainer-steps input", "0")
            page.press(".explainer-steps input", "Enter")
            page.click(gen)
            err = page.wait_for_selector(".explainer-message .explainer-error", state="visible", timeout=STEP_MS)
            message = err.inner_text()
            assert "steps" in message.lower() and "Traceback" not in message, message
            assert "Traceback" not in page.inner_text("body")
            _shot(page, "voila_5_bad_steps", full_page=True)

            # ...and the app keeps working: fix the value, change the seed, generate again (timed, warm).
            page.fill(".explainer-steps input", "25")
            page.press(".explainer-steps input", "Enter")
            page.fill(".explainer-seed input", "1")
            page.press(".explainer-seed input", "Enter")
            t0 = time.perf_counter()
            page.click(gen)
            _wait_new_image(page, img, first)
            t_second = time.perf_counter() - t0
            page.wait_for_selector(".explainer-message .explainer-error", state="detached", timeout=STEP_MS)
            page.wait_for_function("s => !document.querySelector(s).disabled", arg=gen)
            status2 = page.inner_text(".explainer-status")
            _shot(page, "voila_6_again", full_page=True)
            assert not page_factory.errors, page_factory.errors

    timings = {"voila_page_ready_s": round(t_ready, 1), "voila_generate_to_image_25_steps_first_s": round(t_first, 2),
               "voila_generate_to_image_25_steps_second_s": round(t_second, 2),
               "voila_status_first": status, "voila_status_second": status2}
    _record(**timings)
    print("\n" + "\n".join(f"  {k}: {v}" for k, v in timings.items()))


# ------------------------------------------------------------------------------------------------ JupyterLab
RUN_STATE_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
  const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return {prompts, status: status ? status.getAttribute('data-status') : null};
}"""

ERRORS_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const outs = [...panel.querySelectorAll('.jp-OutputArea-output')];
  const text = o => o.innerText || '';
  return {
    errors: outs.filter(o => o.matches('[data-mime-type="application/vnd.jupyter.stderr"]') && /Traceback|Error/
                .test(text(o)) || /Traceback \\(most recent call last\\)/.test(text(o))).map(text),
    stderr: outs.filter(o => o.matches('[data-mime-type="application/vnd.jupyter.stderr"]')).map(text),
    loading: /Loading widget|Error displaying widget|model not found/i.test(panel.innerText),
    widgets: [...panel.querySelectorAll('.jupyter-widgets, .widget-button')]
                .filter(w => w.getBoundingClientRect().width > 0).length,
    images: [...panel.querySelectorAll('.jp-OutputArea-output img')].filter(i => i.naturalWidth > 0).length,
  };
}"""


def _kernel_of(url: str, token: str, name: str) -> dict | None:
    """The server's view of the kernel behind notebook `name` (from /api/sessions): id, execution_state,
    connections; None while the notebook has no session yet."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=10) as r:
        sessions = json.loads(r.read())
    for s in sessions:
        if s.get("path", "").rsplit("/", 1)[-1] == name and s.get("kernel"):
            return s["kernel"]
    return None


def _wait_kernel_ready(page, url: str, token: str, name: str, timeout_s: float) -> None:
    """Wait until the kernel is really there: the server reports it idle with the page's websocket connected, and
    the page shows it idle. The page's indicator alone reads "idle" before the kernel has finished starting on a
    cold machine, and JupyterLab silently skips code cells run while the session has no kernel yet."""
    deadline = time.monotonic() + timeout_s
    kernel = None
    while time.monotonic() < deadline:
        kernel = _kernel_of(url, token, name)
        shown = page.evaluate("() => { const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
                              ".jp-Notebook-ExecutionIndicator'); return s && s.getAttribute('data-status'); }")
        if kernel and kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1 \
                and shown == "idle":
            return
        time.sleep(0.5)
    raise TimeoutError(f"{name}: the kernel was not ready after {timeout_s:.0f} s (server says {kernel})")


def _run_all_in_lab(page, url: str, token: str, name: str, shots: str) -> dict:
    # A workspace of its own per notebook: JupyterLab opens just that notebook, nothing restored from before.
    page.goto(f"{url}/lab/workspaces/{shots}/tree/{name}?token={token}", timeout=RENDER_MS)
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", timeout=RENDER_MS)
    _wait_kernel_ready(page, url, token, name, RENDER_MS / 1000)
    t0 = time.perf_counter()
    # Run All exactly once, as a learner does: a second Run All would queue every cell again behind the first.
    page.click(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .jp-InputArea-prompt")  # focus the notebook
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-content .lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_function("() => { const s = (" + RUN_STATE_JS + ")(); return s &&"
                           " s.prompts.some(p => /[\\d*]/.test(p)); }", timeout=STEP_MS, polling=250)
    # Done when the server says the kernel is idle again and no cell waits; a cold first import (torch, the model,
    # matplotlib's font cache) on a busy machine takes minutes, so this wait is the notebook's whole run.
    deadline = time.monotonic() + RUN_MS / 1000
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE_JS)
        kernel = _kernel_of(url, token, name) or {}
        if state and kernel.get("execution_state") == "idle" and state["status"] == "idle" and state["prompts"] \
                and not any("*" in p for p in state["prompts"]):
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"{name}: Run All had not finished after {RUN_MS / 1000:.0f} s: "
                           f"{page.evaluate(RUN_STATE_JS)}")
    seconds = time.perf_counter() - t0
    state = page.evaluate(RUN_STATE_JS)
    # Widgets render asynchronously after the kernel is idle; give them a moment before judging.
    try:
        page.wait_for_function("() => !/Loading widget/i.test(document.querySelector("
                               "'.jp-NotebookPanel:not(.lm-mod-hidden)').innerText)", timeout=30_000)
    except Exception:  # noqa: BLE001 (reported by the assertion below)
        pass
    found = page.evaluate(ERRORS_JS)
    _shot(page, f"{shots}_ran")
    return dict(found, prompts=state["prompts"], seconds=round(seconds, 1))


def _lesson_notebook(root: Path) -> str:
    for name in ("13_playground.ipynb", "playground.ipynb"):
        if (root / name).exists():
            return name
    pytest.fail("neither notebooks/13_playground.ipynb nor notebooks/playground.ipynb exists")


def test_jupyterlab_runs_start_here_and_a_lesson(tmp_path, page_factory):
    """Run All in a real JupyterLab: no error output, every code cell ran, widgets rendered (and answer a click)."""
    root = copy_notebooks(tmp_path / "notebooks")  # running (and any autosave) must not touch the repository
    token = os.urandom(12).hex()
    results = {}
    with running(lab_server(root, tmp_path / "home", token, ARTIFACTS / "jupyterlab.log"), ready_path="/api/status?"
                 f"token={token}", timeout=SERVER_S) as srv:
        page = page_factory()
        with _shot_on_failure(page, "lab"):
            from explainer.models import available_models

            start = [("00_start_here.ipynb", "lab_start_here")] if "scenes-sd" in available_models() else []
            for name, shots in start + [(_lesson_notebook(root), "lab_lesson")]:  # 00 opens on scenes-sd
                r = _run_all_in_lab(page, srv.url, token, name, shots)
                results[name] = r
                assert not r["errors"], f"{name}: error output in JupyterLab:\n" + "\n---\n".join(r["errors"])[:3000]
                ran = all(any(ch.isdigit() for ch in p) for p in r["prompts"])
                assert ran, (f"{name}: cells did not all run: {r['prompts']}\nserver log (end):\n"
                             + srv.log_text()[-3000:])
                assert not r["loading"], f"{name}: a widget did not render (Loading widget / Error displaying widget)"
                if name == "00_start_here.ipynb":
                    assert r["images"] >= 2, "00_start_here: the fox and the circle did not both appear"
                else:
                    assert r["widgets"] >= 1, f"{name}: no widget is visible"
                    gen = ".jp-NotebookPanel:not(.lm-mod-hidden) .explainer-generate"
                    if page.query_selector(gen):  # the playground answers a click in JupyterLab too (comms both ways)
                        pg = ".jp-NotebookPanel:not(.lm-mod-hidden) .explainer-playground"
                        img = f"{pg} .explainer-image"
                        old = _src(page, img)
                        # A new seed, so the picture really changes (the lesson may have generated one already).
                        seed = page.input_value(f"{pg} .explainer-seed input")
                        page.fill(f"{pg} .explainer-seed input", str(int(seed or 0) + 7))
                        page.press(f"{pg} .explainer-seed input", "Enter")
                        page.click(gen)
                        _wait_new_image(page, img, old)
                        page.wait_for_function("s => !document.querySelector(s).disabled", arg=gen)  # run finished
                        page.eval_on_selector(img, "i => i.scrollIntoView({block: 'center'})")
                        _shot(page, f"{shots}_generated")
            assert not page_factory.errors, page_factory.errors
    _record(**{f"lab_run_all_{n.removesuffix('.ipynb')}_s": r["seconds"] for n, r in results.items()})
    for n, r in results.items():
        print(f"\n  JupyterLab {n}: ran in {r['seconds']} s, {len(r['prompts'])} code cells, {r['widgets']} widgets,"
              f" {r['images']} images; stderr outputs: {len(r['stderr'])}")
        for s in r["stderr"]:
            print("    stderr:", s.strip().splitlines()[0][:160] if s.strip() else "")


def test_jupyterlab_step_explorer_inside_lesson_1(tmp_path, page_factory):
    """Lesson 1's step explorer in a real JupyterLab: after Run All, dragging its step slider to the last step changes
    the predicted-x0 picture and the step caption (the explorer lives inside a lesson, not only in the playground)."""
    root = copy_notebooks(tmp_path / "notebooks")
    name = "01_whole_machine.ipynb"
    assert (root / name).exists(), f"{name} is missing"
    token = os.urandom(12).hex()
    with running(lab_server(root, tmp_path / "home", token, ARTIFACTS / "jupyterlab_lesson1.log"),
                 ready_path=f"/api/status?token={token}", timeout=SERVER_S) as srv:
        page = page_factory()
        with _shot_on_failure(page, "lab_lesson1"):
            r = _run_all_in_lab(page, srv.url, token, name, "lab_lesson1")
            assert not r["errors"], f"{name}: error output in JupyterLab:\n" + "\n---\n".join(r["errors"])[:3000]
            assert not r["loading"], f"{name}: a widget did not render"
            ex_sel = ".jp-NotebookPanel:not(.lm-mod-hidden) .explainer-step-explorer"
            page.wait_for_selector(ex_sel, state="visible", timeout=STEP_MS)
            page.eval_on_selector(ex_sel, "e => e.scrollIntoView({block: 'center'})")
            x0 = f"{ex_sel} .explainer-x0"
            src = _wait_new_image(page, x0, "", timeout=STEP_MS)
            before, info = _pixels(page, x0), page.inner_text(f"{ex_sel} .explainer-step-info")
            page.focus(f"{ex_sel} .explainer-step .noUi-handle")
            page.keyboard.press("End")  # the last step: the finished picture instead of step 1's blur
            _wait_new_image(page, x0, src, timeout=STEP_MS)
            diff = _differ(before, _pixels(page, x0))
            assert diff > 2, f"moving lesson 1's step slider barely changed the predicted x0 (mean |diff| {diff:.2f})"
            assert page.inner_text(f"{ex_sel} .explainer-step-info") != info
            _shot(page, "lab_lesson1_step_explorer")
            assert not page_factory.errors, page_factory.errors
    _record(lab_run_all_01_whole_machine_s=r["seconds"])


# ------------------------------------------------------------------------------------------------ a class at once
def test_a_class_of_five_at_once(shipped_pipe):
    """Five students open the classroom together and press Generate together, twice (benchmarks/classroom_load.py
    with N = 5), two more over the wire beside them (`--browsers 5`): every page becomes usable, every run shows an
    image, and each student's image is the one their own prompt and seed give in a single run here, pixel for pixel
    (the shared worker batched them), and its step panel shows that run's predicted x0."""
    import asyncio
    import importlib.util

    from PIL import Image

    from explainer.trace import trace

    spec = importlib.util.spec_from_file_location("classroom_load", ROOT / "benchmarks" / "classroom_load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    from concurrent.futures import ThreadPoolExecutor

    run = load.measure_class(7, rounds=2, timeout_s=RENDER_MS / 1000, min_free_gb=1.0, max_rss_gb=8.0,
                             home=ARTIFACTS / "class5", log=ARTIFACTS / "class5.log", browsers=5)
    with ThreadPoolExecutor(1) as pool:  # its own event loop: the sync Playwright of the other tests holds this one
        res = pool.submit(asyncio.run, run).result()
    assert res["stopped"] is None and res["not_ready"] == 0 and len(res["ready"]) == 5, res
    assert len(res["ready_wire"]) == 2 and all(len(rd["seconds_wire"]) == 2 for rd in res["rounds"]), res
    assert all(rd["failed"] == 0 for rd in res["rounds"]), res["rounds"]
    # and each page's step panel filled in: the worker decoded the x0 of the step each page shows, on request
    assert all(rd["step_missing"] == 0 and len(rd["step_seconds"]) == 5 for rd in res["rounds"]), res["rounds"]
    import torch

    # Each student sees their own picture: the single run of their prompt and seed, not a classmate's. (That the
    # worker's batch equals single runs bit for bit is tested in-process in test_classroom; here the single runs are
    # made in this test process, whose earlier tests may leave CPU kernels that round a last bit differently, so a
    # difference of 1-2 levels is allowed while every other student's picture must be far off.)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the worker's thread count (the classroom's default)
    try:
        for r, images in enumerate(res["images"]):
            own = [np.asarray(trace(shipped_pipe, load.student_prompt(k), seed=load.student_seed(k, r),
                                    steps=25).image.convert("RGB")).astype(int) for k in range(len(images))]
            for k, b64 in enumerate(images):
                shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))[::8, ::8].astype(int)
                diffs = [np.abs(shown - o).max() for o in own]
                assert diffs[k] <= 2 and all(d > 2 for j, d in enumerate(diffs) if j != k), (r, k, diffs)
    finally:
        torch.set_num_threads(threads)
    assert res["rss_gb"] < 8.0
    _record(class5_page_ready_s=[round(t, 1) for t in res["ready"]],
            class5_generate_s=[[round(t, 1) for t in rd["seconds"]] for rd in res["rounds"]],
            class5_image_to_x0_s=[[round(t, 1) for t in rd["step_seconds"]] for rd in res["rounds"]],
            class5_rss_gb=res["rss_gb"])
