"""``esb audit verify``: recompute every audit tree from PostgreSQL and check it against the
signed checkpoints (ADR 0017).

It reads the database directly (``ESB_DATABASE_URL``, schema ``ESB_DATABASE_SCHEMA``), not the
API: the point is to check the stored rows without trusting the bus that wrote them. The public
key comes from ``--public-key`` (as ``GET /api/v1/audit/checkpoint`` shows it; keep a copy
elsewhere), else from the configured signing key. Exit codes: 0 verified, 4 tampering found,
5 database unavailable, 1 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from esb.cli_ops.common import CONFLICT, OK, UNAVAILABLE, USAGE, subgroup


def register(subparsers: Any) -> None:
    group = subgroup(subparsers, "audit", "the audit trail (direct database access)")
    verify = group.add_parser("verify", help="detect altered, deleted or reordered entries")
    verify.add_argument("--tenant", action="append",
                        help="only this tenant's log (repeatable; '' = unattributed)")
    verify.add_argument("--public-key", default=None,
                        help="Ed25519 public key (base64 or PEM, or @file); default: the "
                             "configured ESB_AUDIT_SIGNING_KEY's")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from esb.audit.checkpoints import configured_public_key, load_public_key
    from esb.errors import ConfigurationError, StorageUnavailable
    from esb.settings import get_settings

    settings = get_settings()
    try:
        if args.public_key:
            text = args.public_key
            if text.startswith("@"):
                text = Path(text[1:]).read_text()
            public = load_public_key(text)
        else:
            key = settings.audit_signing_key
            public = configured_public_key(key.get_secret_value() if key else None,
                                           settings.data_dir)
    except (ConfigurationError, OSError) as exc:
        print(f"esb audit verify: {exc}", file=sys.stderr)
        return USAGE
    if public is None:
        print("esb audit verify: no public key: pass --public-key (GET /api/v1/audit/checkpoint "
              "shows it) or set ESB_AUDIT_SIGNING_KEY", file=sys.stderr)
        return USAGE
    try:
        reports = asyncio.run(_verify(settings, public, args.tenant))
    except StorageUnavailable as exc:
        print(f"esb audit verify: {exc}", file=sys.stderr)
        return UNAVAILABLE
    except ConfigurationError as exc:
        print(f"esb audit verify: {exc}", file=sys.stderr)
        return USAGE
    failed = [r for r in reports if not r.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "logs": [r.to_json() for r in reports]}, indent=2))
    else:
        for r in reports:
            state = "ok" if r.ok else "FAILED"
            print(f"{state:6} log {r.log!r}: {r.entries} entries, {r.signed_size} covered by a "
                  "valid signed checkpoint")
            for line in r.problems:
                print(f"  problem: {line}")
            for line in r.warnings:
                print(f"  warning: {line}")
        print(f"{len(reports) - len(failed)} of {len(reports)} logs verified"
              + (f"; {len(failed)} FAILED" if failed else ""))
    return CONFLICT if failed else OK


async def _verify(settings: Any, public: Any, tenants: list[str] | None) -> list[Any]:
    from esb.audit.log import read_everything
    from esb.audit.verify import verify_log
    from esb.db import start_embedded_postgres

    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        url = start_embedded_postgres(settings.data_dir / "postgres")
    logs = await read_everything(url, settings.database_schema, tenants)
    return [verify_log(log, entries, checkpoints, public)
            for log, (entries, checkpoints) in logs.items()]
