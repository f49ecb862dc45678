"""Every notebook under notebooks/ executes without error, and its fresh text outputs
equal the stored ones (the committed notebooks are executed and current)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
spec = importlib.util.spec_from_file_location("nb_execute", NOTEBOOKS / "execute.py")
nb_execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nb_execute)


def text_outputs(nb):
    """execute_result / display text of each code cell (streams and images vary or carry no numbers)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            out.append(
                [o["data"]["text/plain"] for o in cell.get("outputs", []) if o.get("output_type") == "execute_result"]
            )
    return out


def test_there_are_notebooks():
    assert (NOTEBOOKS / "quickstart.ipynb").is_file()


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_executes_and_matches_stored_outputs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("GREENSIM_CACHE_DIR", str(tmp_path / "cache"))  # the kernel inherits it
    stored = nbformat.read(path, as_version=4)
    assert all(c.get("outputs") for c in stored.cells if c.cell_type == "code" and c.source.strip()), (
        f"{path.name} is not executed: run python notebooks/execute.py {path.name}"
    )
    fresh = nb_execute.execute(path)  # raises CellExecutionError naming the failing cell
    assert text_outputs(fresh) == text_outputs(stored), (
        f"{path.name}: outputs changed; re-run python notebooks/execute.py {path.name} and review the diff"
    )
