"""A compact snapshot of dedup's state, so a worker with an empty state dir decides again in seconds.

Why. Faust restores a table by replaying its changelog, about 7,600 records a second on one core here: 1M
indexed articles are 2M records (entries and content hashes), 263 s before the first decision. A snapshot
holds the same state in a few hundred columnar records that load at memory speed, plus the changelog offsets
it covers, so recovery reads the snapshot and replays only the changelog records written after it.

What is stored: every entry of the three tables (``articles``, ``content``, ``held``) and the offsets the
caller says they reflect (``{changelog topic: next offset}``), split into records of at most `chunk_bytes`:

- one *manifest* (``MANIFEST_KEY``): format, configuration fingerprint, counts, offsets, the chunk keys;
- *chunks* (``"<snapshot id>/<n>"``): a header (JSON) and numpy columns. Article entries are columns
  (times, revision numbers, shingle counts, the uint32 signatures as an (n, num_perm) matrix, and the strings
  as one UTF-8 blob with offsets); fields that are rare or unknown (previous revisions, a scheme-1
  ``signature``) go in a JSON side list, so a snapshot reproduces every entry exactly.

For example, 1M entries take about 400 MB in about 50 chunks (the signatures are 256 MB of it), read and
loaded in seconds; `load_tables` writes the entries back (into Faust's stores, bypassing the changelog) and
`DedupState.rebuild_from_snapshot` builds the index from the columns without decoding JSON.

A snapshot whose format or configuration (permutations, shingle size, signature scheme) differs from the
reader's is refused (`SnapshotError`); recovery then falls back to the changelog.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from streams.stages.dedup.config import DedupConfig
from streams.stages.dedup.shingles import SCHEME, decode_signature, encode_signature

FORMAT = 1
MANIFEST_KEY = "manifest"
MAGIC = b"DDSN"
_HEAD = struct.Struct("<4sHI")  # magic, format, header length
COLUMN_FIELDS = ("canonical_url", "revision", "cluster_id", "source")  # strings
NUMBER_FIELDS = {"revision_number": np.uint32, "event_ms": np.int64, "seen_ms": np.int64, "shingles": np.uint32}
_KNOWN = {*COLUMN_FIELDS, *NUMBER_FIELDS, "minhash", "previous_revisions"}


class SnapshotError(ValueError):
    """A snapshot that this reader cannot use (other format or configuration, missing or corrupt chunk)."""


def fingerprint(config: DedupConfig) -> dict[str, int]:
    """What a snapshot's signatures depend on; a reader with another fingerprint cannot use them."""
    return {"num_perm": config.num_perm, "shingle_size": config.shingle_size, "scheme": SCHEME}


# --- writing -----------------------------------------------------------------------------------------------


def _pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    layout, parts, offset = [], [], 0
    for name, arr in arrays.items():
        raw = np.ascontiguousarray(arr).tobytes()
        layout.append([name, arr.dtype.str, list(arr.shape), offset, len(raw)])
        parts.append(raw)
        offset += len(raw)
    head = orjson.dumps({**header, "arrays": layout})
    return _HEAD.pack(MAGIC, FORMAT, len(head)) + head + b"".join(parts)


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        magic, fmt, hlen = _HEAD.unpack_from(data)
        if magic != MAGIC or fmt != FORMAT:
            raise SnapshotError(f"not a dedup snapshot chunk of format {FORMAT}")
        header = orjson.loads(data[_HEAD.size : _HEAD.size + hlen])
        body = memoryview(data)[_HEAD.size + hlen :]
        arrays = {}
        for name, dtype, shape, offset, length in header.pop("arrays"):
            if offset + length > len(body):
                raise SnapshotError(f"chunk truncated at column {name}")
            arrays[name] = np.frombuffer(body[offset : offset + length], dtype=np.dtype(dtype)).reshape(shape)
        return header, arrays
    except (struct.error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"corrupt snapshot chunk: {exc}") from exc


def _strings(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [v.encode("utf-8", "surrogatepass") for v in values]
    ends = np.cumsum([len(e) for e in encoded], dtype=np.int64) if encoded else np.zeros(0, dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def _unstrings(blob: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    out, start = [], 0
    for end in ends.tolist():
        out.append(raw[start:end].decode("utf-8", "surrogatepass"))
        start = end
    return out


def _article_chunk(rows: list[tuple[str, dict[str, Any]]], num_perm: int) -> bytes:
    n = len(rows)
    arrays: dict[str, np.ndarray] = {}
    blob, ends = _strings([key for key, _ in rows])
    arrays["key"], arrays["key_ends"] = blob, ends
    for name in COLUMN_FIELDS:
        blob, ends = _strings([str(e.get(name, "")) for _, e in rows])
        arrays[name], arrays[name + "_ends"] = blob, ends
    missing: dict[str, list[int]] = {}  # field -> rows where an entry lacks it (restored without it)
    extra: list[list[Any]] = []
    for name, dtype in NUMBER_FIELDS.items():
        col = np.zeros(n, dtype=dtype)
        for i, (_, e) in enumerate(rows):
            if name in e:
                col[i] = e[name]
            else:
                missing.setdefault(name, []).append(i)
        arrays[name] = col
    sigs = np.zeros((n, num_perm), dtype=np.uint32)
    signed = np.zeros(n, dtype=np.uint8)
    for i, (_, e) in enumerate(rows):
        sig = e.get("minhash")
        values = decode_signature(sig) if sig else None
        if values is not None and values.shape[0] == num_perm:
            sigs[i] = values
            signed[i] = 1
        elif "minhash" in e:
            extra.append([i, {"minhash": e["minhash"]}])
        else:
            missing.setdefault("minhash", []).append(i)
        for name in COLUMN_FIELDS:
            if name not in e:
                missing.setdefault(name, []).append(i)
        rest = {k: v for k, v in e.items() if k not in _KNOWN or (k == "previous_revisions" and v)}
        if "previous_revisions" not in e:
            missing.setdefault("previous_revisions", []).append(i)
        if rest:
            extra.append([i, rest])
    arrays["minhash"], arrays["signed"] = sigs, signed
    return _pack({"kind": "articles", "rows": n, "extra": extra, "missing": missing}, arrays)


def _pairs_chunk(kind: str, rows: list[tuple[str, Any]]) -> bytes:
    return _pack({"kind": kind, "rows": len(rows), "pairs": rows}, {})


def _bounded(
    items: Iterable[tuple[Any, Any]], size: Callable[[str, Any], int], chunk_bytes: int
) -> Iterator[list[tuple[str, Any]]]:
    """Batches whose rows' sizes (`size(key, value)`, bytes) add up to at most `chunk_bytes`; a row larger
    than the bound goes alone. Sizes are measured, not assumed: a held article can be 2 MB, a URL 2 KB, and
    a chunk must stay below the record size its topic accepts."""
    batch: list[tuple[str, Any]] = []
    total = 0
    for key, value in items:
        key = str(key)
        n = size(key, value)
        if batch and total + n > chunk_bytes:
            yield batch
            batch, total = [], 0
        batch.append((key, value))
        total += n
    if batch:
        yield batch


def _article_bytes(num_perm: int) -> Callable[[str, Any], int]:
    fixed = 4 * num_perm + 8 * len(COLUMN_FIELDS) + 8 + 28 + 2  # signature, string ends, key end, numbers, flags

    def size(key: str, entry: Any) -> int:
        n = fixed + len(key)
        for name in COLUMN_FIELDS:
            value = entry.get(name, "")
            n += len(value) if type(value) is str else len(str(value))
        previous = entry.get("previous_revisions")
        if previous:  # what goes to the JSON side list
            n += len(orjson.dumps(previous, default=str)) + 48
        rest = entry.keys() - _KNOWN
        if rest:
            n += len(orjson.dumps({k: entry[k] for k in rest}, default=str)) + 16
        return n

    return size


def _pair_bytes(key: str, value: Any) -> int:
    return len(key) + len(orjson.dumps(value, default=str)) + 8  # as it is stored: [key, value] in the header


def write_snapshot(
    config: DedupConfig,
    articles: Mapping[str, Any],
    content: Mapping[str, Any],
    held: Mapping[str, Any],
    *,
    offsets: Mapping[str, int],
    chunk_bytes: int = 8 * 1024 * 1024,
    snapshot_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """(key, value) records of a snapshot of the three tables: the chunks first, the manifest last.

    `offsets` are the changelog positions the tables reflect (the next offset of each changelog topic).
    Write the records in order; a reader uses a manifest only once every chunk it names is there.
    Entries that are not JSON objects are skipped, as `DedupState.rebuild` skips them. A chunk holds rows
    of at most `chunk_bytes` together (measured; plus a small header); `extra` (JSON) goes into the
    manifest as is, for the writer's own bookkeeping."""
    sid = snapshot_id or uuid.uuid4().hex
    keys: list[str] = []
    counts = {"articles": 0, "content": 0, "held": 0}
    entries = ((k, v) for k, v in articles.items() if isinstance(v, dict))
    for rows in _bounded(entries, _article_bytes(config.num_perm), chunk_bytes):
        keys.append(f"{sid}/{len(keys):06d}")
        counts["articles"] += len(rows)
        yield keys[-1], _article_chunk(rows, config.num_perm)
    for kind, table in (("content", content), ("held", held)):
        for rows in _bounded(table.items(), _pair_bytes, chunk_bytes):
            keys.append(f"{sid}/{len(keys):06d}")
            counts[kind] += len(rows)
            yield keys[-1], _pairs_chunk(kind, rows)
    manifest = {
        "format": FORMAT,
        "snapshot_id": sid,
        "fingerprint": fingerprint(config),
        "counts": counts,
        "offsets": dict(offsets),
        "chunks": keys,
    }
    if extra:
        manifest["extra"] = dict(extra)
    yield MANIFEST_KEY, orjson.dumps(manifest)


# --- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleColumns:
    """One chunk of article entries as columns (what `DedupState.rebuild_from_snapshot` reads)."""

    keys: list[str]
    seen_ms: np.ndarray
    shingles: np.ndarray
    signed: np.ndarray  # 1 where the row has a signature of this scheme
    minhash: np.ndarray  # (rows, num_perm) uint32
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The entries exactly as they were written."""
        a = self.arrays
        strings = {name: _unstrings(a[name], a[name + "_ends"]) for name in COLUMN_FIELDS}
        numbers = {name: a[name].tolist() for name in NUMBER_FIELDS}
        missing = {name: set(rows) for name, rows in self.header.get("missing", {}).items()}
        extra: dict[int, dict[str, Any]] = {}
        for row, fields in self.header.get("extra", []):
            extra.setdefault(row, {}).update(fields)
        signed = self.signed.tolist()
        for i, key in enumerate(self.keys):
            entry: dict[str, Any] = {name: strings[name][i] for name in COLUMN_FIELDS}
            entry.update({name: numbers[name][i] for name in NUMBER_FIELDS})
            entry["previous_revisions"] = []
            entry["minhash"] = encode_signature(self.minhash[i]) if signed[i] else ""
            for name, rows in missing.items():
                if i in rows:
                    entry.pop(name, None)
            entry.update(extra.get(i, {}))
            yield key, entry


@dataclass
class Snapshot:
    """A snapshot read back: its manifest and its chunks, decoded lazily."""

    manifest: dict[str, Any]
    chunks: list[bytes]

    @property
    def offsets(self) -> dict[str, int]:
        return dict(self.manifest["offsets"])

    def articles(self) -> Iterator[ArticleColumns]:
        for data in self.chunks:
            header, arrays = _unpack(data)
            if header.get("kind") == "articles":
                yield ArticleColumns(
                    keys=_unstrings(arrays["key"], arrays["key_ends"]),
                    seen_ms=arrays["seen_ms"],
                    shingles=arrays["shingles"],
                    signed=arrays["signed"],
                    minhash=arrays["minhash"],
                    header=header,
                    arrays=arrays,
                )

    def pairs(self, kind: str) -> Iterator[tuple[str, Any]]:
        for data in self.chunks:
            header, _ = _unpack(data)
            if header.get("kind") == kind:
                yield from ((key, value) for key, value in header["pairs"])


def read_snapshot(records: Mapping[str, bytes], config: DedupConfig) -> Snapshot:
    """The snapshot named by the manifest among `records` (key → value, e.g. a compacted topic read to its
    end); raises SnapshotError when it is missing, incomplete, or written for another configuration."""
    raw = records.get(MANIFEST_KEY)
    if raw is None:
        raise SnapshotError("no snapshot manifest")
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"corrupt snapshot manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise SnapshotError(f"snapshot format {manifest.get('format')} is not {FORMAT}")
    if manifest.get("fingerprint") != fingerprint(config):
        raise SnapshotError(f"snapshot written for {manifest.get('fingerprint')}, not {fingerprint(config)}")
    missing = [k for k in manifest["chunks"] if k not in records]
    if missing:
        raise SnapshotError(f"snapshot {manifest['snapshot_id']} lacks {len(missing)} chunks")
    return Snapshot(manifest, [records[k] for k in manifest["chunks"]])


def load_tables(
    snapshot: Snapshot,
    articles: MutableMapping[str, Any],
    content: MutableMapping[str, Any],
    held: MutableMapping[str, Any],
) -> dict[str, int]:
    """Writes the snapshot's entries into the three mappings; returns how many of each.

    In production the mappings are the tables' local stores written without a changelog (the changelog
    already holds these entries); in tests, dicts."""
    counts = {"articles": 0, "content": 0, "held": 0}
    for cols in snapshot.articles():
        for key, entry in cols.entries():
            articles[key] = entry
            counts["articles"] += 1
    for kind, table in (("content", content), ("held", held)):
        for key, value in snapshot.pairs(kind):
            table[key] = value
            counts[kind] += 1
    return counts
