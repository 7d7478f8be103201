"""Compression as transforms over an in-memory model: no files, no CLI, no training loop.

- `pruning`: unstructured (torch.nn.utils.prune) and structured channel pruning (torch-pruning),
  with per-layer statistics and helpers to fold pruning masks into a plain state_dict.

Modules are imported directly (`from dlcli.compress.pruning import make_pruner`), so importing this
package is free.
"""
