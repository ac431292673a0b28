"""The classroom app: the playground notebook served by Voila as a web page with no code showing, for a whole class.

    python -m explainer.classroom                 # http://127.0.0.1:8866/, opens on scenes-sd and the fox
    python -m explainer.classroom --port 9000 --no-browser
    python -m explainer.classroom --model path/to/stable-diffusion-folder     # any diffusers pipeline folder
    python -m explainer.classroom --model shapes-sd                          # another shipped model
    python -m explainer.classroom --students 40   # keep 40 pages ready (default 30)

The page is the playground: prompt, negative prompt, seed, CFG, steps, sampler and Generate; the image with its step
slider, a word's attention and the CFG curve; on the shipped shapes model also a control map (ControlNet: edges or
segmentation of a scene drawn from a seed, or of the last image as the judge reads it, and its scale), shown beside
the image it made, and the run's warnings as notes; a model menu lists the shipped models (each tab remembers its
choice).

How it carries a class on one machine: this process is the shared worker (`explainer.serving`). It loads each
model of the menu once, before Voila starts (a model that cannot load stops here with its reason), and makes every
student's runs; runs that arrive together are traced as one batch, each image bit for bit the student's own single
run. Voila gives every tab its own kernel, but that kernel is thin: it imports no torch and holds no model, runs with
one thread, and asks the worker. Voila keeps `--students` kernels preheated (the page is rendered ahead), waits up to
60 s for a cell's output (not 4 s), and culls kernels whose tab is gone. The terminal prints how many students are
active and the queue; the same numbers are at the worker's own address, printed at start.

It runs on the CPU by default (no GPU needed) and listens on this machine only (127.0.0.1) unless --host says
otherwise; to let a room of students reach it, pass --host 0.0.0.0 on a network you trust. The worker itself always
listens on 127.0.0.1. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "playground.ipynb"
DEFAULT_PORT = 8866
DEFAULT_STUDENTS = 30
IOPUB_TIMEOUT_S = 60  # Voila's default 4 s fails a page whose kernel is still starting on a busy machine
# Each page takes a preheated kernel and Voila starts its replacement `fill_delay` later (default 1 s): while a class
# opens its pages together, 30 replacement kernels would start and render on the same cores (measured: ~0.75 CPU-s of
# kernel and ~0.3 of Voila per page, half the server's work of a page opening). The classroom refills after the rush,
# and keeps a few spare kernels ready for a latecomer or a reloaded tab meanwhile.
FILL_DELAY_S = 90


def spare_kernels(students: int) -> int:
    """Preheated kernels kept beyond one per student: for reloads and latecomers while the refill waits."""
    return max(2, students // 10)


# Lab extensions a student's page never uses (the page shows no code and no JupyterLab preview): each page's browser
# would fetch and run them (measured: 185 kB less per page and ~7 % less of its main-thread time).
UNUSED_EXTENSIONS = ("jupyterlab-jupytext", "jupyterlab_pygments", "@voila-dashboards/jupyterlab-preview")
CULL_IDLE_S = 300  # a kernel with no page connected for this long is shut down (connected pages are never culled)
STATUS_EVERY_S = 10.0
# Two batches at once, one per core (torch leaves Python's lock while it computes): a class's round of 28 scenes-sd
# runs took 3.5 s on two lanes instead of 5.5 s on one, the same pictures bit for bit (measured on this 2-core box).
DEFAULT_LANES = max(1, min(2, os.cpu_count() or 1))


def _unix_sockets() -> list[str]:
    """Kernels over Unix sockets where their paths fit (`<runtime dir>/kernel-<uuid>-ipc-<n>`: Linux allows 107
    bytes), else TCP: 30 kernels starting at once over TCP picked the same free port ("ZMQError: Address already in
    use"), one died and its page never became usable (measured)."""
    from jupyter_core.paths import jupyter_runtime_dir

    return ["--KernelManager.transport=ipc"] if os.name == "posix" and len(jupyter_runtime_dir()) <= 48 else []


def voila_argv(notebook: str | os.PathLike = NOTEBOOK, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
               open_browser: bool = True, students: int = DEFAULT_STUDENTS) -> list[str]:
    """The command line that serves `notebook` with Voila (what `main` runs): preheated kernels for `students`
    pages and a few spare, refilled once the rush is over, a 60 s wait for cell output, and culling of kernels whose
    page is gone."""
    argv = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={host}",
            "--preheat_kernel=True", f"--pool_size={students + spare_kernels(students)}",
            f"--VoilaKernelManager.fill_delay={FILL_DELAY_S}", f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_S}",
            f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_S}", "--MappingKernelManager.cull_interval=60",
            "--MappingKernelManager.cull_connected=False", *_unix_sockets(),
            f"--VoilaConfiguration.extension_denylist={list(UNUSED_EXTENSIONS)!r}"]
    if not open_browser:
        argv.append("--no-browser")
    return argv


def kernel_env(worker_url: str, model: str | None) -> dict[str, str]:
    """The environment Voila and its kernels run in: the worker's address, one thread per kernel."""
    env = dict(os.environ, EXPLAINER_WORKER=worker_url)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    if model is not None:
        env["EXPLAINER_MODEL"] = model
    return env


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explainer.classroom",
                                description="Serve the playground (prompt, seed, CFG, steps, sampler, Generate; the "
                                            "image with its step slider, a word's attention and the CFG curve; on "
                                            "the shapes model a ControlNet control map and its scale) as a web page "
                                            "with Voila, for a class: one shared worker makes every student's runs.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.add_argument("--notebook", default=str(NOTEBOOK), help="notebook to serve (default: the playground)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="a diffusers pipeline folder or a shipped model's name (scenes-sd, shapes-sd, shapes-dit); "
                        "default: scenes-sd (the fox) when installed, else shapes-sd")
    p.add_argument("--students", type=int, default=DEFAULT_STUDENTS,
                   help=f"pages kept ready for students opening at once (default {DEFAULT_STUDENTS}; each ready page "
                        "is a thin kernel of about 100 MB)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the shared worker (default 1: the other cores draw pages and details)")
    p.add_argument("--lanes", type=int, default=DEFAULT_LANES,
                   help=f"batches the worker runs at the same time, each on its own copy of the model (default "
                        f"{DEFAULT_LANES}: this machine's cores, at most 2; a class's batch of 4 or more is split "
                        "between them)")
    return p


def check_host(host: str) -> str:
    """A non-empty address: an empty one (an unset $HOST) would make the server listen on every interface."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"--host must be an address such as 127.0.0.1 (this machine only) or 0.0.0.0 (every "
                         f"network), got {host!r}: an empty host would listen on every interface")
    return host.strip()


def check_model(model: str | None) -> str | None:
    """None, a shipped model's name present in this install, or a folder holding a complete diffusers pipeline (a
    readable model_index.json and weights for its parts); else a ValueError saying which are allowed (checked before
    the worker loads it and before Voila starts, not in every student's tab)."""
    if model is None:
        return None
    from .models import SHIPPED_MODELS, available_models, check_pipeline_folder

    if model in SHIPPED_MODELS:
        if model not in available_models():
            raise ValueError(f"--model {model!r} is not in this install (available: {available_models()})")
        return model
    path = Path(model).expanduser()
    if not (path / "model_index.json").is_file():
        raise ValueError(f"--model {model!r} must be a folder holding a diffusers pipeline (model_index.json) or one "
                         f"of the shipped models {available_models()}")
    check_pipeline_folder(path)
    return str(path.resolve())


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    if not 0 < args.port < 65536:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    if not 1 <= args.students <= 500:
        parser.error(f"--students must be from 1 to 500, got {args.students}")
    if not 1 <= args.threads <= (os.cpu_count() or 1) * 2:
        parser.error(f"--threads must be from 1 to {(os.cpu_count() or 1) * 2}, got {args.threads}")
    if not 1 <= args.lanes <= (os.cpu_count() or 1):
        parser.error(f"--lanes must be from 1 to {os.cpu_count() or 1} (this machine's cores), got {args.lanes}")
    try:
        args.host = check_host(args.host)
    except ValueError as err:
        parser.error(str(err))
    if not Path(args.notebook).is_file():
        parser.error(f"{args.notebook} not found (the classroom app runs from a source checkout of explainer)")
    if importlib.util.find_spec("voila") is None:
        parser.error("Voila is not installed: pip install -e '.[classroom]'")
    try:
        return check_model(args.model)
    except ValueError as err:
        parser.error(str(err))
    return None  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model = _check_args(parser, args)
    import torch

    from .serving import Worker, serve
    from .shipped import first_model

    torch.set_num_threads(args.threads)
    model = model or first_model()
    print(f"Loading {model} and the menu's models into the shared worker...", flush=True)
    try:
        worker = Worker(default_model=model, lanes=args.lanes, warm=True).start()
    except Exception as err:  # noqa: BLE001 - a model that cannot load stops the class here, with its reason
        parser.error(f"--model {model} cannot be loaded: {err}")
    server = serve(worker, port=0)
    worker_url = f"http://127.0.0.1:{server.server_port}"
    cmd = voila_argv(args.notebook, args.port, args.host, open_browser=not args.no_browser, students=args.students)
    voila = subprocess.Popen(cmd, env=kernel_env(worker_url, model))
    print(f"Serving the playground at http://{args.host}:{args.port}/ with {model} "
          f"({args.students} pages kept ready; the teacher's view: {worker_url}/; Ctrl-C to stop)", flush=True)
    code = _supervise(voila, worker)
    worker.stop(timeout=10)
    return code


def _supervise(voila: subprocess.Popen, worker: object) -> int:
    """Print the class's status when it changes until Voila exits or Ctrl-C; then stop Voila and its kernels."""
    last = None
    try:
        while voila.poll() is None:
            s = worker.status()
            line = (f"students active {s['students_active']} · kernels alive {s['pages_open']} · queue "
                    f"{s['queue'] + s['running']} · runs served {s['served']} · failed {s['failed']}")
            if line != last:
                print(time.strftime("%H:%M:%S"), line, flush=True)
                last = line
            time.sleep(STATUS_EVERY_S)
    except KeyboardInterrupt:
        pass
    finally:
        if voila.poll() is None:
            voila.send_signal(signal.SIGTERM)  # Jupyter servers ask to confirm a SIGINT
            try:
                voila.wait(timeout=20)
            except subprocess.TimeoutExpired:
                voila.kill()
    return voila.returncode or 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the worker's daemon threads hold torch: skip the interpreter's teardown of them
