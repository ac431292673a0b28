"""The classroom app's entry point (fast), and the page it serves built headless (the app itself is driven in a real
browser in test_browser.py)."""

import ast
import json
import subprocess
import sys

import numpy as np
import pytest

from explainer import classroom


def test_voila_command_serves_the_playground_on_loopback():
    argv = classroom.voila_argv(port=9001, open_browser=False, students=12)
    assert argv[:3] == [sys.executable, "-m", "voila"]
    assert argv[3].endswith("notebooks/playground.ipynb")
    assert "--port=9001" in argv and "--Voila.ip=127.0.0.1" in argv and "--no-browser" in argv
    # a class at once: pages rendered ahead (and two spare), refilled after the rush, a minute's wait for a cell's
    # output, kernels of closed tabs culled
    assert "--preheat_kernel=True" in argv and "--pool_size=14" in argv
    assert any(a.startswith("--VoilaKernelManager.fill_delay=") for a in argv)
    assert "--VoilaExecutor.iopub_timeout=60" in argv and any("cull_idle_timeout" in a for a in argv)
    assert classroom.NOTEBOOK.is_file()
    env = classroom.kernel_env("http://127.0.0.1:1234", None)
    assert env["EXPLAINER_WORKER"] == "http://127.0.0.1:1234" and env["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("args, words", [(["--port", "0"], "--port must be"),
                                         (["--notebook", "nope.ipynb"], "not found"),
                                         (["--host", ""], "empty host would listen on every interface"),
                                         (["--host", "  "], "--host must be an address"),
                                         (["--students", "0"], "--students must be"),
                                         (["--lanes", "0"], "--lanes must be from 1 to")])
def test_bad_arguments_give_a_readable_message(args, words, capsys):
    with pytest.raises(SystemExit) as e:
        classroom.main(args)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_help_documents_every_flag():
    out = subprocess.run([sys.executable, "-m", "explainer.classroom", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--port", "--host", "--no-browser", "--notebook"):
        assert flag in out


def _served_page():
    """What the served notebook's code cells build (the value of the last cell's last line), run as Voila runs it."""
    nb = json.loads(classroom.NOTEBOOK.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    tree = ast.parse(code)
    last = tree.body.pop()
    assert isinstance(last, ast.Expr), "the notebook should end with the widget as its last line"
    env: dict = {}
    exec(compile(tree, str(classroom.NOTEBOOK), "exec"), env)
    return eval(compile(ast.Expression(last.value), str(classroom.NOTEBOOK), "eval"), env)


def test_the_served_page_offers_a_control_map_and_it_works(monkeypatch, shipped_pipe):
    from explainer import shapes
    from explainer import widgets as wd
    from explainer.models import CONTROLNETS

    if not (CONTROLNETS["edges"] / "config.json").exists():
        pytest.skip("the shipped edges ControlNet is not there yet")
    monkeypatch.setenv("EXPLAINER_MODEL", "shapes-sd")  # `python -m explainer.classroom --model shapes-sd`
    from explainer import models

    monkeypatch.delenv("EXPLAINER_WORKER", raising=False)  # this test builds the page in-process
    monkeypatch.setattr(models, "_SESSION", {"pipes": {"shapes-sd": shipped_pipe}})  # a fresh tab, the model loaded
    pg = _served_page()
    assert isinstance(pg, wd.Playground) and pg.pipe is shipped_pipe
    assert pg.control_panel.layout.display is None and pg.control.value is None  # offered, off until chosen
    pg.steps.value = 4
    pg.control.value = "edges"
    pg.run()
    assert pg.message.value == "" and pg.status.value.startswith("done")
    assert pg.trace.settings["model_id"] == "explainer/shapes-sd+controlnet-edges"
    assert pg.control_used_box.layout.display is None
    used = np.asarray(pg.trace._t["control.image"])
    assert np.array_equal(used, np.asarray(shapes.render_edges(shapes.sample_scene(wd.CONTROL_SCENE_SEED))))


def test_a_model_folder_without_weights_stops_the_classroom_at_start(tmp_path, capsys):
    import shutil

    from explainer.models import SHIPPED_MODEL

    folder = tmp_path / "no-weights"
    shutil.copytree(SHIPPED_MODEL, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(SystemExit) as e:
        classroom.main(["--model", str(folder), "--no-browser"])
    assert e.value.code == 2 and "no weights" in capsys.readouterr().err


def test_a_students_page_imports_no_torch():
    code = ("import sys, explainer, explainer.widgets, explainer.widgets.worker_page, explainer.widgets.run_view; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------- the shared worker
PROMPTS = ["a red circle left of a blue square", "a green triangle above a yellow star", "a blue star",
           "a yellow square right of a red cross"]


@pytest.fixture(scope="module")
def worker(shipped_pipe):
    from explainer import models
    from explainer.serving import Worker, serve

    models._SESSION.setdefault("pipes", {})["shapes-sd"] = shipped_pipe  # the worker's model: loaded once
    w = Worker(default_model="shapes-sd", lanes=2).start(load_menu=False)  # a batch of 4 or more: two lanes
    server = serve(w, port=0)
    yield w, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    w.stop()


def _run(url: str, **kw):
    from explainer.widgets.worker_page import WorkerBackend

    args = dict(prompt=PROMPTS[0], negative_prompt=None, seed=0, cfg=7.5, steps=6, scheduler=None) | kw
    return WorkerBackend(url).run(args, lambda *a: None)


def test_students_who_press_together_share_one_batch_and_each_gets_their_own_run(worker, shipped_pipe):
    """Four students at once plus one bad request: one traced batch (split over the worker's two lanes, each on its
    own copy of the model), each image and attention map bit for bit the student's own single trace; the bad request
    gets its error and stalls no one."""
    from concurrent.futures import ThreadPoolExecutor

    from explainer.trace import trace
    from explainer.words import words_of

    w, url = worker
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(_run, url, prompt=p, seed=10 + k) for k, p in enumerate(PROMPTS)]
        bad = pool.submit(_run, url, steps=0)
        views = [f.result(timeout=300) for f in futures]
        with pytest.raises(ValueError, match="steps"):
            bad.result(timeout=300)
    last = w.status()["last_batch"]
    assert last["size"] >= 2 and last["batched"] and w.status()["served"] >= 4  # batched, not run one by one
    assert last["lanes"] == (2 if last["size"] >= 4 else 1)
    for k, view in enumerate(views):
        tr = trace(shipped_pipe, PROMPTS[k], seed=10 + k, steps=6, cfg=7.5)
        assert np.array_equal(view.image_rgb(), np.asarray(tr.image.convert("RGB")))
        word = next(w_ for w_ in words_of(tr) if str(w_) in ("circle", "triangle", "star", "square"))
        assert np.array_equal(view.attention(word.index, 3), tr.attention(word, step=3).float().numpy())
        assert view.step_text(2).startswith("step 3 of 6")


def test_a_classroom_page_is_the_playground_without_a_model(worker, shipped_pipe, monkeypatch):
    """The student's page: the same controls and panels, its runs from the worker; the CFG curve arrives after the
    image, and a step's x0 when the page shows that step (decoded by the worker then, only that step); bad input is a
    message."""
    import time

    from explainer import widgets as wd
    from explainer.trace import trace

    w, url = worker
    monkeypatch.setenv("EXPLAINER_WORKER", url)
    pg = wd.playground(steps=6, seed=3, control="none")
    assert pg.pipe is None and pg.model.value == "shapes-sd" and len(pg.sampler.options) > 3
    pg.run()
    assert pg.message.value == "" and pg.status.value.startswith("done")
    ref = trace(shipped_pipe, pg.prompt.value, seed=3, steps=6)
    shown = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
        __import__("io").BytesIO(bytes(pg.image.value))).convert("RGB"))
    assert np.array_equal(shown[::8, ::8], np.asarray(ref.image.convert("RGB")))

    def arrived(step: int) -> None:
        deadline = time.monotonic() + 120  # the page's background threads fetch them
        while not (pg.view.has_curve and pg.view.x0_rgb(step) is not None) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # the thread's page.update() after add_x0
        assert pg.cfg_curve.value and pg.step_image.value and pg.step.value == step
        x0 = pg.view.x0_rgb(step).astype(int)
        assert np.abs(x0 - np.asarray(ref.decode(step)).astype(int)).mean() < 1.0

    arrived(3)  # the slider opens mid-run
    assert [i for i in range(6) if pg.view.x0_rgb(i) is not None] == [3]  # nothing for steps nobody looked at
    pg.step.value = 5
    assert "arriving" in pg.step_caption.value
    arrived(5)
    before = bytes(pg.attention.value)
    pg.word.value = next(v for label, v in pg.word.options if label == "blue")
    assert bytes(pg.attention.value) != before
    pg.steps.value = 0
    pg.run()
    assert "steps" in pg.message.value and "explainer-error" in pg.message.value
    assert w.status()["students_active"] >= 1


def test_a_step_the_run_does_not_have_is_refused_naming_the_range(worker):
    import urllib.error
    import urllib.request

    w, url = worker
    view = _run(url, prompt=PROMPTS[0], seed=2)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/x0/{view.run_id}/6", timeout=60)
    assert err.value.code == 400 and "step must be an integer from 0 to 5, got '6'" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/x0/no-such-run/0", timeout=60)
    assert err.value.code == 404
    with urllib.request.urlopen(f"{url}/x0/{view.run_id}/0", timeout=60) as r:
        view.add_x0(r.read())
    assert view.x0_rgb(0).shape == (32, 32, 3) and view.x0_rgb(1) is None


def test_a_closed_tab_stalls_no_one(worker):
    """A page that sends a run and goes away before the answer: the worker makes it, nobody reads it, and the next
    student's run comes back as usual."""
    import socket

    w, url = worker
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"prompt": PROMPTS[1], "seed": 5, "steps": 6, "session": "gone"}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
    view = _run(url, prompt=PROMPTS[2], seed=6)
    assert view.image_rgb().shape == (32, 32, 3) and w.status()["queue"] == 0


def test_the_page_opens_on_the_fox_and_the_menu_keeps_the_shapes(monkeypatch):
    """What a user sees first: with no --model the page opens on scenes-sd with the article's prompt; choosing
    shapes-sd in the menu puts the shapes prompt in (a prompt the student typed is kept)."""
    from explainer import models

    if "scenes-sd" not in models.available_models():
        pytest.skip("scenes-sd is not in this install")
    monkeypatch.delenv("EXPLAINER_MODEL", raising=False)
    monkeypatch.delenv("EXPLAINER_WORKER", raising=False)
    monkeypatch.setattr(models, "_SESSION", {})
    pg = _served_page()
    assert pg.model.value == "scenes-sd" and pg.prompt.value == "a red fox sitting in autumn leaves"
    assert {"shapes-sd", "scenes-sd"} <= {v for _, v in pg.model.options}
    assert not models.is_shapes_model(pg.pipe) and pg.control_panel.layout.display == "none"
    pg.steps.value = 3
    pg.run()
    assert pg.message.value == "" and pg.trace.image.size == (64, 64)
    pg.model.value = "shapes-sd"
    assert pg.prompt.value == "a red circle left of a blue square" and models.is_shapes_model(pg.pipe), pg.message.value
    pg.prompt.value = "a blue square"
    pg.model.value = "scenes-sd"
    assert pg.prompt.value == "a blue square"  # typed by the student: kept
