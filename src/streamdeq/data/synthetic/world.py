"""What a scene is made of: camera path, street cross-section, facades and objects, as arrays.

:mod:`.scene` draws these from a seed, once; rendering a frame is then a pure function of
(scene, frame index), so any frame of a clip can be drawn without drawing the ones before it.

World coordinates are metres: X to the right, Y up from the ground, Z forward along the street.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .settings import SceneSettings

# Train IDs of the 19 Cityscapes classes (streamdeq.data.labels.CITYSCAPES_CLASSES).
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
IGNORE = 255

Z_FAR = 160.0
"""Metres beyond which nothing is drawn (the street meets the horizon)."""
Z_NEAR = 1.0
"""Objects closer to the camera than this are behind it or out of the frame."""


class Kind(IntEnum):
    """What an object is; its shape and class follow from it."""

    CAR = 0
    TRUCK = 1
    BUS = 2
    PERSON = 3
    RIDER = 4
    BICYCLE = 5
    POLE = 6
    SIGN = 7
    LIGHT = 8
    TREE = 9


CLASS_OF_KIND = np.array(
    [CAR, TRUCK, BUS, PERSON, RIDER, BICYCLE, POLE, SIGN, LIGHT, VEGETATION], dtype=np.uint8
)
THING_KINDS = frozenset({Kind.CAR, Kind.TRUCK, Kind.BUS, Kind.PERSON, Kind.RIDER, Kind.BICYCLE})
"""Kinds that get detection boxes and track ids."""


class Facade(IntEnum):
    """What stands along the street at one stretch of a side."""

    OPEN = 0
    BUILDING = 1
    VEGETATION = 2
    WALL = 3
    FENCE = 4


CLASS_OF_FACADE = np.array([IGNORE, BUILDING, VEGETATION, WALL, FENCE], dtype=np.uint8)


@dataclass(frozen=True)
class Camera:
    """The ego camera: intrinsics and its path over time (t in seconds)."""

    focal_px: float
    horizon_y: float  # pixel row of the horizon when the camera is level
    height_m: float
    speed: float  # m/s forward
    yaw0: float  # rad, initial pan
    yaw_rate: float  # rad/s
    sway_m: float  # lateral sway amplitude
    sway_hz: float
    bob_px: float  # vertical shake amplitude in pixels

    def pose(self, t: float) -> tuple[float, float, float, float]:
        """(x_m, z_m, principal_x_shift_px, horizon_y_px) of the camera at time ``t``."""
        x_m = self.sway_m * np.sin(2 * np.pi * self.sway_hz * t)
        z_m = self.speed * t
        shift = -self.focal_px * np.tan(self.yaw0 + self.yaw_rate * t)
        horizon = self.horizon_y + self.bob_px * np.sin(2 * np.pi * 1.7 * t)
        return float(x_m), float(z_m), float(shift), float(horizon)


@dataclass(frozen=True)
class Street:
    """Cross-section of the street (X in metres; left side negative)."""

    road_left: float  # X of the left road edge (< 0)
    road_right: float
    lanes_left: float  # X of the left edge of the driving lanes (a parking strip may follow)
    lanes_right: float
    lane_marks: np.ndarray  # (L,) X of dashed lane markings
    dash: tuple[float, float]  # (dash length, period) in metres
    sidewalk_left: float  # X of the outer edge of the left sidewalk
    sidewalk_right: float
    facade_left: float  # X of the left facade plane
    facade_right: float


@dataclass(frozen=True)
class FacadeRow:
    """The stretches along one side of the street, as arrays over K stretches sorted by Z."""

    start: np.ndarray  # (K,) Z where each stretch begins
    kind: np.ndarray  # (K,) Facade
    height: np.ndarray  # (K,) metres
    colour: np.ndarray  # (K, 3) float32 RGB
    window_colour: np.ndarray  # (K, 3)
    window_pitch: np.ndarray  # (K,) metres between window columns
    floor_pitch: np.ndarray  # (K,) metres between floors


@dataclass(frozen=True)
class Objects:
    """Billboard objects standing in the street, as arrays over N objects."""

    kind: np.ndarray  # (N,) Kind
    x: np.ndarray  # (N,) X of the centre at t = 0
    z: np.ndarray  # (N,) Z at t = 0
    vx: np.ndarray  # (N,) m/s
    vz: np.ndarray  # (N,) m/s
    width: np.ndarray  # (N,) metres
    height: np.ndarray  # (N,) metres
    elevation: np.ndarray  # (N,) metres of the bottom edge above the ground
    colours: np.ndarray  # (N, 3, 3) up to three RGB colours per object (paint, glass, ...)
    variant: np.ndarray  # (N,) int: shape variant (sign shape, lit lamp, ...)
    phase: np.ndarray  # (N,) gait / animation phase
    track_id: np.ndarray  # (N,) int64, unique within a clip

    def __len__(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class Look:
    """Colours and lighting of the whole scene."""

    sky_top: np.ndarray  # (3,)
    sky_horizon: np.ndarray
    haze: np.ndarray  # colour distant things fade to
    fog_m: float  # distance at which haze reaches 63 %
    road: np.ndarray
    marking: np.ndarray
    sidewalk: np.ndarray
    curb: np.ndarray
    terrain: np.ndarray
    hood: np.ndarray
    hood_rows: float  # fraction of the height the bonnet covers at its middle (0 = none)
    gain: np.ndarray  # (3,) per-channel white balance
    brightness: float
    sun_left: float  # shading of the left facades (the right ones get 2 - sun_left)
    clouds: float  # strength of the cloud texture
    noise_table: np.ndarray  # (64, 64) float32 in [-1, 1], smooth value-noise lattice


@dataclass(frozen=True)
class Scene:
    """Everything drawn in one shot of a clip."""

    seed: int
    settings: SceneSettings
    camera: Camera
    street: Street
    left: FacadeRow
    right: FacadeRow
    objects: Objects
    look: Look
