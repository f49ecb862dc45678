"""The installed package carries its data (profiles, quickstart) and its console script."""

import yaml


def test_shipped_data_files_are_found():
    """Installed (greensim/_profiles...) or run from the checkout (profiles/...), the same files."""
    from greensim.base.paths import bundled

    prof = bundled("profiles")
    for name in ["gpus.yaml", "models.yaml", "roofline.yaml", "uncertainty.yaml", "decode_power.yaml"]:
        assert yaml.safe_load((prof / name).read_text())
    assert list((prof / "measured").glob("*/*.csv"))
    assert yaml.safe_load((bundled("experiments") / "quickstart.yaml").read_text())["name"] == "quickstart"
    assert list((bundled("experiments") / "check").glob("*.yaml"))
    assert list((bundled("traces") / "fitted").glob("*.yaml"))


def test_console_script_runs():
    """The command line answers --version with the package version: through the installed
    console script where greensim is installed (pip install . or -e .), else, from a bare
    checkout (``python -m pytest`` beside the sources), through ``python -m greensim.cli``."""
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    import greensim

    script = Path(sysconfig.get_path("scripts")) / ("greensim.exe" if sys.platform == "win32" else "greensim")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "greensim.cli"]
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert greensim.__version__ in out.stdout


def test_core_imports_no_plugin_module():
    """The core knows nothing of policies, perf models, carbon, workloads or writers."""
    import ast
    from pathlib import Path

    import greensim.core as core

    for f in Path(core.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                mod = ("." * node.level) + node.module
                for banned in (
                    "policies",
                    "hardware",
                    "carbon",
                    "workloads",
                    "results",
                    "cli",
                    "assembly",
                    "api",
                    "experiment",
                    "planning",
                ):
                    assert banned not in mod.split("."), f"{f.name} imports {mod}"


def test_every_subpackage_is_listed_in_pyproject():
    """pyproject lists packages explicitly (data folders are mapped packages); a new
    greensim/<sub>/__init__.py missing from the list would be absent from the wheel."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "pyproject.toml").read_text()
    block = text.split("[tool.setuptools]", 1)[1].split("]", 1)[0]
    listed = {s.strip().strip('"') for s in block.split("[", 1)[1].split(",") if s.strip()}
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "greensim").rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
