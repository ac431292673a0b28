"""A classroom student's playground: the same page, its runs made by the classroom's shared worker
(`explainer.serving`). This kernel holds no model and never imports torch: it sends the run as JSON, shows the answer
(`run_view.PayloadView`), fetches the CFG curve in a background thread while the student already looks at the image,
and a step's predicted x0 when the page shows that step. A heartbeat tells the worker the page is open (the
teacher's count)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

import numpy as np

HEARTBEAT_S = 20.0
RUN_TIMEOUT_S = 300.0


class WorkerBackend:
    """The playground's backend on a classroom page (see `playground_ui.LocalBackend` for the in-process one)."""

    preset = None
    pipe = None

    def __init__(self, url: str, model: str | None = None):
        self.url = url.rstrip("/")
        self.session = uuid.uuid4().hex
        self.menu = self._post("/hello", {"session": self.session})
        models = self.menu["models"]
        if model is not None and model not in models:
            raise ValueError(f"model must be one of the classroom's models {list(models)}, got {model!r}")
        self.key = model or self.menu["default"]
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, name="explainer-heartbeat", daemon=True).start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._post("/hello", {"session": self.session}, timeout=10)
            except Exception:  # noqa: BLE001 - a missed heartbeat only lowers the teacher's count for a while
                pass

    def _post(self, path: str, body: dict, timeout: float = 30.0, raw: bool = False) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                data = r.read()
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error")
            except Exception:  # noqa: BLE001
                message = None
            raise ValueError(message or f"the classroom worker refused the run (HTTP {err.code})") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise RuntimeError(f"the classroom worker at {self.url} did not answer ({err}); ask the teacher to "
                               "check the classroom terminal") from None
        return data if raw else json.loads(data)

    # ----------------------------------------------------------------------------------------- the page's questions
    def choices(self) -> list[str]:
        return list(self.menu["models"])

    def all_controls(self) -> list[str]:
        return sorted({c for m in self.menu["models"].values() for c in m["controls"]})

    def switch(self, key: str) -> str:
        if key not in self.menu["models"]:
            raise ValueError(f"model must be one of {self.choices()}, got {key!r}")
        self.key = key
        return f"{key} ready (the classroom's shared model)"

    def samplers(self) -> list[tuple[str, str | None]]:
        return [(label, value) for label, value in self.menu["models"][self.key]["samplers"]]

    def controls(self) -> list[str]:
        return list(self.menu["models"][self.key]["controls"])

    def prepare_control(self, condition: str) -> None:
        """Nothing to load here: the worker loads the ControlNet once for everyone."""

    def run(self, args: dict, progress: Any) -> Any:
        from .run_view import PayloadView

        body = {k: v for k, v in args.items() if k not in ("control_image", "controlnet_conditioning_scale")}
        if args.get("condition") is not None:
            body["control_image"] = np.asarray(args["control_image"].convert("RGB")).tolist()
            body["control_scale"] = args["controlnet_conditioning_scale"]
        body.update(model=self.key, session=self.session)
        progress(0, 1)
        return PayloadView(self._post("/run", body, timeout=RUN_TIMEOUT_S, raw=True))

    def details(self, view: Any, page: Any) -> None:
        """Fetch the CFG curve in the background; show it if the page still shows this run."""
        def fetch() -> None:
            try:
                view.add_curve(self._get(f"/details/{view.run_id}"))
            except Exception:  # noqa: BLE001 - the image stays; the curve's note says it did not arrive
                view.failed_details = True
            if page.view is view:
                page.show_curve()

        threading.Thread(target=fetch, name="explainer-curve", daemon=True).start()

    def want_x0(self, view: Any, i: int, page: Any) -> None:
        """The page shows step i and has not its x0 yet: ask the worker for it (once) in the background and show it
        if the page still shows that run at that step."""
        if i in view.x0_asked:
            return
        view.x0_asked.add(i)

        def fetch() -> None:
            try:
                view.add_x0(self._get(f"/x0/{view.run_id}/{i}"))
            except Exception:  # noqa: BLE001 - the caption stays "arriving"; moving the slider asks again
                view.x0_asked.discard(i)
                return
            if page.view is view and page.step.value == i:
                page.update()

        threading.Thread(target=fetch, name="explainer-x0", daemon=True).start()

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(urllib.request.Request(self.url + path), timeout=RUN_TIMEOUT_S) as r:
            return r.read()
