"""The provenance every streaming result carries."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from streamdeq.errors import SettingsError
from streamdeq.streaming.provenance import cpu_name, measured_on


def test_measured_on_names_device_threads_version_date_clock_and_profile():
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fields = measured_on("cpu", clock="sim", profile="h200-mdeq-seg")
    assert set(fields) == {"device", "threads", "torch", "date", "clock", "profile"}
    assert fields["device"] == cpu_name() and fields["device"]
    assert fields["threads"] == torch.get_num_threads()
    assert fields["torch"] == torch.__version__
    stamp = dt.datetime.fromisoformat(fields["date"])
    assert stamp.utcoffset() == dt.timedelta(0) and stamp >= before
    assert (fields["clock"], fields["profile"]) == ("sim", "h200-mdeq-seg")


def test_the_cpu_is_named_by_its_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n"
    )
    assert cpu_name(info) == "Intel(R) Xeon(R) Gold 6338"


def test_without_cpuinfo_the_platform_names_the_cpu(tmp_path):
    assert cpu_name(tmp_path / "missing")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock": "wall"}, "clock must be one of real, sim"),
        ({"device": "gpu:0"}, "unknown device"),
    ],
)
def test_bad_settings_are_refused_in_one_line(kwargs, message):
    device = kwargs.pop("device", "cpu")
    with pytest.raises(SettingsError, match=message):
        measured_on(device, **kwargs)
