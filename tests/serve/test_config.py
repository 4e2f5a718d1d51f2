"""streams.yaml: a mistake is one line naming the file, the stream and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamdeq.errors import SettingsError
from streamdeq.serve.config import default_state_file, load_config


def write(tmp_path, text: str):
    path = tmp_path / "streams.yaml"
    path.write_text(text)
    return path


def test_a_bad_setting_names_the_config_file_and_the_stream(tmp_path):
    path = write(
        tmp_path,
        "streams:\n  - {source: a.mp4}\n  - {source: b.mp4, id: gate, settings: {iters: 0}}\n",
    )
    with pytest.raises(SettingsError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"--config {path}: stream 2 (gate): iters must be")
    assert "or null" in message and "None" not in message  # YAML's word, as the API's


def test_a_bad_default_names_the_config_file(tmp_path):
    path = write(tmp_path, "defaults: {itters: 2}\n")
    with pytest.raises(SettingsError, match=r"--config .*: defaults: unknown stream setting"):
        load_config(path)


def test_invalid_yaml_gives_the_line(tmp_path):
    path = write(tmp_path, "defaults: {iters: 2}\nstreams:\n  - source: [a.mp4\n")
    with pytest.raises(SettingsError, match=r"invalid YAML at line \d+, column \d+") as error:
        load_config(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_good_settings_load_with_the_config_path(tmp_path):
    path = write(tmp_path, "defaults: {iters: 2}\nstreams:\n  - {source: a.mp4, id: gate}\n")
    config = load_config(path)
    assert config.path == path and config.defaults == {"iters": 2}
    assert config.streams[0].source == str(tmp_path / "a.mp4")
    assert config.where(0) == f"--config {path}: stream 1 (gate)"


def test_the_state_file_defaults_beside_the_config_else_the_working_folder(tmp_path):
    assert default_state_file(tmp_path / "streams.yaml") == tmp_path / "streams.state.json"
    assert default_state_file(None).parent.resolve() == Path.cwd().resolve()
