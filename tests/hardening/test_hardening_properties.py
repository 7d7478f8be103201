"""Property-based tests (Hypothesis): whatever bytes or text the IDX, CSV and CIFAR readers and the
config parser are given, they either load or refuse with InputFileError / UsageError (one line, exit
2) — never another exception, never a hang (each example runs under a short alarm), never a large
allocation (a header announcing a huge shape must be refused before the memory is taken: the
examples run under an address-space limit)."""

from __future__ import annotations

import gzip
import io
import math
import pickle
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# What validation imports lazily (torch and the registries) is imported here, outside the per-example
# alarm and memory bound: a first torch import under load takes seconds and much address space.
import dlcli.data.augment  # noqa: E402,F401
import dlcli.data.catalog  # noqa: E402,F401
import dlcli.losses  # noqa: E402,F401
import dlcli.models  # noqa: E402,F401
import dlcli.optim  # noqa: E402,F401
from dlcli.errors import InputFileError, UsageError

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SECONDS = 10
EXTRA_MEMORY = 1 << 30  # each example may take at most 1 GiB beyond what the process already holds


@contextmanager
def bounded() -> Iterator[None]:
    """An alarm (no hang) and an address-space limit (no huge allocation) around one example."""

    def timeout(signum: int, frame: object) -> None:
        raise TimeoutError(f"reader ran for more than {SECONDS} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = _address_space()
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(SECONDS)
    if used:
        resource.setrlimit(resource.RLIMIT_AS, (used + EXTRA_MEMORY, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _address_space() -> int | None:
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return None  # not Linux: no address-space bound, the alarm still applies
    return int(fields[0]) * resource.getpagesize()


def loads_or_refuses(read, *args) -> None:  # noqa: ANN001 - any reader
    with bounded():
        try:
            read(*args)
        except (InputFileError, UsageError) as exc:
            assert "\n" not in str(exc).strip(), str(exc)


# ---- IDX ---------------------------------------------------------------------------------------

def idx_header(dtype_code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, dtype_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


idx_files = st.one_of(
    st.binary(max_size=300),  # anything at all
    st.builds(  # a plausible header (sometimes announcing huge shapes) and a body of any length
        lambda code, dims, body: idx_header(code, dims) + body,
        st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]),
        st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 8), min_size=0, max_size=4),
        st.binary(max_size=300),
    ),
)


@SETTINGS
@given(data=idx_files, gz=st.booleans())
def test_idx_reader_loads_or_refuses(tmp_path: Path, data: bytes, gz: bool) -> None:
    from dlcli.data.idx import read_idx_with_md5

    path = tmp_path / ("x-idx.gz" if gz else "x-idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    loads_or_refuses(read_idx_with_md5, path)


# ---- CSV ---------------------------------------------------------------------------------------

cells = st.one_of(st.text(max_size=6), st.floats(allow_nan=True).map(str), st.integers(-5, 5).map(str),
                  st.sampled_from(["", "label", "nan", "inf", "1e400", "\"", ",", "\x00"]))
csv_texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8).map(
        lambda rows: "\n".join(",".join(r) for r in rows)),
)


@SETTINGS
@given(text=csv_texts)
@example(text='x,label\n1,"0\n0"\n2,"0\n0"\n')  # found by Hypothesis: one class whose name holds a line break
def test_csv_reader_loads_or_refuses(tmp_path: Path, text: str) -> None:
    from dlcli.data.catalog import load_dataset

    path = tmp_path / "table.csv"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    loads_or_refuses(load_dataset, f"csv:{path}")


# ---- CIFAR -------------------------------------------------------------------------------------

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | st.binary(max_size=6),
                                                                inner, max_size=4),
    max_leaves=12,
)


def _batch(labels: object, data: object) -> dict[bytes, object]:
    return {b"labels": labels, b"data": data}


cifar_payloads = st.one_of(
    st.binary(max_size=300).map(lambda b: ("raw", b)),
    plain_values.map(lambda v: ("pickle", v)),
    st.builds(  # the right keys with arrays of any shape and dtype
        lambda labels, shape, dtype: ("pickle", _batch(labels, np.zeros(shape, dtype=dtype))),
        st.lists(st.integers(-3, 12), max_size=6) | plain_values,
        st.lists(st.integers(0, 4), max_size=3).map(tuple),
        st.sampled_from([np.uint8, np.float32, np.int64, object]),
    ),
)


@SETTINGS
@given(payload=cifar_payloads)
def test_cifar_batch_reader_loads_or_refuses(tmp_path: Path, payload: tuple[str, object]) -> None:
    from dlcli.data.cifar import read_batch, read_meta

    kind, value = payload
    path = tmp_path / "data_batch_1"
    if kind == "raw":
        path.write_bytes(value)  # type: ignore[arg-type]
    else:
        buffer = io.BytesIO()
        pickle.dump(value, buffer, protocol=2)
        path.write_bytes(buffer.getvalue())
    loads_or_refuses(read_batch, path)
    loads_or_refuses(read_meta, path)


# ---- config files --------------------------------------------------------------------------------

config_keys = st.sampled_from(["epochs", "batch_size", "lr", "momentum", "model_args", "augment", "seed",
                               "warmup_epochs", "dropout", "val_split", "precision", "channels_last", "bogus"])
config_values = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(), st.text(max_size=8),
                          st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4),
                                                                                   st.integers(), max_size=2))


@SETTINGS
@given(text=st.text(max_size=200), suffix=st.sampled_from([".yaml", ".toml", ".json"]))
def test_config_file_text_parses_or_refuses(tmp_path: Path, text: str, suffix: str) -> None:
    from dlcli.config import read_config_file

    path = tmp_path / f"c{suffix}"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    loads_or_refuses(read_config_file, path)


@SETTINGS
@given(values=st.dictionaries(config_keys, config_values, max_size=4))
def test_config_values_merge_and_validate_or_refuse(tmp_path: Path, values: dict[str, object]) -> None:
    """Any mapping a YAML file can hold: merged and validated into a TrainConfig of correct types,
    or refused as a UsageError naming the option."""
    import yaml

    from dlcli.config import TrainConfig, merge, read_config_file

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))

    def load() -> None:
        cfg = merge(TrainConfig, read_config_file(path), {}).validate()
        assert isinstance(cfg.batch_size, int) and not isinstance(cfg.batch_size, bool)
        assert cfg.epochs is None or (isinstance(cfg.epochs, (int, float)) and not isinstance(cfg.epochs, bool)
                                      and math.isfinite(cfg.epochs) and cfg.epochs > 0)
        assert isinstance(cfg.model_args, dict)
        assert 0 <= cfg.momentum < 1

    loads_or_refuses(load)


@pytest.mark.parametrize("values", [{"epochs": "three"}, {"batch_size": [1, 2]}, {"model_args": "x"},
                                    {"epochs": 0}, {"lr": True}, {"lr": float("nan")}])
def test_examples_from_the_issue_are_refused(tmp_path: Path, values: dict[str, object]) -> None:
    import yaml

    from dlcli.config import TrainConfig, merge, read_config_file

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(UsageError, match=next(iter(values)).replace("_", "[-_]")):
        merge(TrainConfig, read_config_file(path), {}).validate()


def test_idx_with_an_empty_dimension_beside_huge_ones_is_refused(tmp_path: Path) -> None:
    """Hypothesis found it: (1722368169, 0, 3932729834) holds no values, yet numpy cannot make the
    array (its nominal size overflows); the reader must say the shape is implausible, not crash."""
    from dlcli.data.idx import read_idx_with_md5

    path = tmp_path / "x-idx"
    path.write_bytes(idx_header(0x0D, [1722368169, 0, 3932729834]))
    with pytest.raises(InputFileError, match="implausible shape"):
        read_idx_with_md5(path)
