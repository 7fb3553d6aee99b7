"""The ``esb`` command: run the bus, mint development tokens, run benchmarks.

    esb up [--workers N] [--port 8080]     start broker (embedded unless ESB_BROKER), database
                                          (embedded unless ESB_DATABASE_URL) and worker replicas
    esb token --tenant acme [--role operator] [--ttl 86400]
    esb bench pipeline|publish [...]      JSON results on stdout
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


def cmd_up(args: argparse.Namespace) -> int:
    from esb.db import start_embedded_postgres
    from esb.embedded import EmbeddedBroker, free_port, spawn_worker, stop_process
    from esb.settings import get_settings

    data_dir = Path(os.environ.get("ESB_DATA_DIR") or get_settings().data_dir)
    logs = data_dir / "logs"
    env: dict[str, str] = {"ESB_DATA_DIR": str(data_dir)}
    broker = None
    if not os.environ.get("ESB_BROKER"):
        broker = EmbeddedBroker(log_path=logs / "broker.log").start()
        env["ESB_BROKER"] = broker.url
    if not os.environ.get("ESB_DATABASE_URL"):
        env["ESB_DATABASE_URL"] = start_embedded_postgres(data_dir / "postgres")
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    settings.jwt_signing_key()  # create the dev secret once, before workers race for it

    ports = [free_port(args.port + i) for i in range(args.workers)]
    workers = [spawn_worker(env, port, None if args.verbose else logs / f"worker-{port}.log")
               for port in ports]
    stopping = False

    def shutdown(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    code = 0
    try:
        for port in ports:
            _wait_healthy(port, workers, args.startup_timeout)
        from esb.auth import mint_token

        token = mint_token(settings, tenant=args.tenant, subject="dev-admin", roles=["operator"])
        print(json.dumps({
            "status": "running",
            "broker": settings.broker + (" (embedded Tansu, memory storage)" if broker else ""),
            "database": "embedded PostgreSQL" if "ESB_DATABASE_URL" in env else "configured",
            "api": [f"http://127.0.0.1:{p}/api/v1" for p in ports],
            "health": [f"http://127.0.0.1:{p}/health" for p in ports],
            "metrics": [f"http://127.0.0.1:{p}/metrics" for p in ports],
            # created with the tenant's first stream; other tenants: <prefix>.<tenant>.ingress
            "ingress_topic": f"{settings.topic_prefix}.{args.tenant}.ingress",
            "logs": str(logs),
            "dev_token_tenant": args.tenant,
            "dev_token": token,
        }, indent=2), flush=True)
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while not stopping:
            dead = [w for w in workers if w.poll() is not None]
            if dead:
                print(f"worker exited with code {dead[0].returncode}; stopping", file=sys.stderr)
                code = 1
                break
            time.sleep(0.5)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        code = 1
    finally:
        for worker in workers:
            stop_process(worker)
        if broker is not None:
            broker.stop()
        print("stopped", file=sys.stderr)
    return code


def cmd_token(args: argparse.Namespace) -> int:
    """Mint a token; a tenant the bus would refuse (malformed, reserved) fails here, clearly."""
    from esb.auth import mint_token
    from esb.errors import InvalidRequest
    from esb.settings import get_settings

    try:
        token = mint_token(get_settings(), tenant=args.tenant, subject=args.subject,
                           roles=args.role or [], ttl_s=args.ttl)
    except InvalidRequest as exc:
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
    up.set_defaults(func=cmd_up)

    token = sub.add_parser("token", help="mint a development JWT (HS256)")
    token.add_argument("--tenant", required=True)
    token.add_argument("--subject", default="dev")
    token.add_argument("--role", action="append", help="e.g. operator (repeatable)")
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
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
