"""The streams a service starts with: a streams.yaml written by the operator, and the state
file in which the service keeps the streams added through its API, so they survive a restart.

streams.yaml::

    defaults: {iters: 2}             # settings of every stream (optional)
    streams:
      - source: street.mp4           # relative paths are relative to this file
        id: street                   # optional
        loop: true                   # optional
        settings: {shot_policy: reset}

The state file is JSON, written atomically (a temporary file, fsync, ``os.replace``), so a
crash mid-write leaves the previous version, never half of one. It holds the sources as given,
credentials in URLs included (a restart must reconnect), so it is created readable by its owner
only (mode 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    import fcntl
except ImportError:  # not POSIX: no state file lock
    fcntl = None  # type: ignore[assignment]

from ..data.sinks import fsync_folder
from ..errors import SettingsError
from .errors import json_words
from .settings import DEFAULT_SETTINGS, merge_settings

STATE_VERSION = 1
DEFAULT_STATE_NAME = "streams.state.json"


@dataclass(frozen=True)
class StreamSpec:
    """A stream to start: its source, id (None: made from the source), loop and settings."""

    source: str
    id: str | None = None
    loop: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "loop": self.loop,
            "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class ServeConfig:
    """A streams.yaml: default settings and streams (``path``: the file, None: no file)."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    streams: tuple[StreamSpec, ...] = ()
    path: Path | None = None

    def where(self, index: int) -> str:
        """How messages name the config's stream ``index`` (from 0)."""
        spec = self.streams[index]
        name = f" ({spec.id})" if spec.id else ""
        return f"--config {self.path}: stream {index + 1}{name}"


def load_config(path: Path) -> ServeConfig:
    """Read a streams.yaml; a missing file, invalid YAML (with its line), a malformed entry or
    a bad setting (naming the stream) is a SettingsError. Settings are checked here, before any
    model loads; caps that depend on the model (M at most N) are checked when the streams start.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise SettingsError(f"--config {path}: no such file") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"--config {path}: {_yaml_problem(error)}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"--config {path}: cannot read it ({_first_line(error)})") from None
    if not isinstance(data, Mapping):
        raise SettingsError(f"--config {path}: expected a mapping with 'streams' and 'defaults'")
    unknown = set(data) - {"defaults", "streams"}
    if unknown:
        raise SettingsError(
            f"--config {path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "expected 'streams' and 'defaults'"
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise SettingsError(f"--config {path}: 'defaults' must be a mapping of settings")
    entries = data.get("streams") or []
    if not isinstance(entries, list):
        raise SettingsError(f"--config {path}: 'streams' must be a list")
    base = Path(path).parent
    streams = tuple(
        _spec(entry, f"--config {path}: stream {n + 1}", base) for n, entry in enumerate(entries)
    )
    config = ServeConfig(defaults=dict(defaults), streams=streams, path=Path(path))
    _check_settings(config)
    return config


def _check_settings(config: ServeConfig) -> None:
    try:
        defaults = merge_settings(DEFAULT_SETTINGS, config.defaults)
    except SettingsError as error:
        raise SettingsError(
            f"--config {config.path}: defaults: {json_words(str(error))}", field=error.field
        ) from None
    for index, spec in enumerate(config.streams):
        try:
            merge_settings(defaults, spec.settings)
        except SettingsError as error:
            raise SettingsError(
                f"{config.where(index)}: {json_words(str(error))}", field=error.field
            ) from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """ "invalid YAML at line L, column C: <problem>" (the line numbers as editors count)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or _first_line(error)
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def default_state_file(config: Path | None) -> Path:
    """Beside the config file, else in the working folder."""
    folder = Path(config).parent if config is not None else Path.cwd()
    return folder / DEFAULT_STATE_NAME


def load_state(path: Path, skipped: list[str] | None = None) -> list[StreamSpec]:
    """The streams in a state file ([] when there is none yet).

    A file that cannot be read as a state file raises. An entry that is broken on its own (no
    source, an unknown key, a wrong type) raises too, unless ``skipped`` is given: then it is
    left out with a line in ``skipped``, so that one bad entry (a hand edit, say) does not keep
    the service's other streams from coming back."""
    content = read_state(path)
    return [] if content is None else parse_state(content, path, skipped)


def read_state(path: Path) -> bytes | None:
    """A state file's bytes (None when there is none yet); one that cannot be read raises."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _unreadable(path, error) from None


def parse_state(content: bytes, path: Path, skipped: list[str] | None = None) -> list[StreamSpec]:
    """The streams in ``content``, the bytes of the state file ``path`` (see :func:`load_state`)."""
    try:
        data = json.loads(content)
    except ValueError as error:
        raise _unreadable(path, error) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("streams"), list):
        raise SettingsError(f"state file {path}: not a streamdeq state file; fix or remove it")
    specs = []
    for n, entry in enumerate(data["streams"]):
        try:
            specs.append(_spec(entry, f"state file {path}: stream {n + 1}", None))
        except SettingsError as error:
            if skipped is None:
                raise
            skipped.append(f"{error}; skipped")
    return specs


def _unreadable(path: Path, error: Exception) -> SettingsError:
    return SettingsError(
        f"state file {path}: cannot read it ({_first_line(error)}); fix or remove it"
    )


def save_state(path: Path, streams: list[StreamSpec]) -> None:
    """Write the state file atomically: readers (and a restart after a crash) see the old
    version or the new one, never a partial file."""
    text = json.dumps(
        {"version": STATE_VERSION, "streams": [s.as_dict() for s in streams]}, indent=2
    )
    _write_atomically(Path(path), (text + "\n").encode())


class StateFileLock:
    """One service per state file: two would each rewrite it with only their own streams,
    and whichever wrote last would lose the other's (two ``streamdeq serve`` started in one
    folder share the default file). An advisory lock on ``.<name>.lock`` beside the file,
    held while the service runs; the kernel drops it when the process ends, however it ends,
    so a crashed server never locks out the next. POSIX only (elsewhere: no lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise SettingsError naming the server that holds it."""
        if fcntl is None or self._fd is not None:
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise SettingsError(
                f"state file {self.path}: cannot create {self.lock_path.name} beside it "
                f"({error.strerror}); give a --state-file in a folder this user may write"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SettingsError(
                f"state file {self.path} is in use by another streamdeq serve (pid {holder}); "
                "give each server its own --state-file"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def back_up_state(path: Path, content: bytes) -> Path:
    """Keep ``content`` (a state file as it was read) beside it as ``<name>.bak``, atomically;
    returns that path. Why: entries too broken to read as streams are gone from the state file
    at its next rewrite, and one that was only mistyped should not be lost with them."""
    backup = Path(path).with_name(Path(path).name + ".bak")
    _write_atomically(backup, content)
    return backup


def _write_atomically(path: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)  # the rename itself survives a power cut


def _spec(entry: Any, where: str, base: Path | None) -> StreamSpec:
    if isinstance(entry, str):
        entry = {"source": entry}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("source"), str):
        raise SettingsError(f"{where}: needs a 'source' (a file, folder or URL)")
    unknown = set(entry) - {"source", "id", "loop", "settings"}
    if unknown:
        raise SettingsError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "expected source, id, loop, settings"
        )
    source = entry["source"]
    if base is not None and "://" not in source and not Path(source).expanduser().is_absolute():
        source = str(base / source)
    stream_id, loop = entry.get("id"), entry.get("loop", False)
    settings = entry.get("settings") or {}
    if stream_id is not None and not isinstance(stream_id, str):
        raise SettingsError(f"{where}: 'id' must be a string")
    if not isinstance(loop, bool):
        raise SettingsError(f"{where}: 'loop' must be true or false")
    if not isinstance(settings, Mapping):
        raise SettingsError(f"{where}: 'settings' must be a mapping")
    return StreamSpec(source=source, id=stream_id, loop=loop, settings=dict(settings))


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
