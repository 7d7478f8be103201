"""Real MNIST-family files from $DLCLI_DATA_DIR (e.g. ../shared/data): full sizes and checksums.

Opt-in: skipped unless DLCLI_DATA_DIR is set, since the files are not part of the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dlcli.data import load_dataset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("DLCLI_DATA_DIR"), reason="set DLCLI_DATA_DIR to the real data"),
]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_dataset_loads_verified(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path))  # never the user's cache
    root = Path(os.environ["DLCLI_DATA_DIR"])
    if not (root / name).is_dir():
        pytest.skip(f"{root / name} is absent")
    ds = load_dataset(name, download=False)  # every file's content md5 is checked while reading
    assert str(root / name) in ds.source
    assert (len(ds.train), len(ds.test)) == (60000, 10000)
    assert ds.train.x.shape == (60000, 1, 28, 28) and ds.train.x.dtype == np.uint8
    assert np.bincount(ds.train.y).min() > 5000 and ds.num_classes == 10
