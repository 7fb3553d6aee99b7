"""The embedded stack's pieces that need no broker: object-store listing order, stale-state
detection, port ownership, ephemeral state and worker restarts (ADR 0014)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from esb.cli import _claim_ports, _prepare_ephemeral, _Supervisor
from esb.embedded import EmbeddedBroker, _folder_stamps, port_holder, port_is_free
from esb.errors import ConfigurationError
from esb.recovery import stale_partitions


def test_batch_stamps_increase_in_offset_order_even_when_mtimes_tie(tmp_path: Path) -> None:
    """Tansu reads a partition's end offset from the batch with the newest LastModified; files
    written in the same tick must still order by key, or the end offset after a restart is
    wrong (it read 1 instead of 6 in the probe)."""
    names = [f"{offset:020d}.batch" for offset in range(6)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, ns=(10**18, 10**18))  # all equal, as whole seconds are
    os.utime(tmp_path / names[2], ns=(10**18 + 5000, 10**18 + 5000))  # one rewritten later
    stamps = _folder_stamps(tmp_path)
    ordered = [stamps[name] for name in names]
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    assert max(stamps, key=stamps.__getitem__) == names[-1]


def test_stale_partitions_are_those_past_the_changelog_end() -> None:
    offsets = {"a": 5, "b": 3, "c": None, "d": -1, "e": 0, "f": 2}
    last = {"a": 9, "b": 2, "c": -1, "d": -1, "e": -1, "f": None}
    # b: ahead of the log; e: one record applied, log empty (Faust's own check misses it)
    assert sorted(stale_partitions(offsets, last)) == ["b", "e"]


def test_durable_broker_needs_a_directory_and_says_where() -> None:
    with pytest.raises(ConfigurationError):
        EmbeddedBroker(storage="s3")
    with pytest.raises(ConfigurationError):
        EmbeddedBroker(storage="sqlite")  # type: ignore[arg-type]
    assert EmbeddedBroker(storage="s3", data_dir=Path("/d")).storage_description == (
        "durable (s3 on /d)")
    assert "nothing survives" in EmbeddedBroker().storage_description


def test_a_held_port_is_refused_naming_the_holder() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        assert f"pid {os.getpid()}" in (port_holder(port) or "")
        started = time.monotonic()
        with pytest.raises(SystemExit, match=rf"port {port} is in use by pid {os.getpid()}"):
            _claim_ports([port], wait_s=0.3)
        assert time.monotonic() - started < 5
    assert port_is_free(port)
    _claim_ports([port], wait_s=0.3)  # free again: no exit


def test_ephemeral_state_starts_empty_and_keeps_the_dev_secret(tmp_path: Path) -> None:
    from esb.settings import Settings

    secret = Settings(data_dir=tmp_path).jwt_signing_key()
    state = _prepare_ephemeral(tmp_path)
    (state / "worker-8080").mkdir()
    (state / "postgres").mkdir()
    state = _prepare_ephemeral(tmp_path)
    assert sorted(p.name for p in state.iterdir()) == ["dev-jwt-secret"]
    assert Settings(data_dir=state).jwt_signing_key() == secret


def test_a_dead_worker_is_restarted_with_backoff_and_the_others_left_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    spawned: list[tuple[int, Any]] = []

    def spawn(port: int) -> subprocess.Popen[bytes]:
        code = "import time; time.sleep(30)" if port == 1 else "raise SystemExit(3)"
        proc = subprocess.Popen([sys.executable, "-c", code])
        spawned.append((port, proc))
        return proc

    supervisor = _Supervisor(spawn, [1, 2], max_backoff=4)
    try:
        keeper = supervisor.procs[1]
        deadline = time.monotonic() + 20
        while sum(p == 2 for p, _ in spawned) < 3 and time.monotonic() < deadline:
            supervisor.tick()
            time.sleep(0.05)
        assert [p for p, _ in spawned].count(2) == 3  # restarted twice, after 1 s and 2 s
        assert supervisor.procs[1] is keeper and keeper.poll() is None
        err = capsys.readouterr().err
        assert "worker on port 2 exited with code 3; restarting in 1s" in err
        assert "restarting in 2s" in err
    finally:
        for _, proc in spawned:
            proc.kill()
            proc.wait()
