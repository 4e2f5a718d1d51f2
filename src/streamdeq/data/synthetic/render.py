"""Drawing one frame of a scene: ground and sky, facades, billboard objects, the ego bonnet.

A pinhole camera at height h looks along +Z: a ground point (X, Z) lands at column
``cx + f (X - x_cam) / (Z - z_cam)`` and row ``horizon + f h / (Z - z_cam)``, so the road narrows
to a vanishing point and everything drifts as the camera drives and pans. Layers are painted back
to front (sky, ground, facades, objects far to near, bonnet); each layer writes colour, class and
instance through one mask, which keeps image and labels consistent by construction.

All per-pixel work is vectorised numpy on float32; a 128 x 256 frame takes a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .shapes import SHAPES, part_palettes
from .world import (
    CLASS_OF_FACADE,
    CLASS_OF_KIND,
    IGNORE,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    THING_KINDS,
    Z_FAR,
    Z_NEAR,
    Facade,
    FacadeRow,
    Kind,
    Scene,
)

_VEHICLES = (Kind.CAR, Kind.TRUCK, Kind.BUS)
_GROUND = np.zeros(256, bool)
_GROUND[[ROAD, SIDEWALK, TERRAIN]] = True


@dataclass(frozen=True)
class RenderedFrame:
    """One drawn frame.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        label: (H, W) uint8 train IDs, 255 = ignore.
        instance: (H, W) int64 track id of the object drawn at each pixel, 0 where none.
        boxes: (N, 4) float32 xyxy pixel boxes of the visible things (x1, y1 exclusive).
        box_classes: (N,) int64 train IDs of those things.
        track_ids: (N,) int64.
    """

    image: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    boxes: np.ndarray
    box_classes: np.ndarray
    track_ids: np.ndarray


@dataclass
class _Canvas:
    colour: np.ndarray  # (H, W, 3) float32
    label: np.ndarray  # (H, W) uint8
    instance: np.ndarray  # (H, W) int64
    ys: np.ndarray  # (H, 1) pixel-centre rows
    xs: np.ndarray  # (1, W) pixel-centre columns


@dataclass(frozen=True)
class _View:
    """The camera at one instant."""

    f: float
    h: float
    cx: float
    horizon: float
    x_cam: float
    z_cam: float
    t: float


def render_frame(scene: Scene, index: int, noise_seed: int | None = None) -> RenderedFrame:
    """Draw frame ``index`` (0-based, at ``index / fps`` seconds) of ``scene``.

    The per-pixel sensor noise is seeded from (scene seed, index) unless ``noise_seed`` is given,
    so a frame is the same whenever it is drawn.
    """
    s = scene.settings
    t = index / s.fps
    x_cam, z_cam, shift, horizon = scene.camera.pose(t)
    view = _View(
        scene.camera.focal_px, scene.camera.height_m, s.width / 2 + shift, horizon, x_cam, z_cam, t
    )
    ys = (np.arange(s.height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(s.width, dtype=np.float32) + 0.5)[None, :]
    canvas = _Canvas(
        colour=np.empty((s.height, s.width, 3), np.float32),
        label=np.full((s.height, s.width), SKY, np.uint8),
        instance=np.zeros((s.height, s.width), np.int64),
        ys=ys,
        xs=xs,
    )
    _sky(scene, view, canvas)
    _ground(scene, view, canvas)
    for side in (-1, 1):
        _facade(scene, view, canvas, side)
    drawn = _objects(scene, view, canvas)
    _bonnet(scene, canvas)
    boxes, classes, tracks = _boxes(scene, canvas, drawn)
    seed = noise_seed if noise_seed is not None else (scene.seed, index)
    image = _expose(scene, canvas.colour, np.random.default_rng(seed))
    return RenderedFrame(image, canvas.label, canvas.instance, boxes, classes, tracks)


def _noise(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smooth value noise in [-1, 1] at lattice coordinates (a, b), bilinear, tiling every 64."""
    a0, b0 = np.floor(a), np.floor(b)
    fa, fb = (a - a0).astype(np.float32), (b - b0).astype(np.float32)
    i0 = a0.astype(np.int32) & 63
    j0 = b0.astype(np.int32) & 63
    flat = table.ravel()
    corner = (i0 << 6) + j0  # flat index into the 64 x 64 lattice
    right = (i0 << 6) + ((j0 + 1) & 63)
    down = (((i0 + 1) & 63) << 6) + j0
    diagonal = (((i0 + 1) & 63) << 6) + ((j0 + 1) & 63)
    top = flat.take(corner) + (flat.take(right) - flat.take(corner)) * fb
    bottom = flat.take(down) + (flat.take(diagonal) - flat.take(down)) * fb
    return top + (bottom - top) * fa


def _sky(scene: Scene, view: _View, canvas: _Canvas) -> None:
    """Sky above the horizon: a gradient with clouds that drift as the camera pans."""
    look = scene.look
    rows = _first_ground_row(view, scene.settings.height)
    ys = canvas.ys[:rows]
    up = np.clip((view.horizon - ys) / max(view.horizon, 1.0), 0.0, 1.0) ** 0.7  # (R, 1)
    gradient = look.sky_horizon + (look.sky_top - look.sky_horizon) * up[..., None]  # (R, 1, 3)
    # separable (a product of a row and a column profile): a 2-D texture at the cost of H + W
    across = _noise(look.noise_table, np.full_like(canvas.xs, 5.0), (canvas.xs - view.cx) / 40.0)
    down = _noise(look.noise_table, ys / max(view.horizon, 1.0) * 3.0, np.full_like(ys, 9.0))
    clouds = np.clip(across * down * 2.0, 0.0, 1.0) * look.clouds * up
    canvas.colour[:rows] = gradient + (255.0 - gradient) * clouds[..., None]


def _first_ground_row(view: _View, height: int) -> int:
    """Index of the first row whose pixel centre lies below the horizon."""
    return int(np.clip(np.floor(view.horizon - 0.5) + 1, 0, height))


def _ground(scene: Scene, view: _View, canvas: _Canvas) -> None:
    """Road, lane markings, kerbs, sidewalks and verges below the horizon."""
    first = _first_ground_row(view, scene.settings.height)
    ys = canvas.ys[first:]
    dy = np.maximum(ys - view.horizon, 0.25)
    z_rel = np.minimum(view.f * view.h / dy, Z_FAR * 2)  # (R, 1)
    x_world = (canvas.xs - view.cx) * (z_rel / view.f) + view.x_cam  # (R, W)
    z_world = z_rel + view.z_cam
    st, look = scene.street, scene.look

    on_road = (x_world >= st.road_left) & (x_world <= st.road_right)
    on_walk = (x_world >= st.sidewalk_left) & (x_world <= st.sidewalk_right) & ~on_road
    label = np.where(on_road, ROAD, np.where(on_walk, SIDEWALK, TERRAIN)).astype(np.uint8)
    table = np.stack([look.road, look.marking, look.sidewalk, look.curb, look.terrain])
    material = np.where(on_road, 0, np.where(on_walk, 2, 4))
    dash_len, period = st.dash
    dashed = np.mod(z_world, period) < dash_len
    for mark in st.lane_marks:
        material = np.where((np.abs(x_world - mark) < 0.08) & dashed, 1, material)
    kerb = on_walk & (
        (np.abs(x_world - st.road_left) < 0.2) | (np.abs(x_world - st.road_right) < 0.2)
    )
    material = np.where(kerb, 3, material)
    colour = table[material]

    texture = scene.settings.texture
    if texture > 0:
        grain = _noise(look.noise_table, x_world * 0.9, z_world * 0.35)
        tiles = (
            on_walk & ((np.mod(x_world, 0.9) < 0.06) | (np.mod(z_world, 0.9) < 0.06)) & (z_rel < 25)
        )
        shade = (
            1.0
            + texture * (0.1 * grain + 0.25 * (label == TERRAIN) * grain)
            - 0.12 * texture * tiles
        )
        colour *= shade[..., None]
    fog = 1.0 - np.exp(-z_rel / look.fog_m)  # (R, 1)
    colour += (look.haze - colour) * fog[..., None]
    canvas.colour[first:] = colour
    canvas.label[first:] = label


def _facade(scene: Scene, view: _View, canvas: _Canvas, side: int) -> None:
    """Buildings, hedges, walls and fences on the vertical plane along one side of the street."""
    st, look, width = scene.street, scene.look, scene.settings.width
    row: FacadeRow = scene.left if side < 0 else scene.right
    x_rel = (st.facade_left if side < 0 else st.facade_right) - view.x_cam
    if x_rel * side <= 0.1:
        return
    columns = np.arange(width)
    dx = canvas.xs[0] - view.cx
    keep = dx * side > 0.5
    if not keep.any():
        return
    cols = columns[keep]
    z_rel = view.f * x_rel / dx[keep]  # (C,)
    visible = (z_rel > 0.3) & (z_rel < Z_FAR)
    z_world = z_rel + view.z_cam
    k = np.clip(np.searchsorted(row.start, z_world, side="right") - 1, 0, len(row.start) - 1)
    kind = row.kind[k]
    height = row.height[k].copy()
    bushy = kind == Facade.VEGETATION
    if bushy.any():
        height[bushy] *= 0.85 + 0.25 * _noise(
            look.noise_table, z_world[bushy] * 0.4, k[bushy] * 7.0
        )
    top = view.horizon + view.f * (view.h - height) / z_rel
    bottom = view.horizon + view.f * view.h / z_rel
    standing = visible & (kind != Facade.OPEN)
    if not standing.any():
        return
    # only the rows some stretch reaches: facades are mostly short columns near the horizon
    first = int(np.clip(np.floor(top[standing].min()), 0, len(canvas.ys)))
    last = int(np.clip(np.ceil(bottom[standing].max()) + 1, first, len(canvas.ys)))
    ys = canvas.ys[first:last]  # (R, 1)
    mask = standing[None, :] & (ys >= top) & (ys < bottom)
    if not mask.any():
        return
    y_world = view.h - (ys - view.horizon) * (z_rel / view.f)  # (H, C)
    colour = np.broadcast_to(row.colour[k], (len(ys), len(cols), 3)).copy()
    along = np.mod(z_world - row.start[k], row.window_pitch[k]) / row.window_pitch[k]
    floor = np.mod(y_world, row.floor_pitch[k]) / row.floor_pitch[k]
    window = (
        (kind == Facade.BUILDING)
        & (along > 0.25)
        & (along < 0.75)
        & (floor > 0.3)
        & (floor < 0.8)
        & (y_world > 1.8)
        & (y_world < height - 0.8)
    )
    colour[window] = np.broadcast_to(row.window_colour[k], colour.shape)[window]
    texture = scene.settings.texture
    if texture > 0:
        grain = _noise(look.noise_table, y_world * 1.3 + 31.0, z_world * 1.1)
        strength = np.where(
            kind == Facade.VEGETATION, 0.35, np.where(kind == Facade.FENCE, 0.15, 0.07)
        )
        slats = (kind == Facade.FENCE) & (np.mod(z_world * 3.0, 1.0) < 0.3)
        shade = (1.0 + texture * strength * grain - 0.25 * texture * slats) * (
            look.sun_left if side < 0 else 2.0 - look.sun_left
        )
        colour *= shade[..., None]
    fog = 1.0 - np.exp(-z_rel / look.fog_m)
    colour += (look.haze - colour) * fog[:, None]
    label = CLASS_OF_FACADE[kind]
    region = slice(int(cols[0]), int(cols[-1]) + 1)  # kept columns are contiguous
    np.copyto(canvas.colour[first:last, region], colour, where=mask[..., None])
    np.copyto(canvas.label[first:last, region], np.broadcast_to(label, mask.shape), where=mask)


def _objects(scene: Scene, view: _View, canvas: _Canvas) -> list[tuple[int, int, int, int, int]]:
    """Draw the objects in view far to near; return (index, r0, r1, c0, c1) of each drawn one."""
    obj, s = scene.objects, scene.settings
    if len(obj) == 0:
        return []
    z_rel = obj.z + obj.vz * view.t - view.z_cam
    x_rel = obj.x + obj.vx * view.t - view.x_cam
    near = np.maximum(z_rel, Z_NEAR)
    scale = view.f / near
    x0 = view.cx + (x_rel - obj.width / 2) * scale
    x1 = view.cx + (x_rel + obj.width / 2) * scale
    y1 = view.horizon + (view.h - obj.elevation) * scale
    y0 = view.horizon + (view.h - obj.elevation - obj.height) * scale
    c0 = np.ceil(x0 - 0.5).astype(np.int64)
    c1 = np.ceil(x1 - 0.5).astype(np.int64)
    thin = (obj.kind == Kind.POLE) & (c1 == c0)
    c1 = np.where(thin, c0 + 1, c1)  # far poles stay one pixel wide rather than vanish
    r0 = np.clip(np.ceil(y0 - 0.5).astype(np.int64), 0, s.height)
    r1 = np.clip(np.ceil(y1 - 0.5).astype(np.int64), 0, s.height)
    cc0, cc1 = np.clip(c0, 0, s.width), np.clip(c1, 0, s.width)
    in_view = (z_rel > Z_NEAR) & (z_rel < Z_FAR) & (cc1 > cc0) & (r1 > r0)
    order = np.flatnonzero(in_view)
    order = order[np.argsort(-z_rel[order], kind="stable")]
    # per-object work below is on tiny arrays, where numpy's per-call cost dominates: hoist
    # everything per object into plain Python numbers once, and blend shade and haze in one step
    moving = (np.abs(obj.vx) + np.abs(obj.vz) > 0.1).astype(np.float32)
    anim = (obj.phase + 1.8 * view.t * moving).tolist()
    haze_weight = (1.0 - np.exp(-np.maximum(z_rel, 0.0) / scene.look.fog_m)).astype(np.float32)
    haze = scene.look.haze * haze_weight[:, None]  # (N, 3)
    keep = 1.0 - haze_weight  # (N,)
    kinds, variants, tracks = obj.kind.tolist(), obj.variant.tolist(), obj.track_id.tolist()
    x0l, x1l, y0l, y1l = x0.tolist(), x1.tolist(), y0.tolist(), y1.tolist()
    r0l, r1l, c0l, c1l = r0.tolist(), r1.tolist(), cc0.tolist(), cc1.tolist()
    xs, ys, texture = canvas.xs[0], canvas.ys[:, 0], s.texture
    palettes = part_palettes(obj.colours, obj.kind, obj.variant)
    drawn = []
    for i in order.tolist():
        kind = kinds[i]
        if kind in _VEHICLES:
            _shadow(canvas, x0l[i], x1l[i], y1l[i], s)
        u = (xs[c0l[i] : c1l[i]] - x0l[i]) / max(x1l[i] - x0l[i], 1e-3)
        v = (ys[r0l[i] : r1l[i]] - y0l[i]) / max(y1l[i] - y0l[i], 1e-3)
        mask, part = SHAPES[kind](u, v, variants[i], anim[i])
        colour = palettes[i][part]  # (h, w, 3)
        if texture > 0:
            shade = (1.08 - 0.22 * texture * v[:, None]) * keep[i]
            if kind == Kind.TREE:
                grain = _noise(scene.look.noise_table, v[:, None] * 7.0 + 3.1 * i, u[None, :] * 5.0)
                shade = shade + (0.3 * texture * keep[i]) * grain
            colour *= shade[..., None]
        else:
            colour *= keep[i]
        colour += haze[i]
        box = (slice(r0l[i], r1l[i]), slice(c0l[i], c1l[i]))
        np.copyto(canvas.colour[box], colour, where=mask[..., None])
        canvas.label[box][mask] = CLASS_OF_KIND[kind]
        canvas.instance[box][mask] = tracks[i]
        drawn.append((i, r0l[i], r1l[i], c0l[i], c1l[i]))
    return drawn


def _shadow(canvas: _Canvas, x0: float, x1: float, y_ground: float, s) -> None:
    """Darken the ground just under a vehicle (image only: the ground keeps its class)."""
    extent = max(x1 - x0, 1.0)
    r0 = min(max(int(y_ground - 0.06 * extent), 0), s.height)
    r1 = min(max(int(y_ground + 0.05 * extent + 1), 0), s.height)
    c0 = min(max(int(x0 - 0.05 * extent), 0), s.width)
    c1 = min(max(int(x1 + 0.05 * extent), 0), s.width)
    if r1 <= r0 or c1 <= c0:
        return
    ground = _GROUND[canvas.label[r0:r1, c0:c1]]
    canvas.colour[r0:r1, c0:c1] *= np.where(ground, 0.55, 1.0)[..., None].astype(np.float32)


def _bonnet(scene: Scene, canvas: _Canvas) -> None:
    """The camera car's bonnet along the bottom edge: void (255) in Cityscapes."""
    look, s = scene.look, scene.settings
    if look.hood_rows <= 0:
        return
    first = int(s.height * (1.0 - look.hood_rows))
    ys = canvas.ys[first:]
    across = (canvas.xs - s.width / 2) / (s.width / 2)  # (1, W) in [-1, 1]
    top = s.height * (1.0 - look.hood_rows * (1.0 - 0.6 * across**2))
    mask = ys >= top  # (R, W)
    depth = np.clip((ys - top) / (s.height * look.hood_rows), 0.0, 1.0)[..., None]
    colour = look.hood * (1.25 - 0.5 * depth) + 0.15 * look.sky_horizon * (1 - depth)
    np.copyto(canvas.colour[first:], colour, where=mask[..., None])
    canvas.label[first:][mask] = IGNORE
    canvas.instance[first:][mask] = 0


def _boxes(scene: Scene, canvas: _Canvas, drawn: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tight boxes around the visible pixels of each drawn thing, ordered by track id."""
    obj = scene.objects
    rows = []
    for i, r0, r1, c0, c1 in drawn:
        if int(obj.kind[i]) not in THING_KINDS:
            continue
        visible = canvas.instance[r0:r1, c0:c1] == obj.track_id[i]
        if visible.sum() < max(scene.settings.min_box_pixels, 1):
            continue
        ys = np.flatnonzero(visible.any(axis=1))
        xs = np.flatnonzero(visible.any(axis=0))
        box = (c0 + xs[0], r0 + ys[0], c0 + xs[-1] + 1, r0 + ys[-1] + 1)
        rows.append((int(obj.track_id[i]), box, int(CLASS_OF_KIND[obj.kind[i]])))
    rows.sort()
    boxes = np.asarray([r[1] for r in rows], np.float32).reshape(-1, 4)
    classes = np.asarray([r[2] for r in rows], np.int64)
    tracks = np.asarray([r[0] for r in rows], np.int64)
    return boxes, classes, tracks


def _expose(scene: Scene, colour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White balance, exposure and sensor noise, then quantise to uint8."""
    look, s = scene.look, scene.settings
    colour *= look.gain * look.brightness
    if s.pixel_noise > 0:
        bank = _noise_bank(s.height, s.width)
        dy, dx = rng.integers(0, s.height), rng.integers(0, s.width)
        colour += bank[dy : dy + s.height, dx : dx + s.width] * np.float32(s.pixel_noise)
    return np.clip(colour, 0, 255, out=colour).astype(np.uint8)


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> np.ndarray:
    """(2H, 2W, 3) unit Gaussian noise; each frame adds a randomly placed (H, W) window of it.

    Drawing fresh noise for every frame costs more than the rest of the frame; a window at a
    random offset is as good for a model that must not rely on any pixel's exact value.
    """
    bank = np.random.default_rng(0).standard_normal((2 * height, 2 * width, 3), dtype=np.float32)
    bank.setflags(write=False)
    return bank
