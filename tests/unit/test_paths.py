"""Where greensim finds files: bundled data in every install mode, one shared-data setting."""

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
    assert paths.bundled("traces") == tmp_path / "traces"  # the checkout layout
    with pytest.raises(ValueError, match="profiles"):
        paths.bundled("results")


def test_manifest_records_version_and_code_revision(tmp_path, monkeypatch):
    """Results from different code never look alike: the manifest names the commit (checkout)
    or a fingerprint of the installed code."""
    import json

    from conftest import make_experiment

    import greensim
    from greensim.base import version as v

    res = greensim.run(make_experiment(**{"workload.n_requests": 20}), out_dir=tmp_path)
    m = json.loads((res.folder / "manifest.json").read_text())
    assert m["greensim_version"] == greensim.__version__
    assert ("git_commit" in m and len(m["git_commit"]) == 40) or len(m["code_sha256"]) == 64
    # installed from a wheel (no .git beside the package): the fingerprint of the code
    monkeypatch.setattr(v, "_PACKAGE", tmp_path / "site-packages" / "greensim")
    (tmp_path / "site-packages" / "greensim").mkdir(parents=True)
    (tmp_path / "site-packages" / "greensim" / "a.py").write_text("x = 1\n")
    v.code_revision.cache_clear()
    v.code_fingerprint.cache_clear()
    try:
        rev = v.code_revision()
        assert set(rev) == {"code_sha256"} and len(rev["code_sha256"]) == 64
        (tmp_path / "site-packages" / "greensim" / "a.py").write_text("x = 2\n")
        v.code_fingerprint.cache_clear()
        assert v.code_fingerprint() != rev["code_sha256"]
    finally:
        v.code_revision.cache_clear()
        v.code_fingerprint.cache_clear()
