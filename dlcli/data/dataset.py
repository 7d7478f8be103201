"""The in-memory dataset every loader returns and every command consumes.

Datasets here are small enough (MNIST-family, CIFAR-10, folders and CSVs of modest size) to live in
memory as one array per split; training then slices tensors instead of running a per-sample Python
data pipeline, which is what makes CPU training fast. Loaders return numpy arrays so that reading
data never needs torch; `dlcli.data.tensors` moves them to torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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

    def with_stats(self) -> Dataset:
        """Fill in mean/std from the train split when the loader did not provide them."""
        if self.mean and self.std:
            return self
        import numpy as np

        x = self.train.x.astype(np.float64) * self.input_scale()
        axes = (0, 2, 3) if self.is_image else (0,)
        mean = x.mean(axis=axes)
        std = np.maximum(x.std(axis=axes), 1e-6)
        return Dataset(
            self.name, self.train, self.test, self.classes, self.source,
            [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std],
        )
