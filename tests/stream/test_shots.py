"""Shot changes on synthetic clips with cuts: detected at the cuts and nowhere else, reported,
and handled by the policy."""

from __future__ import annotations

import math

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.solvers import solve
from streamdeq.stream import ResetReason, ShotSettings, StreamDEQ
from streamdeq.stream.shots import RunningLevel

from .conftest import clip_with_cuts, normalise, panning_scene, states_close

CUTS = [25, 50]


def _detected(stream, frames):
    return [i for i, frame in enumerate(frames) if stream.step(frame).info.shot_change]


@pytest.fixture(scope="module")
def cut_clip():
    return clip_with_cuts(scene_frames=25, scenes=3)


@torch.no_grad()
@pytest.mark.parametrize("detect", ["both", "residual", "frame"])
@pytest.mark.parametrize("iters", [1, 4])
def test_cuts_are_detected_at_the_cuts_only(model, cut_clip, detect, iters):
    stream = StreamDEQ(model, iters=iters, shots=ShotSettings(detect=detect))
    assert _detected(stream, cut_clip) == CUTS


@torch.no_grad()
@pytest.mark.parametrize("mode", ["baseline", "keyframe", "reference"])
def test_cuts_are_detected_in_every_mode(model, cut_clip, mode):
    stream = StreamDEQ(model, mode=mode, **({} if mode == "baseline" else {"iters": 2}))
    assert _detected(stream, cut_clip) == CUTS


@torch.no_grad()
def test_a_cut_after_a_static_shot_is_detected(model):
    still = panning_scene(1, 1)[0]
    frames = [still] * 20 + panning_scene(2, 10, step=0)
    assert _detected(StreamDEQ(model, iters=2), frames) == [20]


@torch.no_grad()
def test_no_detection_on_a_continuous_clip(model):
    frames = panning_scene(7, 80, step=2)
    assert _detected(StreamDEQ(model, iters=1), frames) == []


@torch.no_grad()
def test_scores_reach_one_exactly_at_detections(model, cut_clip):
    stream = StreamDEQ(model, iters=2)
    infos = [stream.step(frame).info for frame in cut_clip]
    assert math.isnan(infos[0].shot_score)  # nothing to compare with yet
    for info in infos[5:]:
        assert info.shot_change == (info.shot_score >= 1.0)


@torch.no_grad()
def test_detection_off_reports_nothing(model, cut_clip):
    stream = StreamDEQ(model, iters=2, shots=ShotSettings(detect="off"))
    infos = [stream.step(frame).info for frame in cut_clip]
    assert not any(i.shot_change for i in infos)
    assert all(math.isnan(i.shot_score) for i in infos)


@torch.no_grad()
def test_keep_policy_changes_nothing_but_the_report(model, cut_clip):
    kept = StreamDEQ(model, iters=2, shot_policy="keep")
    blind = StreamDEQ(model, iters=2, shots=ShotSettings(detect="off"))
    for frame in cut_clip[:30]:
        a, b = kept.step(frame), blind.step(frame)
        torch.testing.assert_close(a.output, b.output)
        assert a.info.reset is None or a.info.reset is ResetReason.FIRST_FRAME


@torch.no_grad()
def test_reset_policy_solves_the_cut_frame_again_from_zeros(model, cut_clip):
    stream = StreamDEQ(model, iters=2, shot_policy="reset")
    infos = [stream.step(frame).info for frame in cut_clip[: CUTS[0]]]
    result = stream.step(cut_clip[CUTS[0]])
    injection = model.inject(normalise(cut_clip[CUTS[0]]))
    expected = solve(model.f, model.init_state(injection), (injection,), max_iter=2)
    states_close(stream.state, expected.z)
    torch.testing.assert_close(result.output, model.head(expected.z)[0])
    assert result.info.shot_change
    assert result.info.reset is ResetReason.SHOT_CHANGE
    assert result.info.iters == 2
    assert result.info.nfev == 4  # the discarded warm solve and the new one
    assert not any(i.reset is ResetReason.SHOT_CHANGE for i in infos)
    assert stream.step(cut_clip[CUTS[0] + 1]).info.reset is None


@torch.no_grad()
def test_reset_policy_in_keyframe_mode_makes_the_cut_a_keyframe(model, cut_clip):
    stream = StreamDEQ(model, iters=2, mode="keyframe", shot_policy="reset")
    infos = [stream.step(frame).info for frame in cut_clip]
    assert [i.index for i in infos if i.iters == model.config.f_thres] == [0, *CUTS]


@torch.no_grad()
def test_boost_policy_adds_iterations_at_the_cut_and_after(model, cut_clip):
    shots = ShotSettings(policy="boost", boost_iters=3, boost_frames=2)
    stream = StreamDEQ(model, iters=2, shots=shots)
    for frame in cut_clip[: CUTS[0]]:
        stream.step(frame)
    z_prev = stream.state
    result = stream.step(cut_clip[CUTS[0]])
    injection = model.inject(normalise(cut_clip[CUTS[0]]))
    warm = solve(model.f, z_prev, (injection,), max_iter=2)
    boosted = solve(model.f, warm.z, (injection,), max_iter=3)
    states_close(stream.state, boosted.z)
    assert result.info.iters == 5
    following = [stream.step(frame).info.iters for frame in cut_clip[CUTS[0] + 1 : CUTS[0] + 5]]
    assert following == [5, 5, 2, 2]


@torch.no_grad()
def test_every_cut_is_reported_whatever_the_policy(model, cut_clip):
    for policy in ("keep", "reset", "boost"):
        assert _detected(StreamDEQ(model, iters=2, shot_policy=policy), cut_clip) == CUTS


@torch.no_grad()
def test_nan_frame_is_not_a_shot_change_and_does_not_poison_the_statistics(model, cut_clip):
    stream = StreamDEQ(model, iters=2)
    frames = list(cut_clip)
    frames[10] = torch.full((3, 16, 24), float("nan"))
    assert _detected(stream, frames) == CUTS


def test_running_level_needs_warmup_and_scores_jumps():
    level = RunningLevel(smoothing=0.1)
    assert math.isnan(level.score(1.0, sigmas=4.0, min_jump=1.0, warmup=2))
    for _ in range(3):
        level.add(0.0)
    assert level.score(2.0, sigmas=4.0, min_jump=1.0, warmup=2) == pytest.approx(2.0)
    assert level.score(-5.0, sigmas=4.0, min_jump=1.0, warmup=2) < 0  # drops never count


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "restart"}, "policy must be one of keep, reset, boost"),
        ({"detect": "motion"}, "detect must be one of"),
        ({"min_ratio": 1.0}, "min_ratio"),
        ({"sigmas": -1.0}, "sigmas"),
        ({"smoothing": 0.0}, "smoothing"),
        ({"smoothing": 2.0}, "smoothing"),
        ({"warmup": 0}, "warmup"),
        ({"boost_iters": 0}, "boost_iters"),
        ({"boost_frames": -1}, "boost_frames"),
        ({"thumb_size": 0}, "thumb_size"),
        ({"min_ratio": float("nan")}, "min_ratio"),
    ],
)
def test_shot_settings_are_checked(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        ShotSettings(**kwargs)
