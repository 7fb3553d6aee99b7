"""`esb up` is durable unless told otherwise (issue 11, ADR 0014): `--ephemeral` opts out,
`--durable` stays accepted for old scripts and means the default."""

from __future__ import annotations

import pytest

from esb.cli import build_parser, up_is_ephemeral


def test_durable_is_the_default_and_ephemeral_the_opt_out() -> None:
    parser = build_parser()
    assert up_is_ephemeral(parser.parse_args(["up"])) is False
    assert up_is_ephemeral(parser.parse_args(["up", "--durable"])) is False
    assert up_is_ephemeral(parser.parse_args(["up", "--ephemeral"])) is True
    with pytest.raises(SystemExit):
        parser.parse_args(["up", "--ephemeral", "--durable"])
