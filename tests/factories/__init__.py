"""Small factories shared by every test tier: raw events and our own invented stories."""
