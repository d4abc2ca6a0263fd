"""The web server (starlette on uvicorn, on its own thread): the page, its event stream
(Server-Sent Events), window thumbnails and videos. Imported only when serving."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from .state import CLOSED, Hub

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

STATIC = Path(__file__).with_name("static")  # the page: plain HTML, JS and CSS
DEFAULT_PORT = 8765
INSTALL_HINT = "the live page needs starlette and uvicorn: pip install 'framepack-render[serve]'"
PING_SECONDS = 15.0  # an idle stream sends a comment this often, which finds closed pages


def missing_dependency() -> str | None:
    """The install hint when the server libraries are not installed, else None."""
    import importlib

    try:
        for name in ("starlette", "uvicorn"):
            importlib.import_module(name)
    except ImportError:
        return INSTALL_HINT
    return None


def sse(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def event_stream(hub: Hub) -> AsyncIterator[str]:
    """The snapshot, then each event as it comes; a page that falls behind gets only the
    latest state of each shot and file."""
    snapshot, queue = hub.subscribe(asyncio.get_running_loop())
    try:
        yield "retry: 1000\n" + sse("snapshot", snapshot)
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), PING_SECONDS)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            batch = [first]
            while not queue.empty():
                batch.append(queue.get_nowait())
            done = CLOSED in batch
            items = batch[:batch.index(CLOSED)] if done else batch
            latest = {item[2]: i for i, item in enumerate(items) if item[2]}
            yield "".join(sse(name, data) for i, (name, data, merge) in enumerate(items)
                          if not merge or latest[merge] == i)
            if done:
                return
    finally:
        hub.unsubscribe(queue)


def make_app(hub: Hub) -> "Starlette":
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    fresh = {"Cache-Control": "no-cache"}

    async def page(request: "Request") -> "Response":
        return FileResponse(STATIC / "live.html", headers=fresh)

    async def events(request: "Request") -> "Response":
        return StreamingResponse(event_stream(hub), media_type="text/event-stream",
                                 headers={**fresh, "X-Accel-Buffering": "no"})

    async def thumb(request: "Request") -> "Response":
        with hub.lock:
            data = hub.thumbs.get(request.path_params["key"])
        if data is None:
            return Response("no such window", status_code=404)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=86400"})

    async def video(request: "Request") -> "Response":
        ident = request.path_params["shot"]
        with hub.lock:
            preview, output = hub.previews.get(ident), hub.outputs.get(ident)
        if preview is not None:
            return Response(preview, media_type="video/mp4", headers=fresh)
        if output is not None and output[0].is_file():
            return FileResponse(output[0], media_type=output[1], headers=fresh)
        return Response("no video yet", status_code=404)

    return Starlette(routes=[
        Route("/", page), Route("/events", events), Route("/thumb/{key}.jpg", thumb),
        Route("/video/{shot}", video), Mount("/static", StaticFiles(directory=STATIC)),
    ])


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (raises OSError when the address is taken or not ours)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family)


def page_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class LiveServer:
    """The page's server on a thread of its own; ``close()`` ends the streams, stops the
    server and joins its thread."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.hub = hub
        self.host = host
        self.port = port
        self.url = ""
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "LiveServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def local(self) -> bool:
        """Whether only this machine can reach the page (a loopback address)."""
        host = self.url.split("//")[1].rsplit(":", 1)[0].strip("[]")
        return ipaddress.ip_address(host).is_loopback

    def start(self) -> str:
        import uvicorn

        sock = listen(self.host, self.port)
        self.url = page_url(sock)
        config = uvicorn.Config(make_app(self.hub), log_config=None, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       name="framepack-live-page", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not self.server.started:
            self.close()
            raise OSError(f"the live page's server did not start on {self.url}")
        return self.url

    def close(self) -> None:
        self.hub.close()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None
