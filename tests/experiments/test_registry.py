"""The experiment registry behind ``streamdeq experiment NAME``."""

from __future__ import annotations

import pytest

from streamdeq.errors import SettingsError
from streamdeq.experiments import EXPERIMENTS, fig8, list_experiments, table1, table1_detect

PAPER_NAMES = ["fig2", "fig3", "fig5", "fig7", "table1", "fig8", "table1-detect"]


def test_the_registry_lists_the_paper_s_seven_experiments_in_order_then_streaming():
    assert list_experiments() == [*PAPER_NAMES, "streaming"] == list(EXPERIMENTS)
    assert all(name in EXPERIMENTS for name in PAPER_NAMES)


def test_names_map_to_their_functions():
    assert EXPERIMENTS.get("table1") is table1
    assert EXPERIMENTS.get("fig8") is fig8
    assert EXPERIMENTS.get("table1-detect") is table1_detect


def test_an_unknown_name_suggests_close_ones():
    with pytest.raises(SettingsError, match="unknown experiment 'table2'.*'table1'"):
        EXPERIMENTS.get("table2")
