"""Object silhouettes as masks over a billboard's unit square.

Each shape takes the billboard's pixel-centre coordinates ``u`` (W,) across and ``v`` (H,) down,
both in [0, 1] over the object's extent, and returns ``(mask, part)``: which pixels the object
covers, (H, W) bool, and which of its colours each pixel takes, (H, W) int index into the part
colours that :func:`part_palettes` gives. Label and colour come from the same mask, so an object's
pixels in the label map and in the image always coincide.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .world import Kind

# Part indices into the (6, 3) colour table of one object.
MAIN, SECOND, THIRD, DARK, LIGHT_ON, LIGHT_OFF = range(6)

ShapeFn = Callable[[np.ndarray, np.ndarray, int, float], tuple[np.ndarray, np.ndarray]]


_LAMPS = np.array([(230, 40, 30), (240, 170, 30), (60, 220, 90)], np.float32)  # red, amber, green


def part_palettes(colours: np.ndarray, kinds: np.ndarray, variants: np.ndarray) -> np.ndarray:
    """(N, 6, 3) float32 colour of each part index for N objects, from their sampled colours
    (N, 3, 3), kinds (N,) and variants (N,)."""
    table = np.empty((len(kinds), 6, 3), np.float32)
    table[:, :3] = colours
    table[:, DARK] = (24, 24, 26)
    table[:, LIGHT_OFF] = (50, 50, 48)
    table[:, LIGHT_ON] = _LAMPS[variants % 3]
    table[kinds == Kind.CAR, THIRD] = (200, 30, 30)  # tail lights
    return table


def _car(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    U, V = u[None, :], v[:, None]
    half = np.abs(U - 0.5)
    cabin = (V >= 0.06) & (V < 0.42) & (half < 0.36 + 0.12 * (V - 0.06) / 0.36)
    body = (V >= 0.42) & (V < 0.9)
    wheels = (V >= 0.8) & (half > 0.3)
    mask = cabin | body | wheels
    part = np.full(mask.shape, MAIN, np.int8)
    part[cabin & (half < 0.3 + 0.1 * (V - 0.1) / 0.3) & (V >= 0.1) & (V < 0.39)] = SECOND
    part[(V >= 0.48) & (V < 0.58) & (half > 0.36)] = THIRD
    part[(V >= 0.8) & (V < 0.9) & (half <= 0.3)] = DARK  # bumper
    part[wheels & (V >= 0.9)] = DARK
    return mask, part


def _truck(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    U, V = u[None, :], v[:, None]
    half = np.abs(U - 0.5)
    wheels = (V >= 0.8) & (half > 0.28)
    mask = (V < 0.88) | wheels
    part = np.full(mask.shape, MAIN, np.int8)
    part[(V >= 0.78) | (half < 0.012)] = THIRD  # chassis and the door seam
    part[wheels & (V >= 0.88)] = DARK
    return mask, part


def _bus(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    U, V = u[None, :], v[:, None]
    half = np.abs(U - 0.5)
    wheels = (V >= 0.85) & (half > 0.3)
    mask = (V < 0.9) | wheels
    part = np.full(mask.shape, MAIN, np.int8)
    part[(V >= 0.08) & (V < 0.42) & (half < 0.42)] = SECOND
    part[(V >= 0.7) & (V < 0.78) & (half > 0.38)] = LIGHT_ON
    part[wheels & (V >= 0.9)] = DARK
    return mask, part


def _person(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Walking figure (variant 0) or a cyclist's upper body and pedalling legs (variant 1)."""
    U, V = u[None, :], v[:, None]
    half = np.abs(U - 0.5)
    head = ((U - 0.5) / 0.2) ** 2 + ((V - 0.07) / 0.065) ** 2 < 1.0
    torso = (V >= 0.13) & (V < 0.52) & (half < 0.3)
    swing = 0.1 * np.sin(2 * np.pi * t)
    if variant == 0:
        arms = (V >= 0.15) & (V < 0.5) & (half >= 0.3) & (half < 0.42 + swing * (U > 0.5))
        depth = np.clip((V - 0.5) / 0.5, 0.0, 1.0)
        legs = (V >= 0.5) & (
            (np.abs(U - 0.36 - swing * depth) < 0.11) | (np.abs(U - 0.64 + swing * depth) < 0.11)
        )
    else:
        arms = (V >= 0.2) & (V < 0.42) & (half >= 0.3) & (half < 0.48)
        lift = 0.06 * np.sin(2 * np.pi * t)
        legs = (V >= 0.5) & (half > 0.12) & (half < 0.26) & (0.82 + lift * np.sign(U - 0.5) > V)
    mask = head | torso | arms | legs
    part = np.full(mask.shape, MAIN, np.int8)
    part[legs & ~torso] = SECOND
    part[head] = THIRD
    return mask, part


def _bicycle(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    U, V = u[None, :], v[:, None]
    half = np.abs(U - 0.5)
    wheel = (half < 0.08) & (V >= 0.35)
    bar = (V >= 0.22) & (V < 0.3)
    stem = (half < 0.05) & (V >= 0.22) & (V < 0.4)
    mask = wheel | bar | stem
    part = np.full(mask.shape, MAIN, np.int8)
    part[wheel & (V >= 0.5)] = SECOND
    return mask, part


def _pole(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    mask = np.ones((len(v), len(u)), bool)
    return mask, np.full(mask.shape, MAIN, np.int8)


def _sign(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Rectangle, disc, triangle or diamond plate with a lighter inner field."""
    U, V = u[None, :] - 0.5, v[:, None] - 0.5
    if variant == 0:
        outline = np.ones((len(v), len(u)), bool)
        inner = (np.abs(U) < 0.3) & (np.abs(V) < 0.1)
    elif variant == 1:
        outline = U**2 + V**2 < 0.25
        inner = U**2 + V**2 < 0.1
    elif variant == 2:
        outline = np.abs(U) < 0.5 * (V + 0.5)
        inner = (np.abs(U) < 0.3 * (V + 0.3)) & (V < 0.35)
    else:
        outline = np.abs(U) + np.abs(V) < 0.5
        inner = np.abs(U) + np.abs(V) < 0.3
    part = np.where(inner, SECOND, MAIN).astype(np.int8)
    return outline, part


def _light(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    U, V = u[None, :], v[:, None]
    mask = np.ones((len(v), len(u)), bool)
    part = np.full(mask.shape, MAIN, np.int8)
    for lamp, centre in enumerate((0.18, 0.5, 0.82)):
        disc = ((U - 0.5) / 0.32) ** 2 + ((V - centre) / 0.13) ** 2 < 1.0
        part[disc] = LIGHT_ON if lamp == variant % 3 else LIGHT_OFF
    return mask, part


def _tree(u: np.ndarray, v: np.ndarray, variant: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    U, V = u[None, :], v[:, None]
    ragged = 0.12 * np.sin(11.0 * U + 3.0 * variant) * np.sin(9.0 * V + 1.0)
    crown = 1.0 + ragged > ((U - 0.5) / 0.5) ** 2 + ((V - 0.36) / 0.36) ** 2
    trunk = (np.abs(U - 0.5) < 0.06) & (V >= 0.5)
    mask = crown | trunk
    part = np.where(trunk & ~crown, SECOND, MAIN).astype(np.int8)
    return mask, part


SHAPES: dict[int, ShapeFn] = {
    Kind.CAR: _car,
    Kind.TRUCK: _truck,
    Kind.BUS: _bus,
    Kind.PERSON: _person,
    Kind.RIDER: _person,
    Kind.BICYCLE: _bicycle,
    Kind.POLE: _pole,
    Kind.SIGN: _sign,
    Kind.LIGHT: _light,
    Kind.TREE: _tree,
}
