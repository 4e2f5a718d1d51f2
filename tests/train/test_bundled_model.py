"""The bundled mdeq-seg-tiny-synthetic (trained by configs/seg_mdeq_tiny_synthetic.yaml): it
loads offline, its forward solve reaches the fixed point, and it segments generated scenes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamdeq.data.synthetic import SceneSettings, generate_clip
from streamdeq.models import create_model, get_config
from streamdeq.models.zoo import get_entry
from streamdeq.train import load_recipe
from streamdeq.train.tasks import relative_residual

NAME = "mdeq-seg-tiny-synthetic"
RECIPE = Path(__file__).resolve().parents[2] / "configs" / "seg_mdeq_tiny_synthetic.yaml"
MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def model():
    return create_model(NAME, pretrained=True)


@pytest.fixture(scope="module")
def clip():
    generated = generate_clip(seed=2**20 + 5, num_frames=3, settings=SceneSettings(128, 256))
    frames = torch.from_numpy(generated.frames).permute(0, 3, 1, 2).float() / 255
    return (frames - MEAN) / STD, torch.from_numpy(generated.labels).long()


def test_the_committed_recipe_trains_the_registered_config_into_the_bundled_file():
    recipe = load_recipe(RECIPE)
    assert recipe.model.name == NAME and not recipe.model.overrides
    assert Path(recipe.output.export).name == get_entry(NAME).weights_path().name
    assert get_entry(NAME).weights_path().is_file()


def test_the_forward_solve_reaches_the_fixed_point_in_n_iterations(model, clip):
    frames, _ = clip
    with torch.no_grad():
        z, _ = model.solve(frames[:1], max_iter=get_config(NAME).f_thres)
        residual = relative_residual(model, model.inject(frames[:1]), z)
    assert residual.item() < 1e-5


def test_warm_starting_from_the_previous_frame_beats_zeros_at_two_iterations(model, clip):
    frames, _ = clip
    with torch.no_grad():
        z_prev, _ = model.solve(frames[:1])
        warm, _ = model.solve(frames[1:2], z0=z_prev, max_iter=2)
        cold, _ = model.solve(frames[1:2], max_iter=2)
        injection = model.inject(frames[1:2])
        assert relative_residual(model, injection, warm) < 0.2 * relative_residual(
            model, injection, cold
        )


def test_it_labels_most_pixels_of_a_generated_frame_correctly(model, clip):
    frames, labels = clip
    with torch.no_grad():
        z, _ = model.solve(frames[-1:])
        logits = torch.nn.functional.interpolate(
            model.head(z), size=labels.shape[-2:], mode="bilinear", align_corners=False
        )
    labelled = labels[-1] != 255
    accuracy = (logits.argmax(1)[0] == labels[-1])[labelled].float().mean()
    assert accuracy > 0.6
