"""How long a run trains when not told, and when its validation split is big enough to pick the best
epoch. Pure arithmetic on sizes, so the rules are easy to test and to read in one place.

Why (issue #15, measured with benchmarks/bench_small_tables.py and --train-samples runs on MNIST; the
README has the tables): a default of so many *epochs* per dataset gives small data very few optimizer
*steps*. MNIST with `--train-samples 2000` got 32 steps in its 2 epochs; an mlp on a 150-row table got
one step per epoch. Both need a few hundred steps whatever the data size, so the default number of
epochs grows until the run takes `MIN_STEPS` steps (never fewer epochs than the dataset's own default,
never more than `MAX_EPOCHS`). `--epochs` always wins.

Selecting the best epoch on a validation split of 10 rows picks noise (and, since a tie never counts as
an improvement, usually an early epoch): below `MIN_SELECTION_SAMPLES` validation samples the last
epoch is kept instead. The one-cycle schedule ends at a learning rate near zero, so the last epoch is
the settled one. Validation metrics are still computed and reported.
"""

from __future__ import annotations

import math

MIN_STEPS = 300
"""Optimizer steps a default run takes at least."""
MAX_EPOCHS = 500
"""Upper bound for the grown default: a 20-row table must not train for 300 epochs of one step each
and per-epoch checkpoints forever."""
MIN_SELECTION_SAMPLES = 1000
"""Validation samples needed before the best epoch is chosen by validation accuracy."""


def total_steps(epochs: float, steps_per_epoch: int) -> int:
    """Optimizer steps in a run of `epochs` (fractional epochs round to whole steps, at least one)."""
    return max(1, round(epochs * steps_per_epoch))


def steps_per_epoch(train_samples: int, batch_size: int) -> int:
    return max(1, math.ceil(train_samples / batch_size))


def default_epochs(dataset_epochs: float, train_samples: int, batch_size: int) -> float:
    """The dataset's recommended epochs, raised so that the run takes at least `MIN_STEPS` steps."""
    needed = math.ceil(MIN_STEPS / steps_per_epoch(train_samples, batch_size))
    return max(dataset_epochs, min(needed, MAX_EPOCHS))


def selects_by_validation(val_samples: int) -> bool:
    """Whether a validation split of this size may pick the best epoch (else the last epoch is kept)."""
    return val_samples >= MIN_SELECTION_SAMPLES


def training_samples(total: int, val_split: float, train_samples: int | None) -> int:
    """How many samples a run trains on: `total` less the validation fraction (rounded as
    dlcli.data.tensors.carve_validation rounds it), capped at --train-samples. Lets the epoch budget be
    worked out from a catalog's sizes, without loading the data."""
    remaining = total - int(round(total * val_split))
    return remaining if train_samples is None else min(train_samples, remaining)
