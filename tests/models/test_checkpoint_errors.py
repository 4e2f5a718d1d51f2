"""Every checkpoint that will not load fails with a one-line CheckpointError naming the file.

The fuzz tests truncate and corrupt small valid files (ours and the official format); a load
either gives a model (a flipped byte inside tensor data is still a loadable file) or raises a
CheckpointError, never any other exception.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from streamdeq.app.cli import main
from streamdeq.errors import CheckpointError
from streamdeq.models import (
    MDEQConfig,
    MDEQModel,
    create_model,
    export_official_state_dict,
    load_official_mdeq,
    load_safetensors,
    save_safetensors,
)
from streamdeq.models.resolve import resolve_model

from .conftest import OFFICIAL_YAML

TINY_OFFICIAL_YAML = """\
DATASET:
  DATASET: cityscapes
  NUM_CLASSES: 3
MODEL:
  NUM_GROUPS: 2
  EXPANSION_FACTOR: 2
  DOWNSAMPLE_TIMES: 0
  WNORM: true
  EXTRA:
    FINAL_CONV_KERNEL: 1
    FULL_STAGE:
      NUM_MODULES: 1
      NUM_BRANCHES: 2
      BLOCK: BASIC
      NUM_BLOCKS: [1, 1]
      NUM_CHANNELS: [4, 4]
      FUSE_METHOD: SUM
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny valid safetensors file, and a tiny official yaml with its official state dict."""
    folder = tmp_path_factory.mktemp("valid")
    torch.manual_seed(0)
    ours = create_model(
        "mdeq-cls-tiny-cifar",
        num_channels=(4, 4),
        num_groups=2,
        head_channels=(2, 4),
        final_chansize=16,
    )
    save_safetensors(ours, folder / "tiny.safetensors")
    (folder / "tiny.yaml").write_text(TINY_OFFICIAL_YAML)
    official = MDEQModel(MDEQConfig.from_official_yaml(folder / "tiny.yaml"))
    torch.save(export_official_state_dict(official), folder / "tiny.pth")
    return {
        "safetensors": folder / "tiny.safetensors",
        "yaml": folder / "tiny.yaml",
        "pth": folder / "tiny.pth",
    }


def assert_loads_or_names_the_file(load: Callable[[Path], object], path: Path) -> None:
    try:
        model = load(path)
    except CheckpointError as err:
        message = str(err)
        assert "\n" not in message, message
        assert str(path) in message, message
    else:
        assert isinstance(model, MDEQModel)


def damaged_copies(valid: Path, folder: Path, flips: int, seed: int) -> list[Path]:
    """``valid`` truncated at 0, 1, 7, 8, 9 and 40 offsets spread over it, and with one byte
    changed at ``flips`` seeded positions (half within the first 512 bytes, where headers are)."""
    data = valid.read_bytes()
    offsets = sorted({0, 1, 7, 8, 9, *np.linspace(10, len(data) - 1, 40).astype(int).tolist()})
    rng = random.Random(seed)
    positions = [rng.randrange(min(512, len(data))) for _ in range(flips // 2)]
    positions += [rng.randrange(len(data)) for _ in range(flips - len(positions))]
    copies = []
    for offset in offsets:
        copies.append(folder / f"cut{offset}{valid.suffix}")
        copies[-1].write_bytes(data[:offset])
    for index, position in enumerate(positions):
        flipped = bytearray(data)
        flipped[position] ^= rng.randrange(1, 256)
        copies.append(folder / f"flip{index}at{position}{valid.suffix}")
        copies[-1].write_bytes(bytes(flipped))
    return copies


def test_damaged_safetensors_files_load_or_fail_with_a_checkpoint_error(files, tmp_path):
    for path in damaged_copies(files["safetensors"], tmp_path, flips=60, seed=0):
        assert_loads_or_names_the_file(load_safetensors, path)


def test_damaged_official_checkpoints_load_or_fail_with_a_checkpoint_error(files, tmp_path):
    def load(path: Path) -> MDEQModel:
        return load_official_mdeq(files["yaml"], path)

    for path in damaged_copies(files["pth"], tmp_path, flips=30, seed=1):
        assert_loads_or_names_the_file(load, path)


def test_damaged_official_yaml_loads_or_fails_with_a_checkpoint_error(files, tmp_path):
    def load(path: Path) -> MDEQModel:
        return load_official_mdeq(path, files["pth"])

    for path in damaged_copies(files["yaml"], tmp_path, flips=40, seed=2):
        assert_loads_or_names_the_file(load, path)


def _save_tensors(metadata: dict[str, str] | None) -> Callable[[Path], None]:
    return lambda path: save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


class _Opaque:
    """An object ``torch.load(weights_only=True)`` refuses to rebuild."""


@pytest.mark.parametrize(
    ("suffix", "write", "message"),
    [
        (".safetensors", _bytes(b""), "is empty"),
        (".safetensors", _bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{"), "not a valid safetensors"),
        (".safetensors", _save_tensors(None), "no streamdeq config"),
        (".safetensors", _save_tensors({"format": "pt"}), "unknown model family"),
        (".safetensors", _save_tensors({"config": "{oops"}), "config .* is not valid JSON"),
        (".safetensors", _save_tensors({"config": "[4, 4]"}), "JSON object"),
        (".safetensors", _save_tensors({"config": '{"num_branches": "2"}'}), "num_branches"),
        (".safetensors", _save_tensors({"config": '{"mystery": 1}'}), "unknown MDEQ setting"),
        (".safetensors", _save_tensors({"config": '{"backbone": 3}'}), "mapping of settings"),
        (".pth", _bytes(b""), "is empty"),
        (".pth", lambda path: torch.save([1, 2], path), "is a list, not a state dict"),
        (".pth", lambda path: torch.save(torch.zeros(3), path), "is a Tensor, not a state dict"),
        (".pth", lambda path: torch.save({"epoch": 3, "lr": 0.1}, path), "holds no state dict"),
        (".pkl", lambda path: torch.save({"x": _Opaque()}, path), "refused for safety"),
        (".pth", _bytes(b"PK\x03\x04 not really a zip"), "cannot read .* PyTorch checkpoint"),
    ],
    ids=lambda value: value if isinstance(value, str) and not value.startswith(".") else None,
)
def test_each_kind_of_broken_file_is_named_in_one_line(files, tmp_path, suffix, write, message):
    path = tmp_path / f"broken{suffix}"
    write(path)
    if suffix == ".safetensors":
        load = load_safetensors
    else:

        def load(path: Path) -> MDEQModel:
            return load_official_mdeq(files["yaml"], path)

    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("MODEL: [\n", "invalid YAML at line 2"),
        ("- 1\n- 2\n", "top level is list"),
        ("MODEL: 3\n", "MODEL must be a mapping"),
        ("MODEL: {}\n", "NUM_BRANCHES is required"),
        (TINY_OFFICIAL_YAML.replace("NUM_BLOCKS: [1, 1]", "NUM_BLOCKS: 1"), "NUM_BLOCKS"),
        (TINY_OFFICIAL_YAML.replace("NUM_GROUPS: 2", "NUM_GROUPS: two"), "MODEL.NUM_GROUPS"),
        (TINY_OFFICIAL_YAML.replace("NUM_GROUPS: 2", "NUM_GROUPS: 3"), "multiple of num_groups"),
    ],
    ids=["syntax", "list", "section", "missing", "blocks-type", "groups-type", "groups-value"],
)
def test_a_yaml_that_is_not_an_official_config_is_a_checkpoint_error(
    files, tmp_path, text, message
):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=message) as info:
        load_official_mdeq(path, files["pth"])
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_checkpoint_of_another_model_is_the_mismatch_error(files):
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_official_mdeq(OFFICIAL_YAML, files["pth"])


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_directory_is_not_a_checkpoint(files, tmp_path, suffix):
    folder = tmp_path / f"weights{suffix}"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        load_safetensors(folder)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_official_mdeq(files["yaml"], folder)


def test_an_unreadable_file_is_named(files, tmp_path, monkeypatch):
    path = tmp_path / "locked.safetensors"
    path.write_bytes(files["safetensors"].read_bytes())
    real_open = open

    def refuse(file, *args, **kwargs):  # chmod does not stop root, who runs some test machines
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*locked.*denied"):
        load_safetensors(path)


def test_resolve_model_gives_checkpoint_errors_for_broken_files(files, tmp_path):
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(files["safetensors"].read_bytes()[:100])
    with pytest.raises(CheckpointError, match="garbled.safetensors"):
        resolve_model(checkpoint=garbled)
    with pytest.raises(CheckpointError, match="config yaml file not found"):
        resolve_model(checkpoint=files["pth"], config=tmp_path / "missing.yaml")


def test_run_with_a_garbled_checkpoint_is_one_line_and_exit_2(files, tmp_path, monkeypatch, capsys):
    clip = tmp_path / "clip"
    clip.mkdir()
    with av.open(str(clip / "frame0.png"), "w") as container:
        stream = container.add_stream("png")
        stream.height, stream.width, stream.pix_fmt = 16, 16, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), "rgb24")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(b"\xff" * 8 + files["safetensors"].read_bytes()[8:])
    argv = ["streamdeq", "run", str(clip), "--checkpoint", str(garbled), "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("streamdeq: error: ") and str(garbled) in err[0]
