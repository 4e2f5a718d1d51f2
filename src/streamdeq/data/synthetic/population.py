"""The objects of a scene: traffic, parked cars, people, cyclists, lamp posts, signs, lights
and trees, placed along the street chunk by chunk (each chunk from its own generator)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .sampling import choice, count, jitter
from .settings import SceneSettings
from .world import Z_FAR, Camera, Kind, Objects, Street

CHUNK_M = 100.0
"""The street is drawn in 100 m chunks, each from its own seed, so a scene's content does not
depend on how long the clip is: a 20-frame clip is the start of the 30-frame one."""
ONCOMING_SPEED = 14.0
"""Fastest oncoming vehicle, m/s: how far ahead a clip's street must reach."""

_CAR_PAINTS = [
    (200, 200, 205), (30, 30, 35), (150, 152, 158), (90, 92, 98), (170, 30, 30),
    (30, 60, 150), (20, 35, 80), (40, 100, 60), (220, 190, 40),
]  # fmt: skip
_CLOTHES = [(40, 40, 45), (60, 70, 120), (150, 40, 40), (200, 200, 195), (90, 80, 60), (40, 90, 60)]
_SKIN = [(225, 185, 150), (190, 140, 100), (120, 85, 60)]


class ObjectList:
    """Collects objects one by one, then freezes them into arrays."""

    def __init__(self, first_track_id: int) -> None:
        self.rows: list[tuple] = []
        self.next_id = first_track_id

    def add(
        self,
        kind: Kind,
        x: float,
        z: float,
        vx: float,
        vz: float,
        w: float,
        h: float,
        elevation: float = 0.0,
        colours: Sequence[object] = (),
        variant: int = 0,
        phase: float = 0.0,
    ) -> None:
        """One object: centre (x, z) at t = 0, velocity, size, colours, shape variant."""
        cols = np.zeros((3, 3), np.float32)
        for i, c in enumerate(colours):
            cols[i] = c
        self.rows.append(
            (int(kind), x, z, vx, vz, w, h, elevation, cols, variant, phase, self.next_id)
        )
        self.next_id += 1

    def freeze(self) -> Objects:
        if not self.rows:
            empty = np.zeros(0, np.float32)
            return Objects(
                np.zeros(0, np.int64), *(empty,) * 7, np.zeros((0, 3, 3), np.float32),
                np.zeros(0, np.int64), empty, np.zeros(0, np.int64),
            )  # fmt: skip
        cols = list(zip(*self.rows, strict=False))
        as32 = [np.asarray(c, np.float32) for c in cols[1:8]]
        return Objects(
            kind=np.asarray(cols[0], np.int64),
            x=as32[0], z=as32[1], vx=as32[2], vz=as32[3], width=as32[4], height=as32[5],
            elevation=as32[6],
            colours=np.stack(cols[8]).astype(np.float32),
            variant=np.asarray(cols[9], np.int64),
            phase=np.asarray(cols[10], np.float32),
            track_id=np.asarray(cols[11], np.int64),
        )  # fmt: skip


def freeze(lists: list[ObjectList]) -> Objects:
    merged = ObjectList(0)
    for part in lists:
        merged.rows.extend(part.rows)
    return merged.freeze()


def _lane_centres(st: Street) -> tuple[np.ndarray, int]:
    """Centres of the driving lanes, left to right, and the index of the camera's lane."""
    count = len(st.lane_marks) + 1
    width = (st.lanes_right - st.lanes_left) / count
    centres = st.lanes_left + width * (np.arange(count) + 0.5)
    return centres, int(np.argmin(np.abs(centres)))


def _parking_x(st: Street, side: int) -> float | None:
    """X of the middle of a side's parking strip, or None where the side has none."""
    outer, inner = (st.road_right, st.lanes_right) if side > 0 else (st.road_left, st.lanes_left)
    return (outer + inner) / 2 if abs(outer - inner) > 1.5 else None


def _car(
    rng: np.random.Generator, s: SceneSettings, out: ObjectList, x: float, z: float, vz: float
) -> None:
    paint = jitter(rng, _CAR_PAINTS[int(rng.integers(len(_CAR_PAINTS)))], 15, s)
    glass = jitter(rng, (40, 50, 62), 10, s)
    width, height = float(rng.uniform(1.6, 2.0)), float(rng.uniform(1.3, 1.7))
    out.add(Kind.CAR, x, z, 0, vz, width, height, 0, [paint, glass, (190, 25, 25)])


def _large_vehicle(
    rng: np.random.Generator, s: SceneSettings, out: ObjectList, x: float, z: float, vz: float
) -> None:
    kind = Kind.BUS if rng.random() < 0.4 else Kind.TRUCK
    paints = [(220, 220, 215), (200, 40, 35), (230, 190, 40), (40, 80, 150)]
    paint = jitter(rng, choice(rng, paints, s), 15, s)
    out.add(kind, x, z, 0, vz, float(rng.uniform(2.4, 2.6)), float(rng.uniform(3.0, 3.6)), 0,
            [paint, jitter(rng, (45, 55, 65), 10, s), (30, 30, 30)])  # fmt: skip


def _figure_colours(rng: np.random.Generator, s: SceneSettings) -> list[np.ndarray]:
    """Shirt, trousers, skin."""
    bases = (choice(rng, _CLOTHES, s), choice(rng, _CLOTHES, s), _SKIN[int(rng.integers(3))])
    return [jitter(rng, c, 15, s) for c in bases]


def convoy(
    rng: np.random.Generator, s: SceneSettings, st: Street, cam: Camera, out: ObjectList
) -> None:
    """Traffic going our way near our speed, placed ahead of the camera at the start.

    Vehicles in the camera's own lane are never slower than the camera, so it never drives into
    one; in the other lanes it overtakes them.
    """
    centres, ego_lane = _lane_centres(st)
    ours = centres[ego_lane:]
    span = Z_FAR * 0.7
    for _ in range(count(rng, s.cars_per_100m, span) // 2):
        lane = int(rng.integers(len(ours)))
        z = float(rng.uniform(6.0, span)) + (12.0 if lane == 0 else 0.0)
        _car(rng, s, out, float(ours[lane] + rng.normal(0.0, 0.2)), z, _follow(rng, cam, lane))
    for _ in range(count(rng, s.large_vehicles_per_100m, span)):
        lane = int(rng.integers(len(ours)))
        z = float(rng.uniform(15.0, span))
        _large_vehicle(rng, s, out, float(ours[lane]), z, _follow(rng, cam, lane))
    for _ in range(count(rng, s.riders_per_100m, span)):
        x = float(st.lanes_right - 0.6 if rng.random() < 0.7 else st.lanes_left + 0.6)
        z = float(rng.uniform(8.0, Z_FAR * 0.5))
        vz = float(max(0.0, min(cam.speed, rng.uniform(3.0, 7.0)) + rng.normal(0, 0.5)))
        frame_colour = jitter(
            rng, choice(rng, [(30, 30, 30), (160, 30, 30), (40, 70, 150)], s), 15, s
        )
        out.add(Kind.BICYCLE, x, z, 0, vz, 0.6, 1.1, 0, [frame_colour, (25, 25, 25)])
        colours, phase = _figure_colours(rng, s), float(rng.random())
        out.add(Kind.RIDER, x, z - 0.05, 0, vz, 0.5, 1.75, colours=colours, variant=1, phase=phase)


def _follow(rng: np.random.Generator, cam: Camera, lane: int) -> float:
    """Speed of a vehicle going our way in lane ``lane`` counted from ours."""
    drift = float(rng.normal(0.0, 2.5))
    return cam.speed + (abs(drift) if lane == 0 else max(drift, -cam.speed))


def traffic(
    rng: np.random.Generator, s: SceneSettings, st: Street, z0: float, out: ObjectList
) -> None:
    """Parked cars and oncoming traffic of one chunk."""
    centres, ego_lane = _lane_centres(st)
    for _ in range(count(rng, s.cars_per_100m, CHUNK_M)):
        z = float(rng.uniform(z0, z0 + CHUNK_M))
        parking = _parking_x(st, 1 if rng.random() < 0.5 else -1)
        if ego_lane == 0 or rng.random() < 0.5:  # parked along a kerb
            if parking is not None:
                _car(rng, s, out, parking, z, 0.0)
        else:
            lane = int(rng.integers(ego_lane))
            x = float(centres[lane] + rng.normal(0.0, 0.2))
            _car(rng, s, out, x, z, -float(rng.uniform(5.0, ONCOMING_SPEED)))
    if ego_lane > 0:
        for _ in range(count(rng, s.large_vehicles_per_100m, CHUNK_M)):
            x = float(centres[int(rng.integers(ego_lane))])
            z = float(rng.uniform(z0, z0 + CHUNK_M))
            _large_vehicle(rng, s, out, x, z, -float(rng.uniform(5.0, 10.0)))


def pedestrians(
    rng: np.random.Generator, s: SceneSettings, st: Street, z0: float, out: ObjectList
) -> None:
    """People on the sidewalks of one chunk: standing, walking along, or crossing the street."""
    for _ in range(count(rng, s.persons_per_100m, CHUNK_M)):
        side = -1 if rng.random() < 0.5 else 1
        inner, outer = (
            (st.road_left, st.sidewalk_left) if side < 0 else (st.road_right, st.sidewalk_right)
        )
        x = float(rng.uniform(min(inner, outer) + 0.3, max(inner, outer) - 0.3))
        z = float(rng.uniform(z0, z0 + CHUNK_M))
        vx, vz = 0.0, (int(rng.integers(3)) - 1) * float(rng.uniform(0.6, 1.8))
        if rng.random() < 0.12:  # crossing the street
            vx, vz = -side * float(rng.uniform(0.8, 1.6)), 0.0
        height = float(rng.uniform(1.5, 1.9))
        out.add(
            Kind.PERSON,
            x,
            z,
            vx,
            vz,
            height * 0.3,
            height,
            0,
            _figure_colours(rng, s),
            0,
            float(rng.random()),
        )


def street_furniture(
    rng: np.random.Generator, s: SceneSettings, st: Street, z0: float, out: ObjectList
) -> None:
    """Lamp posts with signs and traffic lights, and trees, along both kerbs of one chunk."""
    pole_colour = jitter(rng, (125, 125, 128), 20, s)  # one kind of post per chunk
    for side in (-1, 1):
        edge = st.road_left - 0.4 if side < 0 else st.road_right + 0.4
        outer = st.sidewalk_left + 0.5 if side < 0 else st.sidewalk_right - 0.5
        spacing = rng.uniform(12.0, 35.0)
        z = z0 + float(rng.uniform(0.0, spacing))
        while z < z0 + CHUNK_M:
            height = float(rng.uniform(3.5, 8.0))
            out.add(
                Kind.POLE, edge, z, 0, 0, float(rng.uniform(0.12, 0.25)), height, 0, [pole_colour]
            )
            attach = rng.random()
            if attach < 0.35:
                variant = int(rng.integers(4))  # rectangle, disc, triangle, diamond
                plate = [
                    choice(rng, [(30, 70, 170), (200, 30, 30), (230, 200, 40)], s),
                    (235, 235, 235),
                ]
                size = float(rng.uniform(0.5, 0.9))
                elev = float(rng.uniform(2.0, max(2.1, height - size)))
                out.add(Kind.SIGN, edge, z - 0.05, 0, 0, size, size, elev,
                        [jitter(rng, plate[0], 15, s), plate[1]], variant)  # fmt: skip
            elif attach < 0.6:
                lit = int(rng.integers(3))  # red, amber, green
                housing = choice(rng, [(35, 35, 32), (190, 160, 40)], s)
                out.add(Kind.LIGHT, edge, z - 0.05, 0, 0, 0.4, 1.0, max(2.2, height - 1.0),
                        [jitter(rng, housing, 10, s)], lit)  # fmt: skip
            if rng.random() < 0.4:  # a tree between the lamp posts
                tree_z = z + spacing / 2
                trunk = jitter(rng, (80, 60, 45), 10, s)
                crown = jitter(rng, (65, 110, 45), 20, s)
                tree_x = float(rng.uniform(min(edge, outer), max(edge, outer)))
                size = (float(rng.uniform(2.0, 4.5)), float(rng.uniform(4.0, 9.0)))
                phase = float(rng.random())
                out.add(Kind.TREE, tree_x, tree_z, 0, 0, *size, colours=[crown, trunk], phase=phase)
            z += float(rng.uniform(0.6, 1.4)) * spacing
