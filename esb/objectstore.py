"""The durable embedded broker's object store: localbucket with an in-memory listing index
and the conditional writes (``If-Match``) Tansu relies on.

Tansu's s3 engine lists a partition's whole ``records/`` prefix on every fetch that may find
data and on every ListOffsets. localbucket answers a listing by walking the *whole bucket*
(``os.walk``, a ``stat`` and an MD5 lookup per file, an ElementTree per entry), so each listing
cost grew with every batch of every topic: about 40 ms at 3,000 objects, seconds at 100k, and
consumers fell further behind with every record (ADR 0014). Here writes and deletes go through
localbucket unchanged (objects stay plain files), while listings come from a sorted index of
keys built once at start-up and kept current on PUT, copy, multipart completion and DELETE:
a page is a ``bisect`` plus at most ``max-keys`` entries, whatever the bucket holds.

LastModified in listings is ours, not the file's: Tansu answers ListOffsets (earliest, latest,
by time) from the batch object with the oldest / newest LastModified, so within one folder the
stamps must increase strictly in key order (batch keys are zero-padded offsets). File mtimes
tie (kernel clock ticks, whole seconds in localbucket's XML), so at start-up a folder's stamps
are the running maximum of its mtimes in key order plus one microsecond per step, and at run
time a write gets ``max(now, last stamp handed out + 1, previous key in its folder + 1)``; a key
written into the middle of a folder (two producers racing on one partition) pushes the stamps
of the keys after it so the order still holds.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

import localbucket
from sortedcontainers import SortedList

_MAX_CHAR = "\U0010ffff"


@dataclass(slots=True)
class Entry:
    """What a listing says about one object."""

    size: int
    stamp_us: int
    etag: str | None = None  # MD5, computed on first listing for objects found at start-up
    xml: str | None = None  # its <Contents> element, built on first listing: Tansu lists a
    # partition's every batch on each fetch, so the same entries are written again and again


def folder_stamps(folder: Path) -> dict[str, int]:
    """Microsecond stamps for the files of one folder, strictly increasing in name order:
    the running maximum of their mtimes, one microsecond more per step."""
    stamps: dict[str, int] = {}
    previous = -1
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file() and not entry.name.startswith(localbucket.TEMP_PREFIX):
                previous = max(entry.stat().st_mtime_ns // 1000, previous + 1)
                stamps[entry.name] = previous
    return stamps


def _split(key: str) -> tuple[str, str]:
    folder, _, name = key.rpartition("/")
    return folder, name


def _successor(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else _MAX_CHAR


class BucketIndex:
    """The keys of one bucket in S3 listing order (str order is UTF-8 byte order), with sizes,
    ETags and LastModified stamps; thread-safe (localbucket serves a thread per connection)."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._keys: SortedList = SortedList()
        self._folders: dict[str, SortedList] = {}
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._last_stamp = 0
        self._now_us = clock or (lambda: time.time_ns() // 1000)

    @classmethod
    def scan(cls, bucket_dir: Path, clock: Callable[[], int] | None = None) -> BucketIndex:
        """Index every object file under ``bucket_dir`` (localbucket's temp files excluded)."""
        index = cls(clock)
        for directory, _, files in os.walk(bucket_dir):
            if not files:
                continue
            folder = Path(directory)
            relative = folder.relative_to(bucket_dir).as_posix()
            names = []
            for name, stamp in folder_stamps(folder).items():
                try:
                    size = (folder / name).stat().st_size
                except OSError:
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                index._entries[key] = Entry(size, stamp)
                index._last_stamp = max(index._last_stamp, stamp)
                names.append(name)
            if names:
                index._folders["" if relative == "." else relative] = SortedList(names)
        index._keys = SortedList(index._entries)  # one sort rather than an insert per key
        return index

    def __len__(self) -> int:
        return len(self._entries)

    def _insert(self, key: str, entry: Entry) -> None:
        if key not in self._entries:
            self._keys.add(key)
            folder, name = _split(key)
            self._folders.setdefault(folder, SortedList()).add(name)
        self._entries[key] = entry

    def put(self, key: str, size: int, etag: str | None) -> int:
        """Record a write; returns the stamp it gets (see the module docstring)."""
        folder, name = _split(key)
        with self._lock:
            self._insert(key, Entry(size, 0, etag))
            names = self._folders[folder]
            at = names.index(name)
            stamp = max(self._now_us(), self._last_stamp + 1)
            if at > 0:
                stamp = max(stamp, self._entries[f"{folder}/{names[at - 1]}" if folder
                                                 else names[at - 1]].stamp_us + 1)
            self._entries[key].stamp_us = stamp
            # keys after this one in its folder must stay newer (rare: out-of-order writes)
            for later in names.islice(at + 1):
                entry = self._entries[f"{folder}/{later}" if folder else later]
                if entry.stamp_us > stamp:
                    break
                stamp = entry.stamp_us = stamp + 1
                entry.xml = None
            self._last_stamp = max(self._last_stamp, stamp)
            return self._entries[key].stamp_us

    def delete(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is None:
                return
            self._keys.remove(key)
            folder, name = _split(key)
            names = self._folders[folder]
            names.remove(name)
            if not names:
                del self._folders[folder]

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def set_etag(self, key: str, etag: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.etag = etag

    def cache_xml(self, entry: Entry, stamp_us: int, xml: str) -> None:
        """Keep a listing's element for ``entry`` unless a write re-stamped it meanwhile."""
        with self._lock:
            if entry.stamp_us == stamp_us:
                entry.xml = xml

    def page(self, prefix: str, delimiter: str, marker: str, marker_is_prefix: bool,
             max_keys: int) -> tuple[list[tuple[str, Entry]], list[str], bool, str]:
        """One listing page, as localbucket's ``_list_entries`` returns it: contents, common
        prefixes, truncated, and the last entry (``K:key`` or ``P:prefix``) for the next token."""
        contents: list[tuple[str, Entry]] = []
        commons: list[str] = []
        last_entry = ""
        with self._lock:
            keys = self._keys
            at = keys.bisect_left(prefix)
            if marker:
                at = max(at, keys.bisect_left(_successor(marker)) if marker_is_prefix
                         else keys.bisect_right(marker))
            restart = True
            while restart:  # runs again after each common prefix, from past its keys
                restart = False
                for key in keys.islice(at):
                    if not key.startswith(prefix):
                        break
                    common = ""
                    if delimiter:
                        found = key.find(delimiter, len(prefix))
                        if found >= 0:
                            common = key[: found + len(delimiter)]
                    if len(contents) + len(commons) >= max_keys:
                        return contents, commons, max_keys > 0, last_entry
                    if common:
                        commons.append(common)
                        last_entry = "P:" + common
                        at = keys.bisect_left(_successor(common))
                        restart = True
                        break
                    contents.append((key, self._entries[key]))
                    last_entry = "K:" + key
        return contents, commons, False, last_entry


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _iso(stamp_us: int) -> str:
    """S3's LastModified with microseconds (batches of one partition share few seconds)."""
    seconds, micros = divmod(stamp_us, 1_000_000)
    return f"{_iso_seconds(seconds)}.{micros:06d}Z"


#: striped locks: a conditional write's check and its write are one step per key
_KEY_LOCKS = [threading.Lock() for _ in range(64)]


class IndexedHandler(localbucket.S3Handler):  # type: ignore[misc, name-defined]
    """localbucket's handler; listings from :class:`BucketIndex`, writes keep it current."""

    indexes: ClassVar[dict[str, BucketIndex]] = {}
    trace: ClassVar[bool] = False
    # localbucket writes headers and body in separate sends; with Nagle's algorithm the body
    # waits for the client's delayed ACK, 40 ms per request on Linux loopback, and Tansu
    # issues its requests one after another (list, then each batch)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self, action: Any) -> None:
        if not self.trace:
            return super()._dispatch(action)  # type: ignore[no-any-return]
        started = time.perf_counter()
        try:
            super()._dispatch(action)
        finally:  # method, path and query, duration: what the broker asks of us and what it costs
            print(f"{time.time():.3f}\t{self.command}\t{self.path}\t"
                  f"{(time.perf_counter() - started) * 1000:.2f}ms", file=sys.stderr, flush=True)

    def _index(self, bucket: str) -> BucketIndex:
        index = self.indexes.get(bucket)
        if index is None:
            index = self.indexes[bucket] = BucketIndex.scan(self._bucket_dir(bucket))
        return index

    def _key_lock(self, bucket: str, key: str) -> threading.Lock:
        return _KEY_LOCKS[hash((bucket, key)) % len(_KEY_LOCKS)]

    def _write_object(self, bucket: str, key: str, write: Any) -> str:
        """localbucket's write, plus ``If-Match``, which it ignores. Tansu updates
        ``watermark.json`` and ``meta.json`` by compare-and-swap (``If-Match`` the ETag it read):
        without the check two producers on one partition both took the same offset, and the
        second one's batch write failed (``UnknownServerError`` to the client)."""
        if_match = self.headers.get("If-Match")
        with self._key_lock(bucket, key):
            if if_match is not None:
                self._check_if_match(bucket, key, if_match)
            etag: str = super()._write_object(bucket, key, write)
            size = self._object_path(bucket, key).stat().st_size
            self._index(bucket).put(key, size, etag)
        return etag

    def _check_if_match(self, bucket: str, key: str, if_match: str) -> None:
        """412 unless the object exists with a matching ETag (412 rather than S3's 404 for a
        missing object: the writer then reads again and creates it, as after any conflict)."""
        entry = self._index(bucket).get(key)
        path = self._object_path(bucket, key)
        try:
            current = entry.etag if entry is not None and entry.etag else (
                localbucket.object_etag(path))
        except OSError:
            current = None
        if current is None or not localbucket.etag_matches(if_match, current):
            raise self._precondition_failed_error()

    def _get(self, bucket: str, key: str, include_body: bool) -> None:
        """localbucket's GetObject/HeadObject, with body and ETag of the same version: it
        opened the file, then hashed the path, so a read racing a write could pair the old body
        with the new ETag, and a compare-and-swap on that ETag then lost the write in between."""
        if not bucket or not key:
            raise self._not_implemented_error()
        overrides = self._response_header_overrides()
        target = self._object_path(bucket, key)
        no_such_key = localbucket.S3Error(HTTPStatus.NOT_FOUND, "NoSuchKey",
                                          "The specified key does not exist.")
        with self._key_lock(bucket, key):
            try:
                file = target.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise no_such_key from None
            try:
                entry = self._index(bucket).get(key)
                etag = entry.etag if entry is not None and entry.etag else (
                    localbucket.object_etag(target))
            except BaseException:
                file.close()
                raise
        with file:
            stat = os.fstat(file.fileno())
            content_type = (localbucket.mimetypes.guess_type(target.name)[0]
                            or "application/octet-stream")
            headers = {"Content-Type": content_type, "ETag": f'"{etag}"',
                       "Last-Modified": localbucket.formatdate(stat.st_mtime, usegmt=True),
                       "Accept-Ranges": "bytes", **overrides}
            status, start, length = HTTPStatus.OK, 0, stat.st_size
            byte_range = localbucket.parse_range(self.headers.get("Range", ""), stat.st_size)
            if byte_range:
                start, end = byte_range
                status, length = HTTPStatus.PARTIAL_CONTENT, end - start + 1
                headers["Content-Range"] = f"bytes {start}-{end}/{stat.st_size}"
            self._send_file(status, file, start, length, headers, include_body)

    def _delete_object(self, bucket: str, key: str) -> None:
        index = self._index(bucket)
        with self._key_lock(bucket, key):
            super()._delete_object(bucket, key)
            index.delete(key)

    def _delete_bucket(self, bucket: str) -> None:
        super()._delete_bucket(bucket)
        self.indexes.pop(bucket, None)

    def _list_entries(self, bucket_dir: Path, prefix: str, delimiter: str, marker: str,
                      marker_is_prefix: bool, max_keys: int
                      ) -> tuple[list[tuple[str, Path]], list[str], bool, str]:
        """ListObjects (v1) keeps localbucket's XML but pages from the index."""
        contents, commons, truncated, last = self._index(bucket_dir.name).page(
            prefix, delimiter, marker, marker_is_prefix, max_keys)
        return [(key, bucket_dir / key) for key, _ in contents], commons, truncated, last

    def _add_list_entries(self, root: Any, contents: list[tuple[str, Path]],
                          common_prefixes: list[str], encode: Any) -> None:
        index = self._index(self._listed_bucket)
        for key, path in contents:
            entry = index.get(key)
            if entry is None:
                continue
            item = localbucket.ET.SubElement(root, "Contents")
            localbucket.sub_element(item, "Key", encode(key))
            localbucket.sub_element(item, "LastModified", _iso(entry.stamp_us))
            localbucket.sub_element(item, "ETag", f'"{self._etag(index, key, entry, path)}"')
            localbucket.sub_element(item, "Size", str(entry.size))
            localbucket.sub_element(item, "StorageClass", "STANDARD")
        for common in common_prefixes:
            item = localbucket.ET.SubElement(root, "CommonPrefixes")
            localbucket.sub_element(item, "Prefix", encode(common))

    def _list_objects(self, bucket: str) -> None:
        self._listed_bucket = bucket
        super()._list_objects(bucket)

    @staticmethod
    def _etag(index: BucketIndex, key: str, entry: Entry, path: Path) -> str:
        if entry.etag is None:
            try:
                index.set_etag(key, localbucket.object_etag(path))
            except OSError:  # deleted meanwhile: listed as it was when the page was cut
                return ""
        return entry.etag or ""

    def _list_objects_v2(self, bucket: str) -> None:
        """ListObjectsV2 from the index, the XML written directly (one f-string per entry
        rather than five ElementTree nodes)."""
        bucket_dir = self._bucket_dir(bucket)
        query = self.query
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        start_after = query.get("start-after", "")
        token = query.get("continuation-token")
        max_keys = self._max_keys()
        marker, marker_is_prefix = start_after, False
        if token is not None:
            try:
                decoded = base64.urlsafe_b64decode(token.encode()).decode()
            except ValueError:
                decoded = ""
            if decoded[:2] not in ("K:", "P:"):
                raise localbucket.S3Error(HTTPStatus.BAD_REQUEST, "InvalidArgument",
                                          "The continuation token provided is incorrect.")
            marker, marker_is_prefix = decoded[2:], decoded.startswith("P:")
        index = self._index(bucket)
        contents, commons, truncated, last = index.page(prefix, delimiter, marker,
                                                        marker_is_prefix, max_keys)
        encode = self._list_encoder()
        parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
                 f'xmlns="{localbucket.S3_NAMESPACE}"><Name>{escape(bucket)}</Name>'
                 f"<Prefix>{escape(encode(prefix))}</Prefix>"]
        if delimiter:
            parts.append(f"<Delimiter>{escape(encode(delimiter))}</Delimiter>")
        parts.append(f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(contents) + len(commons)}"
                     f"</KeyCount><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if token is not None:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if truncated:
            parts.append("<NextContinuationToken>"
                         f"{base64.urlsafe_b64encode(last.encode()).decode()}"
                         "</NextContinuationToken>")
        if start_after:
            parts.append(f"<StartAfter>{escape(encode(start_after))}</StartAfter>")
        if query.get("encoding-type") == "url":
            parts.append("<EncodingType>url</EncodingType>")
        url_encoded = query.get("encoding-type") == "url"
        for key, entry in contents:
            xml = None if url_encoded else entry.xml
            if xml is None:
                etag = self._etag(index, key, entry, bucket_dir / key)
                stamp = entry.stamp_us
                xml = (f"<Contents><Key>{escape(encode(key))}</Key><LastModified>"
                       f"{_iso(stamp)}</LastModified><ETag>&quot;{etag}&quot;</ETag>"
                       f"<Size>{entry.size}</Size><StorageClass>STANDARD</StorageClass>"
                       "</Contents>")
                if etag and not url_encoded:
                    index.cache_xml(entry, stamp, xml)
            parts.append(xml)
        for common in commons:
            parts.append(f"<CommonPrefixes><Prefix>{escape(encode(common))}</Prefix>"
                         "</CommonPrefixes>")
        parts.append("</ListBucketResult>")
        self._send(HTTPStatus.OK, "".join(parts).encode(), {"Content-Type": "application/xml"})


def handler_for(root: Path, trace: bool = False) -> type[IndexedHandler]:
    """A handler class serving ``root`` (its own index table, so tests can run several)."""
    return type("Handler", (IndexedHandler,), {"data_root": root, "indexes": {}, "trace": trace})


def serve(root: Path, port: int, host: str = "127.0.0.1", *, trace: bool = False) -> None:
    """Serve ``root`` until SIGTERM. Buckets present at start are indexed before the port
    opens, so the broker's first listing does not pay for the scan."""
    logging.basicConfig(level=logging.WARNING)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    handler = handler_for(root, trace)
    started = time.perf_counter()
    for bucket_dir in localbucket.bucket_dirs(root):
        handler.indexes[bucket_dir.name] = BucketIndex.scan(bucket_dir)
    objects = sum(len(i) for i in handler.indexes.values())
    print(f"objectstore: indexed {objects} objects in {time.perf_counter() - started:.2f}s",
          file=sys.stderr, flush=True)
    server = localbucket.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()

