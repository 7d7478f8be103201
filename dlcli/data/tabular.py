"""`csv:PATH` datasets: a header row, numeric feature columns and one label column.

The label column is the one named `label`, else `target`, else `class` (case-insensitive), else the
last column. Labels may be integers or strings; class names are the sorted unique labels (integers in
numeric order) of train and test together, so both splits share one class index.

A test split is read from the sibling file `<stem>.test.csv` (`iris.csv` -> `iris.test.csv`) when it
exists, with the same columns; otherwise test=None. Missing or non-numeric feature cells are errors
naming the line and column, because silently imputing them would train on made-up data.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcli.data.dataset import Dataset, Split
from dlcli.errors import InputFileError

LABEL_COLUMNS = ("label", "target", "class")


@dataclass(frozen=True)
class _Table:
    path: Path
    header: list[str]
    rows: list[list[str]]
    line_numbers: list[int]  # file line number of each row, for error messages


def sibling_test_path(path: Path) -> Path:
    """The file holding the test split: `data.csv` -> `data.test.csv`."""
    return path.with_name(f"{path.stem}.test{path.suffix}")


def read_csv(path: Path, name: str) -> Dataset:
    """Read `path` (and its `<stem>.test.csv` sibling when present) as a classification table."""
    train = _read_table(path)
    test_path = sibling_test_path(path)
    test = _read_table(test_path) if test_path.is_file() else None
    if test is not None and test.header != train.header:
        raise InputFileError(f"{test_path} has columns {test.header}, but {path} has {train.header}")
    label_col = label_column(train.header)
    tables = [train] if test is None else [train, test]
    labels = [_labels(t, label_col) for t in tables]
    classes = _class_names([v for split in labels for v in split])
    index = {name: i for i, name in enumerate(classes)}
    splits = [
        Split(_features(t, label_col), np.array([index[v] for v in split], dtype=np.int64))
        for t, split in zip(tables, labels, strict=True)
    ]
    summary = (
        f"csv {path} ({len(train.rows)} rows, {len(train.header) - 1} features, label column "
        f"{train.header[label_col]!r}" + (f", test split from {test_path.name})" if test else ")")
    )
    return Dataset(name, splits[0], splits[1] if test else None, classes, summary)


def _read_table(path: Path) -> _Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank lines are layout, not data
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise InputFileError(f"csv dataset {path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(f"cannot read csv dataset {path}: {e}") from None
    if not header or len(header) < 2:
        raise InputFileError(f"{path} needs a header row naming at least one feature and the label column")
    if not rows:
        raise InputFileError(f"{path} has a header but no data rows")
    header = [h.strip() for h in header]
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise InputFileError(f"{path} line {line}: {len(row)} cells, but the header has {len(header)}")
    return _Table(path, header, rows, lines)


def label_column(header: list[str]) -> int:
    """Index of the label column (see the module docstring); `dlcli predict` drops it the same way."""
    lowered = [h.lower() for h in header]
    for name in LABEL_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    return len(header) - 1


def _labels(table: _Table, column: int) -> list[str]:
    labels = [row[column] for row in table.rows]
    for label, line in zip(labels, table.line_numbers, strict=True):
        if not label:
            raise InputFileError(f"{table.path} line {line}: the label ({table.header[column]!r}) is empty")
    return labels


def _class_names(labels: list[str]) -> list[str]:
    """Sorted unique labels: numerically when all are integers (so "10" follows "9"), else as text."""
    unique = set(labels)
    try:
        as_ints = {int(v): v for v in unique}
    except ValueError:
        return sorted(unique)
    if len(as_ints) != len(unique):  # "1" and "01" are different labels: keep them apart
        return sorted(unique)
    return [as_ints[k] for k in sorted(as_ints)]


def _features(table: _Table, label_col: int) -> np.ndarray:
    """Feature cells as float32 (N, F); the first bad cell is reported by line and column name."""
    cells = [[c for i, c in enumerate(row) if i != label_col] for row in table.rows]
    try:
        x = np.array(cells, dtype=np.float64)
    except ValueError:
        x = None
    if x is not None and np.isfinite(x).all():
        with np.errstate(over="ignore"):  # beyond float32's range (3.4e38) becomes inf: refused below
            x32 = x.astype(np.float32)
        if np.isfinite(x32).all():
            _check_centred_range(x, table, label_col)
            return x32
    raise _bad_cell(table, label_col)


def _check_centred_range(x: np.ndarray, table: _Table, label_col: int) -> None:
    """The model subtracts each column's mean in float32 (dlcli.models.registry.Normalize): a column
    whose values lie further than float32's range from their mean (e.g. -3e38 and 3e38) would become
    inf there and train to NaN, reported as divergence. Refused here, by name."""
    if not len(x):
        return
    spread = np.abs(x - x.mean(axis=0)).max(axis=0)
    too_wide = np.flatnonzero(spread > np.finfo(np.float32).max / 2)
    if too_wide.size:
        names = [h for i, h in enumerate(table.header) if i != label_col]
        column = names[int(too_wide[0])]
        raise InputFileError(f"{table.path}, column {column!r}: its values span {spread[too_wide[0]]:.3g} around "
                             "their mean, more than float32 arithmetic on them can hold; rescale the column")


def _bad_cell(table: _Table, label_col: int) -> InputFileError:
    """The error for the first cell that is not a finite number (the fast path saw there is one)."""
    names = [h for i, h in enumerate(table.header) if i != label_col]
    for row, line in zip(table.rows, table.line_numbers, strict=True):
        values = [c for i, c in enumerate(row) if i != label_col]
        for name, cell in zip(names, values, strict=True):
            if not _is_finite_number(cell):
                return InputFileError(
                    f"{table.path} line {line}, column {name!r}: {cell!r} is not a number "
                    "(feature columns must be numeric and complete)"
                )
            if not _fits_float32(cell):
                return InputFileError(
                    f"{table.path} line {line}, column {name!r}: {cell} is beyond float32's range "
                    f"(+-{np.finfo(np.float32).max:.3g}), which features are trained in; rescale the column"
                )
    return InputFileError(f"{table.path}: a feature value is out of range")


def _is_finite_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _fits_float32(cell: str) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(float(cell))))
