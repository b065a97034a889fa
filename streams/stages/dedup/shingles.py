"""Word shingles, MinHash signatures and their compact storage form, for the dedup stage.

A document's signature is the rensa `RMinHash` digest (`num_perm` uint32 values) of its word k-shingles:
lower-cased unicode word tokens (`\\w+`), k consecutive tokens joined by one space. For example, with k=3,
"Talks open, in Geneva" gives the shingles "talks open in" and "open in geneva".

Signatures are stored as base64 of the packed uint32 values, little-endian (4 * num_perm bytes, 684 characters
for 128 permutations), which is JSON-serialisable and independent of rensa's own pickle format. Rebuilding an
`RMinHash` from stored values needs rensa's state format, which this module writes itself (checked at start-up
by `MinHasher`, and by a unit test, so a rensa upgrade that changes it fails loudly instead of silently).
"""

from __future__ import annotations

import array
import base64
import binascii
import operator
import re
import sys
from collections.abc import Iterable, Sequence

import rensa

SEED = 20250812  # fixed: signatures must agree across processes and restarts

_WORD = re.compile(r"\w+")
_VARINT_TAIL_OF_EMPTY = b"\xff\xff\xff\xff\x0f"  # u32::MAX as a LEB128 varint: an empty RMinHash's values

if array.array("I").itemsize != 4:  # pragma: no cover - every mainstream platform has a 4-byte unsigned int
    raise ImportError("array('I') is not 32-bit on this platform")


def tokens(text: str) -> list[str]:
    """Lower-cased unicode word tokens."""
    return _WORD.findall(text.lower())


def shingles(words: Sequence[str], k: int) -> list[str]:
    """Word k-shingles; a text shorter than k words is one shingle, an empty one has none."""
    if len(words) < k:
        return [" ".join(words)] if words else []
    if k == 1:
        return list(words)
    return list(map(" ".join, zip(*(words[i:] for i in range(k)), strict=False)))


def encode_signature(values: Iterable[int]) -> str:
    """Packed little-endian uint32 values, base64 (ASCII)."""
    packed = array.array("I", values)
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def decode_signature(text: str) -> array.array[int]:
    """The uint32 values of a stored signature; raises ValueError when it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"not a base64 signature: {exc}") from exc
    if len(raw) % 4:
        raise ValueError("signature length is not a multiple of 4 bytes")
    values = array.array("I")
    values.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures: the share of positions where they agree."""
    if not a or len(a) != len(b):
        return 0.0
    return sum(map(operator.eq, a, b)) / len(a)


def optimal_num_bands(threshold: float, num_perm: int, fn_weight: float = 0.95) -> int:
    """Bands b (rows r = num_perm / b, b*r = num_perm as rensa requires) for an LSH S-curve at `threshold`.

    Minimises fp_weight * P(candidate | J < t) + fn_weight * P(miss | J >= t), integrated over J, as
    datasketch does, but weighting misses heavily: candidates are verified against the full signature, so a
    false candidate costs one table read while a miss loses a duplicate. Fewer bands also mean less memory
    (about 85 bytes per band per article in rensa). For 128 permutations this gives b=32 (r=4) up to t=0.7,
    b=16 (r=8) from 0.75 to 0.85 and b=8 (r=16) from 0.9.
    """
    fp_weight = 1.0 - fn_weight
    best: tuple[float, int] | None = None
    for b in range(1, num_perm + 1):
        if num_perm % b:
            continue
        r = num_perm // b
        fp = _integrate(lambda j, b=b, r=r: 1 - (1 - j**r) ** b, 0.0, threshold)
        fn = _integrate(lambda j, b=b, r=r: (1 - j**r) ** b, threshold, 1.0)
        cost = fp_weight * fp + fn_weight * fn
        if best is None or cost < best[0] - 1e-12:
            best = (cost, b)
    assert best is not None
    return best[1]


def _integrate(f, a: float, b: float, steps: int = 200) -> float:
    h = (b - a) / steps
    return sum(f(a + (i + 0.5) * h) for i in range(steps)) * h


class MinHasher:
    """Computes MinHash signatures, and rebuilds `RMinHash` objects from stored values (for the LSH index)."""

    def __init__(self, num_perm: int, shingle_size: int, seed: int = SEED) -> None:
        if num_perm < 1 or shingle_size < 1:
            raise ValueError("num_perm and shingle_size must be positive")
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        empty = rensa.RMinHash(num_perm, seed).__getstate__()
        tail = _VARINT_TAIL_OF_EMPTY * num_perm
        if not empty.endswith(tail):
            raise RuntimeError(
                f"rensa {getattr(rensa, '__version__', '?')} changed the RMinHash state format; "
                "streams.stages.dedup.shingles needs updating (tested with rensa 0.5.0)"
            )
        self._prefix = empty[: -len(tail)]  # header, version, num_perm, seed, and the vector's length
        self._width = 5 * num_perm
        self._masks = [self._lanes(0x7F << (7 * g)) for g in range(5)]
        self._continuation = self._lanes(0x80808080)
        self._self_check()

    def _lanes(self, bits: int) -> int:
        out = 0
        for i in range(self.num_perm):
            out |= bits << (40 * i)
        return out

    def minhash(self, title: str, text: str) -> rensa.RMinHash | None:
        """The MinHash of title and text's shingles; None when they hold no word at all."""
        grams = shingles(tokens(f"{title}\n{text}"), self.shingle_size)
        if not grams:
            return None
        mh = rensa.RMinHash(self.num_perm, self.seed)
        mh.update(grams)
        return mh

    def from_values(self, values: array.array[int]) -> rensa.RMinHash:
        """An `RMinHash` whose digest is `values` (no text needed: used to rebuild the index after a restart).

        rensa 0.5.0 pickles an RMinHash as a header followed by postcard varints (LEB128); each uint32 is
        written here as a fixed 5-byte varint, which postcard accepts. The 7-bit groups of all values are
        spread at once with big-integer masks (about 5 microseconds for 128 values).
        """
        if len(values) != self.num_perm:
            raise ValueError(f"signature has {len(values)} values, expected {self.num_perm}")
        raw = values.tobytes()
        if sys.byteorder == "big":  # pragma: no cover
            swapped = array.array("I", values)
            swapped.byteswap()
            raw = swapped.tobytes()
        lanes = bytearray(self._width)  # each value in a 40-bit lane, little-endian
        for j in range(4):
            lanes[j::5] = raw[j::4]
        x = int.from_bytes(lanes, "little")
        m = self._masks
        y = (x & m[0]) | ((x & m[1]) << 1) | ((x & m[2]) << 2) | ((x & m[3]) << 3) | ((x & m[4]) << 4)
        y |= self._continuation
        mh = rensa.RMinHash(self.num_perm, self.seed)
        mh.__setstate__(self._prefix + y.to_bytes(self._width, "little"))
        return mh

    def _self_check(self) -> None:
        probe = rensa.RMinHash(self.num_perm, self.seed)
        probe.update(["self check", "of the state format", "0", "\u00e9t\u00e9"])
        values = array.array("I", probe.digest())
        values[0] = 0  # exercise the shortest and longest varints
        values[-1] = 0xFFFFFFFF
        try:
            rebuilt = self.from_values(values).digest()
        except Exception as exc:  # any failure means the format changed
            raise RuntimeError(f"cannot rebuild an RMinHash from its values with this rensa: {exc}") from exc
        if list(rebuilt) != list(values):
            raise RuntimeError("rensa's RMinHash state format changed: update streams.stages.dedup.shingles")
