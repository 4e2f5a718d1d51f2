"""A run's per-frame predictions on disk: written as ``streamdeq run --predictions`` goes, read
back by ``streamdeq score`` to score the run against ground truth.

Each task stores its outputs its own way (segmentation: a folder of label-map PNGs; detection: a
JSON-lines file of boxes) through a :class:`PredictionsFormat` on its
:class:`~streamdeq.tasks.Task`; what they share lives here:

* a **JSON-lines log** whose first line is a header (``format``, ``task``, ``model``, the
  classes, ``source``, ``fps``) and every further line one frame's record, keyed by the frame's
  input index ``index`` (its place in the source, dropped frames counted, as in the stats);
* the run's crash-safety convention (:mod:`streamdeq.data.sinks`): the output is written under
  a visible ``.incomplete`` name and renamed when the run finishes; each record is flushed to
  the operating system as it is written (it survives a killed process) and fsynced every
  ``flush_seconds`` (it survives a power cut). A record is written only after the data it
  points to, so every record of a killed run's incomplete output is usable; a torn last line
  (killed mid-write) is skipped on reading.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any, Protocol

from ..data.errors import OutputError
from ..data.sinks import FLUSH_SECONDS, IncompleteFileSink, incomplete_path
from ..errors import StreamDEQError

#: The ``format`` field of a predictions header.
PREDICTIONS_FORMAT = "streamdeq-predictions/1"


class PredictionsError(StreamDEQError, ValueError):
    """A predictions file or folder that cannot be read as one, or does not fit the run."""


class PredictionsWriter(Protocol):
    """Writes one run's outputs, frame by frame in input order, crash-safe."""

    path: Path
    incomplete_path: Path
    replaced_incomplete: bool

    def write(self, index: int, timestamp: float, size: tuple[int, int], output: Any) -> None:
        """One frame's output (as the stream returns it, no batch dimension) for input frame
        ``index`` at ``timestamp`` seconds, whose (H, W) is ``size``."""
        ...

    def finish(self) -> Path | None:
        """Close and rename into place; idempotent. Raises OutputError when it cannot."""
        ...

    def abort(self) -> None:
        """Remove what was written; idempotent."""
        ...


@dataclass(frozen=True)
class RecordedPredictions:
    """Predictions read back: the header, and each frame's record by input index.

    Attributes:
        path: what was read.
        header: the first line (``task``, ``model``, classes, ``source``, ``fps``).
        frames: input index -> that frame's record (``timestamp`` and the task's fields).
        load: a record -> the output as the task's streaming scorer takes it.
    """

    path: Path
    header: Mapping[str, Any]
    frames: Mapping[int, Mapping[str, Any]]
    load: Callable[[Mapping[str, Any]], Any]

    @property
    def task(self) -> str:
        return str(self.header["task"])

    def output(self, index: int) -> Any:
        """The output recorded for input frame ``index``."""
        return self.load(self.frames[index])


class PredictionsFormat(Protocol):
    """A task's way of storing predictions (the ``predictions`` of its Task)."""

    #: what the path names, for messages ("a folder", "a .jsonl file")
    target: str

    def writer(self, model: Any, path: Path, header: Mapping[str, Any]) -> PredictionsWriter:
        """A writer for ``model``'s outputs at ``path``; checks the path (OutputError)."""
        ...

    def read(self, path: Path) -> RecordedPredictions:
        """Read predictions written by :meth:`writer` (PredictionsError)."""
        ...


def predictions_header(task: str, **fields: Any) -> dict[str, Any]:
    """The header line: the format, the task, then ``fields`` (model, classes, source, fps)."""
    return {"format": PREDICTIONS_FORMAT, "task": task, **fields}


class JsonLines:
    """An append-only JSON-lines file: the header first, then one record per call, each flushed
    to the OS at once and fsynced every ``flush_seconds``."""

    def __init__(
        self, path: Path, header: Mapping[str, Any], flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self.records = 0
        self._synced_at = monotonic()
        try:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as error:
            raise OutputError(f"cannot write predictions {path}: {error.strerror}") from error
        self._write(header)

    def append(
        self, record: Mapping[str, Any], before_sync: Callable[[], None] | None = None
    ) -> None:
        """Write one record; ``before_sync`` runs before an fsync of the log (to make the
        files the records point to durable first)."""
        self._write(record)
        self.records += 1
        if monotonic() - self._synced_at >= self.flush_seconds:
            if before_sync is not None:
                before_sync()
            self.sync()

    def sync(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as error:
            raise OutputError(f"writing predictions {self.path} failed: {error}") from error
        self._synced_at = monotonic()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()

    def _write(self, record: Mapping[str, Any]) -> None:
        try:
            self._file.write(json.dumps(record, allow_nan=False) + "\n")
            self._file.flush()
        except OSError as error:
            raise OutputError(f"writing predictions {self.path} failed: {error}") from error


class JsonLinesSink(IncompleteFileSink):
    """A :class:`JsonLines` log that is itself the output (``preds.incomplete.jsonl`` during
    the run, ``preds.jsonl`` once finished)."""

    def __init__(
        self, path: str | os.PathLike[str], header: Mapping[str, Any], suffixes: tuple[str, ...]
    ) -> None:
        super().__init__(path, "predictions", suffixes)
        self.log = JsonLines(self.incomplete_path, header)

    def append(self, record: Mapping[str, Any]) -> None:
        self._require_open()
        self.log.append(record)

    def _close_incomplete(self) -> bool:
        self.log.close()
        return True

    def _close_incomplete_quietly(self) -> None:
        self.log.close_quietly()


class IncompleteFolder:
    """A folder output: ``preds.incomplete/`` during the run, renamed to ``preds/`` by
    :meth:`finish`. A folder is only replaced if it holds predictions (its ``marker`` file):
    anything else at the target is refused, so a typo never deletes a user's folder."""

    def __init__(self, path: str | os.PathLike[str], marker: str) -> None:
        self.path = Path(path).expanduser()
        self.incomplete_path = incomplete_path(self.path)
        self.marker = marker
        parent = self.path.parent
        if not parent.is_dir():
            raise OutputError(f"cannot write predictions to {path}: folder {parent} does not exist")
        for folder in (self.path, self.incomplete_path):
            if folder.exists() and not (folder / marker).is_file():
                raise OutputError(
                    f"cannot write predictions to {path}: {folder} exists and is not a "
                    "predictions folder; remove it or give another name"
                )
        self.replaced_incomplete = self.incomplete_path.is_dir()
        try:
            if self.replaced_incomplete:
                shutil.rmtree(self.incomplete_path)
            self.incomplete_path.mkdir()
        except OSError as error:
            raise OutputError(f"cannot write predictions to {path}: {error.strerror}") from error
        self._closed = False

    def finish(self) -> Path:
        """Rename the finished folder into place (replacing earlier predictions there)."""
        try:
            if self.path.is_dir():
                shutil.rmtree(self.path)
            os.replace(self.incomplete_path, self.path)
        except OSError as error:
            raise OutputError(
                f"could not finish predictions {self.path} ({error}); "
                f"{self.incomplete_path} keeps what was written before"
            ) from error
        self._closed = True
        return self.path

    def abort(self) -> None:
        self._closed = True
        shutil.rmtree(self.incomplete_path, ignore_errors=True)


def read_json_lines(path: Path, task: str) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """The header and records (by ``index``) of a predictions log of ``task``; a torn last line
    (a run killed while writing it) is skipped.

    Raises:
        PredictionsError: a missing or unreadable file, another format or task, a record
            without a whole ``index`` or ``timestamp``, an index written twice.
    """
    text = read_text(path, "predictions", PredictionsError)
    parsed = parse_json_lines(path, text)
    if not parsed or parsed[0].get("format") != PREDICTIONS_FORMAT:
        raise PredictionsError(
            f"{path}: not a streamdeq predictions file (its first line must be a header with "
            f'"format": "{PREDICTIONS_FORMAT}"); write one with streamdeq run --predictions'
        )
    header, records = parsed[0], parsed[1:]
    if header.get("task") != task:
        raise PredictionsError(
            f"{path}: predictions of a {header.get('task')} model, read as {task} predictions"
        )
    frames: dict[int, dict[str, Any]] = {}
    for number, record in enumerate(records, start=2):
        index, timestamp = record.get("index"), record.get("timestamp")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise PredictionsError(f"{path}: line {number} has no frame index >= 0 ('index')")
        if not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
            raise PredictionsError(f"{path}: line {number} has no finite 'timestamp'")
        if index in frames:
            raise PredictionsError(f"{path}: frame {index} is recorded twice (line {number})")
        frames[index] = record
    return header, frames


def read_text(path: Path, what: str, error: type[Exception]) -> str:
    """A UTF-8 file a run wrote (``what``: "predictions", "stats"), or ``error`` in one line
    naming it: no such file, or not readable as text."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as reason:
        raise error(f"{path}: cannot read the {what} ({reason})") from None


def parse_json_lines(
    path: Path, text: str, error: Callable[[str], Exception] = PredictionsError
) -> list[dict[str, Any]]:
    """Each line of ``text`` (what ``path`` holds: a JSON-lines log written as a run goes) as a
    JSON object. A last line that is not JSON is dropped (a run killed while writing it: the
    lines before are whole); any other line that is not a JSON object raises ``error``."""
    lines = text.splitlines()
    values = []
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # torn by a kill mid-write: the records before are whole
                break
            raise error(f"{path}: line {number} is not JSON") from None
        if not isinstance(value, dict):
            raise error(f"{path}: line {number} is not a JSON object")
        values.append(value)
    return values


__all__ = [
    "PREDICTIONS_FORMAT",
    "IncompleteFolder",
    "JsonLines",
    "JsonLinesSink",
    "PredictionsError",
    "PredictionsFormat",
    "PredictionsWriter",
    "RecordedPredictions",
    "parse_json_lines",
    "predictions_header",
    "read_json_lines",
]
