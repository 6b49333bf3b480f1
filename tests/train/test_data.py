import numpy as np
import pytest

from astrogen.data import FieldSet
from astrogen.errors import ConfigError, DataError
from astrogen.sims import simulate_to_file
from astrogen.train import BalanceConfig, DataConfig, prepare_split
from astrogen.train.data import balance_weights


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    return simulate_to_file("blobs", 12, tmp_path_factory.mktemp("data") / "b.h5", seed=0,
                            config={"n_blobs": 1, "size": 8, "fwhm": 2})


def test_split_holds_out_the_tail_and_fits_the_transform_on_the_head(blobs):
    split = prepare_split(DataConfig(path=str(blobs), val_fraction=0.01, batch_size=4), seed=0, columns=["x0"])
    assert split.n_train == 11  # a fraction > 0 holds out at least one sample
    assert len(split.val.batch_sampler.sampler) == 1 and len(split.train.batch_sampler.sampler) == 11
    with FieldSet(blobs) as fs:
        head = fs.images[:11]
        np.testing.assert_array_equal(split.params["x0"], fs.params["x0"][:11])
    network = split.transform.forward(head)
    assert network.min() == pytest.approx(-1, abs=1e-6) and network.max() == pytest.approx(1, abs=1e-6)
    batch = next(iter(split.train))
    assert batch["image"].shape == (4, 1, 8, 8) and batch["params"].shape == (4, 1)


def test_split_refusals(blobs):
    with pytest.raises(DataError, match="too few"):
        prepare_split(DataConfig(path=str(blobs), val_fraction=0.95), seed=0)
    with pytest.raises(DataError, match="C >= 2"):
        prepare_split(DataConfig(path=str(blobs)), seed=0, min_channels=2)
    with pytest.raises(ConfigError, match="no columns"):
        prepare_split(DataConfig(path=str(blobs)), seed=0, columns=["redshift"])
    max_norm = DataConfig(path=str(blobs), transform=[{"name": "MaxNorm"}])
    assert prepare_split(max_norm, seed=0).n_train == 11  # per-image maps are fine for inputs...
    with pytest.raises(ConfigError, match="MaxNorm"):  # ...not for samples that must be mapped back
        prepare_split(max_norm, seed=0, invertible=True)


def test_balance_weights_flatten_a_column_at_power_one_and_follow_n_to_the_minus_power():
    values = np.concatenate([np.full(90, 0.5), np.full(9, 1.5), [2.5]])  # 90 / 9 / 1 in three unit bins
    flat = balance_weights(values, BalanceConfig(column="z", bins=3, power=1))
    np.testing.assert_allclose([flat[:90].sum(), flat[90:99].sum(), flat[99]], [1 / 3] * 3)
    half = balance_weights(values, BalanceConfig(column="z", bins=3, power=0.5))
    np.testing.assert_allclose(half[[0, 90, 99]] / half[99], [90 ** -0.5, 9 ** -0.5, 1])
    assert half.sum() == pytest.approx(1)
    with pytest.raises(DataError, match="NaN"):
        balance_weights(np.array([0.0, np.nan]), BalanceConfig(column="z"))


def test_balanced_split_draws_sparse_values_more_often(blobs):
    with FieldSet(blobs) as fs:
        x0 = np.asarray(fs.params["x0"][:11])
    data = DataConfig(path=str(blobs), val_fraction=0.01, batch_size=1, balance={"column": "x0", "bins": 4, "power": 1})
    order = prepare_split(data, seed=0).train.batch_sampler.sampler
    draws = np.concatenate([np.asarray(list(order)) for order.epoch in range(2000)])
    assert set(draws) <= set(range(11))  # with replacement, from the training split only
    counts, edges = np.histogram(x0, 4)
    assert len(set(counts)) > 1  # unequal bins, or the test could not fail
    drawn = np.histogram(x0[draws], edges)[0] / len(draws)  # power 1: every bin drawn equally often
    np.testing.assert_allclose(drawn, 0.25, atol=0.01)
    with pytest.raises(ConfigError, match="no columns"):
        prepare_split(DataConfig(path=str(blobs), balance={"column": "redshift"}), seed=0)
