"""The values a training run uses where its config says "default" (None): the dataset, the learning
rate, the epoch budget, the channels-last rule and the CPU threads.

Each rule is written once, here, and used twice: by the workflows, which derive the resolved config
with `dataclasses.replace` (the config they were given is frozen) and save it as config.yaml and in
every checkpoint; and by `--print-config`, which shows the same values without training (`preview`).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from dlcli.choices import DEFAULT_LR
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.device import describe_device, prefers_channels_last, resolve_device, seed_everything
from dlcli.engine.budget import MIN_STEPS, default_epochs, training_samples
from dlcli.threads import use_threads


def with_defaults(cfg: TrainConfig, default_data: str, lr_scale: float = 1.0) -> TrainConfig:
    """The dataset (`default_data` unless given) and the learning rate (the optimizer's default times
    `lr_scale` unless given): the values known before any data is loaded. Validated."""
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer] * lr_scale
    return replace(cfg, data=cfg.data or default_data, lr=lr).validate()


def with_recipe(cfg: TrainConfig, default_data: str) -> TrainConfig:
    """For a model trained from scratch (train, a named distill student): the dataset's recipe for the
    model family (dlcli.data.catalog.TrainingRecipe) where the config says default: its epochs (through the
    step budget, as the dataset's default epochs go), its learning rate for the optimizer, and its model
    arguments under the ones given. finetune and prune's recovery keep the plain defaults: a recipe is
    tuned for training from scratch."""
    from dlcli.data.catalog import check_spec

    spec = check_spec(cfg.data or default_data)
    recipe = spec.recipes.get(cfg.model) if spec is not None else None
    if spec is None or recipe is None:
        return cfg
    epochs = cfg.epochs
    if epochs is None and recipe.epochs is not None:
        samples = training_samples(spec.train_size, cfg.val_split, cfg.train_samples)
        epochs = default_epochs(recipe.epochs, samples, cfg.batch_size)
    lr = cfg.lr if cfg.lr is not None else recipe.lr.get(cfg.optimizer)
    return replace(cfg, epochs=epochs, lr=lr, model_args={**recipe.model_args, **cfg.model_args})


def recommended_epochs(spec: str) -> float:
    from dlcli.data.catalog import DATASETS

    name = spec.lower()
    return DATASETS.get(name).default_epochs if name in DATASETS else 10


def budget_epochs(cfg: TrainConfig, train_total: int) -> float:
    """--epochs if given, else the dataset's recommended epochs raised so that the run takes
    `MIN_STEPS` steps (dlcli.engine.budget) on the `train_total` samples of the training split."""
    if cfg.epochs is not None:
        return cfg.epochs
    samples = training_samples(train_total, cfg.val_split, cfg.train_samples)
    return default_epochs(recommended_epochs(cfg.data), samples, cfg.batch_size)


def channels_last_rule(cfg: TrainConfig, device: torch.device, input_shape: list[int] | tuple[int, ...]) -> bool:
    """--channels-last if given, else the device's preference (dlcli.device.prefers_channels_last)."""
    return cfg.channels_last if cfg.channels_last is not None else prefers_channels_last(device, input_shape)


def start_run(cfg: TrainConfig, console: Console) -> tuple[TrainConfig, torch.device, torch.Generator]:
    """The device, the CPU threads (recorded in the config: results differ in the last bits by thread
    count) and the seeded generator every training workflow starts with."""
    device = resolve_device(cfg.device)
    cfg = replace(cfg, threads=use_threads(cfg.threads))
    generator = seed_everything(cfg.seed)
    console.info(f"device: {describe_device(device)}")
    return cfg, device, generator


def with_data(cfg: TrainConfig, device: torch.device, train_total: int, input_shape: list[int],
              console: Console) -> TrainConfig:
    """The epochs and the channels-last choice, once the data's size and shape are known."""
    epochs = budget_epochs(cfg, train_total)
    recommended = recommended_epochs(cfg.data)
    if cfg.epochs is None and epochs > recommended:
        console.info(f"epochs: {epochs} rather than {recommended}, so that this small training split gets at "
                     f"least {MIN_STEPS} optimizer steps (--epochs to choose)")
    return replace(cfg, epochs=epochs, channels_last=channels_last_rule(cfg, device, input_shape))


def preview(cfg: TrainConfig, default_data: str, lr_scale: float = 1.0) -> TrainConfig:
    """What `--print-config` shows: the config resolved as the run would resolve it, without training.
    A named dataset's sizes come from the catalog; a folder or CSV is loaded to count it. The device
    is taken by name (auto: what this machine would pick) and the threads stay as given (the run
    takes the cores that are free when it starts)."""
    cfg = with_defaults(cfg, default_data, lr_scale)
    train_total, input_shape = dataset_size(cfg)
    device = resolve_device("auto") if cfg.device == "auto" else torch.device(cfg.device.split(":")[0])
    return with_data(cfg, device, train_total, input_shape, Console(quiet=True))


def dataset_size(cfg: TrainConfig) -> tuple[int, list[int]]:
    """(training samples, input shape) of the config's dataset, from the catalog when it is a named
    one; otherwise read from the data itself."""
    from dlcli.data.catalog import check_spec, load_dataset

    entry = check_spec(cfg.data)
    if entry is not None:
        return entry.train_size, list(entry.input_shape)
    dataset = load_dataset(cfg.data, data_dir=cfg.data_dir, stream=cfg.stream)
    return len(dataset.train), dataset.input_shape
