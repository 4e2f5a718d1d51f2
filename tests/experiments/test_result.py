from __future__ import annotations

import csv

from streamdeq.experiments import fig3

from .conftest import FRAMES


def test_save_writes_a_complete_csv_and_png_and_no_partial_files(model, clips, tmp_path):
    result = fig3(model, clips, iters=(1,))
    csv_path, png_path = result.save(tmp_path / "out")
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * FRAMES
    assert list(rows[0]) == list(result.rows[0])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig3.csv", "fig3.png"]
