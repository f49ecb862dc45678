import pytest

from greensim.base.errors import ProfileError
from greensim.hardware.catalog import load_catalog


def test_model_shapes_give_published_parameter_counts():
    """Parameter counts computed from the shapes match the published sizes (6.74B, 8.03B, 69.0B)."""
    cat = load_catalog()
    assert cat.model("Llama-2-7B").n_params == pytest.approx(6.74e9, rel=0.005)
    assert cat.model("Llama-3.1-8B").n_params == pytest.approx(8.03e9, rel=0.005)
    assert cat.model("Llama-2-70B").n_params == pytest.approx(68.98e9, rel=0.005)


def test_kv_bytes_per_token():
    """Llama-2-7B FP16 holds 0.5 MiB of KV per token; Llama-3.1-8B (8 KV heads) a quarter."""
    cat = load_catalog()
    assert cat.model("Llama-2-7B").kv_bytes_per_token == 2 * 32 * 32 * 128 * 2 == 524288
    assert cat.model("Llama-3.1-8B").kv_bytes_per_token == 524288 / 4


def test_aliases_and_required_gpus():
    cat = load_catalog()
    for name in ["A100-80GB", "H100-SXM", "T4", "V100-32GB"]:
        g = cat.gpu(name)
        assert g.idle_w < g.decode_power_w <= g.prefill_power_w <= g.tdp_w
        assert g.sources.get("embodied_source") and g.sources.get("idle_w_source")
    assert cat.gpu("a100").name == "A100-80GB"
    assert cat.gpu("V100").name == "V100-32GB"


def test_unknown_gpu_lists_known_and_suggests():
    with pytest.raises(ProfileError, match=r"unknown gpu 'A10O-80GB'.*known: .*A100-80GB.*Did you mean"):
        load_catalog().gpu("A10O-80GB", "cluster.instances.0.gpu")


def test_user_catalog_folder_adds_a_gpu(tmp_path):
    (tmp_path / "mygpu.yaml").write_text(
        "L4:\n  architecture: Ada\n  memory_gb: 24\n  mem_bandwidth_gbs: 300\n  fp16_tflops_dense: 121\n"
        "  tdp_w: 72\n  idle_w: 10\n  prefill_power_frac: 1.0\n  decode_power_frac: 0.6\n  embodied_kgco2e: 57.5\n"
    )
    cat = load_catalog(extra_gpu_dirs=[tmp_path])
    assert cat.gpu("L4").memory_bytes == 24e9


def test_bad_user_catalog_entry_names_the_field(tmp_path):
    (tmp_path / "bad.yaml").write_text("X:\n  memory_gb: -1\n")
    with pytest.raises(ProfileError, match=r"X\.memory_gb"):
        load_catalog(extra_gpu_dirs=[tmp_path])


def test_gpu_without_sourced_power_is_listed_but_cannot_be_simulated(tmp_path):
    """A10G's TDP has no source: the catalogue keeps it empty and a run says how to supply it."""
    from conftest import make_experiment

    from greensim.assembly.prepare import prepare
    from greensim.experiment.load import parse_experiment

    cat = load_catalog()
    assert cat.gpu("A10G").memory_bytes == 24e9
    d = make_experiment(**{"cluster.instances": [{"gpu": "A10G"}]})
    with pytest.raises(
        ProfileError, match=r"cluster\.instances\.0\.gpu: GPU 'A10G' has no sourced tdp_w and idle_w.*catalog\.gpu_dirs"
    ):
        prepare(parse_experiment(d))
    import yaml

    entry = dict(cat.raw["gpu"]["A10G"], tdp_w=150.0, idle_w=20.0)
    (tmp_path / "a10g.yaml").write_text(yaml.safe_dump({"A10G": entry}))
    d["catalog"] = {"gpu_dirs": [str(tmp_path)]}
    p = prepare(parse_experiment(d))
    assert p.instances[0][1].idle_power_w == 20.0
