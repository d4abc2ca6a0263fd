"""`framepack watch --serve`: a live page of the watch, on a web server on this machine.

Event flow: the watch's render thread calls a ``LivePage`` (a watch Reporter and a render
Observer at once), which records what the page shows (files, their shots, each shot's windows
and edits, a log) in a ``Hub`` and publishes every change as a Server-Sent Event. A page that
connects gets a snapshot of the whole state, then the events after it (both taken under one
lock, so none falls between), so a page opened mid-render is current at once. The server
(starlette on uvicorn) runs on its own thread and only reads the hub: thumbnails of finished
windows (JPEG, by window cache key), the preview video while a shot renders, its output after.

starlette and uvicorn are imported only when serving: `watch` alone needs neither.
"""

from .page import LivePage
from .server import LiveServer, missing_dependency
from .state import Hub

__all__ = ["Hub", "LivePage", "LiveServer", "missing_dependency"]
