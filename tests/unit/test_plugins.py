"""Plug-ins from other packages: a router registered through an entry point is used by name
in an experiment, without editing greensim."""

import sys
import textwrap

import pytest
from conftest import make_experiment

import greensim
from greensim.base.errors import ConfigError
from greensim.base.registry import ENTRY_POINT_GROUPS, Registry
from greensim.policies.registry import ROUTERS


def _install_fake_distribution(tmp_path, group: str, name: str, target: str, module: str, code: str):
    """A minimal installed distribution on sys.path: a module and a dist-info with entry points."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(code))
    info = tmp_path / "greensim_fake_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greensim-fake-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


@pytest.fixture
def fresh_routers(monkeypatch, tmp_path):
    """ROUTERS as if entry points had not been read yet; restored afterwards."""
    monkeypatch.setattr(ROUTERS, "_items", dict(ROUTERS._items))
    monkeypatch.setattr(ROUTERS, "_plugins_loaded", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ROUTERS
    for m in [m for m in sys.modules if m.startswith("greensim_fake_")]:
        del sys.modules[m]


def test_a_routers_entry_point_is_used_by_name(fresh_routers, tmp_path):
    _install_fake_distribution(
        tmp_path,
        "greensim.routers",
        "always_last",
        "greensim_fake_router:AlwaysLast",
        "greensim_fake_router",
        """
        class AlwaysLast:
            def choose(self, request_id, n_input_tokens, instances):
                return len(instances) - 1
        """,
    )
    assert "always_last" in fresh_routers.names()
    exp = make_experiment(**{"cluster.router": "always_last", "workload.n_requests": 40})
    res = greensim.run(exp, write=False)
    assert set(res.requests["instance"]) == {1}  # every request went to the last instance
    base = greensim.run(make_experiment(**{"workload.n_requests": 40}), write=False)
    assert set(base.requests["instance"]) == {0, 1}  # round robin, the default here


def test_builtins_win_a_name_clash_and_a_broken_plugin_is_a_clear_error(fresh_routers, tmp_path):
    _install_fake_distribution(
        tmp_path,
        "greensim.routers",
        "round_robin",
        "greensim_fake_broken:Nope",
        "greensim_fake_broken",
        "raise ImportError('no such thing')\n",
    )
    from greensim.policies.routers import RoundRobin

    assert fresh_routers.get("round_robin") is RoundRobin  # the broken plug-in is never loaded
    fresh_routers._plugins_loaded = False
    (tmp_path / "greensim_fake_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[greensim.routers]\nmine = greensim_fake_broken:Nope\n"
    )
    with pytest.raises(ConfigError, match=r"router plug-in 'mine'.*greensim_fake_broken:Nope.*failed to load"):
        fresh_routers.get("mine")


def test_every_plugin_family_declares_its_entry_point_group():
    import greensim.carbon.forecast  # noqa: F401  (the forecaster registry)
    import greensim.hardware  # noqa: F401
    import greensim.policies  # noqa: F401
    import greensim.workloads  # noqa: F401

    assert {
        "greensim.routers",
        "greensim.decode_routers",
        "greensim.gamma_policies",
        "greensim.performance_models",
        "greensim.intensity_sources",
        "greensim.trace_readers",
        "greensim.workloads",
        "greensim.arrivals",
        "greensim.forecasters",
    } <= set(ENTRY_POINT_GROUPS)
    assert Registry("x").names() == []  # no group: no entry points read
