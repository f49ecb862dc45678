"""Time-varying intensity, embodied schemes and per-region totals (issue 7)."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment

from greensim.api.run import run
from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.carbon.embodied import embodied_by_scheme, embodied_charge_gco2
from greensim.carbon.series import DiurnalIntensitySource, SeriesIntensitySource, load_region_series, validate_series
from greensim.experiment.load import parse_experiment

YEAR = 365 * 24 * 3600.0


def _csv(tmp_path, values, start="2023-01-01T00:00:00Z", freq="1h", region="X", name="s.csv"):
    ts = pd.date_range(start, periods=len(values), freq=freq)
    df = pd.DataFrame({"timestamp_utc": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region, "gco2_per_kwh": values})
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _series_exp(path, region="X", start="2023-01-01T00:00", **kw):
    ci = {"kind": "series", "region": region, "start": start, "path": str(path)}
    ci.update(kw)
    return make_experiment(**{"carbon.intensity": ci})


def test_mean_over_integrates_the_step_function(tmp_path):
    """Hourly 100 then 300: [0.5 h, 1.5 h) averages 200; a start at 00:30 shifts time."""
    src = SeriesIntensitySource("X", "2023-01-01T00:00", path=str(_csv(tmp_path, [100.0, 300.0, 500.0])))
    assert src.mean_over(np.array([1800.0]), np.array([5400.0]))[0] == pytest.approx(200.0)
    assert src.mean_over(np.array([0.0]), np.array([3 * 3600.0]))[0] == pytest.approx(300.0)
    late = SeriesIntensitySource("X", "2023-01-01T00:30", path=str(_csv(tmp_path, [100.0, 300.0, 500.0])))
    assert late.mean_over(np.array([0.0]), np.array([1800.0]))[0] == pytest.approx(100.0)
    assert late.at(np.array([1800.0]))[0] == 300.0


def test_timezone_of_start(tmp_path):
    """08:00 in Los Angeles (PDT, UTC-7) is 15:00 UTC."""
    vals = np.arange(48, dtype=float)
    src = SeriesIntensitySource(
        "X",
        "2023-06-01T08:00",
        timezone="America/Los_Angeles",
        path=str(_csv(tmp_path, vals, start="2023-06-01T00:00:00Z")),
    )
    assert src.at(np.array([0.0]))[0] == 15.0
    with pytest.raises(ConfigError, match="timezone.*Mars/Olympus"):
        SeriesIntensitySource(
            "X",
            "2023-06-01T08:00",
            timezone="Mars/Olympus",
            path=str(_csv(tmp_path, vals, start="2023-06-01T00:00:00Z")),
        )


def test_constant_series_equals_constant_source(tmp_path):
    p = _csv(tmp_path, [321.0] * 48)
    a = simulate(prepare(parse_experiment(_series_exp(p)))).summary
    b = simulate(
        prepare(parse_experiment(make_experiment(**{"carbon.intensity": {"kind": "constant", "gco2_per_kwh": 321.0}})))
    ).summary
    assert a["operational_gco2"] == pytest.approx(b["operational_gco2"], rel=1e-12)
    assert a["energy_kwh"] == b["energy_kwh"]


@pytest.mark.parametrize("k, pue", [(2.0, 1.0), (0.5, 1.5), (3.0, 1.2)])
def test_operational_linear_in_intensity_and_pue(tmp_path, k, pue):
    """Scaling every hourly value by k and PUE by pue/1.1 scales operational carbon by k x pue/1.1."""
    rng = np.random.default_rng(0)
    vals = rng.uniform(50, 500, 48)
    base = simulate(prepare(parse_experiment(_series_exp(_csv(tmp_path, vals, name="a.csv"))))).summary
    d = _series_exp(_csv(tmp_path, k * vals, name="b.csv"))
    d["carbon"]["pue"] = pue
    scaled = simulate(prepare(parse_experiment(d))).summary
    assert scaled["operational_gco2"] == pytest.approx(base["operational_gco2"] * k * pue / 1.1, rel=1e-9)


def test_series_varies_carbon_with_start_time(tmp_path):
    """A run in a dirty hour costs more than the same run in a clean hour (timeline column too)."""
    vals = [100.0] * 24 + [800.0] * 24
    p = _csv(tmp_path, vals)
    clean = simulate(prepare(parse_experiment(_series_exp(p, start="2023-01-01T00:00"))))
    dirty = simulate(prepare(parse_experiment(_series_exp(p, start="2023-01-02T00:00"))))
    assert dirty.summary["operational_gco2"] == pytest.approx(8 * clean.summary["operational_gco2"], rel=1e-9)
    assert np.allclose(dirty.timeline["intensity_gco2_per_kwh"], 800.0, rtol=1e-9)


def test_diurnal_mean_over_a_day_is_the_mean():
    src = DiurnalIntensitySource(300.0, 0.5, peak_hour=19.0)
    assert src.mean_over(np.array([0.0]), np.array([86400.0]))[0] == pytest.approx(300.0)
    assert src.at(np.array([19 * 3600.0]))[0] == pytest.approx(450.0)
    t = np.linspace(0, 86400, 100001)
    assert src.mean_over(np.array([3600.0]), np.array([7200.0]))[0] == pytest.approx(
        src.at(t[(t >= 3600) & (t < 7200)]).mean(), rel=1e-4
    )


@pytest.mark.parametrize(
    "values, match",
    [
        ([100.0, float("nan"), 120.0], "1 missing or NaN"),
        ([100.0, -5.0, 120.0], "negative intensity -5"),
    ],
)
def test_bad_series_values(tmp_path, values, match):
    with pytest.raises(ConfigError, match=match):
        SeriesIntensitySource("X", "2023-01-01T00:00", path=str(_csv(tmp_path, values)))


def test_duplicates_and_gaps_are_errors_or_reported_fills(tmp_path):
    ts = pd.to_datetime(["2023-01-01T00:00Z", "2023-01-01T01:00Z", "2023-01-01T01:00Z"])
    with pytest.raises(ConfigError, match="duplicate timestamp.*2023-01-01T01:00"):
        validate_series(pd.Series(ts), [1.0, 2.0, 3.0], "X", "w")
    ts = pd.to_datetime(["2023-01-01T00:00Z", "2023-01-01T01:00Z", "2023-01-01T04:00Z"])
    with pytest.raises(ConfigError, match="2 missing or NaN.*gap_fill"):
        validate_series(pd.Series(ts), [1.0, 2.0, 5.0], "X", "w")
    s = validate_series(pd.Series(ts), [1.0, 2.0, 5.0], "X", "w", gap_fill="linear")
    assert s.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and s.n_filled == 2


def test_start_outside_series_and_run_past_its_end(tmp_path):
    p = _csv(tmp_path, [100.0, 200.0])
    with pytest.raises(ConfigError, match="start.*outside the series"):
        SeriesIntensitySource("X", "2024-01-01T00:00", path=str(p))
    d = _series_exp(p, start="2023-01-01T01:59:30")  # the ~50 s run would pass 02:00
    with pytest.raises(ConfigError, match="ends .* after the start"):
        simulate(prepare(parse_experiment(d)))


def test_shared_data_regions_and_gap_report(shared_data):
    """The EIA file's PJM has 23 NaN hours: an error by default, counted when filled."""
    with pytest.raises(ConfigError, match="region 'PJM' has 23 missing or NaN"):
        load_region_series("PJM")
    s = load_region_series("PJM", gap_fill="linear")
    assert s.n_filled == 23 and len(s.values) == 8760 and np.isfinite(s.values).all()
    fr = load_region_series("FR", basis="direct")
    assert fr.values.mean() == pytest.approx(30.4, abs=0.05)  # PROVENANCE.md table
    with pytest.raises(ConfigError, match="unknown region 'GBR'.*Did you mean 'GB'"):
        load_region_series("GBR")
    with pytest.raises(ConfigError, match="basis.*direct"):
        load_region_series("BPAT", basis="direct")


def test_region_totals_and_plot(shared_data, tmp_path):
    d = make_experiment(
        **{
            "carbon.intensity": {
                "kind": "series",
                "region": "GB",
                "start": "2023-07-01T12:00",
                "timezone": "Europe/London",
            },
            "carbon.compare_regions": ["FR", "ZA"],
            "output.plots": True,
        }
    )
    res = run(d, out_dir=tmp_path)
    s = res.summary
    assert s["operational_gco2_by_region"]["GB"] == pytest.approx(s["operational_gco2"], rel=1e-9)
    # same energy: carbon ranks as the regions' intensities in that hour
    assert (
        s["operational_gco2_by_region"]["FR"]
        < s["operational_gco2_by_region"]["GB"]
        < s["operational_gco2_by_region"]["ZA"]
    )
    assert (res.folder / "carbon_timeline.png").stat().st_size > 10_000
    assert (res.folder / "regions.csv").is_file()


# ------------------------------------------------------------------ embodied
@pytest.mark.parametrize("T, LT", [(3600.0, 5.0), (7200.0, 5.0), (3600.0, 2.5), (1e6, 7.0)])
def test_embodied_linear_in_duration_inverse_in_lifetime(T, LT):
    one = embodied_charge_gco2(100.0, 1, 3600.0, 5.0)
    assert embodied_charge_gco2(100.0, 1, T, LT) == pytest.approx(one * (T / 3600.0) * (5.0 / LT))


def test_schemes_for_an_old_gpu():
    """An 6-year-old GPU with a 5-year life: sunk = 0, extended over 5+3 years, linear as new."""
    b = embodied_by_scheme(100.0, 2, YEAR, 5.0, age_years=6.0, extended_years=3.0)
    assert b["linear"] == pytest.approx(2 * 100e3 / 5)
    assert b["extended"] == pytest.approx(2 * 100e3 / 8)
    assert b["sunk"] == 0.0
    assert embodied_by_scheme(100.0, 1, YEAR, 5.0)["extended"] == pytest.approx(100e3 / 5)
    # crossing the lifetime during the run: only the part before LT is charged
    assert embodied_charge_gco2(100.0, 1, YEAR, 5.0, "sunk", age_years=4.5) == pytest.approx(100e3 / 5 / 2)
    with pytest.raises(ConfigError, match="lifetime 0.*> 0"):
        embodied_charge_gco2(100.0, 1, YEAR, 0.0)


def test_run_reports_scheme_and_embodied_under_every_scheme():
    d = make_experiment(
        **{
            "cluster.instances.0.age_years": 6.0,
            "carbon.embodied_schemes": {"A100-80GB": {"scheme": "sunk"}},
            "carbon.host_share": {"embodied_kgco2e": 2000.0, "gpus_per_host": 8},
        }
    )
    s = simulate(prepare(parse_experiment(d))).summary
    T = s["duration_s"]
    assert s["embodied_scheme"] == {"A100-80GB": "sunk"}
    assert s["embodied_gco2"] == 0.0 and s["embodied_gco2_if_sunk"] == 0.0
    assert s["embodied_gco2_if_linear"] == pytest.approx(2 * (111.3 + 250.0) * 1000 * T / (5 * YEAR))
    assert s["carbon_gco2_per_request_if_linear"] > s["carbon_gco2_per_request"]


def test_bad_lifetime_and_missing_extended_years():
    d = make_experiment(**{"carbon.gpu_lifetime_years": {"A100-80GB": 0}})
    with pytest.raises(ConfigError, match="gpu_lifetime_years.A100-80GB.*> 0"):
        prepare(parse_experiment(d))
    d = make_experiment(**{"carbon.embodied_schemes": {"A100-80GB": {"scheme": "extended"}}})
    with pytest.raises(ConfigError, match="extended_years"):
        prepare(parse_experiment(d))


def test_validate_checks_the_series(shared_data, tmp_path):
    import yaml
    from click.testing import CliRunner

    from greensim.cli import main

    d = make_experiment(**{"carbon.intensity": {"kind": "series", "region": "GB", "start": "2025-01-01T00:00"}})
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 2 and "outside the series of region 'GB'" in r.output
