"""The public API type-checks: mypy over the files of ``[tool.mypy]`` in pyproject.toml
(the package facade, base, core and api). Skipped where mypy is not installed."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_passes_on_the_public_api(tmp_path, monkeypatch):
    api = pytest.importorskip("mypy.api")
    monkeypatch.chdir(ROOT)  # the config's file paths are relative to the checkout
    out, err, rc = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0, f"mypy found type errors (run `mypy` at the top of the checkout):\n{out}{err}"
