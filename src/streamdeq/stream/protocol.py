"""What the stream engine needs from a model: five members, nothing of its internals.

Any object with these members can be streamed; :mod:`streamdeq.models` provides the MDEQs. The
engine calls them in this order for each frame:

1. ``inject(x)`` once, on the preprocessed frame;
2. ``init_state(injection)`` when the stream starts from zeros;
3. ``f(z, injection)`` as many times as the solver needs (on any subset of batch rows);
4. ``head(z)`` once, on the state the frame ends with.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from ..errors import SettingsError
from ..validation import check_int

#: The members the engine calls; checked when a stream is created.
REQUIRED_MEMBERS = ("inject", "init_state", "f", "head")


@runtime_checkable
class StreamableModel(Protocol):
    """A deep equilibrium model split into the parts a stream calls separately.

    Attributes:
        config: has ``f_thres``, N, the iterations of the model's full solve (26/27 for the
            official MDEQs); used by the baseline and keyframe schemes.
        input_multiple: frame heights and widths must be multiples of this (the engine pads).
        pretrained_info: optional; its ``mean`` and ``std`` normalise the frames when the
            stream is given no ``preprocess`` (:func:`model_normalisation`).
    """

    config: Any
    input_multiple: int

    def inject(self, x: Tensor) -> list[Tensor | None]:
        """The per-branch injection of a (B, 3, H, W) normalised frame batch."""
        ...

    def init_state(self, injection: list[Tensor | None]) -> list[Tensor]:
        """The zero state z = 0 (one (B, C_i, H_i, W_i) tensor per branch) for ``injection``."""
        ...

    def f(self, z: list[Tensor], injection: list[Tensor | None]) -> list[Tensor]:
        """One application of the equilibrium layer; batch rows must be independent."""
        ...

    def head(self, z: list[Tensor]) -> Tensor | list[Any]:
        """The task output of a state: a tensor with the batch first (e.g. (B, classes, h, w)
        logits) or a list with one entry per batch row (e.g. per-image detection dicts); see
        :func:`check_head_output`."""
        ...


def check_model(model: object) -> None:
    """Raise :class:`SettingsError` naming the first member the engine needs that is missing."""
    for name in REQUIRED_MEMBERS:
        if not callable(getattr(model, name, None)):
            raise SettingsError(
                f"{type(model).__name__} cannot be streamed: it has no {name}() method "
                f"(a streamable model provides {', '.join(REQUIRED_MEMBERS)})"
            )


def model_f_thres(model: object) -> int | None:
    """N = ``model.config.f_thres`` when the model declares it."""
    value = getattr(getattr(model, "config", None), "f_thres", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def model_normalisation(model: object) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) the model's weights were trained with, from ``model.pretrained_info`` (set
    by ``create_model(..., pretrained=True)`` and ``load_safetensors``); None when the model
    does not say."""
    info = getattr(model, "pretrained_info", None)
    mean, std = getattr(info, "mean", None), getattr(info, "std", None)
    if mean is None or std is None:
        return None
    return tuple(mean), tuple(std)


def check_head_output(output: object, rows: int) -> None:
    """Raise :class:`SettingsError` unless ``head()`` gave what the engine can split per stream.

    Two kinds are supported: a tensor with the batch as its first dimension ((B, C, h, w)
    dense maps, cropped to the frame; (B, ...) anything else, passed on per row) and a list
    with one entry per batch row (e.g. a detector's per-image dicts). Anything else (a dict
    of batched tensors, a tuple) would be split wrongly, so it fails on the first frame."""
    if isinstance(output, Tensor) and output.dim() >= 1 and output.shape[0] == rows:
        return
    if isinstance(output, list) and len(output) == rows:
        return
    if isinstance(output, Tensor):
        got = f"a tensor of shape {tuple(output.shape)}"
    elif isinstance(output, list):
        got = f"a list of {len(output)}"
    else:
        got = type(output).__name__
    raise SettingsError(
        "head() must return a tensor with the batch as its first dimension or a list with one "
        f"entry per batch row; got {got} for a batch of {rows}"
    )


def check_eval_mode(model: object) -> None:
    """Raise :class:`SettingsError` for a module in training mode.

    Why: streaming is inference. In training mode dropout stays on (every frame a different
    network) and BatchNorm rewrites its running statistics with every frame, silently changing
    the model for everyone who uses it afterwards."""
    if getattr(model, "training", False) is True:
        raise SettingsError(
            f"{type(model).__name__} is in training mode (dropout on, BatchNorm statistics "
            "updated by every frame); call model.eval() before streaming it"
        )


def model_input_multiple(model: object) -> int:
    value = getattr(model, "input_multiple", 1)
    return check_int("input_multiple", value, label="model.input_multiple")
