from __future__ import annotations

import pytest

from esb.errors import ValidationFailed
from esb.sourcing import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, ExpectedVersionKind


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ANY),
        ("any", ANY),
        ("no_stream", NO_STREAM),
        ("NO_STREAM", NO_STREAM),
        ("stream_exists", STREAM_EXISTS),
        (0, ExpectedVersion(ExpectedVersionKind.EXACT, 0)),
        (5, ExpectedVersion(ExpectedVersionKind.EXACT, 5)),
    ],
)
def test_parse_accepts_every_form(raw, expected):
    assert ExpectedVersion.parse(raw) == expected


@pytest.mark.parametrize("raw", [-1, True, "5", "latest", 1.0, [], {}])
def test_parse_rejects_other_values_with_the_field_path(raw):
    with pytest.raises(ValidationFailed) as info:
        ExpectedVersion.parse(raw)
    assert info.value.errors[0]["path"] == "expected_version"


@pytest.mark.parametrize(
    ("expected", "current", "ok"),
    [
        (ANY, 0, True), (ANY, 7, True),
        (NO_STREAM, 0, True), (NO_STREAM, 1, False),
        (STREAM_EXISTS, 0, False), (STREAM_EXISTS, 3, True),
        (ExpectedVersion.exact(0), 0, True), (ExpectedVersion.exact(0), 1, False),
        (ExpectedVersion.exact(5), 5, True), (ExpectedVersion.exact(5), 4, False),
        (ExpectedVersion.exact(5), 6, False),
    ],
)
def test_is_satisfied_by(expected, current, ok):
    assert expected.is_satisfied_by(current) is ok


@pytest.mark.parametrize("raw", [None, "any", "no_stream", "stream_exists", 0, 12])
def test_wire_form_round_trips(raw):
    parsed = ExpectedVersion.parse(raw)
    assert ExpectedVersion.parse(parsed.to_wire()) == parsed
