"""The segmentation head's fused eval-mode path computes the original head's function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from streamdeq.models import fused_head as fused_module
from streamdeq.models import get_config, list_models
from streamdeq.models.fused_head import height_weights
from streamdeq.models.heads import SegmentationHead

SEG_MODELS = [name for name in list_models() if get_config(name).task == "segmentation"]
TOL = 1e-5


def random_head(name: str, seed: int = 0, **overrides) -> SegmentationHead:
    """The head of a named config with random weights and non-trivial BN statistics, in eval
    mode (the head alone: building the whole XL model would take seconds)."""
    torch.manual_seed(seed)
    head = SegmentationHead(get_config(name, **overrides))
    randomise_bn(head, seed)
    return head.eval()


def randomise_bn(head: SegmentationHead, seed: int) -> None:
    bn = head.last_layer[1]
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn(bn.weight.shape, generator=gen))
        bn.bias.copy_(0.3 * torch.randn(bn.bias.shape, generator=gen))
        bn.running_mean.copy_(0.3 * torch.randn(bn.running_mean.shape, generator=gen))
        bn.running_var.copy_(0.3 + torch.rand(bn.running_var.shape, generator=gen))


def states(head: SegmentationHead, size: tuple[int, int], batch: int = 2, seed: int = 0):
    """Branch states as the backbone makes them: each branch half the previous, rounded up."""
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    out = []
    for channels in head.num_channels:
        out.append(torch.randn(batch, channels, height, width, generator=gen))
        height, width = (height + 1) // 2, (width + 1) // 2
    return out


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def fused_and_reference(head: SegmentationHead, z) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        assert head.uses_fused_path()
        return head(z), head.reference_forward(z)


@pytest.mark.parametrize("name", SEG_MODELS)
@pytest.mark.parametrize(("size", "one_row_bands"), [((8, 12), False), ((13, 7), True)])
def test_fused_head_equals_original_on_every_official_config(
    monkeypatch, name, size, one_row_bands
):
    if one_row_bands:  # many bands, as at full size, instead of one for the whole tiny map
        monkeypatch.setattr(fused_module, "CPU_BAND_BYTES_PER_THREAD", 1)
        monkeypatch.setattr(fused_module, "CPU_BAND_BYTES_MAX", 1)
    head = random_head(name)
    fused, reference = fused_and_reference(head, states(head, size))
    assert fused.shape == reference.shape == (2, head.last_layer[3].out_channels, *size)
    assert rel_err(fused, reference) < TOL


@pytest.mark.parametrize("band_bytes", [1, 3 * 5 * 120 * 4])
def test_fused_head_is_exact_across_bands_and_a_partial_last_band(monkeypatch, band_bytes):
    # one row per band, and 3 rows per band (13 = 4 * 3 + 1: the last band is shorter)
    monkeypatch.setattr(fused_module, "CPU_BAND_BYTES_PER_THREAD", band_bytes)
    monkeypatch.setattr(fused_module, "CPU_BAND_BYTES_MAX", band_bytes)
    head = random_head("mdeq-seg-tiny-synthetic")  # 8 + 16 + 32 + 64 = 120 channels
    z = states(head, (13, 5), batch=1)
    fused, reference = fused_and_reference(head, z)
    assert rel_err(fused, reference) < TOL


def test_fused_head_single_pixel_branches():
    head = random_head("mdeq-seg-tiny-synthetic")
    fused, reference = fused_and_reference(head, states(head, (1, 1), batch=3))
    assert rel_err(fused, reference) < TOL


def test_fused_head_under_inference_mode():
    head = random_head("mdeq-seg-tiny-synthetic")
    z = states(head, (6, 10))
    with torch.inference_mode():
        assert head.uses_fused_path()
        fused = head(z)
    with torch.no_grad():
        reference = head.reference_forward(z)
    assert rel_err(fused, reference) < TOL


@pytest.mark.parametrize(("out_size", "in_size"), [(13, 7), (8, 1), (1, 4), (6, 6)])
def test_height_weights_are_torch_bilinear_align_corners(out_size, in_size):
    column = torch.randn(1, 1, in_size, 1, dtype=torch.float64)
    expected = F.interpolate(column, size=(out_size, 1), mode="bilinear", align_corners=True)
    ours = height_weights(out_size, in_size) @ column[0, 0]
    torch.testing.assert_close(ours, expected[0, 0])


def test_training_mode_uses_batch_statistics_and_keeps_gradients():
    head = random_head("mdeq-seg-tiny-synthetic").train()
    z = [t.requires_grad_() for t in states(head, (6, 10))]
    assert not head.uses_fused_path()
    out = head(z)
    out.square().sum().backward()
    grads = [t.grad.clone() for t in z] + [p.grad.clone() for p in head.parameters()]

    # the head written out with the functional ops: upsample, concatenate, conv, BN on the
    # batch's statistics, ReLU, conv
    bn = head.last_layer[1]
    z2 = [t.detach().clone().requires_grad_() for t in z]
    params = [p.detach().clone().requires_grad_() for p in head.parameters()]
    w1, b1, gamma, beta, wf, bf = params
    size = z2[0].shape[-2:]
    up = [z2[0]] + [F.interpolate(t, size, mode="bilinear", align_corners=True) for t in z2[1:]]
    hidden = F.conv2d(torch.cat(up, dim=1), w1, b1)
    hidden = F.batch_norm(hidden, None, None, gamma, beta, training=True, eps=bn.eps)
    expected = F.conv2d(F.relu(hidden), wf, bf)
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    expected_grads = [t.grad for t in z2] + [p.grad for p in params]
    # the conv bias's gradient is zero up to rounding (BN subtracts the batch mean): an absolute
    # tolerance on the scale of the largest gradient
    scale = max(g.abs().max().item() for g in expected_grads)
    for ours, theirs in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6 * scale)


def test_eval_mode_gradients_through_the_fused_path_equal_the_original():
    head = random_head("mdeq-seg-tiny-synthetic")
    z = states(head, (7, 10))
    grads = {}
    for path in ("fused", "reference"):
        head.zero_grad()
        inputs = [t.clone().requires_grad_() for t in z]
        out = head(inputs) if path == "fused" else head.reference_forward(inputs)
        out.square().sum().backward()
        grads[path] = [t.grad for t in inputs] + [p.grad.clone() for p in head.parameters()]
    for ours, theirs in zip(grads["fused"], grads["reference"], strict=True):
        assert rel_err(ours, theirs) < 1e-5


def test_gradients_after_a_first_call_under_inference_mode():
    # what the first call caches must not be an inference tensor a later graph cannot save
    head = random_head("mdeq-seg-tiny-synthetic")
    z = states(head, (9, 11))
    with torch.inference_mode():
        head(z)
    inputs = [t.clone().requires_grad_() for t in z]
    head(inputs).sum().backward()
    assert all(t.grad is not None for t in inputs)


def test_eval_logits_do_not_depend_on_autograd():
    head = random_head("mdeq-seg-tiny-synthetic")
    z = states(head, (7, 10))
    with torch.no_grad():
        without = head(z)
    assert torch.equal(head(z), without)


def test_fold_cache_is_reused_until_a_parameter_changes():
    head = random_head("mdeq-seg-tiny-synthetic")
    z = states(head, (6, 10))
    with torch.no_grad():
        head(z)
        first = head.folded()
        head(z)
        assert head.folded() is first

    head.train()
    optimiser = torch.optim.SGD(head.parameters(), lr=0.5)
    head(z).square().mean().backward()  # a training step: new weights and running statistics
    optimiser.step()
    head.eval()
    fused, reference = fused_and_reference(head, z)
    assert head.folded() is not first
    assert rel_err(fused, reference) < TOL


def test_fold_cache_follows_load_state_dict():
    head = random_head("mdeq-seg-tiny-synthetic", seed=0)
    other = random_head("mdeq-seg-tiny-synthetic", seed=5)
    z = states(head, (6, 10))
    with torch.no_grad():
        before = head(z)
    head.load_state_dict(other.state_dict())
    fused, reference = fused_and_reference(head, z)
    assert rel_err(fused, reference) < TOL
    assert rel_err(fused, before) > 0.1


def test_fold_cache_follows_a_running_statistics_update_in_training_mode():
    head = random_head("mdeq-seg-tiny-synthetic")
    z = states(head, (6, 10))
    with torch.no_grad():
        head(z)
        head.train()(z)  # updates the BN running statistics only
    fused, reference = fused_and_reference(head.eval(), z)
    assert rel_err(fused, reference) < TOL


def test_state_dict_keys_are_the_official_ones():
    head = random_head("mdeq-seg-small-cityscapes")
    with torch.no_grad():
        head(states(head, (4, 4)))  # a fold in the cache must not show up in the state dict
    assert sorted(head.state_dict()) == sorted(
        f"last_layer.{key}"
        for key in (
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "3.weight",
            "3.bias",
        )
    )


def test_three_by_three_final_conv_runs_the_original_path():
    head = random_head("mdeq-seg-tiny-synthetic", final_conv_kernel=3)
    z = states(head, (6, 10))
    with torch.no_grad():
        assert not head.uses_fused_path()
        torch.testing.assert_close(head(z), head.reference_forward(z))


def test_use_fused_false_forces_the_original_path():
    head = random_head("mdeq-seg-tiny-synthetic")
    head.use_fused = False
    with torch.no_grad():
        assert not head.uses_fused_path()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_head_equals_original_on_cuda():
    head = random_head("mdeq-seg-small-cityscapes").cuda()
    z = [t.cuda() for t in states(head, (13, 7))]
    # cuDNN convolutions default to TF32 (10-bit mantissa): compare in full float32
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        fused, reference = fused_and_reference(head, z)
    assert rel_err(fused, reference) < TOL
