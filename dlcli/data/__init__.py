"""Datasets by name or path, as in-memory numpy arrays: `load_dataset("mnist")`, `load_dataset("csv:x.csv")`.

The catalog (and with it numpy) is imported on first use of `load_dataset`, `DATASETS` or
`dataset_status`, so importing this package stays cheap; nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlcli.data.dataset import Dataset, Split

if TYPE_CHECKING:
    from dlcli.data.catalog import DATASETS, dataset_status, load_dataset

__all__ = ["DATASETS", "Dataset", "Split", "dataset_status", "load_dataset"]
_LAZY = {"DATASETS", "dataset_status", "load_dataset"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from dlcli.data import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
