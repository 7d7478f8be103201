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
from dlcli.data.catalog import TrainingRecipe
from dlcli.device import describe_device, prefers_channels_last, resolve_device, seed_everything
from dlcli.engine.budget import MIN_STEPS, default_epochs, training_samples
from dlcli.threads import use_threads


def with_defaults(cfg: TrainConfig, default_data: str, lr_scale: float = 1.0) -> TrainConfig:
    """The dataset (`default_data` unless given) and the learning rate (the optimizer's default times
    `lr_scale` unless given): the values known before any data is loaded. Validated."""
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer] * lr_scale
    return replace(cfg, data=cfg.data or default_data, lr=lr).validate()


def recipe_for(cfg: TrainConfig) -> TrainingRecipe | None:
    """The config's dataset's recipe for its model family (dlcli.data.catalog.TrainingRecipe), if any."""
    from dlcli.data.catalog import check_spec

    spec = check_spec(cfg.data) if cfg.data else None
    return spec.recipes.get(cfg.model) if spec is not None else None


def with_recipe(cfg: TrainConfig, default_data: str) -> TrainConfig:
    """`dlcli train`'s model from scratch: the recipe's learning rate for the optimizer and its model
    arguments under the ones given, where the config says default (its epochs come in `with_data`,
    through the step budget). A resumed run's config is already resolved, and may predate the recipe:
    it is left alone. finetune, distill and prune's recovery keep the plain defaults: a recipe is tuned
    for one model trained from scratch, at the default batch size and schedule."""
    cfg = replace(cfg, data=cfg.data or default_data)
    recipe = recipe_for(cfg)
    if cfg.resume or recipe is None:
        return cfg
    lr = cfg.lr if cfg.lr is not None else recipe.lr.get(cfg.optimizer)
    return replace(cfg, lr=lr, model_args={**recipe.model_args, **cfg.model_args})


def recommended_epochs(cfg: TrainConfig, from_scratch: bool = False) -> float:
    """The recipe's epochs (`from_scratch`: train's model), else the dataset's recommended number."""
    from dlcli.data.catalog import DATASETS

    recipe = recipe_for(cfg) if from_scratch else None
    if recipe is not None and recipe.epochs is not None:
        return recipe.epochs
    name = cfg.data.lower()
    return DATASETS.get(name).default_epochs if name in DATASETS else 10


def budget_epochs(cfg: TrainConfig, train_total: int, from_scratch: bool = False) -> float:
    """--epochs if given, else the recommended epochs raised so that the run takes `MIN_STEPS` steps
    (dlcli.engine.budget) on the `train_total` samples of the training split."""
    if cfg.epochs is not None:
        return cfg.epochs
    samples = training_samples(train_total, cfg.val_split, cfg.train_samples)
    return default_epochs(recommended_epochs(cfg, from_scratch), samples, cfg.batch_size)


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
              console: Console, from_scratch: bool = False) -> TrainConfig:
    """The epochs and the channels-last choice, once the data's size and shape are known
    (`from_scratch`: train's model, with its dataset's recipe)."""
    epochs = budget_epochs(cfg, train_total, from_scratch)
    recommended = recommended_epochs(cfg, from_scratch)
    if cfg.epochs is None and epochs > recommended:
        console.info(f"epochs: {epochs:g} rather than {recommended:g}, so that this small training split gets at "
                     f"least {MIN_STEPS} optimizer steps (--epochs to choose)")
    return replace(cfg, epochs=epochs, channels_last=channels_last_rule(cfg, device, input_shape))


def preview(cfg: TrainConfig, default_data: str, lr_scale: float = 1.0, from_scratch: bool = False) -> TrainConfig:
    """What `--print-config` shows: the config resolved as the run would resolve it, without training
    (`from_scratch`: train's, with the recipe). A named dataset's sizes come from the catalog; a folder
    or CSV is loaded to count it. The device is taken by name (auto: what this machine would pick) and
    the threads stay as given (the run takes the cores that are free when it starts)."""
    if from_scratch:
        cfg = with_recipe(cfg, default_data)
    cfg = with_defaults(cfg, default_data, lr_scale)
    train_total, input_shape = dataset_size(cfg)
    device = resolve_device("auto") if cfg.device == "auto" else torch.device(cfg.device.split(":")[0])
    return with_data(cfg, device, train_total, input_shape, Console(quiet=True), from_scratch)


def dataset_size(cfg: TrainConfig) -> tuple[int, list[int]]:
    """(training samples, input shape) of the config's dataset, from the catalog when it is a named
    one; otherwise read from the data itself."""
    from dlcli.data.catalog import check_spec, load_dataset

    entry = check_spec(cfg.data)
    if entry is not None:
        return entry.train_size, list(entry.input_shape)
    dataset = load_dataset(cfg.data, data_dir=cfg.data_dir, stream=cfg.stream)
    return len(dataset.train), dataset.input_shape
