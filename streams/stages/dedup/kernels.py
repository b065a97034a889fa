"""Compiled loops of the dedup stage (numba): shingle hashes, MinHash values, and the compact LSH tables.

Python-level work per article is a handful of calls into these functions, each over numpy arrays, so a
decision costs tens of microseconds and the index holds no Python object per article. Every function is
pure over its arguments (arrays are modified in place where the docstring says so) and deterministic:
the same text gives the same signature in every process, on every restart.

Integer arithmetic is on explicit uint64/uint32 values and wraps, as the hashes require. `cache=True`
keeps the compiled code in ``__pycache__`` (compiled once per machine, about 5 s; a read-only install
compiles at start-up instead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

U64 = np.uint64
U32 = np.uint32
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
MIX_PRIME = np.uint64(0x9E3779B97F4A7C15)
EMPTY = np.uint32(0)  # a free cell of the id map (slots are stored + 1; an LSH cell is free when 0)
GEN_BITS = 8  # a posting is (slot + 1) << 8 | generation: 24 bits of slot, up to 16,777,214 slots
GEN_MASK = np.uint32(0xFF)
MAX_SLOTS = (1 << (32 - GEN_BITS)) - 2


@njit(cache=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


@njit(cache=True)
def shingle_hashes(cps: np.ndarray, is_word: np.ndarray, k: int) -> np.ndarray:
    """64-bit hashes of the word k-shingles of a lower-cased text given as code points (uint32).

    A word is a maximal run of code points for which `is_word` is true (the same as the regex ``\\w+``);
    a text with fewer than k words is one shingle of all of them, a text with none has no shingle.
    """
    n = cps.shape[0]
    toks = np.empty(n // 2 + 1, dtype=np.uint64)
    nt = 0
    h = FNV_OFFSET
    in_word = False
    for i in range(n):
        c = cps[i]
        if c < is_word.shape[0] and is_word[c]:
            if not in_word:
                h = FNV_OFFSET
                in_word = True
            h = (h ^ U64(c)) * FNV_PRIME
        elif in_word:
            toks[nt] = h
            nt += 1
            in_word = False
    if in_word:
        toks[nt] = h
        nt += 1
    if nt == 0:
        return np.empty(0, dtype=np.uint64)
    width = k if nt >= k else nt
    m = nt - width + 1
    out = np.empty(m, dtype=np.uint64)
    for s in range(m):
        acc = U64(width)
        for j in range(width):
            acc = acc * MIX_PRIME + toks[s + j]
        out[s] = _mix(acc)
    return out


@njit(cache=True)
def minhash(hashes: np.ndarray, mult: np.ndarray, add: np.ndarray) -> tuple[np.ndarray, int]:
    """(MinHash values, distinct shingles): value i is min over shingles of the top 32 bits of
    mult[i] * h + add[i] (mod 2**64), a multiply-shift hash of each already well-mixed shingle hash."""
    p = mult.shape[0]
    vals = np.full(p, U64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    for x in hashes:
        for i in range(p):
            vals[i] = min(vals[i], mult[i] * x + add[i])  # branch-free: the loop vectorises
    out = np.empty(p, dtype=np.uint32)
    for i in range(p):
        out[i] = U32(vals[i] >> U64(32))
    return out, distinct(hashes)


@njit(cache=True)
def distinct(hashes: np.ndarray) -> int:
    """How many different values `hashes` holds (a hash set of twice its length)."""
    cap = 16
    while cap < 2 * hashes.shape[0]:
        cap *= 2
    table = np.zeros(cap, dtype=np.uint64)
    mask = U64(cap - 1)
    count = 0
    for x in hashes:
        k = x | U64(1)  # never 0, the free mark; merges x and x ^ 1, a 2**-63 chance per pair
        pos = k & mask
        while True:
            t = table[pos]
            if t == U64(0):
                table[pos] = k
                count += 1
                break
            if t == k:
                break
            pos = (pos + U64(1)) & mask
    return count


@njit(cache=True)
def band_keys(values: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 32-bit key per LSH band: a hash of the `rows` MinHash values of that band (never 0)."""
    out = np.empty(bands, dtype=np.uint32)
    for b in range(bands):
        acc = U64(b + 1)
        for r in range(rows):
            acc = acc * MIX_PRIME + U64(values[b * rows + r])
        key = U32(_mix(acc) >> U64(32))
        out[b] = key if key != 0 else U32(1)
    return out


@njit(cache=True)
def sketch_of(values: np.ndarray) -> np.ndarray:
    """The in-memory sketch of a signature: the low 4 bits of each value, two to a byte."""
    p = values.shape[0]
    out = np.zeros((p + 1) // 2, dtype=np.uint8)
    for i in range(p):
        nib = np.uint8(values[i] & U32(0xF))
        if i & 1:
            out[i >> 1] |= np.uint8(nib << np.uint8(4))
        else:
            out[i >> 1] |= nib
    return out


@njit(cache=True, inline="always")
def _home(key: np.uint32, cap: int) -> Any:  # np.int64 (numba: uint64 arithmetic would turn it to float)
    return np.int64((U64(key) * U64(cap)) >> U64(32))


@njit(cache=True)
def lsh_insert(cells: np.ndarray, bkeys: np.ndarray, posting: np.uint32) -> None:
    """Adds `posting` under each band's key. `cells` is (bands, capacity) uint64, one cell per posting
    (key << 32 | posting, 0 = free), linear probing; in place."""
    cap = cells.shape[1]
    for b in range(bkeys.shape[0]):
        pos = _home(bkeys[b], cap)
        while cells[b, pos] != U64(0):
            pos += 1
            if pos == cap:
                pos = 0
        cells[b, pos] = (U64(bkeys[b]) << U64(32)) | U64(posting)


@njit(cache=True)
def lsh_query(cells: np.ndarray, bkeys: np.ndarray, gen: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Live slots that share at least one band key with the query, each once, in ascending order.

    A posting is live when its slot is alive and its generation is the slot's (a revision or an eviction
    bumps the generation, so older postings of the slot are skipped until a rehash drops them)."""
    cap = cells.shape[1]
    found = np.empty(64, dtype=np.int64)
    n = 0
    for b in range(bkeys.shape[0]):
        key = U64(bkeys[b])
        pos = _home(bkeys[b], cap)
        while True:
            c = cells[b, pos]
            if c == U64(0):
                break
            if (c >> U64(32)) == key:
                v = U32(c & U64(0xFFFFFFFF))
                slot = np.int64(v >> U32(GEN_BITS)) - 1
                if alive[slot] and gen[slot] == np.uint8(v & GEN_MASK):
                    if n == found.shape[0]:
                        grown = np.empty(2 * n, dtype=np.int64)
                        grown[:n] = found
                        found = grown
                    found[n] = slot
                    n += 1
            pos += 1
            if pos == cap:
                pos = 0
    if n == 0:
        return found[:0]
    srt = np.sort(found[:n])
    out = np.empty(n, dtype=np.int64)
    m = 0
    for j in range(n):
        if j == 0 or srt[j] != srt[j - 1]:
            out[m] = srt[j]
            m += 1
    return out[:m]


@njit(cache=True)
def lsh_rehash(cells: np.ndarray, new_cells: np.ndarray, gen: np.ndarray, alive: np.ndarray) -> int:
    """Copies the live postings of `cells` into the empty `new_cells`; returns how many (all bands)."""
    cap = new_cells.shape[1]
    live = 0
    for b in range(cells.shape[0]):
        for i in range(cells.shape[1]):
            c = cells[b, i]
            if c == U64(0):
                continue
            v = U32(c & U64(0xFFFFFFFF))
            slot = np.int64(v >> U32(GEN_BITS)) - 1
            if not (alive[slot] and gen[slot] == np.uint8(v & GEN_MASK)):
                continue
            pos = _home(U32(c >> U64(32)), cap)
            while new_cells[b, pos] != U64(0):
                pos += 1
                if pos == cap:
                    pos = 0
            new_cells[b, pos] = c
            live += 1
    return live


@njit(cache=True)
def bulk_index(
    cells: np.ndarray, sketches: np.ndarray, values: np.ndarray, slots: np.ndarray, gen: np.ndarray, rows: int
) -> None:
    """For each row i of `values` (signatures), writes slot slots[i]'s sketch and its postings (rebuild)."""
    bands = cells.shape[0]
    for i in range(values.shape[0]):
        slot = slots[i]
        sketches[slot] = sketch_of(values[i])
        lsh_insert(cells, band_keys(values[i], bands, rows), U32(((slot + 1) << GEN_BITS) | int(gen[slot])))


@njit(cache=True)
def sketch_agreement(sketches: np.ndarray, slots: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each slot, how many of the 4-bit sketch values agree with the query's (0 .. 2 * bytes)."""
    out = np.zeros(slots.shape[0], dtype=np.int64)
    for j in range(slots.shape[0]):
        row = sketches[slots[j]]
        eq = 0
        for i in range(query.shape[0]):
            x = row[i] ^ query[i]
            if (x & np.uint8(0x0F)) == 0:
                eq += 1
            if (x & np.uint8(0xF0)) == 0:
                eq += 1
        out[j] = eq
    return out


# --- article_id -> slot: open addressing on the id folded to 8 bytes, backward-shift deletion -------------


@njit(cache=True, inline="always")
def _id_home(key: np.uint64, cap: int) -> Any:
    return np.int64(((_mix(key) >> U64(32)) * U64(cap)) >> U64(32))


@njit(cache=True)
def id_find(ikeys: np.ndarray, ivals: np.ndarray, ids: np.ndarray, key: np.uint64, full: np.ndarray) -> Any:
    """The slot of the id whose 16 bytes are `full` (folded to `key`), or -1."""
    cap = ikeys.shape[0]
    pos = _id_home(key, cap)
    while ivals[pos] != EMPTY:
        if ikeys[pos] == key:
            slot = np.int64(ivals[pos]) - 1
            same = True
            for i in range(16):
                if ids[slot, i] != full[i]:
                    same = False
                    break
            if same:
                return slot
        pos += 1
        if pos == cap:
            pos = 0
    return np.int64(-1)


@njit(cache=True)
def id_insert(ikeys: np.ndarray, ivals: np.ndarray, key: np.uint64, slot: int) -> None:
    cap = ikeys.shape[0]
    pos = _id_home(key, cap)
    while ivals[pos] != EMPTY:
        pos += 1
        if pos == cap:
            pos = 0
    ikeys[pos] = key
    ivals[pos] = U32(slot + 1)


@njit(cache=True)
def id_delete(ikeys: np.ndarray, ivals: np.ndarray, key: np.uint64, slot: int) -> bool:
    """Removes (key, slot), shifting later cells of its run back so that lookups need no tombstones."""
    cap = ikeys.shape[0]
    pos = _id_home(key, cap)
    target = U32(slot + 1)
    while True:
        if ivals[pos] == EMPTY:
            return False
        if ikeys[pos] == key and ivals[pos] == target:
            break
        pos += 1
        if pos == cap:
            pos = 0
    hole = pos
    nxt = hole
    while True:
        nxt += 1
        if nxt == cap:
            nxt = 0
        if ivals[nxt] == EMPTY:
            break
        home = _id_home(ikeys[nxt], cap)
        # move the cell back into the hole unless its home lies cyclically in (hole, nxt]
        if hole <= nxt:
            stays = hole < home <= nxt
        else:
            stays = home > hole or home <= nxt
        if not stays:
            ikeys[hole] = ikeys[nxt]
            ivals[hole] = ivals[nxt]
            hole = nxt
    ivals[hole] = EMPTY
    ikeys[hole] = U64(0)
    return True


@njit(cache=True)
def bulk_id_insert(ikeys: np.ndarray, ivals: np.ndarray, ids: np.ndarray, slots: np.ndarray) -> None:
    """id_insert for each slot of `slots` (rebuild); the key is the id's two 8-byte halves (little-endian) xor'ed."""
    for slot in slots:
        key = U64(0)
        for i in range(8):
            key |= (U64(ids[slot, i]) ^ U64(ids[slot, i + 8])) << U64(8 * i)
        id_insert(ikeys, ivals, key, slot)


# --- the expiry heap: slots ordered by their ingestion time (ms) --------------------------------------------


@njit(cache=True)
def heap_push(heap: np.ndarray, size: int, slot: int, seen: np.ndarray) -> int:
    """Pushes `slot` onto the min-heap heap[:size] keyed by seen[slot]; returns the new size."""
    i = size
    heap[i] = slot
    key = seen[slot]
    while i > 0:
        parent = (i - 1) >> 1
        if seen[heap[parent]] <= key:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = slot
    return size + 1


@njit(cache=True)
def heap_pop(heap: np.ndarray, size: int, seen: np.ndarray) -> int:
    """Removes the root of heap[:size] (the caller read heap[0] first); returns the new size."""
    size -= 1
    if size == 0:
        return 0
    last = heap[size]
    key = seen[last]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and seen[heap[child + 1]] < seen[heap[child]]:
            child += 1
        if seen[heap[child]] >= key:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = last
    return size


@njit(cache=True)
def signature(
    cps: np.ndarray, is_word: np.ndarray, k: int, mult: np.ndarray, add: np.ndarray
) -> tuple[np.ndarray, int]:
    """`minhash(shingle_hashes(cps, is_word, k), mult, add)` in one call; (empty values, 0) without words."""
    hashes = shingle_hashes(cps, is_word, k)
    if hashes.shape[0] == 0:
        return np.empty(0, dtype=np.uint32), 0
    return minhash(hashes, mult, add)


@njit(cache=True)
def insert(
    ids: np.ndarray,
    ikeys: np.ndarray,
    ivals: np.ndarray,
    heap: np.ndarray,
    heap_n: int,
    seen: np.ndarray,
    alive: np.ndarray,
    gen: np.ndarray,
    nsh: np.ndarray,
    sketches: np.ndarray,
    cells: np.ndarray,
    slot: int,
    key: np.uint64,
    full: np.ndarray,
    seen_ms: int,
    values: np.ndarray,
    bkeys: np.ndarray,
    shingles: int,
) -> int:
    """A new article in `slot`: its id, time, liveness, the id map and the heap, and when it has a signature
    (values not empty) its shingle count, sketch and postings; returns the heap's new size (one call per
    article: each call into compiled code costs about a microsecond of argument handling)."""
    for i in range(16):
        ids[slot, i] = full[i]
    seen[slot] = seen_ms
    alive[slot] = 1
    id_insert(ikeys, ivals, key, slot)
    heap_n = heap_push(heap, heap_n, slot, seen)
    if values.shape[0]:
        nsh[slot] = min(shingles, 65_535)
        sketches[slot] = sketch_of(values)
        lsh_insert(cells, bkeys, U32(((slot + 1) << GEN_BITS) | int(gen[slot])))
    return heap_n


_WARM: list[bool] = []


def warm_up() -> None:
    """Calls every kernel once on tiny inputs, so that compiling (or loading the cached code, a few ms
    each) happens at start-up rather than inside the first decisions. Idempotent."""
    if _WARM:
        return
    words = np.ones(128, dtype=np.bool_)
    cps = np.array([97, 32, 98, 32, 99, 32, 100], dtype=np.uint32)
    mult = np.array([3, 5], dtype=np.uint64)
    values, _ = signature(cps, words, 3, mult, mult)
    bkeys = band_keys(values, 1, 2)
    cells = np.zeros((1, 8), dtype=np.uint64)
    gen = np.zeros(2, dtype=np.uint8)
    alive = np.ones(2, dtype=np.uint8)
    lsh_insert(cells, bkeys, np.uint32(1 << GEN_BITS))
    slots = lsh_query(cells, bkeys, gen, alive)
    lsh_rehash(cells, np.zeros((1, 8), dtype=np.uint64), gen, alive)
    sketches = np.zeros((2, 1), dtype=np.uint8)
    bulk_index(cells, sketches, values.reshape(1, 2), np.zeros(1, dtype=np.int64), gen, 2)
    sketch_agreement(sketches, slots, sketch_of(values))
    ids = np.zeros((2, 16), dtype=np.uint8)
    ikeys, ivals = np.zeros(8, dtype=np.uint64), np.zeros(8, dtype=np.uint32)
    bulk_id_insert(ikeys, ivals, ids, np.zeros(1, dtype=np.int64))
    id_find(ikeys, ivals, ids, np.uint64(0), ids[0])
    id_delete(ikeys, ivals, np.uint64(0), 0)
    heap, seen, nsh = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.uint16)
    size = insert(
        ids, ikeys, ivals, heap, 0, seen, alive, gen, nsh, sketches, cells, 1, np.uint64(9), ids[0], 5, values, bkeys, 3
    )
    heap_pop(heap, size, seen)
    _WARM.append(True)
