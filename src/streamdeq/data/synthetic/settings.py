"""What a generated street scene may look like: the one settings object of the generator."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ...errors import SettingsError


@dataclass(frozen=True)
class SceneSettings:
    """Size, motion, population and appearance of generated street clips.

    Ranges are ``(low, high)`` and are sampled once per scene (one seed), so every clip differs in
    camera, speed, density and lighting while a clip stays coherent over time.

    Attributes:
        height, width: frame size in pixels (Cityscapes is 1024 x 2048; 128 x 256 keeps its 1:2).
        fps: frames per second of the simulated camera (Cityscapes sequences are 17 Hz).
        ego_speed: forward speed of the camera in m/s.
        yaw_rate: largest pan rate of the camera in rad/s (either direction); pan makes the whole
            scene drift sideways.
        focal: focal length as a fraction of the width (field of view).
        horizon: height of the horizon as a fraction of the frame height, from the top.
        cars_per_100m, persons_per_100m, riders_per_100m, large_vehicles_per_100m: how many of
            each moving or parked object are placed per 100 m of street.
        texture: strength of the noise textures and shading, 0 for flat colours.
        colour_jitter: how far each clip's and each instance's colours stray from the class's
            typical colour, 0 for the typical colour (then classes are separable by colour alone).
        pixel_noise: standard deviation of the per-pixel sensor noise, in grey levels.
        ego_hood: draw the camera car's bonnet at the bottom, labelled ignore (255) as in
            Cityscapes, where the ego vehicle is a void class.
        min_box_pixels: a thing whose visible part covers fewer pixels gets no box.
    """

    height: int = 128
    width: int = 256
    fps: float = 17.0
    ego_speed: tuple[float, float] = (0.0, 14.0)
    yaw_rate: float = 0.06
    focal: tuple[float, float] = (0.55, 0.8)
    horizon: tuple[float, float] = (0.36, 0.5)
    cars_per_100m: tuple[float, float] = (4.0, 14.0)
    persons_per_100m: tuple[float, float] = (4.0, 16.0)
    riders_per_100m: tuple[float, float] = (0.0, 3.0)
    large_vehicles_per_100m: tuple[float, float] = (0.0, 2.5)
    texture: float = 1.0
    colour_jitter: float = 1.0
    pixel_noise: float = 3.0
    ego_hood: bool = True
    min_box_pixels: int = 6

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise SettingsError(
                f"scene size {self.height}x{self.width} is too small; use at least 16x16 pixels"
            )
        if self.fps <= 0:
            raise SettingsError(f"fps must be positive, got {self.fps}")
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple) and (len(value) != 2 or not value[0] <= value[1]):
                raise SettingsError(
                    f"{field.name} must be a (low, high) pair with low <= high, got {value}"
                )
            if isinstance(value, tuple) and value[0] < 0:
                raise SettingsError(f"{field.name} must not be negative, got {value}")
        for name in ("yaw_rate", "texture", "colour_jitter", "pixel_noise", "min_box_pixels"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative, got {getattr(self, name)}")
        if not (self.horizon[0] >= 0.1 and self.horizon[1] <= 0.8):
            raise SettingsError(
                f"horizon must lie within (0.1, 0.8) of the height, got {self.horizon}"
            )
        if self.focal[0] <= 0:
            raise SettingsError(f"focal must be positive, got {self.focal}")
