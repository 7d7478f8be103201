"""Streaming a folder from disk gives exactly the batches of the in-memory path (same seed, order,
augmentation, sharding and resume offsets), picks the same validation/--train-samples subsets, and
trains and evaluates end to end."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcli.data import folder, load_dataset
from dlcli.data.augment import make_augment
from dlcli.data.streaming import StreamBatches, StreamSplit, to_device_split
from dlcli.data.tensors import Batches, carve_validation, limit_samples, to_tensor_split
from dlcli.errors import InputFileError, UsageError

CPU = torch.device("cpu")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """3 classes of random RGB 8x6 PNGs (one gray, one of another size, to exercise conversion)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, name in enumerate(("ant", "bee", "cat")):
        (root / name).mkdir(parents=True)
        for i in range(9 + c):
            pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (6, 8), dtype=np.uint8)).save(root / "ant" / "gray.png")
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / "bee" / "big.png")
    return root


def both(root: Path, workers: int) -> tuple:
    """The folder's train split in memory and streamed, as tensor/stream splits on the CPU."""
    memory = load_dataset(f"folder:{root}", stream=False)
    streamed = load_dataset(f"folder:{root}", stream=True)
    assert streamed.is_lazy and not memory.is_lazy
    scale = memory.input_scale()
    return to_tensor_split(memory.train, scale, CPU), to_device_split(streamed.train, scale, CPU, workers)


def assert_same_epochs(a: Batches, b: StreamBatches, epochs: int = 3, start: int = 0) -> None:
    assert (len(a), a.samples_per_epoch()) == (len(b), b.samples_per_epoch())
    for epoch in range(epochs):
        got, want = list(b.epoch(epoch, start)), list(a.epoch(epoch, start))
        assert len(got) == len(want) == len(a) - start
        for g, w in zip(got, want, strict=True):
            assert len(g) == len(w)
            for gt, wt in zip(g, w, strict=True):
                assert gt.dtype == wt.dtype and torch.equal(gt, wt)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    ("options", "start"),
    [
        ({"shuffle": True}, 0),
        ({"shuffle": True, "augment": "flip,rotate,crop"}, 2),
        ({"shuffle": True, "augment": "flip,crop", "rank": 1, "world": 2}, 1),
        ({"shuffle": False, "rank": 0, "world": 3}, 0),
    ],
)
def test_streamed_batches_equal_in_memory(image_folder: Path, workers: int, options: dict, start: int) -> None:
    memory, streamed = both(image_folder, workers)
    assert isinstance(streamed, StreamSplit)
    options = dict(options)
    augment = make_augment([options.pop("augment")]) if "augment" in options else None
    kw = dict(batch_size=4, seed=7, transform=augment, channels_last=True, **options)
    # Worker processes start with every pass: two epochs show the per-epoch order through workers,
    # the third is covered in-process (workers=0) at a third of the cost.
    epochs = 3 if workers == 0 else 2
    assert_same_epochs(Batches(memory, **kw), StreamBatches(streamed, **kw), epochs=epochs, start=start)


def test_resuming_mid_epoch_decodes_only_the_remaining_batches(
    image_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, streamed = both(image_folder, workers=0)
    decoded = []
    real = folder.LazyImages.decode
    monkeypatch.setattr(folder.LazyImages, "decode", lambda self, i: decoded.append(i) or real(self, i))
    batches = StreamBatches(streamed, 5, shuffle=True, seed=4)
    got = list(batches.epoch(1, start=len(batches) - 2))
    assert len(got) == 2 and len(decoded) == sum(len(b[1]) for b in got) == 5 + len(streamed) % 5


def test_validation_and_train_samples_pick_the_same_samples(image_folder: Path) -> None:
    memory, streamed = both(image_folder, workers=0)
    picked = []
    for split in (memory, streamed):
        generator = torch.Generator().manual_seed(3)
        train, val = carve_validation(split, 0.25, generator)
        train = limit_samples(train, 12, generator)
        picked.append((train, val))
    (m_train, m_val), (s_train, s_val) = picked
    assert torch.equal(m_val.y, s_val.y) and torch.equal(m_train.y, s_train.y) and len(m_train) == 12
    assert_same_epochs(Batches(m_train, 5, shuffle=True, seed=1), StreamBatches(s_train, 5, shuffle=True, seed=1), 2)
    assert_same_epochs(Batches(m_val, 100), StreamBatches(s_val, 100), 1)


def test_extras_travel_with_streamed_samples(image_folder: Path) -> None:
    memory, streamed = both(image_folder, workers=0)
    extra = torch.arange(len(memory), dtype=torch.float32)[:, None] * 10
    m = memory.with_extra(extra).subset(torch.tensor([5, 1, 7, 3]))
    s = streamed.with_extra(extra).subset(torch.tensor([5, 1, 7, 3]))
    assert_same_epochs(Batches(m, 3, shuffle=True), StreamBatches(s, 3, shuffle=True), 2)


def test_streamed_dataset_agrees_on_stats_and_samples(image_folder: Path) -> None:
    from dlcli.compress.quantization import calibration_samples

    memory = load_dataset(f"folder:{image_folder}", stream=False)
    streamed = load_dataset(f"folder:{image_folder}", stream=True)
    assert (streamed.mean, streamed.std) == (memory.mean, memory.std)  # all images when <= STATS_SAMPLE
    assert streamed.input_shape == memory.input_shape == [3, 6, 8]
    assert np.array_equal(streamed.model_inputs(5), memory.model_inputs(5))
    assert np.array_equal(calibration_samples(streamed.train.x, 1 / 255, 7, seed=2),
                          calibration_samples(memory.train.x, 1 / 255, 7, seed=2))
    assert "streamed from disk" in streamed.source and "streamed from disk" not in memory.source


def test_size_threshold_decides_when_not_told(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load_dataset(f"folder:{image_folder}").is_lazy
    monkeypatch.setattr(folder, "STREAM_THRESHOLD_BYTES", 100)
    assert load_dataset(f"folder:{image_folder}").is_lazy
    assert not load_dataset(f"folder:{image_folder}", stream=False).is_lazy


def test_stream_is_refused_for_in_memory_datasets() -> None:
    with pytest.raises(UsageError, match="folder:PATH"):
        load_dataset("mnist-sample", stream=True)


def test_broken_image_in_a_worker_is_one_line_naming_it(image_folder: Path) -> None:
    streamed = to_device_split(load_dataset(f"folder:{image_folder}", stream=True).train, 1 / 255, CPU, 2)
    path = image_folder / "cat" / "0.png"
    path.write_bytes(path.read_bytes()[:60])  # damaged after indexing: the header is intact, pixels cut off
    with pytest.raises(InputFileError, match=r"cat/0\.png") as caught:
        list(StreamBatches(streamed, 4))
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    # The workers are stopped with the error, not when the error is collected (that took 10 s).
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_train_and_eval_stream_a_folder_end_to_end(
    image_folder: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder, "STREAM_THRESHOLD_BYTES", 0)  # eval, which has no --stream, streams too
    out = tmp_path / "run"
    res = cli("train", "--data", f"folder:{image_folder}", "--epochs", "1", "--batch-size", "8",
              "--augment", "flip", "--workers", "1", "--out", out, "--json", "-q")
    assert res.code == 0, res.err
    assert res.json()["metrics"]["epochs"] == 1 and (out / "best.pt").is_file()
    evaluated = cli("eval", out / "best.pt", "--json", "-q")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.json()["metrics"]["samples"] == 32  # no test split: all 32 images
    refused = cli("train", "--data", "mnist-sample", "--stream", "--epochs", "1", "-q")
    assert refused.code == 2 and "folder:PATH" in refused.err
