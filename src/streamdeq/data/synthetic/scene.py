"""Drawing a scene from a seed: camera, street, look and facades, then the objects in chunks.

Everything random about a scene is drawn here, once (see :mod:`.world` for what it holds).
"""

from __future__ import annotations

import numpy as np

from .population import (
    CHUNK_M,
    ONCOMING_SPEED,
    ObjectList,
    convoy,
    freeze,
    pedestrians,
    street_furniture,
    traffic,
)
from .sampling import choice, jitter
from .settings import SceneSettings
from .world import Z_FAR, Camera, Facade, FacadeRow, Look, Scene, Street

_IDS_PER_CHUNK = 10_000


def build_scene(
    seed: int, settings: SceneSettings, duration_s: float, first_track_id: int = 1
) -> Scene:
    """Draw a street scene long enough for ``duration_s`` seconds of driving.

    Camera, street, look and the traffic around the camera at the start come from ``seed``;
    each 100 m chunk of facades and objects along the street from ``(seed, chunk)``. Track ids are
    ``first_track_id`` plus an offset that depends on the chunk, never on the clip length.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    camera = _camera(rng, settings)
    street = _street(rng)
    look = _look(rng, settings)
    ahead = ObjectList(first_track_id)
    convoy(rng, settings, street, camera, ahead)
    z_end = (camera.speed + ONCOMING_SPEED) * duration_s + Z_FAR + 20.0
    rows: dict[int, list] = {-1: [], 1: []}
    objects = [ahead]
    for chunk in range(int(np.ceil(z_end / CHUNK_M))):  # the camera only looks forward
        chunk_rng = np.random.default_rng(np.random.SeedSequence((seed, chunk + 2)))
        z0 = chunk * CHUNK_M
        for side in (-1, 1):
            rows[side].append(_facades(chunk_rng, settings, z0, z0 + CHUNK_M))
        out = ObjectList(first_track_id + (chunk + 2) * _IDS_PER_CHUNK)
        street_furniture(chunk_rng, settings, street, z0, out)
        traffic(chunk_rng, settings, street, z0, out)
        pedestrians(chunk_rng, settings, street, z0, out)
        objects.append(out)
    left, right = (_concatenate_rows(rows[side]) for side in (-1, 1))
    return Scene(seed, settings, camera, street, left, right, freeze(objects), look)


def _camera(rng: np.random.Generator, s: SceneSettings) -> Camera:
    return Camera(
        focal_px=float(rng.uniform(*s.focal) * s.width),
        horizon_y=float(rng.uniform(*s.horizon) * s.height),
        height_m=float(rng.uniform(1.2, 1.8)),
        speed=float(rng.uniform(*s.ego_speed)),
        yaw0=float(rng.uniform(-0.12, 0.12)),
        yaw_rate=float(rng.uniform(-s.yaw_rate, s.yaw_rate)),
        sway_m=float(rng.uniform(0.0, 0.4)),
        sway_hz=float(rng.uniform(0.05, 0.3)),
        bob_px=float(rng.uniform(0.0, 0.006) * s.height),
    )


def _street(rng: np.random.Generator) -> Street:
    lanes_left, lanes_right = int(rng.integers(0, 3)), int(rng.integers(1, 3))
    lane_w = float(rng.uniform(2.8, 3.6))
    offset = float(rng.uniform(-0.8, 0.8))  # the camera does not drive exactly mid-lane
    left_edge = -lane_w / 2 - lanes_left * lane_w + offset
    right_edge = lane_w / 2 + (lanes_right - 1) * lane_w + offset
    marks = np.arange(left_edge + lane_w, right_edge - 0.5 * lane_w, lane_w, dtype=np.float32)
    # parking strips outside the driving lanes: parked cars never stand in a lane
    road_left = left_edge - float(rng.choice([0.3, _PARKING_M]))
    road_right = right_edge + float(rng.choice([0.3, _PARKING_M]))
    sidewalk_left = road_left - float(rng.uniform(1.5, 4.5))
    sidewalk_right = road_right + float(rng.uniform(1.5, 4.5))
    return Street(
        road_left=road_left,
        road_right=road_right,
        lanes_left=left_edge,
        lanes_right=right_edge,
        lane_marks=marks,
        dash=(float(rng.uniform(2.0, 4.0)), float(rng.uniform(6.0, 12.0))),
        sidewalk_left=sidewalk_left,
        sidewalk_right=sidewalk_right,
        facade_left=sidewalk_left - float(rng.choice([0.0, rng.uniform(0.5, 6.0)])),
        facade_right=sidewalk_right + float(rng.choice([0.0, rng.uniform(0.5, 6.0)])),
    )


_PARKING_M = 2.4


def _look(rng: np.random.Generator, s: SceneSettings) -> Look:
    overcast = rng.random() < 0.35
    sky_top = (175, 180, 190) if overcast else (60, 115, 200)
    sky_horizon = (205, 208, 212) if overcast else (185, 205, 225)
    return Look(
        sky_top=jitter(rng, sky_top, 20, s),
        sky_horizon=jitter(rng, sky_horizon, 15, s),
        haze=jitter(rng, sky_horizon, 10, s),
        fog_m=float(rng.uniform(100.0, 350.0)),
        road=jitter(rng, (100, 100, 104), 22, s),
        marking=jitter(rng, choice(rng, [(225, 225, 220), (225, 200, 90)], s), 12, s),
        sidewalk=jitter(
            rng, choice(rng, [(140, 138, 135), (165, 120, 110), (120, 122, 128)], s), 22, s
        ),
        curb=jitter(rng, (175, 175, 170), 15, s),
        terrain=jitter(rng, choice(rng, [(115, 135, 70), (140, 125, 85), (95, 120, 60)], s), 20, s),
        hood=jitter(rng, (40, 42, 48), 25, s),
        hood_rows=float(rng.uniform(0.05, 0.12)) if s.ego_hood else 0.0,
        gain=np.clip(1.0 + rng.normal(0.0, 0.06 * s.colour_jitter, 3), 0.8, 1.2).astype(np.float32),
        brightness=float(np.clip(1.0 + rng.normal(0.0, 0.18 * s.colour_jitter), 0.55, 1.35)),
        sun_left=float(rng.uniform(0.7, 1.3)) if s.texture > 0 else 1.0,
        clouds=float(rng.uniform(0.0, 0.25 if overcast else 0.6)),
        noise_table=_noise_lattice(rng),
    )


def _noise_lattice(rng: np.random.Generator) -> np.ndarray:
    """A (64, 64) tileable field in [-1, 1], smoothed a little so textures are not pure static."""
    field = rng.uniform(-1.0, 1.0, size=(64, 64)).astype(np.float32)
    smooth = (
        field + np.roll(field, 1, 0) + np.roll(field, 1, 1) + np.roll(field, (1, 1), (0, 1))
    ) / 4
    return (smooth / np.abs(smooth).max()).astype(np.float32)


_BUILDING_COLOURS = [
    (150, 140, 125),
    (120, 118, 115),
    (160, 90, 70),
    (200, 195, 180),
    (110, 90, 75),
]
_WINDOW_COLOURS = [(45, 55, 70), (140, 160, 180), (70, 70, 60)]
_FACADE_PROBS = {
    Facade.BUILDING: 0.6,
    Facade.VEGETATION: 0.2,
    Facade.WALL: 0.07,
    Facade.FENCE: 0.07,
    Facade.OPEN: 0.06,
}


def _facades(rng: np.random.Generator, s: SceneSettings, z0: float, z1: float) -> FacadeRow:
    """The stretches of one side between z0 and z1 (the last one cut at z1)."""
    starts, kinds, heights, colours, windows, w_pitch, f_pitch = [], [], [], [], [], [], []
    z = z0
    kind_list = list(_FACADE_PROBS)
    cumulative = np.cumsum(list(_FACADE_PROBS.values()))
    while z < z1:
        kind = kind_list[min(int(np.searchsorted(cumulative, rng.random())), len(kind_list) - 1)]
        starts.append(z)
        kinds.append(int(kind))
        if kind == Facade.BUILDING:
            heights.append(rng.uniform(6.0, 28.0))
            colours.append(jitter(rng, choice(rng, _BUILDING_COLOURS, s), 20, s))
            length = rng.uniform(8.0, 35.0)
        elif kind == Facade.VEGETATION:
            heights.append(rng.uniform(3.0, 11.0))
            colours.append(jitter(rng, (70, 105, 45), 18, s))
            length = rng.uniform(5.0, 25.0)
        elif kind == Facade.WALL:
            heights.append(rng.uniform(1.2, 3.0))
            colours.append(jitter(rng, (155, 150, 140), 20, s))
            length = rng.uniform(5.0, 20.0)
        elif kind == Facade.FENCE:
            heights.append(rng.uniform(0.9, 2.0))
            colours.append(jitter(rng, choice(rng, [(120, 95, 70), (110, 115, 120)], s), 18, s))
            length = rng.uniform(5.0, 20.0)
        else:
            heights.append(0.0)
            colours.append(np.zeros(3, np.float32))
            length = rng.uniform(4.0, 15.0)
        windows.append(jitter(rng, choice(rng, _WINDOW_COLOURS, s), 12, s))
        w_pitch.append(rng.uniform(2.0, 4.0))
        f_pitch.append(rng.uniform(2.8, 3.6))
        z += length
    return FacadeRow(
        start=np.asarray(starts, np.float32),
        kind=np.asarray(kinds, np.int64),
        height=np.asarray(heights, np.float32),
        colour=np.asarray(colours, np.float32).reshape(-1, 3),
        window_colour=np.asarray(windows, np.float32).reshape(-1, 3),
        window_pitch=np.asarray(w_pitch, np.float32),
        floor_pitch=np.asarray(f_pitch, np.float32),
    )


def _concatenate_rows(rows: list[FacadeRow]) -> FacadeRow:
    return FacadeRow(
        *(
            np.concatenate([getattr(r, name) for r in rows])
            for name in FacadeRow.__dataclass_fields__
        )
    )
