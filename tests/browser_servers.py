"""Helpers for the browser tests: Voila / JupyterLab servers on loopback and a headless Debian Chromium.

Servers run as subprocesses on 127.0.0.1 with a free port, with their own Jupyter config, runtime, settings and
workspace folders (nothing from the user's home leaks in, nothing is written back to the repository), and are torn
down with every process they started (kernels run in their own sessions, so they are collected by process tree,
not by process group). Their logs go to test-artifacts/browser/ next to the screenshots.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("EXPLAINER_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home, which floods a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

# JupyterLab user settings for a test run: keep every cell in the DOM (no windowing) so outputs can be inspected,
# never autosave (the served files are copies anyway), and no calls to the network for news or extensions.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                          "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when Playwright and Chromium are both present."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed: pip install -e '.[classroom]'"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path) -> dict[str, str]:
    """The environment a server (and its kernels) runs in: the repo importable, Jupyter state under `home`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # CI exports MPLBACKEND=Agg for the headless tests; in a browser kernel figures must render inline as for a student.
    env.pop("MPLBACKEND", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
                     ("IPYTHONDIR", "ipython")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    return env


def write_lab_settings(settings_dir: Path) -> None:
    for rel, values in LAB_SETTINGS.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Server:
    """A server subprocess; `url` is its base URL once `wait_ready` returned."""

    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str], cwd: Path, log: Path):
        self.name, self.argv, self.port, self.env, self.cwd, self.log_path = name, argv, port, env, cwd, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, path: str = "", timeout: float = 90.0) -> None:
        """Wait until `path` answers over HTTP (or, with path=None, until the port accepts connections)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if path is None:
                    socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                else:
                    with urllib.request.urlopen(self.url + path, timeout=5) as r:
                        if r.status < 400:
                            return
                    continue
                return
            except Exception as e:  # noqa: BLE001 (not up yet)
                last = repr(e)
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        """Terminate the server and every process it started (kernels included), then close the log."""
        if self.proc is None:
            return
        procs = []
        try:
            import psutil

            with contextlib.suppress(psutil.Error):
                procs = psutil.Process(self.proc.pid).children(recursive=True)
        except ImportError:
            pass
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for p in procs:  # kernels the server did not shut down itself
            with contextlib.suppress(Exception):
                if p.is_running():
                    p.kill()
        if self._log:
            self._log.close()
        self.proc = None


@contextlib.contextmanager
def running(server: Server, ready_path: str | None = "", timeout: float = 90.0) -> Iterator[Server]:
    server.start()
    try:
        server.wait_ready(ready_path, timeout)
        yield server
    finally:
        server.stop()


def voila_server(notebook: Path, home: Path, log: Path, students: int = 2, model: str | None = "shapes-sd",
                 threads: int = 1) -> Server:
    """The classroom app exactly as a teacher starts it (`python -m explainer.classroom --model shapes-sd`: the
    browser tests and the load benchmark type shapes prompts; model=None starts it on its default), on a free port,
    with `students` pages kept ready."""
    port = free_port()
    argv = [sys.executable, "-m", "explainer.classroom", f"--port={port}", "--host=127.0.0.1", "--no-browser",
            f"--notebook={notebook}", f"--students={students}", f"--threads={threads}"] + (
                [f"--model={model}"] if model else [])
    return Server("voila", argv, port, server_env(home), notebook.parent, log)


def lab_server(root_dir: Path, home: Path, token: str, log: Path) -> Server:
    """JupyterLab serving `root_dir` (pass a copy of the notebooks: running them must not touch the repository)."""
    port = free_port()
    env = server_env(home)
    write_lab_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    argv = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root_dir}", "--ServerApp.open_browser=False",
            "--LabApp.news_url=", "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root; Jupyter refuses that unless told
        argv.append("--allow-root")
    return Server("jupyter lab", argv, port, env, root_dir, log)


def copy_notebooks(dest: Path) -> Path:
    """A scratch copy of notebooks/ (and the lessons' data next to it) for JupyterLab to run and autosave into."""
    shutil.copytree(ROOT / "notebooks", dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return dest

