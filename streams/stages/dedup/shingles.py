"""Word shingles, MinHash signatures and their compact storage form, for the dedup stage.

A document's signature is `num_perm` uint32 MinHash values of its word k-shingles: lower-cased unicode word
tokens (``\\w+``), k consecutive tokens. For example, with k=3, "Talks open, in Geneva" gives the shingles
"talks open in" and "open in geneva". Each shingle is hashed to 64 bits (FNV-1a over the code points of its
words, combined and mixed with splitmix64) and value i is the minimum over shingles of the top 32 bits of
``mult[i] * h + add[i] mod 2**64`` (multiply-shift), with multipliers drawn once from a fixed seed: the
same text gives the same signature in every process. Beside the values, a signature carries the number of
distinct shingles, from which containment is estimated (`containment`).

Signatures are stored as base64 of the packed uint32 values, little-endian (4 * num_perm bytes: 344
characters for 64 permutations), which is JSON-serialisable.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streams.stages.dedup import kernels

SEED = 20250812  # fixed: signatures must agree across processes and restarts
SCHEME = 2  # the signature scheme (1 was rensa 0.5.0's RMinHash); entries of another scheme are not compared

_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased unicode word tokens (what `MinHasher` hashes, as strings)."""
    return _WORD.findall(text.lower())


def shingles(words: Sequence[str], k: int) -> list[str]:
    """Word k-shingles; a text shorter than k words is one shingle, an empty one has none."""
    if len(words) < k:
        return [" ".join(words)] if words else []
    if k == 1:
        return list(words)
    return list(map(" ".join, zip(*(words[i:] for i in range(k)), strict=False)))


@functools.cache
def _word_table() -> np.ndarray:
    """Whether each code point is a word character of the regex ``\\w``, asked of the regex engine itself
    (every code point in one string, the others replaced by NUL): about 0.1 s, once per process."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    words = re.sub(r"\W", "\x00", every).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(words, dtype=np.uint32) != 0


@dataclass(frozen=True, eq=False)
class Signature:
    """MinHash values (uint32, one per permutation) and the number of distinct shingles they summarise."""

    values: np.ndarray
    shingles: int

    def encode(self) -> str:
        return encode_signature(self.values)


class MinHasher:
    """Computes signatures of title + text; `from_values` rebuilds one from stored values."""

    def __init__(self, num_perm: int, shingle_size: int, seed: int = SEED) -> None:
        if num_perm < 1 or shingle_size < 1:
            raise ValueError("num_perm and shingle_size must be positive")
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        rng = np.random.default_rng(seed)
        self._mult = rng.integers(0, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
        self._add = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
        self._is_word = _word_table()

    def signature(self, title: str, text: str) -> Signature | None:
        """The signature of title and text's shingles; None when they hold no word at all."""
        joined = f"{title}\n{text}".lower()
        cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        values, distinct = kernels.signature(cps, self._is_word, self.shingle_size, self._mult, self._add)
        if not distinct:
            return None
        return Signature(values, int(distinct))

    def from_values(self, values: np.ndarray, shingles: int) -> Signature:
        """A signature from stored values; raises ValueError when their count is not num_perm."""
        if values.shape[0] != self.num_perm:
            raise ValueError(f"signature has {values.shape[0]} values, expected {self.num_perm}")
        return Signature(values, max(int(shingles), 1))


def encode_signature(values: Sequence[int] | np.ndarray) -> str:
    """Packed little-endian uint32 values, base64 (ASCII)."""
    return base64.b64encode(np.asarray(values, dtype="<u4").tobytes()).decode("ascii")


def decode_signature(text: str) -> np.ndarray:
    """The uint32 values of a stored signature; raises ValueError when it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ValueError(f"not a base64 signature: {exc}") from exc
    if len(raw) % 4:
        raise ValueError("signature length is not a multiple of 4 bytes")
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def similarity(a: np.ndarray | Sequence[int], b: np.ndarray | Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures: the share of positions where they agree."""
    x, y = np.asarray(a), np.asarray(b)
    if not x.shape[0] or x.shape != y.shape:
        return 0.0
    return float(np.count_nonzero(x == y)) / x.shape[0]


def containment(jaccard: float, n_a: int, n_b: int) -> tuple[float, float]:
    """(share of A's shingles in B, share of B's in A) from the Jaccard similarity J and the set sizes:
    |A ∩ B| = J (|A| + |B|) / (1 + J). For example J = 0.5 with |A| = 100, |B| = 200 gives (1.0, 0.5)."""
    if n_a <= 0 or n_b <= 0 or jaccard <= 0.0:
        return 0.0, 0.0
    common = jaccard * (n_a + n_b) / (1.0 + jaccard)
    return min(1.0, common / n_a), min(1.0, common / n_b)


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """Probability that LSH with `bands` bands of `rows` values makes a pair of similarity J a candidate."""
    return 1.0 - (1.0 - jaccard**rows) ** bands
