"""Execute the example notebooks in place (refreshes their stored outputs).

    python notebooks/execute.py                 # every notebooks/*.ipynb
    python notebooks/execute.py quickstart.ipynb

tests/docs/test_notebooks.py executes them the same way and compares the fresh text
outputs with the stored ones, so re-run this after changing a notebook or the engine.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, timeout_s: int = 600) -> nbformat.NotebookNode:
    """Run every cell of ``path`` with the working directory set to its folder."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def main(names: list[str]) -> None:
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("*.ipynb"))
    for p in paths:
        nb = execute(p)
        nbformat.write(nb, p)
        print(f"executed {p.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
