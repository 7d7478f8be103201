"""One Python-callable `run(...)` per command: load, transform, save, return a result dict.

The CLI calls these; so can a user's script. Nothing here parses flags or prints results.
"""
