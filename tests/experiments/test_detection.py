"""Fig. 8 and Table 1 (detection) on a fake detector whose accuracy needs a converged state, and
on a tiny random MDEQ detector; the generic table1 and fig5 on the same detector."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.experiments import fig5, table1
from streamdeq.experiments.detection import (
    DetectionClip,
    detection_clip_from_item,
    fig8,
    table1_detect,
    vid_detection_clips,
)

CAR = 13
#: The fake's state is the channel-mean of the normalised frame at its fixed point: 2.44 on a
#: white pixel. A pixel is "seen" above 2.2, which M fixed-point steps from zeros reach only
#: for M >= 4 (2.44 (1 - 0.5^M)); a stream gets there after 4 frames at M = 1, 2 at M = 2.
SEEN = 2.2


class ConvergenceDetector:
    """A streamable fake: z <- (z + x) / 2 per step (fixed point z* = x, the frame's channel
    mean); the head boxes the pixels of z above ``SEEN``. Accurate only near the fixed point."""

    input_multiple = 1
    config = SimpleNamespace(f_thres=12, task="detection")

    def inject(self, x):
        return [x.mean(dim=1, keepdim=True)]

    def init_state(self, injection):
        return [torch.zeros_like(injection[0])]

    def f(self, z, injection):
        return [0.5 * z[0] + 0.5 * injection[0]]

    def head(self, z):
        detections = []
        for plane in z[0][:, 0]:
            ys, xs = torch.nonzero(plane > SEEN, as_tuple=True)
            if len(xs) == 0:
                boxes = torch.zeros(0, 4)
            else:
                boxes = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]).float()
            detections.append(
                {
                    "boxes": boxes,
                    "scores": torch.full((len(boxes),), 0.9),
                    "labels": torch.full((len(boxes),), CAR),
                }
            )
        return detections


def square_clip(name: str, num_frames: int, x0: int = 4) -> DetectionClip:
    """A white 10x10 square moving right one pixel a frame on black; its box on every frame."""
    frames = np.zeros((num_frames, 24, 40, 3), dtype=np.uint8)
    targets = {}
    for t in range(num_frames):
        x = x0 + t
        frames[t, 6:16, x : x + 10] = 255
        targets[t] = {"boxes": np.array([[x, 6, x + 10, 16]], np.float32), "labels": [CAR]}
    return DetectionClip(name, frames, targets=targets)


FIXED_POINT = {"solver": "fixed_point"}  # the fake's arithmetic above is for plain steps


@pytest.fixture
def clips():
    return [square_clip("a", 6), square_clip("b", 6, x0=10)]


def _row(rows, **match):
    (row,) = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return row


def test_fig8_streaming_beats_non_streaming_at_equal_iterations(clips):
    rows = fig8(ConvergenceDetector(), clips, iters=(1, 2), **FIXED_POINT).rows
    assert _row(rows, mode="non-streaming", M=1)["map50"] == 0.0
    assert _row(rows, mode="non-streaming", M=2)["map50"] == 0.0
    assert _row(rows, mode="stream", M=1, offset=6)["map50"] == pytest.approx(1.0)
    assert _row(rows, mode="stream", M=2, offset=2)["map50"] == pytest.approx(1.0)
    assert _row(rows, mode="baseline")["map50"] == pytest.approx(1.0)


def test_fig8_at_offset_one_stream_is_the_non_streaming_model(clips):
    rows = fig8(ConvergenceDetector(), clips, iters=(1, 4), **FIXED_POINT).rows
    for m in (1, 4):
        streamed = _row(rows, mode="stream", M=m, offset=1)
        assert streamed["map50"] == _row(rows, mode="non-streaming", M=m)["map50"]


def test_fig8_accuracy_only_grows_with_offset_on_a_static_scene():
    clip = square_clip("still", 5)
    frames = np.repeat(clip.frames[:1], 5, axis=0)
    still = DetectionClip("still", frames, targets={4: clip.targets[0]})
    rows = fig8(ConvergenceDetector(), [still], iters=(1,), **FIXED_POINT).rows
    curve = [_row(rows, mode="stream", M=1, offset=k)["map50"] for k in range(1, 6)]
    assert curve == sorted(curve) and curve[0] == 0.0 and curve[-1] == pytest.approx(1.0)


def test_fig8_rows_cover_every_scheme_and_offset(clips):
    result = fig8(ConvergenceDetector(), clips, iters=(1, 2), offsets=(1, 3), **FIXED_POINT)
    keys = [(r["mode"], r["M"], r["offset"]) for r in result.rows]
    assert keys == [
        ("stream", 1, 1),
        ("stream", 1, 3),
        ("stream", 2, 1),
        ("stream", 2, 3),
        ("non-streaming", 1, None),
        ("non-streaming", 2, None),
        ("baseline", None, None),
    ]
    assert all(r["num_images"] == 2 for r in result.rows)
    assert result.meta["f_thres"] == 12


def test_fig8_saves_csv_and_png(clips, tmp_path):
    result = fig8(ConvergenceDetector(), clips, iters=(1,), offsets=(1, 2), **FIXED_POINT)
    csv_path, png_path = result.save(tmp_path / "out")
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.rows) and "map50" in rows[0]
    assert png_path.read_bytes()[:4] == b"\x89PNG"


def test_table1_detect_puts_the_baseline_first_at_speedup_one(clips):
    rows = table1_detect(ConvergenceDetector(), clips, iters=(1, 4), **FIXED_POINT).rows
    assert [(r["mode"], r["M"]) for r in rows] == [
        ("baseline", None),
        ("stream", 1),
        ("stream", 4),
        ("baseline", 1),
        ("baseline", 4),
    ]
    assert rows[0]["speedup"] == 1.0
    assert [r["iters_per_frame"] for r in rows] == [12, 1, 4, 1, 4]
    assert all(r["fps"] > 0 for r in rows)


def test_table1_detect_scores_the_last_frame_like_fig8(clips):
    rows = table1_detect(ConvergenceDetector(), clips, iters=(1,), **FIXED_POINT).rows
    assert _row(rows, mode="stream", M=1)["map50"] == pytest.approx(1.0)
    assert _row(rows, mode="baseline", M=1)["map50"] == 0.0
    assert all(r["num_images"] == len(clips) for r in rows)


def test_table1_detect_can_score_every_frame(clips):
    rows = table1_detect(
        ConvergenceDetector(), clips, iters=(1,), evaluate="all", **FIXED_POINT
    ).rows
    assert all(r["num_images"] == 12 for r in rows)
    # the first frames of a stream at M = 1 are not yet converged: below the last frame's 1.0
    assert _row(rows, mode="stream", M=1)["map50"] < 1.0


DETECTION_COLUMNS = ("map50", "map", "voc_map50", "num_images")


def test_table1_on_a_detector_gives_table1_detect_s_columns_and_numbers(clips):
    generic = table1(ConvergenceDetector(), clips, iters=(1, 4), **FIXED_POINT)
    named = table1_detect(ConvergenceDetector(), clips, iters=(1, 4), **FIXED_POINT)
    assert (generic.name, named.name) == ("table1", "table1_detect")
    assert list(generic.rows[0]) == list(named.rows[0])
    assert list(generic.rows[0])[4:8] == list(DETECTION_COLUMNS)
    scores = ("scheme", "mode", "M", "iters_per_frame", *DETECTION_COLUMNS)
    assert [{k: r[k] for k in scores} for r in generic.rows] == [
        {k: r[k] for k in scores} for r in named.rows
    ]


def test_fig5_of_streamdeq_on_a_detector_is_fig8(clips):
    generic = fig5(ConvergenceDetector(), clips, iters=(1, 2), modes=("stream",), **FIXED_POINT)
    named = fig8(ConvergenceDetector(), clips, iters=(1, 2), **FIXED_POINT)
    assert (generic.name, named.name) == ("fig5", "fig8")
    assert generic.rows == named.rows
    assert generic.meta == named.meta


@pytest.mark.parametrize(("experiment", "name"), [(fig8, "fig8"), (table1_detect, "table1-detect")])
def test_detection_experiments_refuse_a_segmentation_model_in_one_line(model, experiment, name):
    from .conftest import panning_clip

    with pytest.raises(SettingsError) as raised:
        experiment(model, [panning_clip(1)], iters=(1,))
    assert str(raised.value) == (
        f"{name} scores detections, but the model is a segmentation model: give a detection "
        "model such as --model mdeq-det-tiny-synthetic"
    )


def test_a_detector_is_not_scored_on_segmentation_clips():
    from .conftest import panning_clip

    with pytest.raises(SettingsError, match="annotated for segmentation.*give clips with boxes"):
        table1(ConvergenceDetector(), [panning_clip(1)], iters=(1,))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: fig8(ConvergenceDetector(), c, offsets=(0, 2)), "offsets must be between"),
        (lambda c: fig8(ConvergenceDetector(), c, offsets=(7,)), "shortest clip's length 6"),
        (lambda c: fig8(ConvergenceDetector(), [], iters=(1,)), "at least one clip"),
        (lambda c: fig8(ConvergenceDetector(), c, iters=(0,)), "integers? >= 1"),
        (lambda c: table1_detect(ConvergenceDetector(), c, evaluate="first"), "evaluate must"),
        (lambda c: table1_detect(ConvergenceDetector(), [object()]), "DetectionClip"),
    ],
)
def test_bad_arguments_raise_settings_errors(clips, call, message):
    with pytest.raises(SettingsError, match=message):
        call(clips)


def test_fig8_needs_boxes_on_the_last_frame(clips):
    unlabelled = DetectionClip("u", clips[0].frames, targets={0: clips[0].targets[0]})
    with pytest.raises(SettingsError, match="no boxes for it"):
        fig8(ConvergenceDetector(), [unlabelled])


def test_clip_rejects_a_target_past_its_end():
    with pytest.raises(SettingsError, match="boxes for frame 3"):
        DetectionClip(
            "x", np.zeros((2, 4, 4, 3), np.uint8), targets={3: {"boxes": [], "labels": []}}
        )


def test_vid_clips_become_detection_clips(tmp_path):
    from tests.data.test_imagenet_vid import write_vid_root

    root = write_vid_root(tmp_path / "ILSVRC2015")
    (clip,) = vid_detection_clips(root, frames_per_clip=3, resize=None)
    assert clip.frames.shape == (3, 60, 80, 3)
    assert clip.target_at(2)["labels"].tolist() == [0, 29]  # airplane, zebra
    rows = fig8(ConvergenceDetector(), [clip], iters=(1,), offsets=(1,), **FIXED_POINT).rows
    assert all(r["num_images"] == 1 for r in rows)


def test_clip_from_item_reads_classes_or_labels():
    frames = np.zeros((1, 4, 4, 3), np.uint8)
    for key in ("classes", "labels"):
        item = {"frames": frames, "targets": [{"boxes": torch.zeros(0, 4), key: torch.zeros(0)}]}
        assert detection_clip_from_item(item).target_at(0)["labels"].dtype == np.int64


def tiny_detector():
    from streamdeq.models import MDEQConfig
    from streamdeq.models.detection import (
        DetectorConfig,
        MDEQDetector,
        RoIHeadSettings,
        RPNSettings,
    )

    torch.manual_seed(0)
    backbone = MDEQConfig(
        task="segmentation",
        num_branches=2,
        num_channels=(4, 8),
        num_blocks=(1, 1),
        expansion=1,
        num_groups=2,
        dropout=0.0,
        downsample_times=2,
        f_thres=4,
        b_thres=4,
        num_layers=2,
        num_classes=1,
    )
    config = DetectorConfig(
        backbone=backbone,
        class_ids=(CAR,),
        class_names=("car",),
        fpn_channels=8,
        rpn=RPNSettings(
            anchor_sizes=(8.0, 16.0, 32.0), pre_nms_top_n_test=50, post_nms_top_n_test=20
        ),
        roi=RoIHeadSettings(
            representation_size=16,
            canonical_scale=16.0,
            canonical_level=3,
            score_thresh=0.0,
            detections_per_image=10,
        ),
    )
    return MDEQDetector(config).eval()


def test_a_tiny_mdeq_detector_runs_both_experiments(tmp_path):
    detector = tiny_detector()
    clip = square_clip("a", 2)
    frames = np.zeros((2, 32, 64, 3), np.uint8)
    frames[:, :24, :40] = clip.frames
    clip = DetectionClip("a", frames, targets=clip.targets)
    figure = fig8(detector, [clip], iters=(1,))
    streamed = _row(figure.rows, mode="stream", M=1, offset=1)
    assert streamed["map50"] == _row(figure.rows, mode="non-streaming", M=1)["map50"]
    assert all(not math.isnan(r["map50"]) for r in figure.rows)
    table = table1_detect(detector, [clip], iters=(1,), non_streaming=False)
    assert [r["iters_per_frame"] for r in table.rows] == [4, 1]
    assert len(table.save(tmp_path)) == 2


def test_generated_segmentation_clips_are_drawn_again_with_their_boxes():
    from streamdeq.experiments import generated_clips
    from streamdeq.experiments.detection import generated_detection_clips, with_boxes

    (converted,) = with_boxes(generated_clips(1, 2))
    (direct,) = generated_detection_clips(1, 2)
    assert converted.name == direct.name == "synthetic_val_000000"
    np.testing.assert_array_equal(converted.frames, direct.frames)
    for t in range(2):
        np.testing.assert_array_equal(converted.targets[t]["boxes"], direct.targets[t]["boxes"])
        assert set(direct.targets[t]["labels"].tolist()) <= {11, 12, 13, 14, 15, 18}
    assert sum(len(direct.targets[t]["labels"]) for t in range(2)) > 0


def test_a_clip_that_is_not_the_generated_one_of_its_name_is_refused():
    from streamdeq.experiments import Clip
    from streamdeq.experiments.detection import with_boxes

    impostor = Clip("synthetic_val_000000", np.zeros((2, 128, 256, 3), np.uint8))
    with pytest.raises(SettingsError, match="not the default generated clip"):
        with_boxes([impostor])
    with pytest.raises(SettingsError, match="need clips with boxes"):
        with_boxes([Clip("frankfurt_000000_000294", np.zeros((1, 4, 4, 3), np.uint8))])


def _fig8_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    clips = [square_clip("a", 5), square_clip("b", 5, x0=10), square_clip("c", 5, x0=2)]
    rows = fig8(ConvergenceDetector(), clips, iters=(1, 2), **FIXED_POINT).rows
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(rows))
    dist.destroy_process_group()


def test_fig8_split_across_two_processes_equals_one_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_fig8_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    clips = [square_clip("a", 5), square_clip("b", 5, x0=10), square_clip("c", 5, x0=2)]
    single = json.loads(
        json.dumps(fig8(ConvergenceDetector(), clips, iters=(1, 2), **FIXED_POINT).rows)
    )
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == single
