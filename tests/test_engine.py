"""The one loop, its tasks, optimizers, schedules, augmentation and data batching."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcli.data.augment import make_augment, parse_augment
from dlcli.data.tensors import Batches, TensorSplit, carve_validation, limit_samples
from dlcli.engine import ClassificationTask, DistillationTask, LoopOptions, Trainer, TrainerState, evaluate
from dlcli.engine.budget import total_steps
from dlcli.engine.loop import Callbacks
from dlcli.errors import UsageError, WorkError
from dlcli.losses import LOSSES, distillation_loss, make_loss
from dlcli.optim import OPTIMIZERS, SCHEDULERS, make_optimizer, make_scheduler, parameter_groups
from dlcli.resume import check_resumable
from dlcli.workflows.fit import fast_forward


def blobs(n: int = 256, seed: int = 0) -> TensorSplit:
    """Two well separated Gaussian blobs in 2-D: any working loop learns them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.3 + (y[:, None] * 2 - 1) * 1.5
    return TensorSplit(x.float(), y, 1.0)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def run_fit(model: nn.Module, epochs: int = 5, optimizer: str = "sgd", scheduler: str = "onecycle", **kw):
    train, val = blobs(), blobs(seed=1)
    batches = Batches(train, 32, shuffle=True, seed=0)
    opt = make_optimizer(optimizer, parameter_groups(model.named_parameters(), 1e-4), kw.pop("lr", None))
    sched = make_scheduler(scheduler, opt, len(batches) * epochs, len(batches))
    task = kw.pop("task", ClassificationTask(make_loss("cross-entropy")))
    return Trainer(model, task, batches, Batches(val, 64), opt, sched, torch.device("cpu"),
                   make_loss("cross-entropy"), LoopOptions(epochs, **kw)).fit()


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
def test_every_optimizer_learns(optimizer: str) -> None:
    result = run_fit(small_net(), optimizer=optimizer)
    assert result.best_val_accuracy is not None and result.best_val_accuracy > 0.95
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize("scheduler", SCHEDULERS.names())
def test_every_scheduler_runs_and_learns(scheduler: str) -> None:
    result = run_fit(small_net(), scheduler=scheduler, lr=0.05)
    assert result.best_val_accuracy > 0.95


def test_onecycle_ends_near_zero_and_warmup_ramps() -> None:
    opt = make_optimizer("sgd", parameter_groups(small_net().named_parameters(), 0.0), 1.0)
    sched = make_scheduler("cosine", opt, total_steps=100, steps_per_epoch=10, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0)
    assert lrs[-1] < 0.01


def test_weight_decay_skips_biases_and_norms() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    decayed, plain = parameter_groups(model.named_parameters(), 0.1)
    assert decayed["weight_decay"] == 0.1 and len(decayed["params"]) == 1
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 3


def test_fractional_epochs_end_the_last_epoch_early() -> None:
    """1.5 epochs of 8 batches: one full epoch, then 4 steps; the schedule spans exactly those 12."""
    model = small_net()
    train = blobs()
    batches = Batches(train, 32, shuffle=True, seed=0)
    assert len(batches) == 8
    opt = make_optimizer("sgd", parameter_groups(model.named_parameters(), 1e-4), None)
    sched = make_scheduler("onecycle", opt, total_steps(1.5, len(batches)), len(batches))
    trainer = Trainer(model, ClassificationTask(make_loss("cross-entropy")), batches, None, opt, sched,
                      torch.device("cpu"), make_loss("cross-entropy"), LoopOptions(1.5))
    result = trainer.fit()
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert trainer.state.global_step == 12
    peak = opt.param_groups[0]["max_lr"]
    assert sched.last_epoch == 12 and opt.param_groups[0]["lr"] < 0.05 * peak  # one-cycle ended with the run


def fractional_trainer(epochs: float, model: nn.Module) -> Trainer:
    batches = Batches(blobs(), 32, shuffle=True, seed=0)  # 8 steps an epoch
    opt = make_optimizer("sgd", parameter_groups(model.named_parameters(), 1e-4), None)
    sched = make_scheduler("onecycle", opt, total_steps(epochs, len(batches)), len(batches))
    return Trainer(model, ClassificationTask(make_loss("cross-entropy")), batches, None, opt, sched,
                   torch.device("cpu"), make_loss("cross-entropy"), LoopOptions(epochs))


def test_a_fractional_run_extended_on_resume_takes_exactly_the_planned_steps() -> None:
    """1.5 epochs, then resumed to 2.5 (as --resume re-plans the schedule over the new total): the
    cut-short epoch 2 stays as it was, the run continues with epoch 3's data and stops at 20 steps,
    where the re-planned one-cycle schedule ends."""
    model = small_net()
    first = fractional_trainer(1.5, model)
    first.fit()
    assert first.state.global_step == 12 and first.state.epochs_done() == 1.5
    resumed = fractional_trainer(2.5, model)
    resumed.state = TrainerState.from_dict(first.state.to_dict())
    fast_forward(resumed.scheduler, 12)  # the schedule advanced to the saved step, as build_optimizer does
    result = resumed.fit()
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert resumed.state.global_step == 20 and resumed.state.epochs_done() == 2.5
    assert resumed.scheduler.last_epoch == 20


def test_resume_refuses_what_is_already_trained_counting_fractions(tmp_path) -> None:
    """In steps, as the loop counts: 12 of 8-step epochs is 1.5 epochs done."""
    done = {"trainer": TrainerState(epoch=2, global_step=12, steps_per_epoch=8).to_dict()}
    for epochs in (1, 1.5):
        with pytest.raises(UsageError, match="already trained 1.5 epochs"):
            check_resumable(done, tmp_path / "last.pt", epochs)
    check_resumable(done, tmp_path / "last.pt", 1.6)  # 13 steps: one more to go
    old = {"trainer": {"epoch": 2, "step": 0, "global_step": 16}}  # saved before steps_per_epoch was kept
    with pytest.raises(UsageError, match="already trained 2 epochs"):
        check_resumable(old, tmp_path / "last.pt", 2)
    check_resumable(old, tmp_path / "last.pt", 3)


def test_a_fraction_too_small_for_one_step_adds_no_epoch() -> None:
    """1.01 epochs of 8 batches round to 8 steps: one epoch, not an empty second one."""
    model = small_net()
    batches = Batches(blobs(), 32, shuffle=True, seed=0)
    opt = make_optimizer("sgd", parameter_groups(model.named_parameters(), 1e-4), None)
    trainer = Trainer(model, ClassificationTask(make_loss("cross-entropy")), batches, None, opt, None,
                      torch.device("cpu"), make_loss("cross-entropy"), LoopOptions(1.01))
    assert len(trainer.fit().history) == 1 and trainer.state.global_step == 8


def test_early_stopping_stops() -> None:
    result = run_fit(small_net(), epochs=30, scheduler="none", lr=1e-6, patience=2)
    assert result.stopped_early and len(result.history) < 30


@pytest.mark.parametrize("select_best", [True, False])
def test_the_best_mark_is_shown_only_when_validation_picks_the_epoch(select_best: bool) -> None:
    """With the last epoch kept (too small a validation split) every epoch replaces best.pt, and the
    progress line must not mark each one as the best."""
    from dlcli.engine.progress import ProgressSink

    shown: list[bool] = []
    saved: list[bool] = []

    class Marks(ProgressSink):
        def epoch_end(self, summary: dict, improved: bool) -> None:
            shown.append(improved)

    class Saves(Callbacks):
        def epoch_end(self, trainer: Trainer, summary: dict, improved: bool) -> None:
            saved.append(improved)

    model = small_net()
    batches = Batches(blobs(), 32, shuffle=True, seed=0)
    opt = make_optimizer("sgd", parameter_groups(model.named_parameters(), 0.0), 0.1)
    Trainer(model, ClassificationTask(make_loss("cross-entropy")), batches, Batches(blobs(seed=1), 64), opt, None,
            torch.device("cpu"), make_loss("cross-entropy"), LoopOptions(3, select_best=select_best),
            progress=Marks(), callbacks=Saves()).fit()
    assert len(shown) == 3 and shown[0] is select_best and (select_best or not any(shown))
    if not select_best:
        assert saved == [True, True, True]  # each epoch still replaces best.pt: the last one is kept


def test_divergence_is_a_work_error() -> None:
    model = small_net()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(WorkError, match="diverged"):
        run_fit(model, epochs=1)


def test_evaluate_counts_correctly() -> None:
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[:, 0], -x[:, 0]], dim=1)

    split = TensorSplit(torch.tensor([[1.0], [2.0], [-1.0], [3.0]]), torch.tensor([0, 0, 0, 1]), 1.0)
    metrics = evaluate(Fixed(), Batches(split, 3), make_loss("cross-entropy"))
    assert metrics["accuracy"] == pytest.approx(0.5) and metrics["samples"] == 4


def test_l1_penalty_shrinks_weights() -> None:
    plain = small_net()
    run_fit(plain, scheduler="none", lr=0.05)
    sparse = small_net()
    run_fit(sparse, scheduler="none", lr=0.05, task=ClassificationTask(make_loss("cross-entropy"), l1=0.01))
    assert sparse[0].weight.abs().sum() < plain[0].weight.abs().sum()


@pytest.mark.parametrize("name", LOSSES.names())
def test_losses_are_zero_ish_for_perfect_predictions(name: str) -> None:
    logits = torch.tensor([[20.0, 0.0], [0.0, 20.0]]) if name == "cross-entropy" else torch.eye(2)
    assert float(make_loss(name)(logits, torch.tensor([0, 1]))) < 1e-6


def test_distillation_loss_matches_hand_computation() -> None:
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[2.0, 0.0, 1.0]])
    T, alpha, hard = 2.0, 0.7, torch.tensor(0.3)
    p_t = torch.softmax(t / T, 1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s / T, 1))).sum()
    expected = alpha * T * T * kl + (1 - alpha) * hard
    assert float(distillation_loss(s, t, hard, T, alpha)) == pytest.approx(float(expected), rel=1e-6)


def test_distillation_task_keeps_teacher_frozen() -> None:
    teacher = small_net()
    before = [p.clone() for p in teacher.parameters()]
    task = DistillationTask(make_loss("cross-entropy"), teacher, temperature=3.0, alpha=0.5)
    result = run_fit(small_net(), task=task, epochs=2)
    assert result.best_val_accuracy > 0.9
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    assert not teacher.training


def test_batches_scale_shuffle_and_cover_everything() -> None:
    split = TensorSplit(torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1) * 25, torch.arange(10), 1 / 255)
    batches = Batches(split, 4, shuffle=True, seed=0)
    assert len(batches) == 3
    xs, ys = zip(*batches, strict=True)
    assert sorted(torch.cat(ys).tolist()) == list(range(10))
    x = torch.cat(xs)
    assert x.dtype == torch.float32 and float(x.max()) == pytest.approx(225 / 255)


def test_validation_split_is_seeded_and_disjoint() -> None:
    split = TensorSplit(torch.arange(100).float()[:, None], torch.arange(100) % 2, 1.0)
    a_train, a_val = carve_validation(split, 0.2, torch.Generator().manual_seed(1))
    b_train, b_val = carve_validation(split, 0.2, torch.Generator().manual_seed(1))
    assert len(a_val) == 20 and len(a_train) == 80
    assert torch.equal(a_val.y, b_val.y) and torch.equal(a_val.x, b_val.x)
    assert not set(a_val.x[:, 0].tolist()) & set(a_train.x[:, 0].tolist())
    with pytest.raises(UsageError):
        carve_validation(split, 1.0, torch.Generator())


def test_train_samples_subset_is_class_balanced() -> None:
    split = TensorSplit(torch.zeros(1000, 1), torch.arange(1000) % 10, 1.0)
    subset = limit_samples(split, 100, torch.Generator().manual_seed(0))
    assert len(subset) == 100
    assert torch.bincount(subset.y).tolist() == [10] * 10


def test_augmentations_keep_shape_and_change_pixels() -> None:
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 5:10, 3:8] = 1.0
    for name in ("flip", "rotate", "crop"):
        out = make_augment([name])(x, torch.Generator().manual_seed(0))
        assert out.shape == x.shape
        assert not torch.allclose(out, x), name
    assert parse_augment("flip,crop") == ["flip", "crop"]
    with pytest.raises(UsageError, match="Choose from"):
        parse_augment(["flip,blur"])


def test_flip_mirrors_exactly() -> None:
    x = torch.rand(64, 1, 6, 6)
    out = make_augment(["flip"])(x, torch.Generator().manual_seed(0))
    flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x, strict=True)]
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 10 < sum(flipped) < 54
