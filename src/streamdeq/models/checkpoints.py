"""Checkpoints: the official MDEQ format in both directions, and our own safetensors files.

Official state dicts use the same names as our modules except that our head lives under
``task_head.`` (the official heads sit at the top level), and they carry three redundant copies
of the equilibrium layer, all recomputed from ``fullstage`` at every official forward pass:

- ``deq.func.*``: the same tensors as ``fullstage.*``;
- ``fullstage_copy.*`` and ``deq.func_copy.*``: the layer without weight normalisation (a plain
  ``.weight`` = g * v / ||v|| per conv).

Loading accepts the copies (their shapes are checked, their values ignored: they carry no
information) but does not require them; exporting writes them so that the official code's strict
``load_state_dict`` accepts our weights. Any other difference is a
:class:`CheckpointMismatchError` listing every missing, unexpected and wrongly shaped tensor.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ..errors import CheckpointError, StreamDEQError
from .config import MDEQConfig, ModelConfigError, read_official_yaml
from .layers import WeightNormConv2d
from .mdeq import MDEQModel
from .pretrained import (
    FORMAT_VERSION,
    PretrainedInfo,
    PretrainedInfoError,
    derive_pretrained_info,
    pretrained_info_of,
)

HEAD_PREFIX = "task_head."
#: Official prefixes of the redundant copies of ``fullstage``.
SAME_AS_FULLSTAGE = "deq.func."
PLAIN_COPIES = ("fullstage_copy.", "deq.func_copy.")
#: Keys of a wrapping training checkpoint under which the state dict may sit.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
#: Entries listed per category in a mismatch report before it says "... and N more".
MAX_LISTED = 12
SAFETENSORS_FORMAT = "streamdeq.mdeq"
#: Metadata key of the input contract (:class:`~.pretrained.PretrainedInfo`, JSON).
PRETRAINED_KEY = "pretrained"


class CheckpointMismatchError(CheckpointError):
    """A state dict whose tensors do not fit the model.

    Attributes:
        missing: names the model needs that the checkpoint lacks.
        unexpected: names in the checkpoint the model has no place for.
        wrong_shape: (name, expected shape, shape found) triples.
    """

    def __init__(
        self,
        missing: list[str],
        unexpected: list[str],
        wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        source: str = "checkpoint",
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.wrong_shape = wrong_shape
        parts = [
            _listing("missing", missing),
            _listing("unexpected", unexpected),
            _listing(
                "wrongly shaped",
                [f"{n} (expected {list(e)}, got {list(g)})" for n, e, g in wrong_shape],
            ),
        ]
        # one line: the command line prints it as is
        super().__init__(
            f"{source} does not fit the model: {'; '.join(p for p in parts if p)} "
            "(was the model built from the same config as the checkpoint?)"
        )


def _listing(title: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = items[:MAX_LISTED]
    more = f", ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"{len(items)} {title}: {', '.join(shown)}{more}"


# ----------------------------------------------------------------------------- official format


def load_official_mdeq(
    config_yaml: str | Path,
    state_dict_path: str | Path | Mapping[str, Tensor],
    map_location: str | torch.device = "cpu",
    task: str | None = None,
) -> MDEQModel:
    """An :class:`MDEQModel` built from an official experiment yaml, with an official
    checkpoint loaded key for key; returned in eval mode.

    Args:
        config_yaml: e.g. ``experiments/cityscapes/seg_mdeq_SMALL.yaml``.
        state_dict_path: a file saved by the official code (``model.state_dict()`` or a training
            checkpoint with a ``state_dict`` entry; ``module.``/``model.`` prefixes are fine),
            or such a mapping already loaded.
        map_location: device to load onto.
        task: "segmentation" / "classification"; None infers it from the yaml.

    Raises:
        CheckpointMismatchError: the checkpoint does not fit the config.
        CheckpointError: the file cannot be read as a state dict.
    """
    official = read_official_yaml(config_yaml)
    model = MDEQModel(
        MDEQConfig.from_official_mapping(official, task=task, source=str(config_yaml))
    )
    if isinstance(state_dict_path, Mapping):
        raw, source = state_dict_path, "state dict"
    else:
        raw = read_torch_checkpoint(state_dict_path, map_location)
        source = f"{state_dict_path} (config {config_yaml})"  # either file may be the wrong one
    load_official_state_dict(model, raw, source=source)
    model.pretrained_info = _official_info(official, model)
    return model.to(map_location).eval()


def _official_info(official: object, model: MDEQModel) -> PretrainedInfo | None:
    """The contract of official weights: ImageNet statistics (every official experiment
    normalises with them), trained on the yaml's DATASET.DATASET (``official``: the parsed yaml,
    whose structure the config has checked already)."""
    info = derive_pretrained_info(model, format_version=FORMAT_VERSION)
    dataset = (official.get("DATASET") if isinstance(official, Mapping) else None) or {}
    name = dataset.get("DATASET") if isinstance(dataset, Mapping) else None
    if info is None or not name:
        return info
    return info.with_overrides(trained_on=str(name).lower())


def load_official_state_dict(
    model: MDEQModel, state_dict: Mapping, source: str = "checkpoint"
) -> None:
    """Load an official-format state dict (possibly wrapped or prefixed) into ``model``."""
    flat = unwrap_state_dict(state_dict, source)
    expected = {_official_name(k): (k, tuple(v.shape)) for k, v in model.state_dict().items()}
    tolerated = {name: tuple(shape) for name, shape in official_copy_shapes(model).items()}
    native = _match(flat, expected, tolerated, source)
    _load_matched(model, native, source)


def _load_matched(model: nn.Module, native: Mapping[str, Tensor], source: str) -> None:
    """``load_state_dict`` of tensors whose names and shapes fit; a dtype that cannot be copied
    into the model's (a damaged file) is a :class:`CheckpointError` naming ``source``."""
    try:
        model.load_state_dict(native, strict=True)
    except (RuntimeError, TypeError) as err:
        raise CheckpointError(
            f"{source} holds tensors the model cannot take: {_one_line(err)}"
        ) from None


def export_official_state_dict(model: MDEQModel) -> OrderedDict[str, Tensor]:
    """The full official key set of ``model``'s weights (copies included, in the official
    order), for the official code's ``load_state_dict``. Tensors are detached, not copied."""
    own = OrderedDict((k, v.detach()) for k, v in model.state_dict().items())
    layer = OrderedDict((k[len("fullstage.") :], v) for k, v in own.items() if _in_layer(k))
    plain = _plain_layer_state(model, layer)
    out: OrderedDict[str, Tensor] = OrderedDict()
    out.update((k, v) for k, v in own.items() if k.startswith(("downsample.", "stage0.")))
    out.update((f"fullstage.{k}", v) for k, v in layer.items())
    out.update((f"fullstage_copy.{k}", v) for k, v in plain.items())
    out.update((f"{SAME_AS_FULLSTAGE}{k}", v) for k, v in layer.items())
    out.update((f"deq.func_copy.{k}", v) for k, v in plain.items())
    out.update((_official_name(k), v) for k, v in own.items() if k.startswith(HEAD_PREFIX))
    return out


def official_copy_shapes(model: MDEQModel) -> dict[str, torch.Size]:
    """Names and shapes of the redundant copies an official state dict carries for ``model``."""
    layer = {k[len("fullstage.") :]: v for k, v in model.state_dict().items() if _in_layer(k)}
    shapes = {f"{SAME_AS_FULLSTAGE}{k}": v.shape for k, v in layer.items()}
    for k, v in layer.items():
        if k.endswith(".weight_g"):
            continue
        plain_key = k[: -len("_v")] if k.endswith(".weight_v") else k
        for prefix in PLAIN_COPIES:
            shapes[prefix + plain_key] = v.shape
    return shapes


def _plain_layer_state(model: MDEQModel, layer: Mapping[str, Tensor]) -> OrderedDict:
    """``fullstage``'s state with every weight-normalised conv as one plain ``.weight``."""
    with torch.no_grad():
        weights = {
            f"{name}.weight": conv.compute_weight().detach()
            for name, conv in model.fullstage.named_modules()
            if isinstance(conv, WeightNormConv2d) and conv.wnorm
        }
    plain: OrderedDict[str, Tensor] = OrderedDict()
    for k, v in layer.items():
        if k.endswith(".weight_v"):
            plain[k[: -len("_v")]] = weights[k[: -len("_v")]]
        elif not k.endswith(".weight_g"):
            plain[k] = v
    return plain


def _in_layer(native_key: str) -> bool:
    return native_key.startswith("fullstage.")


def _official_name(native_key: str) -> str:
    return native_key[len(HEAD_PREFIX) :] if native_key.startswith(HEAD_PREFIX) else native_key


# ----------------------------------------------------------------------------- reading


def read_torch_checkpoint(path: str | Path, map_location="cpu") -> Mapping:
    """``torch.load`` restricted to tensors and plain containers (no arbitrary pickles).

    Raises:
        CheckpointError: the file is missing, not a file, empty, unreadable, damaged, or holds
            Python objects other than tensors (refused for safety); one line naming the file.
    """
    check_checkpoint_file(path)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged pickle can fail with any type inside torch
        if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path} contains Python code or objects other than tensors "
                f"({_torch_reason(err)}), which torch.load(weights_only=True) refused for "
                "safety; if you trust its source, load it with torch.load(path, "
                "weights_only=False) and pass the resulting dict instead of the path"
            ) from None
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint (truncated, damaged or not written by "
            f"torch.save): {_torch_reason(err)}"
        ) from None


def check_checkpoint_file(path: str | Path) -> None:
    """Raise a :class:`CheckpointError` naming ``path`` unless it is a non-empty file this
    process can read; the loaders' own errors for these cases do not say which it is."""
    try:
        if os.path.isdir(path):
            raise CheckpointError(f"{path} is a directory, not a checkpoint file")
        with open(path, "rb") as handle:
            empty = not handle.read(1)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {_reason(err)}") from None
    if empty:
        raise CheckpointError(f"{path} is empty, not a checkpoint (an interrupted download?)")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _torch_reason(err: BaseException) -> str:
    """The gist of a ``torch.load`` failure in one short line (torch's span paragraphs)."""
    text = _ANSI.sub("", str(err))
    if "Unsupported global" in text:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        return f"{found.group(1)} is not allowed" if found else "an object is not allowed"
    text = text.split("WeightsUnpickler error:", 1)[-1].strip()
    text = " ".join(re.split(r"\n\s*\n", text, maxsplit=1)[0].split())
    text = text.split(". ", 1)[0].rstrip(".")
    if not text:
        return "the file ends too early" if isinstance(err, EOFError) else type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def unwrap_state_dict(obj: Mapping, source: str = "checkpoint") -> dict[str, Tensor]:
    """The flat name -> tensor dict inside a checkpoint.

    Accepts a bare state dict, a training checkpoint that holds it under one of
    ``WRAPPER_KEYS``, ``module.`` prefixes (DataParallel / DDP) and the official segmentation
    trainer's ``model.`` + ``loss.`` layout (the loss's buffers are dropped).
    """
    for _ in range(4):  # wrappers may nest
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{source} is a {type(obj).__name__}, not a state dict")
        if all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise CheckpointError(
                f"{source} holds no state dict: its entries {sorted(map(str, obj))[:10]} are not "
                f"all tensors and none of {', '.join(WRAPPER_KEYS)} holds one"
            )
        obj = inner
    else:
        raise CheckpointError(f"{source} holds no state dict: wrappers nest too deep")
    flat = {_strip(str(k), "module."): v for k, v in obj.items()}
    keys = list(flat)
    if any(k.startswith("model.") for k in keys) and all(
        k.startswith(("model.", "loss.")) for k in keys
    ):
        flat = {k[len("model.") :]: v for k, v in flat.items() if k.startswith("model.")}
    return flat


def _strip(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix) :]
    return key


def _match(
    provided: Mapping[str, Tensor],
    expected: Mapping[str, tuple[str, tuple[int, ...]]],
    tolerated: Mapping[str, tuple[int, ...]],
    source: str,
) -> dict[str, Tensor]:
    """Provided tensors renamed to the model's names; raise listing every mismatch.

    ``expected`` maps a checkpoint name to (model name, shape); ``tolerated`` names may appear
    (with the given shape) but are not loaded."""
    native: dict[str, Tensor] = {}
    unexpected: list[str] = []
    wrong: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for name, value in provided.items():
        if name in expected:
            target, shape = expected[name]
        elif name in tolerated:
            target, shape = None, tolerated[name]
        else:
            unexpected.append(name)
            continue
        if tuple(value.shape) != shape:
            wrong.append((name, shape, tuple(value.shape)))
        elif target is not None:
            native[target] = value
    missing = [name for name in expected if name not in provided]
    if missing or unexpected or wrong:
        raise CheckpointMismatchError(missing, unexpected, wrong, source)
    return native


# ----------------------------------------------------------------------------- safetensors


def save_safetensors(
    model: MDEQModel, path: str | Path, info: PretrainedInfo | None = None
) -> None:
    """Save ``model``'s weights with its config and its input contract in the file's metadata,
    so that the file alone rebuilds the model and says how to feed it
    (:func:`load_safetensors`).

    Args:
        info: the contract to record; default ``model.pretrained_info``, else one derived from
            the config (ImageNet statistics, training data unknown).

    The file appears whole or not at all (written beside ``path``, then renamed), with the
    permissions of any new file under the umask (0644 under umask 022).

    Raises:
        CheckpointWriteError: the folder is missing or not writable, or the disk is full.
    """
    info = info or pretrained_info_of(model) or derive_pretrained_info(model, FORMAT_VERSION)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": SAFETENSORS_FORMAT, "config": model.config.to_json()}
    if info is not None:
        metadata[PRETRAINED_KEY] = replace(info, format_version=FORMAT_VERSION).to_json()
    _write_atomically(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


class CheckpointWriteError(StreamDEQError, OSError):
    """A checkpoint file that cannot be written (missing folder, no permission, disk full)."""

    def __str__(self) -> str:  # OSError would format (errno, strerror) tuples otherwise
        return str(self.args[0]) if self.args else ""


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` into a temporary file beside ``path``, then rename it over ``path``: a failure
    leaves no partial file, and readers never see half a file. The temporary file is created
    0600 (``mkstemp``); it gets the mode a plain ``open`` would give, 0666 less the umask."""
    try:
        handle, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        )
    except OSError as err:
        raise CheckpointWriteError(f"cannot write {path}: {_reason(err)}") from None
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, SafetensorError)):
            raise CheckpointWriteError(f"cannot write {path}: {_reason(err)}") from None
        raise


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)


def _umask() -> int:
    # no call reads the umask without setting it: set it and put it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_safetensors(
    path: str | Path, model: MDEQModel | None = None, device: str | torch.device = "cpu"
) -> MDEQModel:
    """The model saved by :func:`save_safetensors`, in eval mode on ``device``, with the
    file's input contract as ``model.pretrained_info`` (for files written before the contract
    was recorded: the one derived from the config, with ``format_version`` 0).

    With ``model`` given, the weights are loaded into it (its config must build the same
    tensors); otherwise a model is built from the config stored in the file.

    Raises:
        CheckpointError: the file is missing, not a file, empty, unreadable, truncated or
            damaged, not a streamdeq model (no config, another format), or its tensors do not
            fit (:class:`CheckpointMismatchError`); one line naming the file.
    """
    check_checkpoint_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except (OSError, RuntimeError, ValueError, TypeError, SafetensorError) as err:
        reason = _one_line(err).removeprefix("Error while deserializing header: ")
        raise CheckpointError(
            f"{path} is not a valid safetensors file (truncated or damaged?): {reason}"
        ) from None
    if model is None:
        model = _model_from_metadata(metadata, path)
    expected = {k: (k, tuple(v.shape)) for k, v in model.state_dict().items()}
    _load_matched(model, _match(tensors, expected, {}, str(path)), str(path))
    model.pretrained_info = _read_info(metadata, model, path)
    return model.to(device).eval()


def _model_from_metadata(metadata: Mapping[str, str], path: str | Path) -> nn.Module:
    """The model the config in a safetensors file's metadata describes."""
    family = metadata.get("format", SAFETENSORS_FORMAT)
    if family != SAFETENSORS_FORMAT:
        raise CheckpointError(
            f"{path} holds an unknown model family (format {family!r}, expected "
            f"{SAFETENSORS_FORMAT!r}); pass the model to load into"
        )
    if "config" not in metadata:
        raise CheckpointError(
            f"{path} has no streamdeq config in its metadata; pass the model to load into"
        )
    try:
        return _model_from_config(metadata["config"])
    except json.JSONDecodeError as err:
        problem = f"is not valid JSON ({err})"
    except (ModelConfigError, CheckpointError) as err:
        problem = f"is invalid: {err}"
    except (ValueError, TypeError, KeyError, AttributeError) as err:  # a damaged config
        problem = f"is invalid ({type(err).__name__}: {_one_line(err)})"
    raise CheckpointError(f"{path}: the model config in its metadata {problem}")


def _read_info(metadata: Mapping[str, str], model: nn.Module, path: str | Path):
    """The file's input contract; for a file written before it was recorded, the one its
    config implies (format version 0, ImageNet statistics)."""
    if PRETRAINED_KEY not in metadata:
        return derive_pretrained_info(model, format_version=0)
    try:
        return PretrainedInfo.from_json(metadata[PRETRAINED_KEY])
    except PretrainedInfoError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (ValueError, TypeError) as err:  # a damaged record: a field of the wrong kind
        raise CheckpointError(f"{path}: invalid pretrained info ({_one_line(err)})") from None


def _model_from_config(text: str) -> nn.Module:
    """The model a saved config describes: a detector's config holds its MDEQ as ``backbone``."""
    values = json.loads(text)
    if not isinstance(values, dict):
        raise CheckpointError(
            f"a JSON object of settings was expected, got {type(values).__name__}"
        )
    if "backbone" in values:
        from .detection import DetectorConfig

        return DetectorConfig.from_json(text).build()
    return MDEQModel(MDEQConfig.from_json(text))
