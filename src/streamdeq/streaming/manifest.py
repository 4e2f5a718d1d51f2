"""Argoverse-HD-style manifests, sAP results and timestamped outputs, read and written so that
our runs can be scored by the streaming-perception toolkit and its runs by us.

Three files, as in Li, Wang and Ramanan, "Towards Streaming Perception" (ECCV 2020) and its
toolkit ``mtli/sAP``:

* the **manifest** (annotations): COCO-style JSON plus ``sequences`` (names), and per image
  ``sid`` (index into ``sequences``) and ``fid`` (the frame's index in its sequence, which is
  g of :mod:`~streamdeq.streaming.pairing`: images need not cover every frame); ``annotations``
  carry ``bbox`` [x, y, w, h] pixels, ``category_id`` and ``image_id``. Keys we do not use
  (``seq_dirs``, ``coco_mapping``, a box's ``track``) are kept and written back.
* **results** in COCO's detection-results format, the toolkit's paired output: a JSON list of
  ``{image_id, bbox [x, y, w, h], score, category_id}``.
* **timestamped outputs**, one file per sequence as the toolkit's real-time runs leave them:
  ``timestamps`` (finish times f_j, seconds from the sequence's start), ``input_fidx`` (k_j),
  ``runtime`` (seconds per step) and ``results_parsed`` (per output: boxes (N, 4) x1 y1 x2 y2,
  scores (N,), labels (N,), masks). ``.pkl`` files are pickles with that dict, as the toolkit
  writes and reads them; ``.json`` files hold the same keys with lists.

Category ids are used as class labels unchanged (Argoverse-HD numbers its classes from 0, and
the toolkit writes its labels as category ids), so labels and ids round-trip. Boxes marked
``iscrowd`` are not supported by the project's AP computation and are refused on read.

Pickles run code when loaded; :func:`read_timed_outputs` loads them with an unpickler that
accepts only plain containers and numpy arrays.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import numbers
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import StreamDEQError
from .pairing import Pair
from .records import TimedOutput


class ManifestError(StreamDEQError, ValueError):
    """A manifest, results or timestamped-output file that cannot be read as one; the message
    names the file and the problem."""


@dataclass(frozen=True)
class ManifestImage:
    """One annotated frame: ``fid`` is its index in sequence ``sid``."""

    id: int
    sid: int
    fid: int
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class ManifestBox:
    """One ground-truth box; ``bbox`` is (x, y, w, h) pixels; ``extra`` holds the keys we do not
    use (``track``, ``area``, ...) so that they are written back."""

    id: int
    image_id: int
    bbox: tuple[float, float, float, float]
    category_id: int
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A streaming-perception annotation set (see the module docstring).

    Attributes:
        sequences: sequence names; a stream's name is its sequence's name.
        images: the annotated frames.
        annotations: the boxes.
        categories: ``{"id": ..., "name": ...}`` dicts.
        extra: other top-level keys, kept as read.
    """

    sequences: list[str]
    images: list[ManifestImage]
    annotations: list[ManifestBox]
    categories: list[dict[str, Any]]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def images_of(self, sequence: str | int) -> list[ManifestImage]:
        """The annotated frames of one sequence (name or index), in frame order."""
        if isinstance(sequence, int):
            sid = sequence
        elif sequence in self.sequences:
            sid = self.sequences.index(sequence)
        else:
            raise ManifestError(f"no sequence {sequence!r} in the manifest")
        return sorted((img for img in self.images if img.sid == sid), key=lambda img: img.fid)

    def targets(self) -> dict[str, dict[int, dict[str, np.ndarray]]]:
        """Ground truth by sequence name, then frame index g: ``boxes`` (G, 4) x1 y1 x2 y2 and
        ``labels`` (G,) (= category ids), the form the streaming metrics take."""
        boxes_of: dict[int, list[ManifestBox]] = {img.id: [] for img in self.images}
        for box in self.annotations:
            boxes_of[box.image_id].append(box)
        targets: dict[str, dict[int, dict[str, np.ndarray]]] = {s: {} for s in self.sequences}
        for img in self.images:
            boxes = boxes_of[img.id]
            xywh = np.asarray([b.bbox for b in boxes], dtype=np.float64).reshape(-1, 4)
            targets[self.sequences[img.sid]][img.fid] = {
                "boxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
                "labels": np.asarray([b.category_id for b in boxes], dtype=np.int64),
            }
        return targets

    def image_ids(self) -> dict[tuple[str, int], int]:
        """(sequence name, frame index) -> image id."""
        return {(self.sequences[img.sid], img.fid): img.id for img in self.images}


def read_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest (see the module docstring).

    Raises:
        ManifestError: not JSON, missing or mistyped keys, unknown sequence, image or
            category references, duplicate ids or frames.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a JSON object, not {type(data).__name__}")
    check = _Checker(path)
    sequences = [
        check.text(s, f"sequences[{i}]") for i, s in enumerate(check.list(data, "sequences"))
    ]
    categories = check.list(data, "categories")
    category_ids = {
        check.int(check.key(c, "id", f"categories[{i}]"), f"categories[{i}].id")
        for i, c in enumerate(categories)
    }
    images = [
        _image(check, raw, i, len(sequences)) for i, raw in enumerate(check.list(data, "images"))
    ]
    _check_unique(path, [img.id for img in images], "image id")
    _check_unique(path, [(img.sid, img.fid) for img in images], "(sid, fid) frame")
    image_ids = {img.id for img in images}
    # a test split's manifest (Argoverse-HD's test-meta.json) has no boxes
    raw_boxes = check.list(data, "annotations") if "annotations" in data else []
    boxes = [_box(check, raw, i, image_ids, category_ids) for i, raw in enumerate(raw_boxes)]
    extra = {k: v for k, v in data.items() if k not in _MANIFEST_KEYS}
    return Manifest(sequences, images, boxes, [dict(c) for c in categories], extra)


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write ``manifest`` as JSON (COCO's keys, with ``area`` = w * h and ``iscrowd`` 0
    added where a box lacks them, as COCO tools expect)."""
    data = {
        **manifest.extra,
        "sequences": list(manifest.sequences),
        "categories": list(manifest.categories),
        "images": [
            {
                "id": i.id,
                "sid": i.sid,
                "fid": i.fid,
                "name": i.name,
                "width": i.width,
                "height": i.height,
            }
            for i in manifest.images
        ],
        "annotations": [_box_json(box) for box in manifest.annotations],
    }
    Path(path).write_text(json.dumps(data))


def detections_to_results(image_id: int, detections: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One image's detections (``boxes`` (N, 4) x1 y1 x2 y2, ``scores``, ``labels``; tensors or
    arrays) as COCO results entries (bbox x, y, w, h; category_id = label)."""
    boxes, scores, labels = _detection_arrays(detections)
    return [
        {
            "image_id": int(image_id),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": score,
            "category_id": label,
        }
        for (x1, y1, x2, y2), score, label in zip(
            boxes.tolist(), scores.tolist(), labels.tolist(), strict=True
        )
    ]


def paired_results(manifest: Manifest, pairs: Mapping[str, Sequence[Pair]]) -> list[dict[str, Any]]:
    """The results file of a streaming evaluation: every annotated frame's paired detections
    (none for a miss) under the frame's image id. ``pairs`` are keyed by sequence name, as
    :func:`~streamdeq.streaming.pairing.pair_streams` returns them for streams named so."""
    ids = manifest.image_ids()
    results: list[dict[str, Any]] = []
    for sequence, stream_pairs in pairs.items():
        for pair in stream_pairs:
            if (sequence, pair.frame) not in ids:
                raise ManifestError(
                    f"frame {pair.frame} of sequence {sequence!r} is not in the manifest"
                )
            if pair.output is not None and pair.output.output is not None:
                results += detections_to_results(ids[sequence, pair.frame], pair.output.output)
    return results


def write_results(results: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    """Write COCO results entries as a JSON list."""
    Path(path).write_text(json.dumps([_result_json(r) for r in results]))


def read_results(path: str | Path, manifest: Manifest | None = None) -> list[dict[str, Any]]:
    """Read and check a COCO results file; with ``manifest``, image and category ids must be
    the manifest's."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise ManifestError(f"{path}: a results file is a JSON list, not {type(data).__name__}")
    check = _Checker(path)
    image_ids = None if manifest is None else {img.id for img in manifest.images}
    category_ids = None if manifest is None else {c["id"] for c in manifest.categories}
    results = []
    for i, raw in enumerate(data):
        where = f"results[{i}]"
        entry = {
            "image_id": check.int(check.key(raw, "image_id", where), f"{where}.image_id"),
            "bbox": list(check.xywh(check.key(raw, "bbox", where), f"{where}.bbox")),
            "score": check.real(check.key(raw, "score", where), f"{where}.score"),
            "category_id": check.int(check.key(raw, "category_id", where), f"{where}.category_id"),
        }
        if image_ids is not None and entry["image_id"] not in image_ids:
            raise ManifestError(
                f"{path}: {where} names image {entry['image_id']}, not in the manifest"
            )
        if category_ids is not None and entry["category_id"] not in category_ids:
            raise ManifestError(
                f"{path}: {where} names category {entry['category_id']}, not in the manifest"
            )
        results.append(entry)
    return results


def write_timed_outputs(outputs: Iterable[TimedOutput], path: str | Path) -> None:
    """Write one sequence's outputs as the toolkit's timestamped output (``.pkl``) or its JSON
    twin (``.json``), in finish order (the toolkit's pairing walks the timestamps in order).
    Outputs must hold detections (``boxes``, ``scores``, ``labels``)."""
    path = Path(path)
    ordered = sorted(outputs, key=lambda o: (o.finish_s, o.input_index))
    parsed = []
    for output in ordered:
        if output.output is None:
            raise ManifestError(
                f"{path}: the output of frame {output.input_index} holds no detections"
            )
        boxes, scores, labels = _detection_arrays(output.output)
        parsed.append((boxes.astype(np.float32), scores.astype(np.float32), labels, None))
    record = {
        "results_parsed": parsed,
        "timestamps": [float(o.finish_s) for o in ordered],
        "input_fidx": [int(o.input_index) for o in ordered],
        "runtime": [float(o.latency_ms) / 1000.0 for o in ordered],
    }
    if path.suffix == ".pkl":
        with path.open("wb") as file:
            _PortablePickler(file, protocol=2).dump(record)
    elif path.suffix == ".json":
        record["results_parsed"] = [
            [b.tolist(), s.tolist(), lab.tolist(), None] for b, s, lab, _ in parsed
        ]
        path.write_text(json.dumps(record))
    else:
        raise ManifestError(f"{path}: timestamped outputs are written as .pkl or .json")


def read_timed_outputs(path: str | Path, stream: Any = None) -> list[TimedOutput]:
    """Read one sequence's timestamped outputs (``.pkl`` or ``.json``) as
    :class:`~streamdeq.streaming.records.TimedOutput` of stream ``stream`` (default: the file's
    stem, the sequence name); each output is a dict of numpy ``boxes``, ``scores``, ``labels``.
    """
    path = Path(path)
    record = _load_timed(path)
    check = _Checker(path)
    if not isinstance(record, dict):
        raise ManifestError(f"{path}: timestamped outputs are a dict, not {type(record).__name__}")
    timestamps = check.list(record, "timestamps")
    fidx = check.list(record, "input_fidx")
    parsed = check.list(record, "results_parsed")
    runtime = record.get("runtime")
    if runtime is None:
        runtime = [math.nan] * len(timestamps)
    if not len(timestamps) == len(fidx) == len(parsed) == len(runtime):
        raise ManifestError(
            f"{path}: {len(timestamps)} timestamps, {len(fidx)} input_fidx, {len(parsed)} "
            f"results_parsed and {len(runtime)} runtime entries; they must agree"
        )
    name = path.stem if stream is None else stream
    return [
        TimedOutput(
            stream=name,
            input_index=check.int(fidx[j], f"input_fidx[{j}]"),
            finish_s=check.real(timestamps[j], f"timestamps[{j}]"),
            output=_parsed_detections(check, parsed[j], j),
            latency_ms=check.real(runtime[j], f"runtime[{j}]") * 1000.0,
        )
        for j in range(len(timestamps))
    ]


def write_timed_dir(
    outputs: Iterable[TimedOutput], manifest: Manifest, directory: str | Path
) -> None:
    """One ``<sequence>.pkl`` per manifest sequence (outputs' ``stream`` = sequence name), as the
    toolkit's streaming evaluation expects; a sequence without outputs gets an empty file."""
    by_sequence: dict[Any, list[TimedOutput]] = {name: [] for name in manifest.sequences}
    for output in outputs:
        if output.stream not in by_sequence:
            raise ManifestError(f"{directory}: stream {output.stream!r} is no manifest sequence")
        by_sequence[output.stream].append(output)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, sequence_outputs in by_sequence.items():
        write_timed_outputs(sequence_outputs, directory / f"{name}.pkl")


def read_timed_dir(manifest: Manifest, directory: str | Path) -> list[TimedOutput]:
    """Every manifest sequence's ``<sequence>.pkl`` (or ``.json``) from ``directory``."""
    directory = Path(directory)
    outputs: list[TimedOutput] = []
    for name in manifest.sequences:
        candidates = [directory / f"{name}{suffix}" for suffix in (".pkl", ".json")]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise ManifestError(f"{directory}: no {name}.pkl or {name}.json for sequence {name!r}")
        outputs += read_timed_outputs(found[0], stream=name)
    return outputs


_MANIFEST_KEYS = {"sequences", "images", "annotations", "categories"}


class _Checker:
    """Type checks that raise one-line :class:`ManifestError` naming the file and the spot."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str) -> ManifestError:
        return ManifestError(f"{self.path}: {message}")

    def key(self, obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(f"{where} is not an object")
        if key not in obj:
            raise self.fail(f"{where} has no {key!r}")
        return obj[key]

    def list(self, obj: Any, key: str) -> list[Any]:
        value = self.key(obj, key, "the file")
        if not isinstance(value, list | tuple):
            raise self.fail(f"{key!r} is not a list")
        return list(value)

    def int(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.fail(f"{where} must be an integer, got {value!r}")
        return int(value)

    def real(self, value: Any, where: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise self.fail(f"{where} must be a finite number, got {value!r}")
        return float(value)

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where} must be a non-empty string, got {value!r}")
        return value

    def xywh(self, value: Any, where: str) -> tuple[float, float, float, float]:
        if not isinstance(value, list | tuple) or len(value) != 4:
            raise self.fail(f"{where} must be [x, y, w, h], got {value!r}")
        x, y, w, h = (self.real(v, where) for v in value)
        if w < 0 or h < 0:
            raise self.fail(f"{where} has a negative width or height: {list(value)}")
        return x, y, w, h


def _image(check: _Checker, raw: Any, i: int, num_sequences: int) -> ManifestImage:
    where = f"images[{i}]"
    values = {
        k: check.int(check.key(raw, k, where), f"{where}.{k}")
        for k in ("id", "sid", "fid", "width", "height")
    }
    if not 0 <= values["sid"] < num_sequences:
        raise check.fail(f"{where}.sid is {values['sid']}, but there are {num_sequences} sequences")
    if values["fid"] < 0:
        raise check.fail(f"{where}.fid is negative ({values['fid']})")
    name = check.text(check.key(raw, "name", where), f"{where}.name")
    return ManifestImage(
        values["id"], values["sid"], values["fid"], name, values["width"], values["height"]
    )


def _box(
    check: _Checker, raw: Any, i: int, image_ids: set[int], category_ids: set[int]
) -> ManifestBox:
    where = f"annotations[{i}]"
    image_id = check.int(check.key(raw, "image_id", where), f"{where}.image_id")
    category = check.int(check.key(raw, "category_id", where), f"{where}.category_id")
    bbox = check.xywh(check.key(raw, "bbox", where), f"{where}.bbox")
    if image_id not in image_ids:
        raise check.fail(f"{where} names image {image_id}, which is not in 'images'")
    if category not in category_ids:
        raise check.fail(f"{where} names category {category}, which is not in 'categories'")
    if raw.get("iscrowd"):
        raise check.fail(f"{where} is a crowd box (iscrowd); crowd boxes are not supported")
    # COCO tools read annotation id 0 as "unmatched": number from 1 where ids are missing
    ann_id = check.int(raw.get("id", i + 1), f"{where}.id")
    extra = {k: v for k, v in raw.items() if k not in ("id", "image_id", "category_id", "bbox")}
    return ManifestBox(ann_id, image_id, bbox, category, extra)


def _box_json(box: ManifestBox) -> dict[str, Any]:
    x, y, w, h = box.bbox
    return {
        "area": w * h,
        "iscrowd": 0,
        **box.extra,
        "id": box.id,
        "image_id": box.image_id,
        "bbox": [x, y, w, h],
        "category_id": box.category_id,
    }


def _result_json(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "image_id": int(result["image_id"]),
        "bbox": [float(v) for v in result["bbox"]],
        "score": float(result["score"]),
        "category_id": int(result["category_id"]),
    }


def _check_unique(path: Path, values: Sequence[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ManifestError(f"{path}: {what} {value} appears twice")
        seen.add(value)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not JSON ({error})") from None


def _load_timed(path: Path) -> Any:
    if path.suffix == ".json":
        return _load_json(path)
    if path.suffix != ".pkl":
        raise ManifestError(f"{path}: timestamped outputs are read from .pkl or .json")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    try:
        return _SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as error:
        raise ManifestError(f"{path}: not a readable pickle ({error})") from None
    except (EOFError, ValueError, TypeError) as error:
        raise ManifestError(f"{path}: not a readable pickle ({error})") from None


def _parsed_detections(check: _Checker, entry: Any, j: int) -> dict[str, np.ndarray]:
    where = f"results_parsed[{j}]"
    if not isinstance(entry, list | tuple) or len(entry) < 3:
        raise check.fail(f"{where} must be (boxes, scores, labels, ...)")
    try:
        boxes = np.asarray(entry[0], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(entry[1], dtype=np.float64).reshape(-1)
        labels = np.asarray(entry[2], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise check.fail(
            f"{where} holds no (N, 4) boxes, (N,) scores and labels ({error})"
        ) from None
    if not len(boxes) == len(scores) == len(labels):
        raise check.fail(
            f"{where} has {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels"
        )
    return {"boxes": boxes, "scores": scores, "labels": labels}


def _detection_arrays(detections: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def array(key: str, dtype: type) -> np.ndarray:
        if key not in detections:
            raise ManifestError(f"detections have no {key!r} (needs boxes, scores, labels)")
        value = detections[key]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        return np.asarray(value, dtype=dtype)

    return (
        array("boxes", np.float64).reshape(-1, 4),
        array("scores", np.float64).reshape(-1),
        array("labels", np.int64).reshape(-1),
    )


class _PortablePickler(pickle.Pickler):
    """Pickles numpy arrays as ``numpy.array(list, dtype)`` (``numpy.zeros(shape, dtype)`` when
    empty): loadable under numpy 1.x and 2.x alike, where numpy's own reduction names the
    module ``numpy._core``, which older numpy releases lack."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.size == 0:
                return np.zeros, (obj.shape, obj.dtype.str)
            return np.array, (obj.tolist(), obj.dtype.str)
        return NotImplemented


#: What a timestamped-output pickle may name: numpy's array constructors, and the bytes codec
#: that protocol-2 pickles use for an array's buffer.
_UNPICKLE_ALLOWED = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy", "array"),
        ("numpy", "zeros"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)


class _SafeUnpickler(pickle.Unpickler):
    """Loads containers, numbers, strings and numpy arrays, nothing that can run code."""

    def find_class(self, module: str, name: str) -> Any:
        canonical = module.replace("numpy._core", "numpy.core", 1)
        if (canonical, name) not in _UNPICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if canonical == "_codecs":  # how protocol-2 pickles spell bytes
            return codecs.encode
        if canonical == "numpy":
            return getattr(np, name)
        return getattr(_numpy_core_module(canonical.split(".", 2)[2]), name)


def _numpy_core_module(name: str) -> Any:
    """numpy's ``multiarray`` or ``numeric`` module, wherever this numpy keeps it."""
    import importlib

    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:  # numpy < 2
        return importlib.import_module(f"numpy.core.{name}")


__all__ = [
    "Manifest",
    "ManifestBox",
    "ManifestError",
    "ManifestImage",
    "detections_to_results",
    "paired_results",
    "read_manifest",
    "read_results",
    "read_timed_dir",
    "read_timed_outputs",
    "write_manifest",
    "write_results",
    "write_timed_dir",
    "write_timed_outputs",
]
