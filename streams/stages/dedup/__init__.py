"""Stage 2, dedup: exact and near copies dropped, updates passed on, copies clustered.

Parts: `stage` (the rules, `dedup`, and `Deduplicator`, the object the agent calls), `index` (the in-memory
LSH index, slots, expiry), `reorder` (the reorder hold and its ticks), `shingles` (tokens, MinHash,
signatures), `article` (what dedup reads from an article), `config` (`DedupConfig.from_settings`).
"""
