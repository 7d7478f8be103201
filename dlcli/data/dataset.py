"""The dataset every loader returns and every command consumes.

Most datasets (MNIST-family, CIFAR-10, CSVs, folders of modest size) live in memory as one array per
split; training then slices tensors instead of running a per-sample Python
data pipeline, which is what makes CPU training fast. Loaders return numpy arrays so that reading
data never needs torch; `dlcli.data.tensors` moves them to torch. A large image folder's splits hold
`LazyImages` instead, an array-like that decodes on indexing, and train from disk
(`dlcli.data.streaming`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Split:
    """One split: `x` is uint8 images (N, C, H, W) with pixels 0..255, or float32 features (N, F);
    `y` is int64 class indices (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A named dataset: train split, optional test split, class names and where it came from.

    `mean`/`std` are per channel (images, in [0, 1] pixel units) or per feature (tabular); when a
    loader does not know them they are computed from the train split (`with_stats`).
    """

    name: str
    train: Split
    test: Split | None
    classes: list[str]
    source: str = ""
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def is_image(self) -> bool:
        return self.train.x.ndim == 4

    @property
    def input_shape(self) -> list[int]:
        return [int(d) for d in self.train.x.shape[1:]]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def evaluation(self) -> Split:
        """The split results are reported on: test, or train for data that has none."""
        return self.test if self.test is not None else self.train

    def model_inputs(self, count: int) -> np.ndarray:
        """The first `count` samples of the evaluation split as float32 model inputs (pixels in [0, 1]):
        the real inputs that export verification and latency timing feed the runtime."""
        import numpy as np

        return np.asarray(self.evaluation.x[:count], dtype=np.float32) * np.float32(self.input_scale())

    def input_scale(self) -> float:
        """Factor that turns stored values into model inputs: 1/255 for uint8 pixels, else 1."""
        return 1.0 / 255.0 if self.train.x.dtype.kind == "u" else 1.0

    @property
    def is_lazy(self) -> bool:
        """Whether the images stay on disk (a streamed folder, see `dlcli.data.folder.LazyImages`)."""
        return bool(getattr(self.train.x, "lazy", False))

    def with_stats(self) -> Dataset:
        """Fill in mean/std from the train split when the loader did not provide them.

        In-memory splits use every sample; a lazy (streamed) split uses a seeded sample of
        `STATS_SAMPLE` images, all of them when it has no more, so that the two agree on small data.
        Either way the pixels are visited in chunks: a float64 copy of a whole split would need eight
        times its size in memory."""
        if self.mean and self.std:
            return self
        import numpy as np

        n = len(self.train)
        rows = np.arange(n)
        if self.is_lazy and n > STATS_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(n, STATS_SAMPLE, replace=False))
        mean, std = _channel_stats(self.train.x, rows, self.input_scale(), self.is_image)
        return Dataset(
            self.name, self.train, self.test, self.classes, self.source,
            [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std],
        )


STATS_SAMPLE = 2000
"""Images decoded to estimate a streamed folder's mean/std: enough for three significant digits of a
per-channel mean, a few seconds of decoding even for large photos."""


def _channel_stats(x: Any, rows: np.ndarray, scale: float, is_image: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (images) or per-feature mean and std of `x[rows]`, in one pass over float64 chunks
    of about 32 MB."""
    import numpy as np

    axes = (0, 2, 3) if is_image else (0,)
    width = x.shape[1] if len(x.shape) > 1 else 1
    total, total_sq = np.zeros(width), np.zeros(width)
    chunk = max(1, (32 << 20) // (8 * max(1, int(np.prod(x.shape[1:])))))
    for begin in range(0, len(rows), chunk):
        block = np.asarray(x[rows[begin : begin + chunk]], dtype=np.float64) * scale
        total += block.sum(axis=axes)
        total_sq += np.square(block).sum(axis=axes)
    count = max(1, len(rows) * (int(np.prod(x.shape[2:])) if is_image else 1))
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)), 1e-6)
    return mean, std
