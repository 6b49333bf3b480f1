import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astrogen.data import FieldSet
from astrogen.data.transforms import (
    ChannelStats,
    Compose,
    Contrast,
    Log1p,
    MaxNorm,
    MinMax,
    SignLog,
    Standardize,
    Transform,
    contrast_a_for_noise,
    signlog_standardize,
)
from astrogen.errors import ConfigError, DataError, UnknownNameError


def batches_of(elements, min_value=None):
    """Hypothesis strategy: float32 arrays [N, 2, 4, 4] from ``elements``, with spread in each channel."""
    return arrays(np.float32, (3, 2, 4, 4), elements=elements).filter(
        lambda a: np.all(np.ptp(a, axis=(0, 2, 3)) > 1e-3 * (1 + np.abs(a).max()))
    )


finite = st.floats(-1e4, 1e4, width=32)
positive = st.floats(0, 1e3, width=32)


def assert_round_trip(transform, x, rtol=2e-6, atol_scale=2e-6):
    scale = np.abs(x).max() + 1
    for data in (x, torch.from_numpy(x)):
        back = transform.inverse(transform.forward(data))
        assert type(back) is type(data) and back.dtype == data.dtype
        np.testing.assert_allclose(np.asarray(back), x, rtol=rtol, atol=atol_scale * scale)


@settings(max_examples=60, deadline=None)
@given(batches_of(finite))
def test_minmax_round_trip_and_range(x):
    t = MinMax().fit(x)
    y = t.forward(x)
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    np.testing.assert_allclose(y.min(axis=(0, 2, 3)), -1, atol=1e-6)
    np.testing.assert_allclose(y.max(axis=(0, 2, 3)), 1, atol=1e-6)
    assert_round_trip(t, x)


@settings(max_examples=60, deadline=None)
@given(batches_of(finite))
def test_standardize_and_signlog_round_trip(x):
    assert_round_trip(Standardize().fit(x), x)
    assert_round_trip(SignLog().fit(x), x, rtol=1e-5)
    assert_round_trip(signlog_standardize().fit(x), x, rtol=1e-5, atol_scale=1e-5)


@settings(max_examples=60, deadline=None)
@given(batches_of(positive), st.floats(0.01, 10))
def test_contrast_round_trip(x, a):
    # Conditioning: relative error ~ (x + a) / a * eps, so allow that in the tolerance.
    t = Contrast(a)
    y = t.forward(x)
    assert y.min() >= 0 and y.max() < 1
    back = t.inverse(y)
    np.testing.assert_allclose(back, x, rtol=4e-7 * (x.max() + a) / a + 1e-6, atol=1e-6 * a)


@settings(max_examples=60, deadline=None)
@given(batches_of(st.floats(-0.75, 1e3, width=32)))
def test_log1p_round_trip(x):
    assert_round_trip(Log1p(), x, rtol=1e-5, atol_scale=1e-5)


@settings(max_examples=40, deadline=None)
@given(batches_of(st.floats(0.015625, 1e3, width=32)))
def test_maxnorm_round_trip_needs_scale(x):
    t = MaxNorm()
    y = t.forward(x)
    np.testing.assert_allclose(y.reshape(3, 2, -1).max(-1), 1.0)
    np.testing.assert_allclose(t.inverse(y, t.scale(x)), x, rtol=1e-6)
    with pytest.raises(DataError, match="scale"):
        t.inverse(y)


def test_formulas_match_the_reports():
    x = np.array([-3.0, -1.0, 0.0, 2.0, 10.0], dtype=np.float64).reshape(1, 1, 1, 5)
    t = SignLog(sigma=[2.0])
    np.testing.assert_allclose(t.forward(x), np.sign(x) * np.log(np.abs(x) / 2 + 1))
    np.testing.assert_allclose(Contrast(0.5).forward(np.abs(x)), np.abs(x) / (np.abs(x) + 0.5))
    np.testing.assert_allclose(Log1p().forward(x + 3.5), np.log(x + 4.5))
    np.testing.assert_allclose(MinMax(min=[-3.0], max=[10.0]).forward(x), 2 * (x + 3) / 13 - 1)


def test_minmax_keeps_a_given_range_and_fits_the_rest():
    x = np.random.default_rng(0).uniform(2, 5, (6, 2, 4, 4)).astype(np.float32)
    fixed = MinMax(min=[0.0, 0.0], max=[1.0, 10.0]).fit(x)
    assert fixed.min == [0.0, 0.0] and fixed.max == [1.0, 10.0]
    np.testing.assert_allclose(fixed.forward(x)[:, 1], 2 * x[:, 1] / 10 - 1, rtol=1e-6)
    half = MinMax(min=[0.0, 0.0]).fit(x)
    np.testing.assert_allclose(half.max, x.max(axis=(0, 2, 3)))
    with pytest.raises(DataError, match="max > min"):
        MinMax(min=[0.0, 6.0]).fit(x)


def test_per_channel_parameters():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5, 2, (50, 8, 8)), rng.normal(-100, 30, (50, 8, 8))], axis=1)
    t = Standardize().fit(x)
    np.testing.assert_allclose(t.mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(t.std, x.std(axis=(0, 2, 3)))
    y = t.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1)


def test_streaming_fit_equals_in_memory_fit(make_fieldset):
    path, images, *_ = make_fieldset(n=23)
    with FieldSet(path) as fs:
        streamed = ChannelStats.of(fs)  # batches of 256 would be one batch: force several
        chunked = ChannelStats.of([images[i : i + 5] for i in range(0, 23, 5)])
    whole = ChannelStats.of(images)
    for stats in (streamed, chunked):
        np.testing.assert_allclose(stats.mean, whole.mean, rtol=1e-12)
        np.testing.assert_allclose(stats.std, whole.std, rtol=1e-10)
        np.testing.assert_array_equal(stats.min, images.min(axis=(0, 2, 3)))
        np.testing.assert_allclose(stats.std, images.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-10)


def test_compose_fits_each_stage_on_the_previous_output():
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 2, (20, 1, 8, 8)).astype(np.float32)
    stream = [x[i : i + 7] for i in range(0, 20, 7)]
    t = Compose([Log1p(), MinMax()]).fit(stream)
    np.testing.assert_allclose(t.transforms[1].min, np.log1p(x).min(), rtol=1e-6)
    y = t.forward(x)
    assert np.isclose(y.min(), -1, atol=1e-6) and np.isclose(y.max(), 1, atol=1e-6)
    # float32 keeps ~1e-7 of the [-1, 1] range: an absolute error ~ (1 + x) * 1e-6 in x.
    np.testing.assert_allclose(t.inverse(y), x, rtol=2e-5, atol=2e-6)


def test_to_dict_from_dict_round_trip_through_json():
    x = np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype(np.float32)
    t = Compose([Log1p(eps=0.1), Contrast([1.0, 2.0, 3.0]), SignLog(), Standardize(), MinMax()])
    t.fit(np.abs(x))
    rebuilt = Transform.from_dict(json.loads(json.dumps(t.to_dict())))
    assert rebuilt == t
    np.testing.assert_array_equal(rebuilt.forward(np.abs(x)), t.forward(np.abs(x)))
    with pytest.raises(UnknownNameError, match="unknown transform"):
        Transform.from_dict({"name": "Wavelet"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_path_keeps_device_and_dtype(device, dtype):
    x = torch.rand(4, 2, 6, 6, dtype=dtype, device=device) * 10
    t = Compose([Log1p(), SignLog(), MinMax()]).fit(x)
    y = t.forward(x)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.device == x.device
    torch.testing.assert_close(t.inverse(y), x)
    scale = MaxNorm().scale(x + 1)
    torch.testing.assert_close(MaxNorm().inverse(MaxNorm().forward(x + 1), scale), x + 1)


def test_contrast_noise_helper_solves_its_equation():
    for sigma0 in (0.01, 0.1, 0.25):
        for root in ("small", "large"):
            a = contrast_a_for_noise(sigma0, root=root)
            assert np.isclose(sigma0 / (np.sqrt(a) - a), 1.0)
            assert (a <= 0.25 + 1e-12) if root == "small" else (a >= 0.25 - 1e-12)
    with pytest.raises(DataError, match="1/4"):
        contrast_a_for_noise(0.3)


def test_errors_name_the_problem():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(DataError, match="not fitted"):
        MinMax().forward(x)
    with pytest.raises(DataError, match="constant"):
        MinMax().fit(x)
    with pytest.raises(DataError, match="fitted on 1 channels"):
        MinMax(min=[0.0], max=[1.0]).forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(DataError, match=r"\[N, C, \.\.\.\]"):
        Standardize(mean=[0.0], std=[1.0]).forward(np.zeros((4, 4)))
    with pytest.raises(DataError, match="x > -1"):
        Log1p().forward(x - 1)
    with pytest.raises(DataError, match="a > 0"):
        Contrast(-1.0)
    with pytest.raises(DataError, match="NaN"):
        Standardize().fit(np.full((2, 1, 2, 2), np.nan))


def test_signlog_mad_scale_is_the_noise_level_that_bright_sources_do_not_move():
    rng = np.random.default_rng(0)
    noise = np.array([0.1, 0.7])  # per channel
    x = rng.normal(size=(2000, 2, 16, 16)) * noise[:, None, None]
    x[:3, :, 8, 8] += 1e6  # three very bright point sources
    mad = SignLog(scale="mad").fit([x[:1000], x[1000:]])  # a stream of two batches
    np.testing.assert_allclose(mad.sigma, noise, rtol=0.02)  # 2 x 16,384 values per channel: ~0.6% error
    assert np.all(np.asarray(SignLog().fit(x).sigma) > 100 * noise)  # the std is the bright sources'
    assert_round_trip(mad, x, rtol=1e-5)
    assert Transform.from_dict(mad.to_dict()).to_dict() == mad.to_dict()
    with pytest.raises(ConfigError, match="scale"):
        SignLog(scale="iqr").fit(x)
    with pytest.raises(DataError, match="median absolute deviation"):
        SignLog(scale="mad").fit(np.zeros((4, 1, 8, 8)))


def test_signlog_factor_scales_the_fitted_sigma_and_keeps_the_noise_near_linear():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 2, 16, 16)) * np.array([0.1, 0.7])[:, None, None]
    plain, soft = SignLog(scale="mad").fit(x), SignLog(scale="mad", factor=3.0).fit(x)
    np.testing.assert_allclose(soft.sigma, 3 * np.asarray(plain.sigma), rtol=1e-12)
    np.testing.assert_allclose(SignLog(factor=2.0).fit(x).sigma, 2 * np.asarray(SignLog().fit(x).sigma), rtol=1e-12)
    assert_round_trip(soft, x, rtol=1e-5)
    assert Transform.from_dict(soft.to_dict()).factor == 3.0
    assert Transform.from_dict({"name": "SignLog", "sigma": [1.0, 1.0]}).factor == 1.0  # models saved before
    # the inverse's gain at x = -4 sigma_noise over its gain at 0: (factor + 4) / factor
    four = -4 * np.array(plain.sigma)[None, :, None, None] * np.ones((1, 2, 1, 1))
    for t, k in ((plain, 1.0), (soft, 3.0)):
        gain = np.exp(-t.forward(four)) * np.array(t.sigma)[None, :, None, None]  # d inverse / dy at y(x)
        np.testing.assert_allclose(gain / np.array(t.sigma)[None, :, None, None], (k + 4) / k, rtol=1e-6)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="factor"):
            SignLog(factor=bad).fit(x)
