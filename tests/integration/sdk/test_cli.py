"""The operator CLI as a subprocess against the shared worker: output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support import ce_headers, eventually, produce, unique

pytestmark = pytest.mark.integration


def esb(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esb.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def cli_env(bus_url, token_for):
    def make(tenant: str, token: str | None = None) -> dict[str, str]:
        return {**os.environ, "ESB_URL": bus_url, "ESB_TOKEN": token or token_for(tenant)}

    return make


async def test_operator_day_create_publish_dlq_lag(cli_env, bus, bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    env = cli_env(tenant)
    name = unique("s")
    created = esb(env, "streams", "create", name, "--source", "shop", "--partitions", "2",
                  "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["stream_id"] == f"str_{name}"
    assert esb(env, "streams", "create", name).returncode == 4  # 409 already exists
    listed = esb(env, "streams", "list")
    assert listed.returncode == 0 and name in listed.stdout  # a human table
    assert esb(env, "streams", "describe", "missing").returncode == 3

    one = esb(env, "publish", "--type", "order.created", "--source", "shop",
              "--data", '{"n": 1}', "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["stream_id"] == f"str_{name}"
    ndjson = "\n".join(json.dumps({"event_type": "order.paid", "source_capability": "shop",
                                   "payload": {"n": i}}) for i in range(3))
    ce = json.dumps({"specversion": "1.0", "id": "ce-1", "source": "shop", "type": "order.x",
                     "data": {}})
    many = esb(env, "publish", "--file", "-", "--json", stdin=ndjson + "\n" + ce + "\n")
    assert many.returncode == 0, many.stderr
    assert json.loads(many.stdout)["published"] == 4
    bad = esb(env, "publish", "--type", "bad type!", "--source", "shop")
    assert bad.returncode == 4 and "event_type" in bad.stderr  # 422 with the field's path

    await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress",
                  [(None, b"{}", ce_headers(tenant, "pay.done", source="pay"))])

    async def dead() -> list:
        out = esb(env, "dlq", "list", "--reason", "no_route", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    (letter,) = await eventually(dead)
    shown = esb(env, "dlq", "show", letter["dlq_id"], "--json")
    assert json.loads(shown.stdout)["event_id"] == letter["event_id"]
    assert esb(env, "dlq", "show", "dlq_nope").returncode == 3
    assert esb(env, "dlq", "redrive").returncode == 1  # neither an id nor --all
    esb(env, "streams", "create", unique("s"), "--source", "pay")
    redriven = esb(env, "dlq", "redrive", "--all", "--reason", "no_route", "--json")
    assert redriven.returncode == 0 and json.loads(redriven.stdout)["redriven"] == 1

    assert esb(env, "groups", "lag", "billing").returncode == 3
    from esb.sdk import EsbClient

    async with EsbClient(env["ESB_URL"], env["ESB_TOKEN"]) as client:
        await client.create_consumer_group(group_name="billing")
    lag = esb(env, "groups", "lag", "billing", "--json")
    assert lag.returncode == 0, lag.stderr
    assert json.loads(lag.stdout)["total_lag"] == 0
    assert "total lag 0" in esb(env, "groups", "lag", "billing").stdout

    assert esb(cli_env(tenant, "bad-token"), "streams", "list").returncode == 2


def test_tail_prints_live_events_of_one_type(cli_env) -> None:
    tenant = unique()
    env = cli_env(tenant)
    name = unique("s")
    assert esb(env, "streams", "create", name, "--source", "shop").returncode == 0
    tail = subprocess.Popen([sys.executable, "-m", "esb.cli", "tail", name, "--type", "user.*",
                             "--limit", "1", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while tail.poll() is None and time.monotonic() < deadline:  # until it has connected
            esb(env, "publish", "--type", "order.other", "--source", "shop")
            esb(env, "publish", "--type", "user.created", "--source", "shop", "--data", "{}")
            time.sleep(0.5)
        out, err = tail.communicate(timeout=10)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    assert json.loads(out.splitlines()[0])["event"]["type"] == "user.created"
