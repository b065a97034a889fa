"""Stage 2, dedup: exact and near copies dropped, updates passed on, copies clustered (see `stage`)."""
