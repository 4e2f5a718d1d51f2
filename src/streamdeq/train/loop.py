"""``train(recipe)``: the training loop, in one process or several under ``torchrun``.

One step: the global batch of the step (a fixed function of seed, epoch and position, split
across processes by a DistributedSampler) -> per-sample augmentation -> z by unrolled
pretraining or the equilibrium solve (:mod:`.forward`) -> task loss + weighted Jacobian penalty
-> backward -> gradients averaged over processes -> clipping -> optimizer and lr schedule.
Every random draw is seeded per (step, sample), so a run resumed from a checkpoint, or split over
more processes at the same global batch, follows the same trajectory (up to float rounding).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.utils.data import Dataset, DistributedSampler

from ..deq import BackwardSettings
from ..errors import StreamDEQError
from . import seeding
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from .datasets import CachedDataset, build_dataset
from .distributed import (
    World,
    average_gradients,
    barrier,
    mean_over_world,
    setup,
    teardown,
    use_global_batch_norm,
)
from .forward import DEQPlan, deq_forward
from .init_from import load_backbone
from .recipe import Recipe, RecipeError, load_recipe
from .schedule import build_scheduler
from .tasks import Batch, Task, export_info, get_task

METRICS_NAME = "metrics.jsonl"
RECIPE_NAME = "recipe.yaml"


class TrainingError(StreamDEQError, RuntimeError):
    """Training cannot go on (a non-finite loss, a run directory in the way, ...)."""


@dataclass
class TrainResult:
    """What a finished ``train`` call leaves behind.

    Attributes:
        steps: completed optimisation steps (including those before a resume).
        out_dir: the run directory; ``checkpoint``, ``metrics`` and ``export`` files in it.
        last_log: the last metrics log record; ``validation``: the last validation metrics.
        model: the trained model (eval mode), on the training device.
    """

    steps: int
    out_dir: Path
    checkpoint: Path
    metrics: Path
    export: Path | None
    last_log: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None


def train(
    recipe: Recipe | str | Path,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    device: str | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train as ``recipe`` says (a :class:`Recipe` or a yaml path).

    Args:
        out_dir: run directory (overrides ``output.dir``).
        resume: continue from ``out_dir/checkpoint.pt`` (without it, an existing checkpoint
            there is an error rather than silently overwritten).
        max_steps: stop after this many completed steps (the lr schedule still spans
            ``schedule.max_steps``): for splitting a run into sessions. Only a run that
            completes ``schedule.max_steps`` exports its weights.
        device: overrides ``train.device``.
        console: where progress and log lines go (rank 0 only).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if out_dir is not None:
        recipe = recipe.replace("output", dir=str(out_dir))
    if device is not None:
        recipe = recipe.replace("train", device=device)
    if max_steps is not None and not 1 <= max_steps <= recipe.schedule.max_steps:
        raise RecipeError(
            f"--max-steps must be in [1, schedule.max_steps = {recipe.schedule.max_steps}], "
            f"got {max_steps}"
        )
    if recipe.train.device.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError("train.device is cuda but CUDA is not available; use --device cpu")
    world, torch_device = setup(recipe.train.device)
    try:
        run = _Run(recipe, world, torch_device, console or Console(stderr=True))
        return run.run(resume, max_steps or recipe.schedule.max_steps)
    finally:
        teardown(world)


class _Run:
    """The state of one training run (one per process)."""

    def __init__(self, recipe: Recipe, world: World, device: torch.device, console: Console):
        self.recipe, self.world, self.device, self.console = recipe, world, device, console
        self.task: Task = get_task(recipe.train.task)
        torch.manual_seed(recipe.train.seed)  # the same initial weights in every process
        self.model = self.task.build_model(recipe.model)
        if recipe.model.init_from is not None:
            load_backbone(self.model, recipe.model.init_from)
        self._check_sizes()
        if world.distributed:
            use_global_batch_norm(self.model)
        self.model.to(device).train()
        self.plan = _plan(recipe, self.model.config)
        self.optimizer = _optimizer(recipe, self.model)
        self.scheduler = build_scheduler(self.optimizer, recipe.schedule)
        self.out_dir = Path(recipe.output.dir)
        self.checkpoint_path = self.out_dir / CHECKPOINT_NAME
        self.metrics_path = self.out_dir / METRICS_NAME
        self.mean = torch.tensor(recipe.data.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(recipe.data.std, device=device).view(1, 3, 1, 1)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._epoch_indices: tuple[int, list[int]] = (-1, [])

    # ------------------------------------------------------------------ the run

    def run(self, resume: bool, stop_step: int) -> TrainResult:
        start_step = self._open_run_dir(resume)
        self.train_set = self._load_train_set()
        last_log: dict[str, Any] = {}
        validation: dict[str, Any] = {}
        window_start, window_steps = time.perf_counter(), 0
        with self._progress(stop_step, start_step) as (progress, bar):
            for step in range(start_step, stop_step):
                record = self._train_step(step)
                window_steps += 1
                done = step + 1
                last = done == stop_step
                if done % self.recipe.train.log_every == 0 or last:
                    now = time.perf_counter()
                    record["seconds"] = (now - window_start) / window_steps
                    window_start, window_steps = now, 0
                    last_log = self._log(mean_over_world(record, self.world) | {"step": done})
                if done % self.recipe.train.checkpoint_every == 0 or last:
                    self._save(done)
                if self._validation_due(done, last):
                    validation = self._validate()
                    self._log({"step": done, **_prefixed(validation, "val_")})
                if progress is not None:
                    progress.update(bar, completed=done, loss=last_log.get("loss", math.nan))
        # a run stopped early (--max-steps) is continued with --resume, not exported: its
        # weights must not replace those of a finished run (e.g. the bundled model's)
        finished = stop_step == self.recipe.schedule.max_steps
        export = self._export() if finished else None
        self.model.eval()
        return TrainResult(
            steps=stop_step,
            out_dir=self.out_dir,
            checkpoint=self.checkpoint_path,
            metrics=self.metrics_path,
            export=export if self.world.is_main else None,
            last_log=last_log,
            validation=validation,
            model=self.model,
        )

    def _train_step(self, step: int) -> dict[str, float]:
        recipe, plan = self.recipe, self.plan
        ids = self._batch_ids(step)
        batch = self._make_batch(ids, step)
        with_jac = (
            recipe.deq.jac_weight > 0
            and step >= plan.pretrain_steps
            and seeding.step_uniform(recipe.train.seed, step) < recipe.deq.jac_freq
        )
        self.model.train()
        with self._autocast():
            result = deq_forward(
                self.model, batch["image"], plan, step, ids, recipe.train.seed, with_jac
            )
            output = self.task.output(self.model, result.z, batch)
            loss, parts = self.task.loss(output, batch)
        total = loss
        if result.jac_loss is not None:
            total = loss + recipe.deq.jac_weight * result.jac_loss
        if not torch.isfinite(total):
            raise TrainingError(
                f"the loss became {total.item()} at step {step + 1}; lower optim.lr, raise "
                "deq.jac_weight or set optim.grad_clip, then resume from the last checkpoint"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(self.model, self.world)
        if recipe.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), recipe.optim.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        record = {"loss": total.item(), **parts, "lr": lr}
        record["pretraining"] = float(step < plan.pretrain_steps)
        if result.solver_result is not None:
            record["fwd_iters"] = float(result.solver_result.iters.float().mean())
            record["fwd_rel_residual"] = float(result.solver_result.rel_trace[:, -1].mean())
        if result.jac_loss is not None:
            record["jac_loss"] = result.jac_loss.item()
        return record

    # ------------------------------------------------------------------ data

    def _load_train_set(self) -> Dataset:
        data = self.recipe.data
        dataset = build_dataset(data.dataset, "train", data.train)
        if data.cache:
            dataset = CachedDataset(dataset)
        per_epoch = (len(dataset) // self.world.size) // data.batch_size
        if per_epoch < 1:
            raise RecipeError(
                f"the training set has {len(dataset)} samples, fewer than one global batch of "
                f"{data.batch_size} x {self.world.size} processes; enlarge data.train or lower "
                "data.batch_size"
            )
        self.batches_per_epoch = per_epoch
        return dataset

    def _batch_ids(self, step: int) -> list[int]:
        """This process's dataset indices at ``step``: the global batch is
        perm_epoch[step_in_epoch * G : (step_in_epoch + 1) * G] (G the global batch size)
        whatever the number of processes, since DistributedSampler deals ranks in turn."""
        epoch, position = divmod(step, self.batches_per_epoch)
        if self._epoch_indices[0] != epoch:
            sampler = DistributedSampler(
                self.train_set,
                num_replicas=self.world.size,
                rank=self.world.rank,
                shuffle=True,
                seed=self.recipe.train.seed,
                drop_last=True,
            )
            sampler.set_epoch(epoch)
            self._epoch_indices = (epoch, list(sampler))
        size = self.recipe.data.batch_size
        return self._epoch_indices[1][position * size : (position + 1) * size]

    def _make_batch(self, ids: list[int], step: int | None) -> Batch:
        dataset = self.train_set if step is not None else self.val_set
        samples = []
        for index in ids:
            rng = None
            if step is not None:
                rng = seeding.generator(self.recipe.train.seed, step, index, seeding.AUGMENT)
            samples.append(self.task.prepare(dataset[index], self.recipe, rng))
        batch = self.task.collate(samples)
        batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        batch["image"] = (batch["image"] - self.mean) / self.std
        return batch

    # ------------------------------------------------------------------ validation

    def _validation_due(self, done: int, last: bool) -> bool:
        if not self.recipe.data.val:
            return False
        every = self.recipe.train.val_every
        return last or (every > 0 and done % every == 0)

    def _validate(self) -> dict[str, Any]:
        data, train = self.recipe.data, self.recipe.train
        if self.val_set is None:
            self.val_set = build_dataset(data.dataset, "val", data.val)
        ids = list(range(self.world.rank, len(self.val_set), self.world.size))
        size = data.val_batch_size
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
        if train.val_max_batches is not None:
            chunks = chunks[: train.val_max_batches]
        batches = (self._make_batch(chunk, None) for chunk in chunks)
        self.model.eval()
        try:
            metrics = self.task.evaluate(self.model, batches, train.val_iters or self.plan.f_thres)
        finally:
            self.model.train()
        return mean_over_world(metrics, self.world)

    # ------------------------------------------------------------------ files

    def _open_run_dir(self, resume: bool) -> int:
        if resume:
            step = load_checkpoint(
                self.checkpoint_path,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
            )
            if self.world.is_main:
                _truncate_log(self.metrics_path, step)
            barrier(self.world)
            return step
        if self.checkpoint_path.exists():
            raise TrainingError(
                f"{self.out_dir} already holds a training run; pass --resume to continue it "
                "or choose another --out"
            )
        if self.world.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.metrics_path.unlink(missing_ok=True)
            text = yaml.safe_dump(self.recipe.to_dict(), sort_keys=False)
            (self.out_dir / RECIPE_NAME).write_text(text, encoding="utf-8")
        barrier(self.world)
        return 0

    def _save(self, done: int) -> None:
        if self.world.is_main:
            save_checkpoint(
                self.checkpoint_path,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                step=done,
                recipe=self.recipe.to_dict(),
            )
        barrier(self.world)

    def _export(self) -> Path:
        path = Path(self.recipe.output.export or self.out_dir / "model.safetensors")
        if self.world.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            self.task.export(self.model, str(tmp), export_info(self.recipe, self.model))
            tmp.chmod(0o644)  # package data: readable by every user
            tmp.replace(path)
        barrier(self.world)
        return path

    def _log(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.world.is_main:
            with open(self.metrics_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if not self.console.is_terminal:
                self.console.print(json.dumps(_rounded(record)), soft_wrap=True)
        return record

    # ------------------------------------------------------------------ helpers

    def _progress(self, total: int, start: int):
        if not self.world.is_main or not self.console.is_terminal:
            return contextlib.nullcontext((None, None))
        progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        bar = progress.add_task("train", total=total, completed=start, loss=math.nan)

        @contextlib.contextmanager
        def running():
            with progress:
                yield progress, bar

        return running()

    def _autocast(self):
        if not self.recipe.train.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _check_sizes(self) -> None:
        crop = self.recipe.data.augment.crop
        multiple = getattr(self.model, "input_multiple", 1)
        if crop is not None and (crop[0] % multiple or crop[1] % multiple):
            raise RecipeError(
                f"data.augment.crop {list(crop)} must be multiples of {multiple} for this model"
            )


def _plan(recipe: Recipe, config: Any) -> DEQPlan:
    deq = recipe.deq
    backward = BackwardSettings.from_dict({"max_iter": config.b_thres, **dict(deq.backward)})
    return DEQPlan(
        pretrain_steps=config.pretrain_steps if deq.pretrain_steps is None else deq.pretrain_steps,
        num_layers=config.num_layers if deq.num_layers is None else deq.num_layers,
        solver=deq.solver,
        f_thres=config.f_thres if deq.f_thres is None else deq.f_thres,
        forward_tol=deq.forward_tol,
        backward=backward,
        jac_samples=deq.jac_samples,
    )


def _optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    optim = recipe.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if optim.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=optim.lr,
            momentum=optim.momentum,
            nesterov=optim.nesterov,
            weight_decay=optim.weight_decay,
        )
    return torch.optim.AdamW(
        params, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay
    )


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records of steps after the checkpoint (they will be redone)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


def _prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k if k.startswith(prefix) else prefix + k: v for k, v in values.items()}


def _rounded(record: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in record.items()}
