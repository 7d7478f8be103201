"""`csv:PATH` datasets: label column detection, string or integer labels, a sibling test file, bad cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.data import load_dataset
from dlcli.errors import InputFileError, UsageError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_string_labels_sorted_into_classes(tmp_path: Path) -> None:
    path = write(tmp_path / "iris.csv", "label,sepal,petal\nsetosa,1.5,2\nvirginica, 3 ,4e-1\n\nsetosa,-1,0\n")
    ds = load_dataset(f"csv:{path}")
    assert ds.classes == ["setosa", "virginica"] and ds.test is None
    assert ds.train.x.dtype == np.float32 and ds.train.x.shape == (3, 2)
    np.testing.assert_allclose(ds.train.x[1], [3.0, 0.4])
    assert list(ds.train.y) == [0, 1, 0]
    assert ds.input_shape == [2] and len(ds.mean) == 2 and not ds.is_image
    assert "label column 'label'" in ds.source


def test_last_column_is_the_label_when_none_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x1,x2,species\n1,2,b\n3,4,a\n")
    ds = load_dataset(f"csv:{path}")
    assert ds.classes == ["a", "b"] and list(ds.train.y) == [1, 0]
    np.testing.assert_array_equal(ds.train.x, [[1, 2], [3, 4]])


def test_integer_labels_sorted_numerically_and_test_sibling(tmp_path: Path) -> None:
    write(tmp_path / "d.csv", "Target,f\n10,0.1\n9,0.2\n2,0.3\n")
    write(tmp_path / "d.test.csv", "Target,f\n2,1\n11,2\n")
    ds = load_dataset(f"csv:{tmp_path / 'd.csv'}")
    assert ds.classes == ["2", "9", "10", "11"]  # train and test labels together, numeric order
    assert list(ds.train.y) == [2, 1, 0] and list(ds.test.y) == [0, 3]
    assert "d.test.csv" in ds.source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n1,2,x\n3,oops,y\n", r"line 3, column 'b': 'oops' is not a number"),
        ("a,b,label\n1,,x\n", r"line 2, column 'b': '' is not a number"),
        ("a,b,label\n1,inf,x\n", r"column 'b': 'inf'"),
        # Finite, but infinite once in float32 (found by the Hypothesis CSV test's overflow warning).
        ("a,b,label\n1,2,x\n-1e39,2,y\n", r"line 3, column 'a': -1e39 is beyond float32's range"),
        # Each value fits float32, but centring them would not (the model subtracts the mean in float32).
        ("a,b,label\n1,3e38,x\n2,-3e38,y\n", r"column 'b': its values span 3e\+38 around their mean"),
        ("a,b,label\n1,2\n", "line 2: 2 cells, but the header has 3"),
        ("a,label\n1,\n", "label .* is empty"),
        ("a,label\n", "no data rows"),
        ("", "header row"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "t.csv", text)
    with pytest.raises(InputFileError, match=message) as info:
        load_dataset(f"csv:{path}")
    assert str(path) in str(info.value)


def test_test_sibling_must_match_columns(tmp_path: Path) -> None:
    write(tmp_path / "d.csv", "a,label\n1,x\n")
    write(tmp_path / "d.test.csv", "b,label\n1,x\n")
    with pytest.raises(InputFileError, match="has columns"):
        load_dataset(f"csv:{tmp_path / 'd.csv'}")


def test_missing_file_and_empty_path(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}")
    with pytest.raises(UsageError, match="needs a path"):
        load_dataset("csv:")
