"""Light entry points stay light: importing the command line or ``greensim.api.run`` must not
import the heavy plotting / statistics / table packages (issue 19, start-up). Each check runs in
a fresh interpreter, so what this test process imported does not count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from greensim.base.lazy import lazy_module

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "scipy", "statsmodels", "pandas", "pyarrow", "sklearn", "dask")


def _imported_after(module: str) -> list[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", ["greensim.cli.main", "greensim.api.run"])
def test_entry_point_does_not_import_heavy_packages(module):
    loaded = set(_imported_after(module))
    assert "greensim" in loaded  # the probe did import greensim (so an empty list cannot pass)
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_cli_main_does_not_import_pydantic_or_numpy():
    # ``greensim --help`` needs neither the experiment schema nor numpy
    loaded = set(_imported_after("greensim.cli.main"))
    assert not loaded & {"pydantic", "numpy", "simpy"}, sorted(loaded & {"pydantic", "numpy", "simpy"})


def test_lazy_module_imports_on_first_attribute():
    name = "greensim.base.units"
    sys.modules.pop(name, None)
    m = lazy_module(name)
    assert name not in sys.modules
    assert "not imported yet" in repr(m)
    value = m.BYTES_PER_GB  # first attribute access imports the module and forwards to it
    assert name in sys.modules and value is sys.modules[name].BYTES_PER_GB
    assert "(imported)" in repr(m)
    with pytest.raises(AttributeError):
        m.no_such_name  # noqa: B018
