"""Small random draws shared by the scene and its objects: colours and counts."""

from __future__ import annotations

import numpy as np

from .settings import SceneSettings


def jitter(rng: np.random.Generator, base: object, spread: float, s: SceneSettings) -> np.ndarray:
    """``base`` RGB moved by Gaussian noise of ``spread`` grey levels scaled by colour_jitter:
    per channel (hue) plus a shared part (brightness). (3,) float32 in [5, 250]."""
    noise = rng.standard_normal(4) * (spread * s.colour_jitter)
    colour = np.asarray(base, dtype=np.float32) + (noise[:3] + 0.7 * noise[3]).astype(np.float32)
    return np.minimum(np.maximum(colour, 5.0), 250.0)  # not np.clip: its wrapper costs more


def choice(
    rng: np.random.Generator, options: list[tuple[int, int, int]], s: SceneSettings
) -> tuple:
    """One of ``options`` at random; always the first (the typical colour) without jitter."""
    return options[int(rng.integers(len(options)))] if s.colour_jitter > 0 else options[0]


def count(rng: np.random.Generator, per_100m: tuple[float, float], length: float) -> int:
    """How many objects stand along ``length`` metres, at a density drawn from ``per_100m``."""
    return int(rng.poisson(rng.uniform(*per_100m) * length / 100.0))
