"""Models registered from outside the package, so that every command can use them by name.

A model family registers itself with `@MODELS.register("name")` (as timm's `@register_model` does);
what the CLI needs on top is a way to import that code in each fresh process, including the later
commands that only get a checkpoint naming the model. Two standard ways, both read once at start:

- the environment: `DLCLI_PLUGINS=mypkg.models,other_module` (modules on `sys.path`);
- packaging: an entry point in the `dlcli.models` group, e.g. in the plugin's pyproject.toml
  `[project.entry-points."dlcli.models"] mymodels = "mypkg.models"`.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from dlcli.errors import UsageError

ENV = "DLCLI_PLUGINS"
GROUP = "dlcli.models"
_loaded: set[str] = set()


def plugin_modules() -> list[str]:
    """Module names from $DLCLI_PLUGINS and the `dlcli.models` entry points, in that order."""
    names = [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]
    names += [ep.value.split(":", 1)[0] for ep in entry_points(group=GROUP)]
    return names


def load_plugins() -> list[str]:
    """Import every plugin module not imported yet (importing registers its models); returns them."""
    new = [name for name in plugin_modules() if name not in _loaded]
    for name in new:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a plugin's own import error, whatever it is, is the user's to fix
            raise UsageError(f"cannot import model plugin {name!r} (from ${ENV} or the {GROUP!r} entry points): "
                             f"{type(exc).__name__}: {exc}") from None
        _loaded.add(name)
    return new
