"""Numerical parity with the official MDEQ code on its own outputs (tests/fixtures, produced by
locuslab/mdeq on CPU): same checkpoint, same input, same Broyden settings."""

from __future__ import annotations

import torch

from streamdeq.models import official_tol

from .conftest import rel_err

TOLERANCE = 1e-4


def _official_solve(model, io):
    """The official forward: Broyden in its published semantics, abs tol 1e-5*sqrt(numel)."""
    with torch.no_grad():
        zeros = model.init_state(model.inject(io["input"]))
        z, result = model.solve(
            io["input"],
            solver="broyden",
            max_iter=io["f_thres"],
            tol=official_tol(zeros),
            stop_mode="abs",
            parity=True,
        )
        return z, result, model.head(z)


def test_fixed_point_matches_official_on_every_branch(official_model, official_io):
    z, _, _ = _official_solve(official_model, official_io)
    assert len(z) == len(official_io["fixed_point"]) == 4
    for ours, theirs in zip(z, official_io["fixed_point"]):
        assert ours.shape == theirs.shape
        assert rel_err(ours, theirs) < TOLERANCE


def test_logits_match_official(official_model, official_io):
    _, _, logits = _official_solve(official_model, official_io)
    assert logits.shape == official_io["logits"].shape == (1, 19, 16, 32)
    assert rel_err(logits, official_io["logits"]) < TOLERANCE


def test_parity_solve_spends_official_budget(official_model, official_io):
    # the residual of the fixture's model does not fall below the tolerance: all N iterations run
    _, result, _ = _official_solve(official_model, official_io)
    assert int(result.iters[0]) == official_io["f_thres"]
    assert result.nfev == official_io["f_thres"] + 1


def test_eval_forward_with_official_settings_gives_official_logits(official_model, official_io):
    x = official_io["input"]
    with torch.no_grad():
        tol = official_tol(official_model.init_state(official_model.inject(x)))
        logits = official_model(
            x, max_iter=official_io["f_thres"], tol=tol, stop_mode="abs", parity=True
        )
    assert rel_err(logits, official_io["logits"]) < TOLERANCE
