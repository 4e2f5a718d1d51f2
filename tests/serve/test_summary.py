"""The results' summaries: per-stream class shares computed for a whole tick at once, and a
stream whose output cannot be summarised failing alone."""

from __future__ import annotations

import collections

import numpy as np
import torch

from streamdeq.serve.summary import (
    TOP_CLASSES,
    segmentation_summaries,
    segmentation_summary,
    summarizer_for,
)

from ..data.clips import write_clip
from ..op_count import OpCount
from .service_helpers import bundled_model, clip_file, make_service, wait_for

NAMES = [f"c{k}" for k in range(7)]
WIDE = (32, 96)  # (h, w) of a clip whose outputs (a quarter of its size) stand out


def naive_shares(logits: torch.Tensor) -> dict[str, float]:
    labels = logits.argmax(dim=0).flatten().numpy()
    counts = np.bincount(labels, minlength=logits.shape[0])
    shares = counts / labels.size
    top = sorted(range(len(shares)), key=lambda k: (-shares[k], k))[:TOP_CLASSES]
    return {NAMES[k]: round(float(shares[k]), 4) for k in top if shares[k] > 0}


def as_dict(summary: dict) -> dict[str, float]:
    return {c["name"]: c["share"] for c in summary["classes"]}


def test_a_tick_of_outputs_of_mixed_shapes_is_summarised_output_by_output_in_order():
    generator = torch.Generator().manual_seed(0)
    shapes = [(7, 8, 12), (7, 5, 5), (7, 8, 12), (7, 1, 3), (7, 8, 12)]
    outputs = [torch.randn(shape, generator=generator) for shape in shapes]
    outputs[1][2] += 100.0  # one class everywhere: a single share of 1
    summaries = segmentation_summaries(outputs, NAMES)
    assert [as_dict(s) for s in summaries] == [naive_shares(o) for o in outputs]
    assert as_dict(summaries[1]) == {"c2": 1.0}
    ranked = [c["share"] for c in summaries[0]["classes"]]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) <= TOP_CLASSES
    assert segmentation_summary(outputs[3], NAMES) == summaries[3]


def test_ties_list_the_lower_class_first():
    logits = torch.zeros(4, 2, 2)
    logits[3, 0, :] = 1.0  # half class 3
    logits[1, 1, :] = 1.0  # half class 1
    assert [c["name"] for c in segmentation_summary(logits, NAMES)["classes"]] == ["c1", "c3"]


def test_the_tensor_work_of_a_tick_does_not_grow_with_its_streams():
    """Why batched: per-stream operations (and device->host transfers) came to most of a tick
    with many streams."""

    def ops(count: int) -> collections.Counter:
        outputs = [torch.randn(7, 6, 6) for _ in range(count)]
        with OpCount() as counter:
            segmentation_summaries(outputs, NAMES)
        return counter.ops

    one, many = ops(1), ops(24)
    assert many == one


def test_other_tasks_get_an_empty_summary_per_output():
    summarize = summarizer_for(None, object())
    assert summarize([torch.zeros(1), torch.zeros(2)]) == [{}, {}]


def test_a_stream_whose_output_cannot_be_summarised_fails_alone(tmp_path):
    service = make_service(bundled_model(), tmp_path)
    real = service._summarize

    def fussy(outputs):  # any batch with the wide clip's output fails, and that output alone
        if any(output.shape[-1] == WIDE[1] // 4 for output in outputs):
            raise ValueError("cannot read this output")
        return real(outputs)

    service._summarize = fussy
    service.start()
    try:
        service.add_stream(str(clip_file(tmp_path)), stream_id="good", loop=True)
        wide = write_clip(tmp_path / "wide.mp4", frames=12, width=WIDE[1], height=WIDE[0])
        service.add_stream(str(wide), stream_id="bad", loop=True)
        wait_for(lambda: service.stream("bad")["state"] == "failed", "the bad stream to fail")
        done = service.stream("good")["frames"]
        wait_for(lambda: service.stream("good")["frames"] > done + 3, "the good stream going on")
    finally:
        service.stop()
    assert "could not be reported: cannot read this output" in service.stream("bad")["error"]
    assert service.stream("good")["state"] == "live"


def test_a_failing_batch_of_summaries_is_retried_output_by_output(tmp_path):
    service = make_service(bundled_model(), tmp_path)
    real = service._summarize
    good, bad = torch.randn(19, 4, 4), torch.randn(19, 4, 5)

    def fussy(outputs):
        if any(output.shape[-1] == 5 for output in outputs):
            raise ValueError("cannot read this output")
        return real(outputs)

    service._summarize = fussy
    first, second, third = service._summaries([good, bad, good])
    assert first == third == real([good])[0]
    assert isinstance(second, ValueError)
    service._summarize = lambda outputs: [{}]  # a summariser that loses outputs
    assert service._summaries([good, good]) == [{}, {}]  # each alone: one summary each
