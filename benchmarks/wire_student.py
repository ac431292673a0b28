"""A student without a browser, for the classroom load test: it speaks the Jupyter kernel protocol to its page's
kernel as the widget manager in a page does (the way hubtraf load-tests JupyterHub with simulated users), so a class
of N can be measured on one box with only a few real Chromium pages drawing beside it.

    student = WireStudent("http://127.0.0.1:8866")
    ready_s = await student.open(timeout_s=120)       # GET the page (Voila hands it a preheated kernel) and its
                                                      # static files, then every widget's state over the websocket
    await student.type_in("a red fox in the snow", 7) # the prompt and seed widgets' values, as typing sets them
    seconds, error = await student.generate(timeout_s=120)   # click Generate; seconds until the new image arrives
    await student.close()

What it does not do is what the student's own machine does: parse and run Voila's JavaScript and draw the widgets
(measured on this box: ~1 CPU-s of Chromium per page); what the classroom serves it does all of: the page, its
static files as a browser with an empty cache fetches them (`assets`: the list a real page requested,
`page_assets`), the kernel's messages. The widget protocol is ipywidgets 8's: a
`jupyter.widget.control` comm answers `request_states` with every model's state; a widget's value is set by an
`update` message on its comm, a button is pressed by a `custom` `click` event, and an Image's new picture arrives as
an `update` with its bytes in a binary buffer (the v1 websocket framing of jupyter_server, as the page's).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import datetime, timezone

BROWSER_CONNECTIONS = 6  # HTTP/1.1 connections a browser opens to one server at once


def page_assets(requested: list[str], base_url: str) -> list[str]:
    """The static files (scripts, styles, fonts) among the URLs a real page requested: what every student's browser
    fetches from the classroom on a first visit."""
    base = base_url.rstrip("/")
    return sorted({u for u in requested if u.startswith(base + "/") and "/api/" not in u and u != base + "/"})


def _pack(msg: dict) -> bytes:
    """A message -> a websocket frame of the kernel protocol's v1 framing (what a page's JavaScript sends)."""
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    return serialize_msg_to_ws_v1(msg, "shell", pack=lambda part: json.dumps(part).encode())


def _unpack(frame: bytes) -> dict:
    """A v1 websocket frame -> (channel, header, parent header, metadata, content, buffers) as a message dict."""
    from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

    channel, parts = deserialize_msg_from_ws_v1(frame)
    header, parent, metadata, content = (json.loads(x) for x in parts[:4])
    return {"channel": channel, "header": header, "parent_header": parent, "metadata": metadata,
            "content": content, "buffers": parts[4:]}


class WireStudent:
    """One student's page, spoken to over the kernel protocol (see the module docstring)."""

    def __init__(self, base_url: str, assets: list[str] | None = None):
        self.base = base_url.rstrip("/")
        self.assets = list(assets or [])  # what a page with an empty cache fetches before it connects (scripts, css)
        self.session = uuid.uuid4().hex
        self.ws = None
        self.models: dict[str, str] = {}  # explainer css class -> widget model id
        self.state: dict[str, dict] = {}  # model id -> its last state (as the kernel sent it)
        self.images = 0  # new pictures the image widget has received
        self.image = b""  # the last one (PNG bytes, as the page would show it)
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self.error = ""  # why the page never became usable, when it did not

    # ---------------------------------------------------------------------------------------------- the wire
    async def _send(self, msg_type: str, content: dict, metadata: dict | None = None) -> None:
        header = {"msg_id": uuid.uuid4().hex, "session": self.session, "username": "student", "msg_type": msg_type,
                  "version": "5.3", "date": datetime.now(timezone.utc).isoformat()}
        await self.ws.write_message(_pack({"header": header, "parent_header": {}, "metadata": metadata or {},
                                           "content": content}), binary=True)

    async def _comm(self, comm_id: str, data: dict) -> None:
        await self._send("comm_msg", {"comm_id": comm_id, "data": data})

    async def _read(self) -> None:
        while True:
            frame = await self.ws.read_message()
            if frame is None:
                return
            msg = _unpack(frame)
            if msg["header"]["msg_type"] != "comm_msg":
                continue
            data = msg["content"]["data"]
            if data.get("method") == "update_states":
                for model_id, model in data["states"].items():
                    self.state[model_id] = model["state"]
            elif data.get("method") in ("update", "echo_update"):
                model_id = msg["content"]["comm_id"]
                self.state.setdefault(model_id, {}).update(data["state"])
                if (data["method"] == "update" and model_id == self.models.get("explainer-image")
                        and ["value"] in data.get("buffer_paths", []) and any(msg["buffers"])):
                    self.image = bytes(msg["buffers"][data["buffer_paths"].index(["value"])])
                    self.images += 1
            self._changed.set()

    async def _until(self, condition, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the kernel did not answer in time")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    # ---------------------------------------------------------------------------------------------- a student
    async def open(self, timeout_s: float = 120.0) -> float:
        """Open the page and get every widget's state; seconds taken."""
        from tornado.httpclient import AsyncHTTPClient
        from tornado.websocket import websocket_connect

        t0 = time.perf_counter()
        client = AsyncHTTPClient()
        page = await client.fetch(self.base + "/", request_timeout=timeout_s)
        found = re.search(r'"kernelId": "([0-9a-f-]+)"', page.body.decode())
        if not found:
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.body.decode()))
            raise RuntimeError(f"the page (HTTP {page.code}, {len(page.body)} bytes) names no kernel: {text[:160]}")
        for k in range(0, len(self.assets), BROWSER_CONNECTIONS):  # a browser's six connections to one server
            await asyncio.gather(*[client.fetch(url, request_timeout=timeout_s)
                                   for url in self.assets[k:k + BROWSER_CONNECTIONS]])
        ws_url = self.base.replace("http", "ws", 1) + f"/api/kernels/{found[1]}/channels?session_id={self.session}"
        self.ws = await websocket_connect(ws_url, max_message_size=64 * 2**20,
                                          subprotocols=["v1.kernel.websocket.jupyter.org"])
        self._reader = asyncio.create_task(self._read())
        control = uuid.uuid4().hex
        await self._send("comm_open", {"comm_id": control, "target_name": "jupyter.widget.control", "data": {}},
                         {"version": "1.0.0"})  # ipywidgets' control protocol
        await self._comm(control, {"method": "request_states"})
        await self._until(lambda: self._find("explainer-generate"), timeout_s - (time.perf_counter() - t0))
        for cls in ("explainer-prompt", "explainer-seed", "explainer-image", "explainer-message"):
            self._find(cls)
        return time.perf_counter() - t0

    def _find(self, cls: str) -> str | None:
        for model_id, state in self.state.items():
            if cls in (state.get("_dom_classes") or ()):
                self.models[cls] = model_id
                return model_id
        return None

    async def type_in(self, prompt: str, seed: int) -> None:
        """Set the prompt and seed as typing into the page does (the widgets' values, sent to the kernel)."""
        for cls, value in (("explainer-prompt", prompt), ("explainer-seed", seed)):
            await self._comm(self.models[cls], {"method": "update", "state": {"value": value}, "buffer_paths": []})

    async def generate(self, timeout_s: float = 120.0) -> tuple[float | None, str]:
        """Press Generate; (seconds until the new picture arrived, ""), or (None, the page's error message)."""
        message = self.models.get("explainer-message")
        before, said = self.images, self.state.get(message, {}).get("value", "")
        button = self.models["explainer-generate"]
        t0 = time.perf_counter()  # as a browser's click: it waits until the button is enabled again
        await self._until(lambda: not self.state[button].get("disabled"), timeout_s)
        await self._comm(button, {"method": "custom", "content": {"event": "click"}})

        def done() -> bool:
            now = self.state.get(message, {}).get("value", "")
            return self.images > before or (now != said and "error" in now)
        await self._until(done, timeout_s - (time.perf_counter() - t0))
        if self.images > before:
            return time.perf_counter() - t0, ""
        return None, re.sub(r"<[^>]+>", "", self.state[message]["value"])[:200]

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
