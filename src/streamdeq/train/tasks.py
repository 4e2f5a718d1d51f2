"""What the trainer asks of a task: its model, how a batch is formed, its loss and validation.

The trainer owns everything a DEQ needs (pretraining vs. equilibrium, solvers, the Jacobian
regulariser, optimisation, processes); a task only knows its data and its outputs. Detection
package (:mod:`streamdeq.tasks`) registers its :class:`Task` with :func:`register_task` and trains with the same loop.

A task's model must be streamable (``inject``, ``init_state``, ``f``, ``head``, ``config`` with
the MDEQ fields ``f_thres``, ``b_thres``, ``num_layers``, ``pretrain_steps``, ``dropout``,
``num_channels``, ``num_blocks``): the trainer solves for z itself and hands z to the task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data.labels import CITYSCAPES_CLASSES
from ..models.pretrained import (
    FORMAT_VERSION,
    GENERATED_SCENES,
    PretrainedInfo,
    derive_pretrained_info,
)
from ..plugins import load_plugins
from ..registry import Registry
from .recipe import ModelSection, Recipe, RecipeError

Batch = dict[str, Any]


class Task:
    """Base class of a trainable task. Subclasses set ``name`` and implement the methods that
    raise here."""

    name = "task"

    #: what the error says a recipe's model must be when it is of another task
    model_needs = "a model of this task"

    def build_model(self, section: ModelSection) -> nn.Module:
        """The (randomly initialised) model the recipe's ``model`` section describes, checked
        to be a model of this task."""
        return build_mdeq(section, task=self.name, needs=self.model_needs)

    def prepare(self, item: dict[str, Tensor], recipe: Recipe, rng: torch.Generator | None) -> dict:
        """One dataset item as a training (``rng`` given: augment) or validation sample, with
        ``image`` (3, H, W) float in [0, 1]."""
        raise NotImplementedError

    def collate(self, samples: Sequence[dict]) -> Batch:
        """Samples -> a batch with ``image`` (B, 3, H, W) (normalised by the trainer)."""
        raise NotImplementedError

    def output(self, model: nn.Module, z: Sequence[Tensor], batch: Batch) -> Any:
        """The task output from the equilibrium state z; default ``model.head(z)``."""
        return model.head(z)

    def loss(self, output: Any, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """(scalar loss, named parts to log). It must be a mean over the batch's samples of a
        per-sample loss, so that processes averaging their gradients train like one process."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, batches: Iterable[Batch], iters: int) -> dict[str, Any]:
        """Validation metrics of an eval-mode model over this process's batches; the method must
        combine the processes' results itself (e.g. summing confusion matrices)."""
        raise NotImplementedError

    def export(self, model: nn.Module, path: str, info: PretrainedInfo | None = None) -> None:
        """Write the trained weights (default: streamdeq safetensors with the config and
        ``info``, the input contract the trainer recorded: :func:`export_info`)."""
        from ..models import save_safetensors

        save_safetensors(model, path, info=info)


#: What ``trained_on`` says for weights trained on a registered dataset (others: its name).
DATASET_DESCRIPTIONS = {"synthetic": GENERATED_SCENES, "cityscapes": "cityscapes"}


def export_info(recipe: Recipe, model: nn.Module) -> PretrainedInfo | None:
    """The input contract of weights trained by ``recipe``: the normalisation the trainer
    applied (``data.mean`` / ``data.std``), the data they saw and the N they were validated
    with, so inference feeds them as they were trained."""
    derived = derive_pretrained_info(model)
    if derived is None:
        return None
    dataset = recipe.data.dataset
    class_names = derived.class_names
    if not class_names and derived.task == "segmentation" and dataset in DATASET_DESCRIPTIONS:
        class_names = CITYSCAPES_CLASSES  # both datasets label with the Cityscapes train ids
    return derived.with_overrides(
        mean=recipe.data.mean,
        std=recipe.data.std,
        class_names=class_names,
        f_thres=recipe.train.val_iters or derived.f_thres,
        trained_on=DATASET_DESCRIPTIONS.get(dataset, dataset),
        format_version=FORMAT_VERSION,
    )


TRAINING_TASKS: Registry[Callable[[], Task]] = Registry(
    "training task", error=RecipeError, loader=load_plugins
)


def register_task(name: str, factory: Callable[[], Task], *, overwrite: bool = False) -> None:
    """Make ``train.task: NAME`` usable in recipes (a task package calls this for its task)."""
    TRAINING_TASKS.register(name, factory, overwrite=overwrite)


def list_tasks() -> list[str]:
    return TRAINING_TASKS.names(sort=True)


def get_task(name: str) -> Task:
    """A fresh training task for ``train.task: NAME``."""
    if name not in TRAINING_TASKS:
        raise RecipeError(f"{TRAINING_TASKS.unknown_message(name)} in train.task")
    return TRAINING_TASKS.get(name)()


def build_mdeq(section: ModelSection, *, task: str, needs: str) -> nn.Module:
    """The recipe's model from a registered name and overrides, checked to be a ``task`` model:
    a mismatch fails here, in one line saying what the task ``needs``, not as a shape error in
    the first loss."""
    from ..models import create_model

    model = create_model(section.name, **dict(section.overrides))
    if model.config.task != task:
        raise RecipeError(
            f"model {section.name} is a {model.config.task} model; the {task} task needs {needs}"
        )
    return model


def relative_residual(model: nn.Module, injection: Sequence, z: Sequence[Tensor]) -> Tensor:
    """(B,) ||f(z) - z|| / ||f(z)|| of the state a solve returned, each sample over all its
    branches (the solver's trace stops at the last iterate it evaluated f at, which in
    Broyden's efficient mode is the one before the returned state)."""
    fz = model.f(list(z), injection)
    diff = sum((a - b).flatten(1).pow(2).sum(1) for a, b in zip(fz, z, strict=True))
    norm = sum(a.flatten(1).pow(2).sum(1) for a in fz)
    return diff.sqrt() / (norm.sqrt() + 1e-8)


__all__ = [
    "Batch",
    "Task",
    "get_task",
    "list_tasks",
    "register_task",
]
