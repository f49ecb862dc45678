"""Where greensim finds files: bundled data in every install mode, one shared-data setting."""
import warnings

import pytest

from greensim.base import paths
from greensim.workloads.named import trace_dirs


def test_shared_data_dir_is_one_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("GREENSIM_DATA_DIR", str(tmp_path))
    assert paths.shared_data_dir() == tmp_path
    assert trace_dirs()[-1] == tmp_path / "traces"
    from greensim.carbon.series import shared_carbon_files
    (tmp_path / "carbon").mkdir()
    (tmp_path / "carbon" / "electricitymaps_2023_hourly.csv").write_text("timestamp_utc,region,gco2_per_kwh\n")
    assert shared_carbon_files() == [tmp_path / "carbon" / "electricitymaps_2023_hourly.csv"]


def test_retired_trace_variable_warns(monkeypatch, tmp_path):
    monkeypatch.setenv("GREENSIM_TRACE_DIR", str(tmp_path))
    with pytest.warns(FutureWarning, match="GREENSIM_DATA_DIR"):
        dirs = trace_dirs()
    assert tmp_path not in dirs


def test_bundled_prefers_the_installed_copy(monkeypatch, tmp_path):
    (tmp_path / "greensim" / "_profiles").mkdir(parents=True)
    monkeypatch.setattr(paths, "_PACKAGE", tmp_path / "greensim")
    assert paths.bundled("profiles") == tmp_path / "greensim" / "_profiles"
    assert paths.bundled("traces") == tmp_path / "traces"          # the checkout layout
    with pytest.raises(ValueError, match="profiles"):
        paths.bundled("results")
