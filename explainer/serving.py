"""The classroom's shared worker: one process holds each model once and makes every student's runs.

    worker = Worker(default_model="scenes-sd").start()      # loads the menu's models once, before any student
    server = serve(worker, port=0)                          # http://127.0.0.1:<port>/ (loopback only)

Each student's page (a thin Voila kernel: `widgets.worker_page`, no torch, no model) sends its run here as JSON and
gets back a safetensors answer (`widgets.run_view`): the image, the words, every word's attention at every step; a
moment later the CFG curve (drawn in a thread of lower OS priority); the predicted x0 of a step only when the page
shows that step (one VAE decode then, kept for the next look: a class pressing Generate pays for no decoding).
Requests that arrive together (within `gather_s`) and share a model, steps, sampler, CFG and negative prompt run as
one traced batch (`trace_batch` inside `generation.exact_batching`: each image, its latents and its attention bit for
bit those of the student's own single `trace`). The first batch of each kind — per model, CFG on or off and size class
2-3, 4-7, 8-15, 16-31, 32 — is checked against a single run, and a kind whose batch differs runs one by one from then
on. ControlNet runs and runs of other pipelines run one by one. A bad request is answered with its error before it
joins a batch; a batch that fails is rerun one by one, so only the request at fault gets the error; a student who
closed the tab costs only the answer nobody reads. The standard library's threading HTTP server and a queue are enough
here: one batch loop on the model, one render loop for the details, a thread per waiting request.

    GET  /status           JSON for the teacher: students active, pages alive, queue, runs served, last batch
    GET  /                 the same as a small page
    POST /hello            a page says it is open (every 20 s); the answer is the model menu with samplers, controls
    POST /run              a run (JSON) -> the answer (application/octet-stream) or 400 {"error": ...}
    GET  /details/<id>     the CFG curve of run <id> (waits until drawn)
    GET  /x0/<id>/<step>   step <step>'s predicted x0 of run <id>, decoded on this request (then kept)
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .widgets.parts import _collecting_warnings, _readable

ACTIVE_S = 600.0  # a student who ran something within this many seconds counts as active
ALIVE_S = 60.0  # a page that said hello within this many seconds counts as open
DETAILS_TTL_S = 600.0  # a run's x0 latents and curve are kept this long for its page's questions
MAX_BODY = 1 << 20  # bytes: a request body larger than this is refused
BATCH_HISTORY = 8  # batches the status lists (size, seconds, whether batched, over how many lanes, seconds waited)


@dataclass
class Job:
    """One student's run, waiting for its answer."""

    args: dict
    model: str
    session: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    queued: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    answer: bytes | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def key(self) -> tuple:
        """Runs with the same key can share one traced batch."""
        a = self.args
        if a.get("condition") is not None:
            return ("alone", self.id)
        return (self.model, a["steps"], a["scheduler"], a["cfg"], a["negative_prompt"])


class Worker:
    """The models, the batch loop and the render loop. `submit` validates and queues a run; `wait` gives its answer."""

    def __init__(self, default_model: str = "shapes-sd", extra_models: list[str] | None = None,
                 max_batch: int = 32, gather_s: float = 0.25, lanes: int = 1, warm: bool = False):
        self.default_model = default_model
        self.models = list(dict.fromkeys([default_model, *(extra_models or [])]))
        self.max_batch, self.gather_s, self.lanes, self.warm = max_batch, gather_s, max(1, lanes), warm
        self._lane_pipes: dict[tuple[str, int], Any] = {}  # (model, lane >= 1) -> the model's copy for that lane
        self.queue: queue.Queue[Job] = queue.Queue()
        self.render: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.details: dict[str, RunDetails] = {}
        self.seen: dict[str, float] = {}  # session -> last hello
        self.active: dict[str, float] = {}  # session -> last run
        self.running = 0
        self.idle = threading.Event()  # clear while the batch loop gathers or runs: the curves wait for it
        self.idle.set()
        self.served = 0
        self.failed = 0
        self.batches: deque[dict] = deque(maxlen=BATCH_HISTORY)  # the last few batches, for the teacher's page
        self.exact: dict[tuple, bool] = {}  # (model, cfg on, size class) -> batched trace equals single trace
        self._lock = threading.Lock()
        self._decode = threading.Lock()  # one x0 decode at a time (each is one small VAE call)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ----------------------------------------------------------------------------------------- models
    def start(self, load_menu: bool = True) -> Worker:
        """Load every menu model once (a model that cannot load stops the classroom here, before any student
        opens a page; load_menu=False serves only the models given), then start the batch and render loops."""
        from .models import available_models, load_model, quiet_libraries

        quiet_libraries()
        if load_menu:
            self.models = list(dict.fromkeys([self.default_model, *self.models, *available_models()]))
        for key in self.models:
            pipe = load_model(key, remember=False)
            for lane in range(1, self.lanes):
                self._lane_pipes[(key, lane)] = copy.deepcopy(pipe)
        self._threads = [threading.Thread(target=self._batch_loop, name="explainer-batches", daemon=True),
                         threading.Thread(target=self._render_loop, name="explainer-details", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Let the loops finish what they hold and end (before the interpreter exits: they run torch)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    def _next(self, q: queue.Queue) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.5)
            except queue.Empty:
                continue
        return None

    def pipe(self, key: str) -> Any:
        from .models import load_model

        if key not in self.models:
            raise ValueError(f"model must be one of {self.models}, got {key!r}")
        return load_model(key, remember=False)

    def lane_pipe(self, key: str, lane: int) -> Any:
        """The pipeline lane `lane` runs on: the model itself for lane 0, for the others its copy (made at start, in
        memory, before any run patched or hooked it: same weights; its own scheduler, U-Net hooks and VAE, so two
        batches can run at the same time)."""
        return self.pipe(key) if lane == 0 else self._lane_pipes[(key, lane)]

    def menu(self) -> dict:
        """What a page's menus offer: the models, and per model its samplers and control maps."""
        from .models import control_conditions
        from .widgets.parts import sampler_options

        return {"default": self.default_model, "models": {
            key: {"samplers": sampler_options(self.pipe(key)), "controls": control_conditions(self.pipe(key))}
            for key in self.models}}

    # ----------------------------------------------------------------------------------------- requests
    def submit(self, request: dict) -> Job:
        """Check a run (ValueError naming the parameter) and queue it."""
        job = self._check(request)
        with self._lock:
            self.active[job.session] = time.monotonic()
        self.queue.put(job)
        return job

    def _check(self, r: dict) -> Job:
        from .validation import check_cfg, check_optional_prompt, check_prompt, check_seed, check_steps

        if not isinstance(r, dict):
            raise ValueError("a run must be a JSON object")
        model = r.get("model", self.default_model)
        pipe = self.pipe(model)
        from .adapters import get_adapter

        args = dict(prompt=check_prompt(r.get("prompt"), "prompt"),
                    negative_prompt=check_optional_prompt(r.get("negative_prompt"), "negative_prompt"),
                    seed=check_seed(r.get("seed", 0)), cfg=check_cfg(r.get("cfg", 7.5), "CFG"),
                    steps=check_steps(r.get("steps", 25), "steps", maximum=200),
                    scheduler=get_adapter(pipe).check_sampler(r.get("scheduler")))
        condition = r.get("condition")
        if condition is not None:
            from .models import control_conditions

            if condition not in control_conditions(pipe):
                raise ValueError(f"condition must be one of {control_conditions(pipe)} for {model}, got {condition!r}")
            args.update(condition=condition, control_image=_map_from(r.get("control_image")),
                        controlnet_conditioning_scale=check_cfg(r.get("control_scale", 1.0), "control scale", 2.0))
        session = str(r.get("session") or "anonymous")[:64]
        return Job(args, model, session)

    def wait(self, job: Job, timeout: float) -> Job:
        if not job.done.wait(timeout):
            job.error = f"the worker did not answer within {timeout:.0f} s (queue: {self.queue.qsize()} runs)"
        return job

    def hello(self, session: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.seen[str(session)[:64]] = now
            for book, keep in ((self.seen, ALIVE_S), (self.active, ACTIVE_S)):  # forget pages long gone
                for k in [k for k, t in book.items() if now - t > 2 * keep]:
                    del book[k]

    def status(self) -> dict:
        now = time.monotonic()
        with self._lock:
            return {"students_active": sum(now - t < ACTIVE_S for t in self.active.values()),
                    "pages_open": sum(now - t < ALIVE_S for t in self.seen.values()),
                    "queue": self.queue.qsize(), "running": self.running, "served": self.served,
                    "failed": self.failed, "last_batch": dict(self.batches[-1]) if self.batches else {},
                    "batches": [dict(b) for b in self.batches],
                    "models": list(self.models)}

    # ----------------------------------------------------------------------------------------- the batch loop
    def _warm_up(self) -> None:
        """Settle, before the class asks, which batch sizes of the default model are exact here: each size class
        once, with CFG and without, at 2 steps (the verdict holds for any number of steps). A class's first round
        then runs no checking single run (each cost ~1 s of a 25-step round, measured)."""
        for cfg in (7.5, 1.0):
            for n in (2, 4, 8, 16, 32):
                jobs = [self._check({"prompt": "", "seed": k, "cfg": cfg, "steps": 2}) for k in range(n)]
                try:
                    self._traces(jobs)
                except Exception:  # noqa: BLE001 - a size that fails here is checked again by the first real batch
                    pass

    def _batch_loop(self) -> None:
        if self.warm:
            self._warm_up()
        while (first := self._next(self.queue)) is not None:
            self.idle.clear()
            jobs = [first]
            time.sleep(self.gather_s)  # students who pressed Generate together arrive within a few ms
            while True:
                try:
                    jobs.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key(), []).append(job)
            for group in groups.values():
                for i in range(0, len(group), self.max_batch):
                    self._run_group(group[i:i + self.max_batch])
            if self.queue.empty():
                self.idle.set()

    def _run_group(self, jobs: list[Job]) -> None:
        self.running = len(jobs)
        t0 = time.perf_counter()
        try:
            traces = self._traces(jobs) if len(jobs) > 1 else None
        except Exception:  # noqa: BLE001 - a batch that fails is rerun one by one: only the faulty run errs
            traces = None
        batched = traces is not None  # False: run one by one (a single job, or this size class is not exact here)
        if traces is None:
            traces = [self._single(job) for job in jobs]
        for job, tr in zip(jobs, traces, strict=True):
            self._answer(job, tr)
        batch = {"size": len(jobs), "seconds": round(time.perf_counter() - t0, 2), "batched": batched,
                 "lanes": len(self._parts(jobs)) if batched else 1,
                 "waited": round(t0 - min(j.queued for j in jobs), 2)}
        with self._lock:
            self.batches.append(batch)
        self.running = 0

    def _single(self, job: Job) -> Any:
        from .models import controlnet_pipeline
        from .trace import trace

        args = dict(job.args)
        condition = args.pop("condition", None)
        pipe = self.pipe(job.model)
        if condition is not None:
            pipe = controlnet_pipeline(pipe, condition)
        notes: list[str] = []
        try:
            with _collecting_warnings(notes):
                tr = trace(pipe, **args)
            job.notes = notes
            return tr
        except Exception as err:  # noqa: BLE001 - the student's page shows it as a message
            job.error = _readable(err)
            return None

    def _traces(self, jobs: list[Job]) -> list | None:
        """Traced batches for runs that share a key, each bit for bit its single trace; None when this model does
        not batch exactly (the caller then runs them one by one). With `lanes` > 1 a batch of 4 or more is split
        into one part per lane, the parts traced at the same time on the lanes' copies of the model (torch leaves
        Python's lock while it computes: measured, 28 scenes-sd runs in 3.5 s on two lanes instead of 5.5 s)."""
        from . import generation
        from .adapters import get_adapter
        from .validation import check_vocabulary, warn_dropped_words

        pipe = self.pipe(jobs[0].model)
        cfg_on = jobs[0].args["cfg"] > 1
        parts = self._parts(jobs)
        verdicts = [(jobs[0].model, cfg_on, len(part).bit_length()) for part in parts]  # sizes 2-3, 4-7, 8-15, ...
        if not generation.can_batch(pipe) or any(self.exact.get(v) is False for v in verdicts):
            return None
        for job in jobs:  # each student's own notes (unknown words, words past the token limit)
            job.notes = []
            with _collecting_warnings(job.notes):
                check_vocabulary(pipe, [job.args["prompt"]], "prompt")
                toks, dropped, _ = get_adapter(pipe).tokens(job.args["prompt"])
                warn_dropped_words(dropped, len(toks), "prompt")
        results: list = [None] * len(parts)
        batch_notes: list[str] = []
        with _collecting_warnings(batch_notes):  # one collector for every lane (warnings' state is global)
            others = [threading.Thread(target=self._trace_part, args=(part, k, results), daemon=True)
                      for k, part in enumerate(parts[1:], 1)]
            for t in others:
                t.start()
            self._trace_part(parts[0], 0, results)
            for t in others:
                t.join()
        if any(isinstance(r, BaseException) for r in results):
            raise next(r for r in results if isinstance(r, BaseException))
        shared = [n for n in batch_notes if "prompts[" not in n]
        for job in jobs:
            job.notes += [n for n in shared if n not in job.notes]
        for part, traces, verdict in zip(parts, results, verdicts, strict=True):
            if verdict not in self.exact:  # a new size class: is it the single run, bit for bit?
                single = self._single(part[0])
                self.exact[verdict] = single is not None and _same_run(single, traces[0])
                if not self.exact[verdict]:
                    return None
        by_job = {job.id: tr for part, traces in zip(parts, results, strict=True)
                  for job, tr in zip(part, traces, strict=True)}
        return [by_job[job.id] for job in jobs]

    def _parts(self, jobs: list[Job]) -> list[list[Job]]:
        """A batch's share of each lane: one part per lane from 2 runs a lane on, else the whole batch."""
        n = self.lanes if len(jobs) >= 2 * self.lanes else 1
        return [jobs[k::n] for k in range(n)]

    def _trace_part(self, jobs: list[Job], lane: int, results: list) -> None:
        """Trace `jobs` as one exact batch on lane `lane`'s pipeline into results[lane] (an exception, if it
        failed)."""
        from . import generation
        from .trace import trace_batch

        a = jobs[0].args
        pipe = self.lane_pipe(jobs[0].model, lane)
        try:
            with generation.exact_batching(pipe, unit=2 if a["cfg"] > 1 else 1, verify=False):
                results[lane] = trace_batch(pipe, [j.args["prompt"] for j in jobs], [j.args["seed"] for j in jobs],
                                            steps=a["steps"], cfg=a["cfg"], negative_prompt=a["negative_prompt"],
                                            scheduler=a["scheduler"])
        except Exception as err:  # noqa: BLE001 - raised again by _traces, in the batch loop's thread
            results[lane] = err

    def _answer(self, job: Job, tr: Any) -> None:
        from .widgets.run_view import answer_bytes

        if tr is not None:
            try:
                job.answer = answer_bytes(tr, job.notes, job.id)
                with self._lock:  # what the page may still ask: the x0 latents (small), not the whole trace
                    self.details[job.id] = RunDetails(time.monotonic(), job.model, tr._t["x0"])
                self.render.put((job.id, tr))
            except Exception as err:  # noqa: BLE001
                job.error = _readable(err)
        with self._lock:
            self.served += job.error is None
            self.failed += job.error is not None
        job.done.set()

    # ----------------------------------------------------------------------------------------- the render loop
    def _render_loop(self) -> None:
        import os

        from .widgets.run_view import curve_bytes

        try:  # Linux: this thread alone yields to the batches (students wait for images first, details after)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while (item := self._next(self.render)) is not None:
            run_id, tr = item
            # Images first, curves after: drawing holds Python's GIL and slows a batch running beside it (two waves
            # of 15 fox runs on one core, the second arriving as the first's curves were drawn: 10.6 and 11.7 s
            # for the second wave drawing alongside, 9.4 and 10.4 s waiting).
            while not self.idle.wait(0.5) and not self._stop.is_set():
                pass
            try:
                data = curve_bytes(tr)
            except Exception:  # noqa: BLE001 - the page keeps its image; the curve stays "drawing"
                data = b""
            with self._lock:
                entry = self.details.get(run_id)
                if entry is not None:
                    entry.curve = data
                    entry.drawn.set()
                now = time.monotonic()
                for k in [k for k, e in self.details.items() if now - e.made > DETAILS_TTL_S]:
                    del self.details[k]

    def take_curve(self, run_id: str, timeout: float) -> bytes | None:
        """Run `run_id`'s CFG curve (safetensors bytes) once drawn; None if unknown, expired or not drawn in time."""
        with self._lock:
            entry = self.details.get(run_id)
        if entry is None or not entry.drawn.wait(timeout):
            return None
        return entry.curve or None

    def x0(self, run_id: str, step: str) -> bytes | None:
        """Step `step`'s predicted x0 of run `run_id` (safetensors bytes), decoded now and kept; None if the run is
        unknown or expired; ValueError for a step the run does not have."""
        from .widgets.run_view import x0_bytes

        with self._lock:
            entry = self.details.get(run_id)
        if entry is None:
            return None
        n = len(entry.x0)
        if not (step.isdigit() and int(step) < n):
            raise ValueError(f"step must be an integer from 0 to {n - 1}, got {step!r}")
        i = int(step)
        if i not in entry.decoded:
            with self._decode:
                entry.decoded[i] = x0_bytes(self.pipe(entry.model), entry.x0, i)
        return entry.decoded[i]


@dataclass
class RunDetails:
    """What a served run's page may still ask for: its x0 latents (decoded per step on request) and its curve."""

    made: float
    model: str
    x0: Any  # tensor [steps, C, h, w] on the CPU
    curve: bytes | None = None
    drawn: threading.Event = field(default_factory=threading.Event)
    decoded: dict[int, bytes] = field(default_factory=dict)


def _same_run(a: Any, b: Any) -> bool:
    import numpy as np
    import torch

    return (np.array_equal(np.asarray(a.image), np.asarray(b.image))
            and all(torch.equal(x.latents, y.latents) for x, y in zip(a.steps, b.steps, strict=True)))


def _map_from(value: Any) -> Any:
    """A control map sent as a nested list of uint8 RGB rows -> PIL image (checked: h x w x 3, at most 512 px)."""
    import numpy as np
    from PIL import Image

    try:
        arr = np.asarray(value, dtype=np.int64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.ndim != 3 or arr.shape[2] != 3 or not 1 <= max(arr.shape[:2]) <= 512 or arr.min() < 0 or arr.max() > 255:
        raise ValueError("control_image must be an RGB map (rows of [r, g, b] values 0-255, at most 512 px a side)")
    return Image.fromarray(arr.astype(np.uint8))


# --------------------------------------------------------------------------------------------- HTTP
def _handler(worker: Worker, timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # the teacher's terminal shows the status line instead
            pass

        def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the student closed the tab: nobody reads this answer

        def _bytes(self, data: bytes | None) -> None:
            if data is None:
                self._json(404, {"error": "no such run (expired after 10 minutes, or never made)"})
            else:
                self._send(200, data, "application/octet-stream")

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, json.dumps(obj).encode())

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            if not 0 < n <= MAX_BODY:
                raise ValueError(f"the request body must be 1 to {MAX_BODY:,} bytes of JSON, got {n:,}")
            try:
                return json.loads(self.rfile.read(n))
            except json.JSONDecodeError as err:
                raise ValueError(f"the request body is not JSON ({err})") from None

        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            if self.path == "/status":
                self._json(200, worker.status())
            elif self.path == "/":
                s = worker.status()
                rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in s.items())
                self._send(200, f"<meta http-equiv='refresh' content='5'><h3>Classroom worker</h3><table>{rows}"
                                f"</table>".encode(), "text/html")
            elif self.path.startswith("/details/"):
                self._bytes(worker.take_curve(self.path.rsplit("/", 1)[1], timeout))
            elif self.path.startswith("/x0/") and self.path.count("/") == 3:
                _, _, run_id, step = self.path.split("/")
                try:
                    self._bytes(worker.x0(run_id, step))
                except ValueError as err:
                    self._json(400, {"error": str(err)})
            else:
                self._json(404, {"error": f"no such path {self.path!r}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                body = self._body()
                if self.path == "/hello":
                    worker.hello(body.get("session", "anonymous") if isinstance(body, dict) else "anonymous")
                    self._json(200, worker.menu())
                    return
                if self.path != "/run":
                    self._json(404, {"error": f"no such path {self.path!r}"})
                    return
                job = worker.wait(worker.submit(body), timeout)
            except Exception as err:  # noqa: BLE001 - every refusal is a readable message for the page
                self._json(400, {"error": _readable(err)})
                return
            if job.error is not None:
                self._json(400, {"error": job.error})
            else:
                self._send(200, job.answer, "application/octet-stream")

    return Handler


class _ClassServer(ThreadingHTTPServer):
    # a class's pages ask at once (30 runs, their heartbeats and x0 views): socketserver's default backlog of 5
    # overflowed while the accepting thread waited for Python's lock, and a page got "connection reset" (measured)
    request_queue_size = 256
    daemon_threads = True


def serve(worker: Worker, port: int = 0, host: str = "127.0.0.1", timeout: float = 300.0) -> ThreadingHTTPServer:
    """Serve `worker` over HTTP on host:port (port 0: a free one; `server.server_port` says which) in a daemon
    thread; `server.shutdown()` stops it."""
    server = _ClassServer((host, port), _handler(worker, timeout))
    threading.Thread(target=server.serve_forever, name="explainer-http", daemon=True).start()
    return server
