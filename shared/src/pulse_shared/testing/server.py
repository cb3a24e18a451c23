"""Serve an ASGI app on a free local port from a background thread (for fake external APIs)."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp

from pulse_shared.localinfra import free_port


class ThreadedServer:
    """Runs ``app`` with uvicorn on 127.0.0.1 in a daemon thread until :meth:`stop`."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        """Start serving and wait until the server is up."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
