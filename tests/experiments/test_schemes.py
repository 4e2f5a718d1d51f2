"""The schemes module's old path, ``streamdeq.experiments.streams``, still works for one release."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_the_old_streams_path_warns_and_re_exports(monkeypatch):
    from streamdeq.experiments import schemes
    from streamdeq.tasks.segmentation import metric

    monkeypatch.delitem(sys.modules, "streamdeq.experiments.streams", raising=False)
    with pytest.warns(DeprecationWarning, match="streamdeq.experiments.schemes"):
        old = importlib.import_module("streamdeq.experiments.streams")
    assert old.Scheme is schemes.Scheme and old.run_last_frames is schemes.run_last_frames
    assert old.predict_labels is metric.predict_labels
