from __future__ import annotations

import pytest
import torch

from streamdeq.models.detection import LOSS_NAMES, DetectorConfigError, MDEQDetector

from .conftest import tiny_config


def test_training_forward_returns_the_four_losses(detector, batch):
    images, targets = batch
    losses = detector(images, targets)
    assert set(losses) == set(LOSS_NAMES)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())


def test_training_steps_lower_every_loss_on_a_fixed_batch(detector, batch):
    # the equilibrium path: implicit differentiation through the fixed point (pretrain_steps 0)
    images, targets = batch
    optimizer = torch.optim.Adam(detector.parameters(), lr=5e-3)
    # the box head trains on the first step's proposals: as the RPN improves, new proposals
    # would bring more (and harder) foreground boxes into the box losses and blur the comparison
    propose, first_proposals = detector.rpn._propose, []

    def fixed_proposals(*args):
        if not first_proposals:
            first_proposals.extend(propose(*args))
        return list(first_proposals)

    detector.rpn._propose = fixed_proposals

    def losses() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)  # the same sampled anchors and proposals whenever they are the same
        return detector(images, targets)

    first = None
    for _ in range(6):
        step_losses = losses()
        first = first or {k: v.item() for k, v in step_losses.items()}
        optimizer.zero_grad()
        sum(step_losses.values()).backward()
        optimizer.step()
    last = {k: v.item() for k, v in losses().items()}
    for name in LOSS_NAMES:
        assert last[name] < first[name], (name, first[name], last[name])


def test_gradients_reach_the_backbone_through_the_fixed_point(detector, batch):
    images, targets = batch
    sum(detector(images, targets).values()).backward()
    grads = [p.grad for p in detector.backbone.fullstage.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_detections_lie_in_the_image_with_known_labels_best_first(detector, batch):
    images, _ = batch
    detector.eval()
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2
    for det in detections:
        boxes, scores, labels = det["boxes"], det["scores"], det["labels"]
        assert boxes.shape == (scores.shape[0], 4) and labels.shape == scores.shape
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 64).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 32).all()
        assert set(labels.tolist()) <= {11, 13}
        assert (scores[:-1] >= scores[1:]).all()
        assert len(det["boxes"]) <= detector.config.roi.detections_per_image


def test_head_of_a_solved_state_equals_the_eval_forward(detector, batch):
    images, _ = batch
    detector.eval()
    with torch.no_grad():
        z, _ = detector.solve(images)
        by_parts = detector.head(z)
        whole = detector(images)
    for a, b in zip(by_parts, whole, strict=True):
        torch.testing.assert_close(a["boxes"], b["boxes"])
        torch.testing.assert_close(a["scores"], b["scores"])


def test_a_score_threshold_above_every_score_gives_empty_detections(batch):
    torch.manual_seed(0)
    detector = MDEQDetector(tiny_config(roi={"score_thresh": 1.0})).eval()
    with torch.no_grad():
        detections = detector(batch[0])
    assert all(d["boxes"].shape == (0, 4) and d["labels"].numel() == 0 for d in detections)


def test_images_without_boxes_train_on_background_only(detector, batch):
    images, _ = batch
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    losses = detector(images, empty)
    assert losses["loss_rpn_box"].item() == 0.0 and losses["loss_box_reg"].item() == 0.0
    assert losses["loss_objectness"].item() > 0


def test_config_rejects_anchor_sizes_that_do_not_match_the_levels():
    with pytest.raises(DetectorConfigError, match="anchor_sizes"):
        tiny_config(rpn={"anchor_sizes": (8.0, 16.0)})


def test_config_rejects_unknown_overrides():
    with pytest.raises(DetectorConfigError, match="nms_thresh"):
        tiny_config(roi={"nms_thresh": 0.3})


def test_config_round_trips_through_json():
    config = tiny_config()
    assert type(config).from_json(config.to_json()) == config


def test_forward_with_info_returns_the_losses_with_the_jacobian_penalty(detector, batch):
    images, targets = batch
    found = detector.forward_with_info(images, targets, max_iter=3, jac_samples=1)
    assert set(found.output) == set(LOSS_NAMES)
    assert found.jac_loss.ndim == 0 and found.jac_loss.requires_grad
    assert found.solver.nfev >= 3
    assert len(found.z) == detector.config.backbone.num_branches
