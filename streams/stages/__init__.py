"""The pure stage functions: each maps an event (plus injected clock, state and config) to an outcome."""
