"""Run Pulse services as real OS processes in tests (end-to-end, kill -9, SIGTERM drain)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx


class ServiceProcess:
    """One service started with ``python -m <module>``; its JSON logs go to a file."""

    def __init__(self, module: str, *, env: Mapping[str, str], port: int, log_dir: Path,
                 args: tuple[str, ...] = ()) -> None:
        self.module = module
        self.port = port
        self.env = {**os.environ, **env}
        self.args = args
        self.log_path = log_dir / f"{module}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 60.0) -> ServiceProcess:
        """Start the process and (by default) wait until ``/readyz`` answers 200."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args], env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until ``/readyz`` answers 200; raise with the log's tail if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.module} not ready after {timeout}s:\n{self.tail()}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit; return the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL (kill -9): no drain, no commit."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        if self._log is not None:
            self._log.close()
            self._log = None
        return int(self.process.returncode)

    def logs(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        """The last lines of the log."""
        return "\n".join(self.logs().splitlines()[-lines:])
