"""The durable broker's object store (ADR 0014): listings served from an in-memory index must
say exactly what localbucket's directory walk said (order, pages, tokens, common prefixes),
follow every PUT and DELETE, and stamp LastModified so that Tansu's newest / oldest batch is
the highest / lowest offset, before and after a restart."""

from __future__ import annotations

import os
import random
import threading
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import localbucket
import pytest

from esb.objectstore import BucketIndex, handler_for

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
BATCH = "clusters/c/topics/t/partitions/0000000000/records/{:020d}.batch"


def _serve(handler: type) -> tuple[localbucket.ThreadingHTTPServer, str]:
    server = localbucket.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Ours and plain localbucket on the same directory: (ours, reference)."""
    (tmp_path / "bkt").mkdir()
    ours, ours_url = _serve(handler_for(tmp_path))
    reference = type("Reference", (localbucket.S3Handler,), {
        "data_root": tmp_path, "log_message": lambda *a: None})
    theirs, theirs_url = _serve(reference)
    try:
        yield ours_url, theirs_url
    finally:
        ours.shutdown()
        theirs.shutdown()


def _request(method: str, url: str, body: bytes = b"") -> bytes:
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


def _list(base: str, **query: str) -> dict[str, object]:
    root = ET.fromstring(_request("GET", f"{base}/bkt?{urllib.parse.urlencode(query)}"))
    return {
        "keys": [c.findtext(f"{NS}Key") for c in root.iter(f"{NS}Contents")],
        "sizes": [c.findtext(f"{NS}Size") for c in root.iter(f"{NS}Contents")],
        "etags": [c.findtext(f"{NS}ETag") for c in root.iter(f"{NS}Contents")],
        "stamps": [c.findtext(f"{NS}LastModified") for c in root.iter(f"{NS}Contents")],
        "prefixes": [p.findtext(f"{NS}Prefix") for p in root.iter(f"{NS}CommonPrefixes")],
        "truncated": root.findtext(f"{NS}IsTruncated"),
        "token": root.findtext(f"{NS}NextContinuationToken"),
        "count": root.findtext(f"{NS}KeyCount"),
    }


def _same(ours: dict[str, object], theirs: dict[str, object]) -> None:
    for field in ("keys", "sizes", "etags", "prefixes", "truncated", "token", "count"):
        assert ours[field] == theirs[field], field


def _pages(base: str, **query: str) -> list[str]:
    keys: list[str] = []
    token = None
    while True:
        page = _list(base, **query, **({"continuation-token": token} if token else {}))
        keys += page["keys"] + page["prefixes"]  # type: ignore[operator]
        if page["truncated"] != "true":
            return keys
        token = page["token"]  # type: ignore[assignment]


KEYS = ["a/b/x", "a/b-c/y", "a/b/z/1", "a/ba", "a/b/y", "top", "é/1", "a/b/z/2", "z/q", "a/c"]


def test_listings_match_localbucket_for_every_query_and_page(stores: tuple[str, str]) -> None:
    ours, theirs = stores
    for key in random.Random(4).sample(KEYS, len(KEYS)):
        _request("PUT", f"{ours}/bkt/{urllib.parse.quote(key)}", key.encode() * 3)
    queries: list[dict[str, str]] = [
        {}, {"prefix": "a/"}, {"prefix": "a/b"}, {"prefix": "a/b/"}, {"delimiter": "/"},
        {"prefix": "a/", "delimiter": "/"}, {"start-after": "a/b/y"}, {"prefix": "nothing"},
        {"max-keys": "0"}, {"prefix": "a/b/", "start-after": "a/b/x"},
    ]
    for query in queries:
        for max_keys in ("1", "2", "3", "1000"):
            q = {"list-type": "2", "max-keys": max_keys, **query}
            _same(_list(ours, **q), _list(theirs, **q))
            if query.get("max-keys") != "0":
                assert _pages(ours, **q) == _pages(theirs, **q), q
    assert _pages(ours, **{"list-type": "2", "max-keys": "2"}) == sorted(
        KEYS, key=str.encode)
    # ListObjects v1 pages from the index too
    v1 = ET.fromstring(_request("GET", f"{ours}/bkt?prefix=a/&max-keys=3"))
    assert [c.findtext(f"{NS}Key") for c in v1.iter(f"{NS}Contents")] == ["a/b-c/y", "a/b/x",
                                                                         "a/b/y"]


def test_listing_follows_puts_and_deletes(stores: tuple[str, str]) -> None:
    ours, theirs = stores
    for offset in range(5):
        _request("PUT", f"{ours}/bkt/{BATCH.format(offset)}", b"batch")
    _request("DELETE", f"{ours}/bkt/{BATCH.format(1)}")
    _request("PUT", f"{ours}/bkt/{BATCH.format(2)}", b"rewritten")
    query = {"list-type": "2", "prefix": BATCH.rsplit("/", 1)[0] + "/"}
    listed = _list(ours, **query)
    assert listed["keys"] == [BATCH.format(o) for o in (0, 2, 3, 4)]
    assert listed["sizes"] == ["5", "9", "5", "5"]
    _same(listed, _list(theirs, **query))
    # written behind our back (a restore into a stopped store is the only such case): not seen
    # until the next start, which indexes the directory again
    stamps = listed["stamps"]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4  # type: ignore[arg-type]


def test_stamps_increase_in_key_order_within_a_folder_even_written_out_of_order() -> None:
    index = BucketIndex(clock=lambda: 1_000_000)  # a clock that never moves: every write ties
    for offset in (0, 1, 2, 4, 3, 6, 5):  # two producers racing on one partition
        index.put(BATCH.format(offset), 10, "e")
    index.put("clusters/c/topics/t/partitions/0000000000/watermark.json", 10, "e")
    index.put(BATCH.format(2), 11, "e")  # a rewrite in the middle
    keys, _, _, _ = index.page(BATCH.rsplit("/", 1)[0] + "/", "", "", False, 1000)
    stamps = [entry.stamp_us for _, entry in keys]
    assert [k for k, _ in keys] == [BATCH.format(o) for o in range(7)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    index.delete(BATCH.format(6))
    keys, _, _, _ = index.page(BATCH.rsplit("/", 1)[0] + "/", "", "", False, 1000)
    assert max(keys, key=lambda k: k[1].stamp_us)[0] == BATCH.format(5)
    assert min(keys, key=lambda k: k[1].stamp_us)[0] == BATCH.format(0)


def test_after_a_restart_the_newest_stamp_is_the_last_batch(tmp_path: Path) -> None:
    """Files written in one clock tick have equal mtimes; a rescan must still order them by key
    (the probe once read end offset 1 for a partition holding 4 records)."""
    bucket = tmp_path / "bkt"
    for offset in range(6):
        path = bucket / BATCH.format(offset)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, ns=(10**18, 10**18))
    os.utime(bucket / BATCH.format(2), ns=(10**18 + 5000, 10**18 + 5000))  # rewritten later
    (bucket / BATCH.rsplit("/", 1)[0] / f"{localbucket.TEMP_PREFIX}half").write_bytes(b"?")
    index = BucketIndex.scan(bucket, clock=lambda: 0)
    keys, _, _, _ = index.page("", "", "", False, 1000)
    assert [k for k, _ in keys] == [BATCH.format(o) for o in range(6)]  # no temp file
    stamps = [entry.stamp_us for _, entry in keys]
    assert stamps == sorted(stamps) and len(set(stamps)) == 6
    # the next write after the restart is newer than everything found, whatever the clock says
    index.put(BATCH.format(6), 1, "e")
    assert index.get(BATCH.format(6)).stamp_us > stamps[-1]  # type: ignore[union-attr]


def _put(url: str, body: bytes, **headers: str) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["ETag"]
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_if_match_is_a_compare_and_swap(stores: tuple[str, str]) -> None:
    """Tansu bumps a partition's watermark with If-Match on the ETag it read; localbucket
    ignored the header, so two producers could take the same offset."""
    ours, _ = stores
    url = f"{ours}/bkt/clusters/c/topics/t/partitions/0000000000/watermark.json"
    assert _put(url, b"{}", **{"If-Match": '"nothing-yet"'})[0] == 412
    status, first = _put(url, b'{"high": 1}', **{"If-None-Match": "*"})
    assert status == 200
    status, second = _put(url, b'{"high": 2}', **{"If-Match": first})
    assert status == 200 and second != first
    assert _put(url, b'{"high": 2}', **{"If-Match": first})[0] == 412  # stale
    assert _request("GET", url) == b'{"high": 2}'

    def bump(times: int) -> None:  # read-modify-write with retries, as Tansu's OptiCon does
        for _ in range(times):
            while True:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    etag, high = resp.headers["ETag"], int(resp.read().split(b":")[1][:-1])
                if _put(url, b'{"high": %d}' % (high + 1), **{"If-Match": etag})[0] == 200:
                    break

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _request("GET", url) == b'{"high": 102}'  # no lost update
