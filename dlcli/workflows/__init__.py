"""One Python-callable `run(config, console) -> result` per command: load, transform, save, and
return a typed result whose `to_json()` is what `--json` prints.

The CLI calls these; so can a user's script. Nothing here parses flags or prints results.
"""
