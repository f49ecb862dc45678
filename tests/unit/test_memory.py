import pytest

from greensim.base.errors import ConfigError
from greensim.core.memory import kv_capacity_blocks
from greensim.hardware.catalog import load_catalog

CAT = load_catalog()


def test_capacity_formula():
    """80 GB x 0.9 - 13.5 GB of Llama-2-7B weights, in 16-token blocks of 0.5 MiB tokens."""
    m = CAT.model("Llama-2-7B")
    blocks = kv_capacity_blocks(80e9, 1, m.weight_bytes, m.kv_bytes_per_token, 16, 0.1)
    assert blocks == int((72e9 - m.weight_bytes) // (16 * 524288))
    assert blocks * 16 > 100_000  # ~112k tokens, as vLLM reports for a 7B model on an 80 GB GPU


def test_tp_adds_memory():
    m = CAT.model("Llama-2-70B")
    assert kv_capacity_blocks(80e9, 4, m.weight_bytes, m.kv_bytes_per_token, 16, 0.1) > 0
    with pytest.raises(ConfigError, match="does not fit.*Raise tp"):
        kv_capacity_blocks(80e9, 1, m.weight_bytes, m.kv_bytes_per_token, 16, 0.1)


def test_7b_on_t4_leaves_little_kv_room():
    """13.5 GB of weights on a 16 GB T4: under 2k tokens of KV at a 10% reserve, none at 20%."""
    m = CAT.model("Llama-2-7B")
    assert kv_capacity_blocks(16e9, 1, m.weight_bytes, m.kv_bytes_per_token, 16, 0.1) * 16 < 2000
    with pytest.raises(ConfigError, match="does not fit"):
        kv_capacity_blocks(16e9, 1, m.weight_bytes, m.kv_bytes_per_token, 16, 0.2)
