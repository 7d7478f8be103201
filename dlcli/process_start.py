"""Starting the `dlcli` process: `import torch` without the garbage collector, then its objects frozen.

Why: importing torch creates a few hundred thousand long-lived objects (modules, functions, op
overloads), and CPython's cyclic garbage collector walks all of them on every full collection: one
costs 0.08 s once torch is loaded (`python -c "import gc, time, torch; t = time.perf_counter();
gc.collect(); print(time.perf_counter() - t)"`). A default `dlcli train --data mnist` made three full
collections, 0.16-0.20 s, all outside the training loop (counted with `gc.callbacks`), and collections
during the import slow the import itself: `import torch` took a median 1.33 s this way against
1.42 s as usual (`python benchmarks/bench_startup.py --rounds 10`, fresh processes, alternating).
Issue #15 asks for at most 2 s outside the loop, of which `import torch` is over half.

So the executable imports torch with the collector off and then moves every object that exists to
the permanent generation (`gc.freeze`, which CPython provides for long-lived start-up state: it is
also what keeps forked workers from copying those pages), and turns the collector back on: objects
made afterwards, during training or export, are collected as usual. What the import leaves as
cyclic garbage (7,013 objects, 0.65 MB by their shallow sizes: `gc.collect()` with DEBUG_SAVEALL
right after such an import) is never freed, a fixed cost however long the run.

Used only by the console script and `python -m dlcli` (like dlcli.process_exit): Python callers
import torch their own way, and their objects are never frozen.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.util
import sys
from typing import Any


class _QuietTorchImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: the spec it returns for `torch` wraps the normal loader's work, and
    leaves once that has run (a mere lookup, `importlib.util.find_spec("torch")`, does not use it up)."""

    def __init__(self) -> None:
        self._looking = False

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "torch" or self._looking:
            return None
        self._looking = True  # the lookup below asks every finder again, this one included
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                load(module)
            finally:
                gc.freeze()
                if was_enabled:
                    gc.enable()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def import_torch_quietly() -> None:
    """Arrange for torch's import (whenever a command does it) to run without the collector, and for
    everything alive after it to be frozen; nothing when torch is already imported."""
    if "torch" not in sys.modules and not any(isinstance(f, _QuietTorchImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTorchImport())
