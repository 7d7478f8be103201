"""Multi-process training on PyTorch's own stack: torchrun sets the environment, torch.distributed
connects the processes, DistributedDataParallel averages the gradients.

dlcli adds only what a CLI needs around it: reading the rank from torchrun's variables, choosing
nccl on GPUs and gloo on CPUs, agreeing on one run folder (rank 0 makes it and tells the others),
summing metrics and the stop flag across ranks, and `dlcli train --nproc-per-node N` handing over to
torchrun's launcher (`torch.distributed.run`) for users who do not want to learn it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DistContext:
    """This process's place in a run: rank 0 of 1 when not distributed."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce_sum(self, tensor: Any) -> Any:
        """`tensor` summed over ranks (in place; returned for chaining)."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (any picklable object: the ranks are our own processes)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def env_context() -> DistContext:
    """The context torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (none set: one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


_ACTIVE: DistContext | None = None


def setup(device_name: str = "auto") -> DistContext:
    """Join the process group once per process (no-op outside torchrun); returns the context."""
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    ctx = env_context()
    if ctx.enabled:
        import torch
        import torch.distributed as dist

        use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(ctx.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    _ACTIVE = ctx
    return ctx


def current() -> DistContext:
    return _ACTIVE or DistContext()


def shared_run_dir(make: Any) -> Path:
    """Call `make()` on rank 0 only and hand its folder to every rank, so that N processes started
    by torchrun write one run folder, not N (`runs/train/exp`, `exp2`, ...)."""
    ctx = current()
    path = make() if ctx.is_main else None
    return Path(ctx.broadcast(str(path) if path is not None else None))


def wrap_model(model: Any, device: Any, sync_bn: bool) -> Any:
    """DistributedDataParallel around `model` in a distributed run (the model itself otherwise)."""
    if not current().enabled:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else current().local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def launch(nproc: int, argv: list[str]) -> None:
    """Re-run this command line under torchrun with `nproc` processes on this machine. `argv` is the
    command line without --nproc-per-node. Ranks that stopped on a signal (all with the same exit
    code, 130 or 143) end the launcher with that code too; any other failure is one WorkError line
    (each rank has already printed its own error)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from dlcli.errors import DlcliError, WorkError

    args = get_args_parser().parse_args(["--nproc-per-node", str(nproc), "--module", "dlcli", *argv])
    try:
        run(args)
    except ChildFailedError as exc:
        # A rank that torchrun's agent terminated after another one stopped reports -15 (killed by
        # SIGTERM): the same outcome as the others' 143, in the shell's spelling.
        codes = {128 - f.exitcode if f.exitcode < 0 else f.exitcode for f in exc.failures.values()}
        if len(codes) == 1:
            code = codes.pop()
            error = DlcliError(f"distributed run ended with exit code {code} on every rank")
            error.exit_code = code
            raise error from None
        raise WorkError(f"distributed run failed: ranks exited with codes {sorted(codes)}") from None
