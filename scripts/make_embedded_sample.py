"""Build `mnist-sample`, the small MNIST subset that ships inside dlcli (`dlcli/data/embedded/`).

It lets `dlcli train` work with no download and no data folder, and keeps the package under a
megabyte: a seeded, class-balanced draw of 400 digits per class from MNIST's train file and 100 per
class from its test file, written as standard IDX files with `gzip -9` and mtime 0, so that rerunning
the script reproduces the files byte for byte. Run from the repository root:

    DLCLI_DATA_DIR=../shared/data python -m scripts.make_embedded_sample

then copy the md5s it prints into `SAMPLE_MD5S` in dlcli/data/catalog.py if they changed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from dlcli.data.catalog import DATASETS
from dlcli.data.idx import read_idx_with_md5, read_labeled_images, write_idx

OUT_DIR = Path(__file__).resolve().parent.parent / "dlcli" / "data" / "embedded"
SEED = 20240607
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
MAX_BYTES = 1_000_000


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` indices of each class, drawn without replacement, returned in file order."""
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def license_text(train_idx: np.ndarray, test_idx: np.ndarray) -> str:
    def listing(idx: np.ndarray) -> str:
        words = [str(i) for i in idx]
        return "\n".join(" ".join(words[i : i + 16]) for i in range(0, len(words), 16))

    return f"""mnist-sample: a subset of the MNIST database of handwritten digits
==================================================================

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges, and is licensed under the
Creative Commons Attribution-Share Alike 3.0 license (CC BY-SA 3.0,
https://creativecommons.org/licenses/by-sa/3.0/). These files are a subset of it, shared under the
same license.

How they were made (scripts/make_embedded_sample.py in the dlcli repository): from the standard MNIST
files, {TRAIN_PER_CLASS} images of each digit were drawn from train-images-idx3-ubyte and
{TEST_PER_CLASS} of each digit from t10k-images-idx3-ubyte, without replacement, with numpy's
default_rng({SEED}), and kept in their original order; images and labels are unchanged. The files are
standard IDX, gzip -9 with mtime 0.

train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz: {len(train_idx)} images, zero-based indices
into MNIST's train files:
{listing(train_idx)}

t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz: {len(test_idx)} images, zero-based indices
into MNIST's t10k files:
{listing(test_idx)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("DLCLI_DATA_DIR"),
                        help="root holding mnist/ (default: $DLCLI_DATA_DIR)")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("give --data-dir or set DLCLI_DATA_DIR to the folder that holds mnist/")
    source = Path(args.data_dir) / "mnist"
    files = DATASETS.get("mnist").files
    md5s = [f.md5 for f in files]
    train = read_labeled_images(source / files[0].name, source / files[1].name, (md5s[0], md5s[1]), 10)
    test = read_labeled_images(source / files[2].name, source / files[3].name, (md5s[2], md5s[3]), 10)
    rng = np.random.default_rng(SEED)
    train_idx = balanced_indices(train.y, TRAIN_PER_CLASS, rng)
    test_idx = balanced_indices(test.y, TEST_PER_CLASS, rng)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    arrays = (train.x[train_idx, 0], train.y[train_idx], test.x[test_idx, 0], test.y[test_idx])
    for file, array in zip(files, arrays, strict=True):
        write_idx(OUT_DIR / file.name, array.astype(np.uint8))
    (OUT_DIR / "LICENSE.txt").write_text(license_text(train_idx, test_idx))
    report(files)


def report(files: tuple) -> None:
    """Print sizes and the md5s that dlcli/data/catalog.py must list; fail when over the size budget."""
    total = sum(p.stat().st_size for p in OUT_DIR.iterdir() if p.is_file())
    print(f"SAMPLE_SIZES = ({TRAIN_PER_CLASS * 10}, {TEST_PER_CLASS * 10})")
    print("SAMPLE_MD5S = (")
    for file in files:
        print(f'    "{read_idx_with_md5(OUT_DIR / file.name)[1]}",  # {file.name}')
    print(")")
    print(f"total size of {OUT_DIR}: {total} bytes")
    if total > MAX_BYTES:
        raise SystemExit(f"too big: {total} > {MAX_BYTES} bytes; lower the per-class counts")


if __name__ == "__main__":
    main()
