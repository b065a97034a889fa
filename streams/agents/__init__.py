"""Thin Faust agents: decode, call the stage's pure function, route the outcome to its topic, count."""
