import pytest

from greensim.base.errors import ConfigError
from greensim.base.registry import Registry
from greensim.core.ledger import Ledger


def test_ledger_splits_intervals_across_bins():
    led = Ledger(1.0)
    led.busy(0.5, 2.0, 200.0)  # 100 W from 0.5 s to 2.5 s
    assert led.bin_busy_s == [0.5, 1.0, 0.5]
    assert led.bin_busy_j == [50.0, 100.0, 50.0]
    assert led.busy_s == 2.0 and led.busy_j == 200.0


def test_ledger_coarsens_past_max_bins_preserving_sums():
    led = Ledger(1.0, max_bins=4)
    led.busy(0.0, 1.0, 10.0)
    led.sample(0.5, 3, 7)
    led.busy(9.0, 2.0, 20.0)  # needs bin 10 > 4 bins: width 1 -> 4
    assert led.bin_s == 4.0
    assert sum(led.bin_busy_j) == pytest.approx(30.0) and sum(led.bin_busy_s) == pytest.approx(3.0)
    assert led.bin_queue_max[0] == 3 and led.bin_batch_max[0] == 7


def test_registry_duplicate_and_unknown():
    r = Registry("widget")
    r.register("alpha")(object)
    with pytest.raises(ValueError, match="registered twice"):
        r.register("alpha")(object)
    with pytest.raises(ConfigError, match=r"x\.y: unknown widget 'alpah' \(valid: alpha\)\. Did you mean 'alpha'"):
        r.get("alpah", field="x.y")
    f = lambda: 1  # noqa: E731
    assert r.get(f) is f  # a callable is accepted as is (notebooks)
