"""Speed of the detection operators (NMS, batched NMS, RoIAlign forward and backward) on
detector-sized inputs.

    python benchmarks/detection_ops.py                 # CPU, 2000 boxes
    python benchmarks/detection_ops.py --boxes 4000 --threads 1 --json ops.json

Boxes are clustered around a few dozen "objects" with jitter, like RPN proposals, so NMS has
real suppression chains to resolve (uniformly random boxes barely overlap and flatter it).
The median of ``--repeats`` runs is reported. Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from streamdeq.ops import batched_nms, nms, roi_align


def proposal_like_boxes(count: int, image: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """(count, 4) boxes jittered around 40 random objects of an image (height, width)."""
    height, width = image
    objects = torch.rand(40, 4, generator=gen) * torch.tensor([width, height, width, height])
    objects = torch.stack(
        [
            objects[:, [0, 2]].min(1).values,
            objects[:, [1, 3]].min(1).values,
            objects[:, [0, 2]].max(1).values + 8,
            objects[:, [1, 3]].max(1).values + 8,
        ],
        dim=1,
    )
    owner = torch.randint(0, 40, (count,), generator=gen)
    size = (objects[owner, 2:] - objects[owner, :2]).repeat(1, 2)
    return objects[owner] + torch.randn(count, 4, generator=gen) * 0.1 * size


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    image = (600, 1000)
    boxes = proposal_like_boxes(args.boxes, image, gen)
    scores = torch.rand(args.boxes, generator=gen)
    classes = torch.randint(0, 30, (args.boxes,), generator=gen)
    features = torch.randn(1, 256, image[0] // 8, image[1] // 8, generator=gen, requires_grad=True)
    rois = torch.cat([torch.zeros(args.boxes, 1), boxes.clamp(min=0)], dim=1)

    def align():
        return roi_align(features, rois, 7, 1 / 8, sampling_ratio=2, aligned=True)

    def align_backward():
        align().sum().backward()

    def align_adaptive():
        return roi_align(features.detach(), rois, 7, 1 / 8, sampling_ratio=0, aligned=True)

    rows = {
        f"nms ({args.boxes} boxes, IoU 0.7)": timed(lambda: nms(boxes, scores, 0.7), args.repeats),
        f"batched_nms ({args.boxes} boxes, 30 classes, IoU 0.5)": timed(
            lambda: batched_nms(boxes, scores, classes, 0.5), args.repeats
        ),
        f"roi_align fwd ({args.boxes} rois, 256 ch, 7x7, ratio 2)": timed(
            lambda: align().detach(), args.repeats
        ),
        f"roi_align fwd+bwd ({args.boxes} rois, 256 ch, 7x7, ratio 2)": timed(
            align_backward, args.repeats
        ),
        f"roi_align fwd ({args.boxes} rois, adaptive ratio)": timed(align_adaptive, args.repeats),
    }
    kept = nms(boxes, scores, 0.7).numel()
    print(f"threads: {torch.get_num_threads()}; NMS keeps {kept} of {args.boxes}")
    for name, ms in rows.items():
        print(f"{name:60s} {ms:9.1f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"threads": torch.get_num_threads(), "ms": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
