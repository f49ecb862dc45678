"""Measured profiles, the profiled performance model, bands, catalogue sources, profiler loop.

None of these tests needs torch: the profiler's loop runs against a fake backend.
"""

import json
import logging
import math
import random

import pytest
import yaml

from greensim.base.errors import ConfigError, ProfileError
from greensim.core.memory import kv_capacity_blocks
from greensim.hardware.bands import load_uncertainty
from greensim.hardware.catalog import load_catalog
from greensim.hardware.profiled import BoundProfiled, ProfiledModel, find_profiles, load_profile
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.hardware.roofline import RooflineModel
from greensim.tools import profiler as prof

CAT = load_catalog()


# --------------------------------------------------------------------------- fake device
class FakeBackend(prof.Backend):
    """Deterministic 'device': time = a + b*tokens (+ context term); power from a fake counter."""

    def __init__(self, max_tokens=10_000):
        self.t = 0.0  # fake host clock [s]
        self.e = 0.0  # fake energy counter [J]
        self.cur = None
        self.max_tokens = max_tokens
        self.released = 0

    def clock(self):
        return self.t

    def sleep(self, s):
        self.t += s
        self.e += 50.0 * s  # 50 W idle

    def elapsed_s(self, fn, n):
        out = []
        for _ in range(n):
            dt, watts = fn()
            self.t += dt
            self.e += watts * dt
            out.append(dt)
        return out

    def energy_j(self):
        return self.e

    def make_prefill(self, tokens):
        return (lambda: (1e-3 + 1e-5 * tokens, 300.0)) if tokens <= self.max_tokens else None

    def make_decode(self, batch, ctx):
        if batch * ctx > self.max_tokens:
            return None
        return lambda: (2e-3 + 1e-5 * batch + 1e-7 * batch * ctx, 200.0)

    def make_mixed(self, prompt, batch, ctx):
        return lambda: (3e-3 + 1e-5 * (prompt + batch), 250.0)

    def make_verify(self, batch, new_tokens, ctx):
        return lambda: (2e-3 + 1e-5 * batch * new_tokens + 1e-7 * batch * ctx, 220.0)

    def release(self):
        self.released += 1


def test_measure_median_and_power_from_energy_counter():
    be = FakeBackend()
    m = prof.measure(lambda: (0.01, 400.0), be, window_s=0.1, clock=be.clock)
    assert m["time_s"] == pytest.approx(0.01)
    assert m["n_rep"] == 10
    assert m["power_w"] == pytest.approx(400.0)


def test_profile_shape_covers_phases_skips_cells_that_do_not_fit_and_round_trips(tmp_path):
    be = FakeBackend(max_tokens=64)
    rows = prof.profile_shape(
        be, prof.default_grid(quick=True), idle_s=1.0, window_s=0.01, log=lambda s: None, sleep=be.sleep, clock=be.clock
    )
    phases = {r["phase"] for r in rows}
    assert phases == {"idle", "prefill", "decode", "verify", "mixed"}
    ver = [(r["prompt_tokens"], r["batch"], r["ctx_tokens"]) for r in rows if r["phase"] == "verify"]
    assert ver == [(3, 2, 32)]
    assert rows[0]["power_w"] == pytest.approx(50.0)
    dec = [(r["batch"], r["ctx_tokens"]) for r in rows if r["phase"] == "decode"]
    assert (4, 64) not in dec and (1, 64) in dec  # 4 x 64 > 64 tokens: skipped
    path = prof.write_profile(rows, {"model": "fake", "source": "measured here"}, str(tmp_path), "G", "fake", 1)
    p = load_profile(path)
    assert p.idle_w == pytest.approx(50.0)
    assert [t for t, _, _ in p.prefill] == [16, 32, 64]
    assert p.meta["source"] == "measured here"


def test_checkpoint_keeps_rows_of_a_killed_run():
    be = FakeBackend()
    seen = []
    prof.profile_shape(
        be,
        prof.default_grid(quick=True),
        idle_s=0.1,
        window_s=0.01,
        log=lambda s: None,
        sleep=be.sleep,
        clock=be.clock,
        checkpoint=lambda rows: seen.append(len(rows)),
    )
    assert seen == sorted(seen) and seen[0] == 2 and len(seen) == 3 + 6 + 1 + 1


def test_power_window_is_at_least_power_s_and_idle_waits_to_settle():
    be = FakeBackend()
    m = prof.measure(lambda: (0.01, 400.0), be, window_s=0.05, power_s=1.5, clock=be.clock)
    assert m["n_rep"] == 150 and m["power_window_s"] == pytest.approx(1.5)
    rows = prof.profile_shape(
        be,
        prof.default_grid(quick=True),
        idle_s=2.0,
        settle_s=5.0,
        window_s=0.01,
        power_s=0.0,
        log=lambda s: None,
        sleep=be.sleep,
        clock=be.clock,
    )
    assert rows[0]["phase"] == "idle" and rows[0]["power_window_s"] == pytest.approx(2.0)


def test_power_above_the_board_limit_is_measured_again_then_dropped():
    class Spiky(FakeBackend):
        def make_decode(self, batch, ctx):
            return lambda: (1e-3, 900.0 if batch == 1 else 300.0)  # 900 W on a 700 W board

    be, log = Spiky(), []
    rows = prof.profile_shape(
        be,
        prof.default_grid(quick=True),
        idle_s=0.1,
        settle_s=0.0,
        window_s=0.01,
        power_s=0.0,
        power_limit_w=700.0,
        log=log.append,
        sleep=be.sleep,
        clock=be.clock,
    )
    dec = {(r["batch"], r["ctx_tokens"]): r["power_w"] for r in rows if r["phase"] == "decode"}
    assert all(b != 1 for b, _ in dec) and dec[(2, 16)] == pytest.approx(300.0)
    assert any("rejected twice, row dropped" in line for line in log)
    assert all(r["power_w"] <= 700.0 * 1.05 for r in rows)


# --------------------------------------------------------------------------- file checks
def _write(tmp_path, text, name="p_tp1.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


HEADER = "phase,batch,prompt_tokens,ctx_tokens,time_s,time_p10_s,time_p90_s,power_w,n_rep\n"


def test_missing_column_is_named(tmp_path):
    f = _write(tmp_path, "phase,batch,prompt_tokens,ctx_tokens,time_s,power_w\nprefill,1,32,0,0.01,300\n")
    with pytest.raises(ProfileError, match=r"p_tp1.csv: missing column\(s\) \['time_p10_s', 'time_p90_s', 'n_rep'\]"):
        load_profile(f)


def test_nan_is_rejected_with_file_row_and_column(tmp_path):
    f = _write(tmp_path, HEADER + "prefill,1,32,0,0.01,0.01,0.01,300,5\ndecode,1,0,128,nan,0.01,0.01,200,5\n")
    with pytest.raises(ProfileError, match=r"p_tp1.csv: row 3, column 'time_s': 'nan'"):
        load_profile(f)


def test_bad_phase_and_text_are_rejected(tmp_path):
    f = _write(tmp_path, HEADER + "prefil,1,32,0,0.01,0.01,0.01,300,5\n")
    with pytest.raises(ProfileError, match=r"row 2, column 'phase': 'prefil'"):
        load_profile(f)
    f = _write(tmp_path, HEADER + "prefill,1,32,0,fast,0.01,0.01,300,5\n")
    with pytest.raises(ProfileError, match=r"row 2, column 'time_s': 'fast' is not a number"):
        load_profile(f)


def test_every_shipped_profile_loads_and_is_named_after_catalogue_entries():
    idx = find_profiles()
    assert len(idx) >= 20
    for (g, m, tp), f in idx.items():
        assert g in CAT.gpus and m in CAT.models, f
        p = load_profile(f)
        assert p.meta.get("source") == "measured here" and p.meta.get("command") and p.meta.get("torch"), f
        assert p.meta.get("gpu_name", "").replace("NVIDIA ", "").startswith(g.split("-")[0]), (
            f,
            p.meta.get("gpu_name"),
        )


# --------------------------------------------------------------------------- interpolation
def _bound(g="H100-SXM", m="Llama-3.1-8B", tp=1):
    return ProfiledModel().bind(CAT.gpu(g), CAT.model(m), tp)


@pytest.mark.parametrize("g,m", [("H100-SXM", "Llama-3.1-8B"), ("H200", "OPT-13B"), ("H100-SXM", "Qwen2.5-0.5B")])
def test_interpolation_is_exact_on_grid_points(g, m):
    b = _bound(g, m)
    assert isinstance(b, BoundProfiled)
    p = b.profile
    for t, sec, watts in p.prefill:
        assert b.iteration_time_s([(t, 0)], 0, 0) == pytest.approx(sec, rel=1e-12)
        assert b.power_w(t, 0) == pytest.approx(watts, rel=1e-12)
    for n, row in p.decode.items():
        for c, (sec, _) in row.items():
            assert b.iteration_time_s((), n, n * c) == pytest.approx(sec, rel=1e-12)
            assert b.decode_run_time_s(n, n * c, 1) == pytest.approx(sec, rel=1e-12)


def _synthetic(tmp_path, monotone=True):
    lines = [HEADER.strip(), "idle,0,0,0,0,0,0,60,1"]
    for t in (32, 128, 512, 2048):
        lines.append(f"prefill,1,{t},0,{1e-3 + 2e-5 * t},{1e-3},{1e-3},{300 + t / 10},5")
    for b in (1, 4, 16, 64):
        for c in (128, 512, 2048):
            lines.append(f"decode,{b},0,{c},{5e-3 + 1e-5 * b + 2e-8 * b * c},0,0,{200 + b},5")
    d = tmp_path / "G"
    d.mkdir()
    (d / "Llama-3.1-8B_tp1.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_interpolation_is_monotone_where_the_data_is(tmp_path):
    root = _synthetic(tmp_path)
    p = load_profile(root / "G" / "Llama-3.1-8B_tp1.csv")
    fb = RooflineModel()._bind(CAT.gpu("H100-SXM"), CAT.model("Llama-3.1-8B"), 1)
    b = BoundProfiled(p, fb, CAT.gpu("H100-SXM"), 1)
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 63)
        c = rng.uniform(128, 2047)
        t = b.iteration_time_s((), n, int(n * c))
        assert b.iteration_time_s((), n + 1, int((n + 1) * c)) >= t - 1e-15
        assert b.iteration_time_s((), n, int(n * c) + n) >= t - 1e-15
        T = rng.randint(32, 2047)
        assert b.iteration_time_s([(T + 1, 0)], 0, 0) >= b.iteration_time_s([(T, 0)], 0, 0)


@pytest.mark.parametrize(
    "n,c0,k",
    [(32, 200, 500), (7, 100, 3000), (300, 500, 10), (3, 50, 200), (16, 2000, 50), (5, 8100, 300), (1, 128, 9000)],
)
def test_closed_form_decode_run_equals_the_per_iteration_sum(n, c0, k):
    b = _bound()
    s = sum(b.iteration_time_s((), n, n * c0 + n * j) for j in range(k))
    assert b.decode_run_time_s(n, n * c0, k) == pytest.approx(s, rel=1e-9)


def test_outside_the_grid_falls_back_to_the_roofline_and_logs_once(caplog):
    b = _bound()
    fb = b.fb
    with caplog.at_level(logging.WARNING, logger="greensim.hardware"):
        for T in (5, 6, 7):
            assert b.iteration_time_s([(T, 0)], 0, 0) == fb.iteration_time_s([(T, 0)], 0, 0)
        for n in (300, 400):
            assert b.iteration_time_s((), n, n * 512) == fb.iteration_time_s((), n, n * 512)
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("prefill" in m for m in msgs) == 1 and sum("decode batch" in m for m in msgs) == 1, msgs
    assert all("outside the measured grid" in m for m in msgs)


def test_no_profile_means_the_calibrated_roofline():
    b = ProfiledModel().bind(CAT.gpu("T4"), CAT.model("Llama-3.2-1B"), 1)
    r = RooflineModel().bind(CAT.gpu("T4"), CAT.model("Llama-3.2-1B"), 1)
    assert b.iteration_time_s([(100, 0)], 2, 400) == r.iteration_time_s([(100, 0)], 2, 400)


def test_user_profile_dir_is_used(tmp_path):
    root = _synthetic(tmp_path)
    (tmp_path / "H100-SXM").mkdir()
    (root / "G" / "Llama-3.1-8B_tp1.csv").rename(tmp_path / "H100-SXM" / "Llama-3.1-8B_tp1.csv")
    b = ProfiledModel(profile_dirs=[str(tmp_path)]).bind(CAT.gpu("H100-SXM"), CAT.model("Llama-3.1-8B"), 1)
    assert b.iteration_time_s([(128, 0)], 0, 0) == pytest.approx(1e-3 + 2e-5 * 128)
    with pytest.raises(ProfileError, match="profile_dirs: '/nope' is not a folder"):
        ProfiledModel(profile_dirs=["/nope"])


# --------------------------------------------------------------------------- bands
@pytest.mark.parametrize(
    "model_name,gpu", [("profiled", "H100-SXM"), ("profiled", "T4"), ("roofline", "V100-16GB"), ("roofline", "L4")]
)
def test_bands_order_times_and_powers(model_name, gpu):
    cls = PERFORMANCE_MODELS.get(model_name)
    m = CAT.model("Llama-3.2-1B")
    t, p = {}, {}
    for band in ("optimistic", "nominal", "pessimistic"):
        b = cls(band=band).bind(CAT.gpu(gpu), m, 1)
        t[band] = (b.iteration_time_s([(512, 0)], 8, 8 * 512), b.decode_run_time_s(8, 8 * 512, 100))
        p[band] = (b.power_w(512, 8), b.decode_power_w, b.idle_power_w)
    for i in range(2):
        assert t["optimistic"][i] < t["nominal"][i] < t["pessimistic"][i]
    for i in range(3):
        assert p["optimistic"][i] < p["nominal"][i] < p["pessimistic"][i]


def test_unknown_band_is_rejected():
    with pytest.raises(ProfileError, match="performance.band: 'worst'"):
        ProfiledModel(band="worst")


def test_uncertainty_file_covers_every_architecture_with_a_source():
    unc = load_uncertainty()
    archs = {g.architecture for g in CAT.gpus.values()}
    assert archs <= set(unc["roofline"]["architectures"])
    for e in [*unc["roofline"]["architectures"].values(), *unc["measured"].values()]:
        assert 0 < e["latency_frac"] < 1 and 0 < e["power_frac"] < 1 and "generated by" in e["source"]


# --------------------------------------------------------------------------- catalogues
SPEC_FIELDS = ("memory_gb", "mem_bandwidth_gbs", "fp16_tflops_dense", "release_year")


def test_every_catalogue_number_has_a_source():
    for name, e in CAT.raw["gpu"].items():
        for k, v in e.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if k in SPEC_FIELDS or k == "tdp_w":
                src = e.get(f"{k}_source") or e.get("spec_source")
            elif k.endswith("power_frac"):
                src = e.get("power_frac_source")
            elif k.startswith("embodied"):
                src = e.get("embodied_source")
            else:
                src = e.get(f"{k}_source")
            assert src and len(src) > 10, (name, k)
    for name, e in CAT.raw["model"].items():
        assert "config.json" in e.get("source", ""), name


def test_required_gpus_and_models_are_in_the_catalogue():
    for g in ("T4", "V100-16GB", "V100-32GB", "A10G", "L4", "A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200"):
        assert CAT.gpu(g).name == g
    assert not CAT.gpu("T4").bf16_supported and not CAT.gpu("V100-16GB").flash_attention_2
    assert CAT.gpu("A100-40GB").flash_attention_2
    for m in (
        "Llama-2-7B",
        "Llama-2-13B",
        "Llama-2-70B",
        "Llama-3.1-8B",
        "Llama-3.1-70B",
        "Llama-3.2-1B",
        "Llama-3.2-3B",
        "OPT-125M",
        "OPT-1.3B",
        "OPT-6.7B",
        "OPT-13B",
        "Qwen2.5-0.5B",
        "Qwen2.5-7B",
    ):
        assert CAT.model(m).name == m
    # published parameter counts (model cards): the shapes must reproduce them within 2%
    for m, n in (("OPT-125M", 125e6), ("OPT-13B", 13e9), ("Llama-3.2-1B", 1.24e9), ("Qwen2.5-7B", 7.61e9)):
        assert abs(CAT.model(m).n_params / n - 1) < 0.02, m


def test_unknown_model_lists_close_matches():
    with pytest.raises(ProfileError, match=r"unknown model 'OPT-13'.*Did you mean 'OPT-13B' \(or"):
        CAT.model("OPT-13")


def test_model_that_does_not_fit_raises_a_clear_error():
    g, m = CAT.gpu("T4"), CAT.model("Llama-2-13B")
    with pytest.raises(ConfigError, match=r"does not fit: weights need 24.2 GiB but 1 GPU\(s\) leave 13.4 GiB"):
        kv_capacity_blocks(g.memory_bytes, 1, m.weight_bytes, m.kv_bytes_per_token, 16, 0.1)
    # a 7B FP16 model on a T4 fits with little KV room: under 2,000 tokens (VALIDATION.md capacity table)
    m7 = CAT.model("Llama-2-7B")
    blocks = kv_capacity_blocks(g.memory_bytes, 1, m7.weight_bytes, m7.kv_bytes_per_token, 16, 0.1)
    assert 0 < blocks * 16 < 2000


def test_bad_norm_in_a_user_model_file_is_named(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "X:\n  n_layers: 2\n  hidden_size: 8\n  n_heads: 2\n  n_kv_heads: 2\n  head_dim: 4\n"
        "  intermediate_size: 16\n  vocab_size: 10\n  norm: batch\n"
    )
    with pytest.raises(ProfileError, match=r"m.yaml:X.norm: 'batch' is not one of \['rms', 'layer'\]"):
        load_catalog(extra_model_dirs=[tmp_path])


def test_shape_export_is_json_ready():
    s = CAT.model("OPT-1.3B").shape()
    assert json.loads(json.dumps(s))["gated_mlp"] is False and s["norm"] == "layer"


def test_validation_report_is_current(tmp_path):
    """profiles/VALIDATION.md and uncertainty.yaml are regenerated by greensim.tools.validation."""
    from pathlib import Path

    from greensim.tools import validation

    root = Path(__file__).resolve().parents[2]
    data = root.parent / "shared" / "data"
    if not (data / validation.OLD).exists():
        pytest.fail(f"../shared/data is needed for this test (missing {data / validation.OLD})")
    validation.main(["--data", str(data), "--out", str(tmp_path)])
    assert (tmp_path / "VALIDATION.md").read_text() == (root / "profiles" / "VALIDATION.md").read_text()
    assert yaml.safe_load((tmp_path / "uncertainty.yaml").read_text()) == load_uncertainty()
    assert not math.isnan(load_uncertainty()["measured"]["H100-SXM"]["latency_frac"])


def test_user_catalogue_csv_adds_a_gpu_and_a_bad_cell_is_named(tmp_path):
    (tmp_path / "gpus.csv").write_text(
        "name,architecture,memory_gb,mem_bandwidth_gbs,fp16_tflops_dense,tdp_w,idle_w,prefill_power_frac,"
        "decode_power_frac,embodied_kgco2e,spec_source\n"
        "MyT4,Turing,16,320,65,70,11,1.0,0.6,57.5,my lab's datasheet copy\n"
    )
    cat = load_catalog(extra_gpu_dirs=[tmp_path])
    assert cat.gpu("MyT4").mem_bandwidth_bps == 320e9 and cat.gpu("MyT4").architecture == "Turing"
    (tmp_path / "gpus.csv").write_text("name,architecture,memory_gb\nBad,Turing,lots\n")
    with pytest.raises(ProfileError, match=r"gpus.csv:Bad.memory_gb: 'lots' is not a number"):
        load_catalog(extra_gpu_dirs=[tmp_path])


def _small(perf):
    return {
        "workload.n_requests": 300,
        "workload.rate_rps": 20,
        "cluster.instances.0.gpu": "H100-SXM",
        "output.plots": False,
        **{f"performance.{k}": v for k, v in perf.items()},
    }


def test_profiled_experiment_is_deterministic_and_bands_move_latency():
    import greensim

    runs = {
        b: greensim.run(None, overrides=_small({"model": "profiled", "band": b}), write=False).summary
        for b in ("optimistic", "nominal", "pessimistic")
    }
    again = greensim.run(None, overrides=_small({"model": "profiled", "band": "nominal"}), write=False).summary
    # bands (performance.uncertainty: corners) are deterministic too; their note holds the corners' wall time
    wall = lambda d: {k: v for k, v in d.items() if "wall" not in k and k != "uncertainty"}  # noqa: E731
    assert wall(again) == wall(runs["nominal"])
    assert runs["optimistic"]["ttft_s_p50"] < runs["nominal"]["ttft_s_p50"] < runs["pessimistic"]["ttft_s_p50"]
    assert runs["optimistic"]["energy_kwh"] < runs["pessimistic"]["energy_kwh"]
    roof = greensim.run(None, overrides=_small({"model": "roofline"}), write=False).summary
    assert roof["tpot_s_p50"] != runs["nominal"]["tpot_s_p50"]  # the measured profile is in use
