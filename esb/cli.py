"""The ``esb`` command: run the bus, mint development tokens, run benchmarks.

    esb up [--workers N] [--port 8080]     start broker (embedded unless ESB_BROKER), database
          [--ephemeral]                   (embedded unless ESB_DATABASE_URL) and worker replicas;
                                          durable under ESB_DATA_DIR unless --ephemeral (memory)
    esb token --tenant acme [--role publisher] [--scope publish:orders-*] [--ttl 86400]
    esb bench pipeline|publish [...]      JSON results on stdout
    esb audit verify [--public-key KEY]   check the audit trail in PostgreSQL (ADR 0017)
    esb streams|publish|tail|groups|dlq|schemas …   operator commands over the API (esb.cli_ops)
    esb subscriptions list|create|status|delete, esb replay SUB --from-time|--from-offset …
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def _wait_healthy(port: int, procs: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a worker exited during start-up; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.5)
    raise SystemExit(f"worker on port {port} not healthy after {timeout:.0f}s")


def _claim_ports(ports: list[int], wait_s: float = 5.0) -> None:
    """Every requested web port, or exit naming who holds it: the printed URLs must stay the
    same across restarts, so ``esb up`` never moves to another port. A port still held by a
    previous run that is shutting down gets a few seconds."""
    from esb.embedded import port_holder, port_is_free

    deadline = time.monotonic() + wait_s
    for port in ports:
        while not port_is_free(port):
            if time.monotonic() >= deadline:
                holder = port_holder(port) or "another process (TIME_WAIT or hidden)"
                raise SystemExit(f"esb up: port {port} is in use by {holder}; stop it or pass "
                                 f"--port (or set ESB_WEB_PORT)")
            time.sleep(0.25)


def _prepare_ephemeral(data_dir: Path) -> Path:
    """A fresh state directory for ``--ephemeral``: RocksDB tables and the embedded database
    start empty, so nothing survives that the memory broker did not. The dev secret is kept,
    so ``esb token`` keeps working against either mode."""
    import shutil

    from esb.settings import Settings

    secret = Settings(data_dir=data_dir).jwt_signing_key()
    state = data_dir / "ephemeral"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    fd = os.open(state / "dev-jwt-secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return state


class _Supervisor:
    """Worker replicas: a worker that dies is restarted on its port with exponential backoff
    (logged), while the others keep serving."""

    def __init__(self, spawn: Any, ports: list[int], max_backoff: float = 30.0) -> None:
        self.spawn = spawn
        self.procs: dict[int, Any] = {port: spawn(port) for port in ports}
        self.backoff: dict[int, float] = dict.fromkeys(ports, 1.0)
        self.restart_at: dict[int, float] = {}
        self.started_at: dict[int, float] = dict.fromkeys(ports, time.monotonic())
        self.max_backoff = max_backoff

    def tick(self) -> None:
        now = time.monotonic()
        for port, proc in self.procs.items():
            if proc.poll() is None:
                if now - self.started_at[port] > 60:
                    self.backoff[port] = 1.0  # stable for a minute: forget earlier crashes
                continue
            if port not in self.restart_at:
                delay = self.backoff[port]
                print(f"esb up: worker on port {port} exited with code {proc.returncode}; "
                      f"restarting in {delay:.0f}s", file=sys.stderr, flush=True)
                self.restart_at[port] = now + delay
                self.backoff[port] = min(delay * 2, self.max_backoff)
            elif now >= self.restart_at[port]:
                del self.restart_at[port]
                self.procs[port] = self.spawn(port)
                self.started_at[port] = now
                print(f"esb up: worker on port {port} restarted (pid {self.procs[port].pid})",
                      file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    """Start broker, database and workers; durable unless ``--ephemeral`` (ADR 0014). One
    ``esb up`` per data directory (a lock): two brokers on the same files would corrupt them."""
    from esb.backup import data_dir_lock
    from esb.settings import get_settings

    data_dir = Path(os.environ.get("ESB_DATA_DIR") or get_settings().data_dir).expanduser()
    data_dir = data_dir.resolve()
    ports = [args.port + i for i in range(args.workers)]
    _claim_ports(ports)
    with data_dir_lock(data_dir, "esb up"):
        return _run_up(args, data_dir, ports)


def up_is_ephemeral(args: argparse.Namespace) -> bool:
    """Durable is the default (ADR 0014); ``--durable`` is still accepted and means it."""
    return bool(args.ephemeral)


def _run_up(args: argparse.Namespace, data_dir: Path, ports: list[int]) -> int:
    from esb.db import start_embedded_postgres
    from esb.embedded import EmbeddedBroker, spawn_worker, start_watchdog, stop_process
    from esb.settings import get_settings

    logs = data_dir / "logs"
    ephemeral = up_is_ephemeral(args)
    state_dir = _prepare_ephemeral(data_dir) if ephemeral else data_dir
    # the embedded bus is a development install: dev keys and tokens (the Helm chart is production)
    env: dict[str, str] = {"ESB_DATA_DIR": str(state_dir),
                           "ESB_MODE": os.environ.get("ESB_MODE", "development")}
    broker = None
    storage = "external broker (ESB_BROKER)"
    supervisor: _Supervisor | None = None
    pgdata: Path | None = None
    stopping = False

    def shutdown(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    code = 0
    try:
        if not os.environ.get("ESB_BROKER"):
            broker = EmbeddedBroker(log_path=logs / "broker.log",
                                    storage="memory" if ephemeral else "s3",
                                    data_dir=data_dir / "broker", parent_bound=True).start()
            env["ESB_BROKER"] = broker.url
            storage = broker.storage_description
        env["ESB_BROKER_STORAGE"] = storage
        if not os.environ.get("ESB_DATABASE_URL"):
            pgdata = state_dir / "postgres"
            env["ESB_DATABASE_URL"] = start_embedded_postgres(pgdata)
            start_watchdog(os.getpid(), pgdata=pgdata, log_path=logs / "watchdog.log")
        if broker is not None and not broker.durable:
            print("esb up: WARNING: embedded broker in MEMORY mode (--ephemeral): every stream, "
                  "event and offset is lost when it stops (esb up without --ephemeral keeps "
                  "them)", file=sys.stderr, flush=True)
        elif broker is not None:
            print(f"esb up: durable: streams, events and offsets are kept in {data_dir} "
                  "(esb up --ephemeral for a throwaway bus)", file=sys.stderr, flush=True)
        os.environ.update(env)
        get_settings.cache_clear()
        settings = get_settings()
        settings.jwt_signing_key()  # create the dev secret once, before workers race for it

        def spawn(port: int) -> Any:
            return spawn_worker(env, port, None if args.verbose else logs / f"worker-{port}.log",
                                parent_bound=True)

        supervisor = _Supervisor(spawn, ports)
        for port in ports:
            _wait_healthy(port, list(supervisor.procs.values()), args.startup_timeout)
        from esb.auth import mint_token

        # the dev token may do everything in its tenant (admin) and see unattributed dead
        # letters (operator); ADR 0015
        token = mint_token(settings, tenant=args.tenant, subject="dev-admin",
                           roles=["admin", "operator"])
        print(json.dumps({
            "status": "running",
            "broker": settings.broker + (" (embedded Tansu)" if broker else ""),
            "storage": storage,
            "database": "embedded PostgreSQL" if "ESB_DATABASE_URL" in env else "configured",
            "data_dir": str(state_dir),
            "api": [f"http://127.0.0.1:{p}/api/v1" for p in ports],
            "health": [f"http://127.0.0.1:{p}/health" for p in ports],
            "metrics": [f"http://127.0.0.1:{p}/metrics" for p in ports],
            # created with the tenant's first stream; other tenants: <prefix>.<tenant>.ingress
            "ingress_topic": f"{settings.topic_prefix}.{args.tenant}.ingress",
            "logs": str(logs),
            "dev_token_tenant": args.tenant,
            "dev_token": token,
        }, indent=2, ensure_ascii=False), flush=True)
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while not stopping:
            supervisor.tick()
            time.sleep(0.5)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        code = 1
    finally:
        for worker in (supervisor.procs.values() if supervisor else []):
            stop_process(worker)
        if broker is not None:
            broker.stop()
        if pgdata is not None:
            # stopped before the data directory's lock is released, so that `esb backup` or the
            # next `esb up` never meets a server still shutting down
            from esb.db import stop_embedded_postgres

            stop_embedded_postgres(pgdata, timeout=60.0)
        print("stopped", file=sys.stderr)
    return code


def _backup_target() -> tuple[Path, str | None, str]:
    """Data directory, configured database URL (None: embedded), schema; refuses ESB_BROKER."""
    from esb.settings import get_settings

    if os.environ.get("ESB_BROKER"):
        raise SystemExit("esb backup/restore cover the embedded durable broker; back up an "
                         "external Kafka (ESB_BROKER) with its own tools")
    settings = get_settings()
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return settings.data_dir.expanduser().resolve(), url, settings.database_schema


def cmd_backup(args: argparse.Namespace) -> int:
    """Every topic, record and group offset (the broker's files) plus a pg_dump (ADR 0014)."""
    from esb.backup import backup
    from esb.errors import ConfigurationError

    data_dir, url, schema = _backup_target()
    try:
        manifest = backup(data_dir, args.dir.resolve(), database_url=url, schema=schema)
    except ConfigurationError as exc:
        print(f"esb backup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"backup": str(args.dir.resolve()), **manifest}, indent=2))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Into a fresh data directory and a database without the schema; then ``esb up``."""
    from esb.backup import restore
    from esb.errors import ConfigurationError

    data_dir, url, schema = _backup_target()
    try:
        manifest = restore(args.dir.resolve(), data_dir, database_url=url, schema=schema)
    except ConfigurationError as exc:
        print(f"esb restore: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"restored_into": str(data_dir), **manifest}, indent=2))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Mint a token; a tenant the bus would refuse (malformed, reserved) fails here, clearly."""
    from esb.auth import mint_token
    from esb.errors import ConfigurationError, InvalidRequest
    from esb.settings import get_settings

    settings = get_settings()
    if settings.jwt_secret is None and settings.jwt_algorithm == "HS256":
        # no configured key: this is a token for the development install `esb up` runs on this
        # data directory (a production worker never accepts that key)
        settings = settings.model_copy(update={"mode": "development"})
    try:
        token = mint_token(settings, tenant=args.tenant, subject=args.subject,
                           roles=args.role, scopes=args.scope, ttl_s=args.ttl)
    except (InvalidRequest, ConfigurationError) as exc:
        print(f"esb token: {exc.message}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from esb.bench import run

    # SIGTERM unwinds like Ctrl-C, so the benchmark's broker and workers are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esb", description="Event Streaming Bus")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole bus (embedded broker and database by default)")
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--port", type=int, default=int(os.environ.get("ESB_WEB_PORT", "8080")))
    up.add_argument("--tenant", default="default", help="tenant of the printed dev token")
    up.add_argument("--startup-timeout", type=float, default=120.0)
    up.add_argument("--verbose", action="store_true", help="worker logs to this terminal")
    mode = up.add_mutually_exclusive_group()
    mode.add_argument("--durable", action="store_true",
                      help="the default, accepted for old scripts: keep every stream, event and "
                           "offset under ESB_DATA_DIR (Tansu on a loopback object store)")
    mode.add_argument("--ephemeral", action="store_true",
                      help="memory broker and fresh local state, nothing survives a restart "
                           "(tests, benchmarks)")
    up.set_defaults(func=cmd_up)

    backup = sub.add_parser("backup", help="copy the durable embedded stack into DIR (stopped)")
    backup.add_argument("dir", type=Path)
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup into a fresh ESB_DATA_DIR")
    restore.add_argument("dir", type=Path)
    restore.set_defaults(func=cmd_restore)

    token = sub.add_parser("token", help="mint a development JWT (HS256)")
    token.add_argument("--tenant", required=True)
    token.add_argument("--subject", default="dev")
    token.add_argument("--role", action="append",
                       help="admin, operator, publisher, subscriber or reader (repeatable; "
                            "default admin); see the README's Security section")
    token.add_argument("--scope", action="append",
                       help="narrow a permission, e.g. 'publish:orders-*' (stream glob) or "
                            "'publish:type:order.*' (event-type glob); repeatable")
    token.add_argument("--ttl", type=int, default=86400)
    token.set_defaults(func=cmd_token)

    bench = sub.add_parser("bench", help="benchmarks; JSON on stdout")
    from esb.bench import KINDS

    bench.add_argument("kind", choices=KINDS)
    bench.add_argument("--events", type=int, default=200_000)
    bench.add_argument("--payload-bytes", type=int, default=200)
    bench.add_argument("--latency-rate", type=int, default=5000, help="events/s in latency phase")
    bench.add_argument("--latency-seconds", type=float, default=5.0)
    bench.add_argument("--concurrency", type=int, default=64, help="HTTP clients (publish)")
    bench.add_argument("--batch-size", type=int, default=100, help="events per HTTP batch")
    bench.add_argument("--tracing", action="store_true",
                       help="pipeline: router throughput with tracing off, 1%% and 100%% sampled")
    bench.add_argument("--workers", type=int, default=1,
                       help="pipeline: N > 1 adds a scale-out phase, N routers against one")
    bench.add_argument("--seconds", type=float, default=600.0, help="soak: run length")
    bench.add_argument("--rate", type=float, default=None,
                       help="soak: offered events/s (default: half the peak measured first)")
    bench.add_argument("--peak-events", type=int, default=30_000,
                       help="soak: preloaded burst the peak is measured on")
    bench.set_defaults(func=cmd_bench)
    from esb import cli_ops

    cli_ops.register(sub)  # operator commands (streams, publish, tail, dlq …), on the SDK
    return parser


def _configure_logging() -> None:
    """``ESB_LOG_LEVEL``/``ESB_LOG_FORMAT`` for the CLI's own log lines (ADR 0019); the workers
    ``esb up`` starts inherit the same variables and apply them themselves."""
    from esb.errors import ConfigurationError
    from esb.observability import logging as obs_logging
    from esb.settings import get_settings

    try:
        settings = get_settings()
    except ConfigurationError:
        return  # the command itself reports the bad variable
    # a command's own default is quiet (warnings); ESB_LOG_LEVEL set says otherwise
    level = settings.log_level if "ESB_LOG_LEVEL" in os.environ else "warning"
    obs_logging.configure(level, settings.log_format)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
