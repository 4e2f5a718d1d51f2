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

#: The members the engine calls; checked when a stream is created.
REQUIRED_MEMBERS = ("inject", "init_state", "f", "head")


@runtime_checkable
class StreamableModel(Protocol):
    """A deep equilibrium model split into the parts a stream calls separately.

    Attributes:
        config: has ``f_thres``, N, the iterations of the model's full solve (26/27 for the
            official MDEQs); used by the baseline and keyframe schemes.
        input_multiple: frame heights and widths must be multiples of this (the engine pads).
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

    def head(self, z: list[Tensor]) -> Tensor:
        """The task output (e.g. (B, classes, h, w) logits) of a state."""
        ...


def check_model(model: object) -> None:
    """Raise :class:`SettingsError` naming the first member the engine needs that is missing."""
    for name in REQUIRED_MEMBERS:
        if not callable(getattr(model, name, None)):
            raise SettingsError(
                f"{type(model).__name__} cannot be streamed: it has no {name}() method "
                f"(a streamable model provides {', '.join(REQUIRED_MEMBERS)})"
            )


def model_full_iters(model: object) -> int | None:
    """N = ``model.config.f_thres`` when the model declares it."""
    value = getattr(getattr(model, "config", None), "f_thres", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def model_input_multiple(model: object) -> int:
    value = getattr(model, "input_multiple", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"model.input_multiple must be an integer >= 1, got {value!r}")
    return value
