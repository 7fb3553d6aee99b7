"""``esb subscriptions``, ``esb replay``, ``esb tail --from-beginning`` and ``esb schemas check``
against real workers: output, exit codes and what the bus did.

The commands run in-process (``esb.cli.main`` on a thread, so the test's loop keeps serving the
webhook receiver); ``test_cli`` covers the ``python -m esb.cli`` entry point as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest

from esb.cli import main
from esb.sdk import EsbClient
from tests.integration.delivery_e2e.conftest import publish
from tests.support import eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]


class Cli:
    """``await cli("streams", "list")`` -> a CompletedProcess-like result."""

    def __init__(self, url: str, token: str) -> None:
        self.options = ["--url", url, "--token", token]

    def _run(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([*args, *self.options])
            except SystemExit as exc:  # argparse usage errors
                code = int(exc.code or 0)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    async def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self._run, args)


def _json(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_subscriptions_lifecycle_and_replay_with_progress(delivery_bus, dapi,
                                                                receiver) -> None:
    group, port = delivery_bus
    tenant = unique()
    esb = Cli(group.url(port), group.token(tenant))
    stream = unique("s")
    assert (await esb("streams", "create", stream, "--source", "orders",
               "--partitions", "3")).returncode == 0
    created = _json(await esb("subscriptions", "create", "orders-hook", "--stream", stream,
                        "--webhook", receiver.url("hook"), "--json"))
    sub_id = created["subscription_id"]
    assert created["webhook_secret"].startswith("whsec_")  # shown once, at creation
    listed = await esb("subscriptions", "list")
    assert listed.returncode == 0 and sub_id in listed.stdout  # a human table

    ids = await publish(dapi(tenant), 5, keys=5)

    async def delivered() -> bool:
        return set(receiver.ids("hook")) >= set(ids)

    await eventually(delivered, timeout=60)

    async def counted() -> dict | None:  # the counters trail the receiver by a flush
        status = _json(await esb("subscriptions", "status", sub_id, "--json"))
        return status if status["events_delivered"] >= 5 and status["lag"] == 0 else None

    status = await eventually(counted)
    assert status["status"].upper() == "ACTIVE"
    assert "events_delivered" in (await esb("subscriptions", "status", sub_id)).stdout

    seen = len(receiver.on("hook"))
    replayed = _json(await esb("replay", sub_id, "--from-offset", "0", "--json"))
    assert replayed["caught_up"] is True and replayed["replayed"] >= 5
    assert set(receiver.ids("hook")[seen:]) >= set(ids)  # every event delivered again
    assert (await esb("replay", sub_id)).returncode == 1  # neither --from-time nor --from-offset
    assert (await esb("replay", sub_id, "--from-offset", "x=y")).returncode == 1
    assert (await esb("subscriptions", "status", "sub_missing")).returncode == 3

    assert (await esb("subscriptions", "delete", sub_id)).returncode == 0
    gone = await esb("replay", sub_id, "--from-offset", "0")
    assert gone.returncode in (3, 4) and "esb:" in gone.stderr  # cancelled: 404 or 409


async def test_tail_from_beginning_prints_archived_events_first(bus_url, token_for) -> None:
    tenant = unique()
    esb = Cli(bus_url, token_for(tenant))
    stream = unique("s")
    assert (await esb("streams", "create", stream, "--source", "shop")).returncode == 0
    async with EsbClient(bus_url, token_for(tenant)) as client:
        first = await client.publish(event_type="user.created", source_capability="shop",
                                     payload={"n": 1})
        await client.publish(event_type="order.other", source_capability="shop")
        second = await client.publish(event_type="user.deleted", source_capability="shop")

        async def archived() -> bool:
            return len([e async for e in client.stream_events(stream)]) == 3

        await eventually(archived)
    out = await esb("tail", stream, "--type", "user.*", "--from-beginning", "--limit", "2",
              "--timeout", "5", "--json")
    assert out.returncode == 0, out.stderr
    items = [json.loads(line) for line in out.stdout.splitlines()]
    assert [i["event"]["id"] for i in items] == [first["event_id"], second["event_id"]]
    assert {i["type"] for i in items} == {"archived"} and items[0]["event"]["data"] == {"n": 1}
    human = await esb("tail", stream, "--from-beginning", "--limit", "1", "--timeout", "5")
    assert "user.created" in human.stdout and "archived" in human.stdout


async def test_schemas_check_answers_compatibility_with_exit_codes(bus_url, token_for,
                                                             tmp_path: Path) -> None:
    esb = Cli(bus_url, token_for(unique()))
    v1 = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
    relaxed = {**v1, "required": []}  # accepts everything v1 accepted: BACKWARD-compatible
    narrowed = {**v1, "properties": {"id": {"type": "integer"}}}  # old ids are strings
    files = {}
    for name, schema in (("v1", v1), ("relaxed", relaxed), ("narrowed", narrowed)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(schema))
    assert (await esb("schemas", "register", "order.placed", str(files["v1"]))).returncode == 0

    ok = await esb("schemas", "check", "order.placed", str(files["relaxed"]))
    assert ok.returncode == 0 and "compatible" in ok.stdout, ok.stderr
    bad = await esb("schemas", "check", "order.placed", str(files["narrowed"]), "--json")
    assert bad.returncode == 4, bad.stderr
    verdict = json.loads(bad.stdout)
    assert verdict["is_compatible"] is False and verdict["messages"]
    first = await esb("schemas", "check", "never.registered", str(files["narrowed"]))
    assert first.returncode == 0  # a first version is compatible with nothing before it
    assert (await esb("schemas", "check", "order.placed", str(tmp_path / "none.json")
               )).returncode == 1
