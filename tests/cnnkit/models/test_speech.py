"""Speech builders: DS-CNN's layout against the paper, SubSpectral Norm and BC-ResNet's broadcast residual."""

import keras
import numpy as np
import pytest

from cnnkit import models
from cnnkit.models.speech import _sub_spectral_norm


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


def test_dscnn_s_parameter_count_from_the_paper_layout():
    model = models.build("dscnn", (49, 10, 1), 12)
    bn = 4 * 64  # gamma, beta, moving mean, moving variance
    conv1 = 10 * 4 * 1 * 64 + bn
    ds_block = 3 * 3 * 64 + bn + 64 * 64 + bn
    assert model.count_params() == conv1 + 4 * ds_block + 64 * 12 + 12 == 24_332
    assert model.get_layer("conv1_conv").strides == (2, 2)
    assert tuple(model.get_layer("avg_pool").input.shape) == (None, 25, 5, 64)


def test_dscnn_m_strides_time_twice_and_frequency_once():
    model = models.build("dscnn", (49, 10, 1), 12, size="m")
    assert model.get_layer("conv1_conv").strides == (2, 1)
    assert model.get_layer("ds1_dw").strides == (2, 2)
    assert tuple(model.get_layer("avg_pool").input.shape) == (None, 13, 5, 172)


def test_dscnn_rejects_unknown_size():
    from cnnkit.errors import InputError

    with pytest.raises(InputError, match="size='xl'.*s, m, l"):
        models.build("dscnn", (49, 10, 1), 12, size="xl")


@pytest.mark.parametrize(("bins", "bands"), [(10, 5), (8, 1)])
def test_sub_spectral_norm_normalises_each_sub_band_separately(bins, bands):
    x = keras.Input((6, bins, 3))
    model = keras.Model(x, _sub_spectral_norm(x, 5, name="ssn"))
    # Each frequency band gets its own offset and scale, so one shared BN would not normalise it.
    band = np.arange(bins)[None, None, :, None]
    v = (np.random.randn(64, 6, bins, 3) * (1 + band) + 10 * band).astype("float32")
    y = np.asarray(model(v, training=True))
    per_band = y.reshape(64, 6, bands, bins // bands, 3)
    mean = per_band.mean(axis=(0, 1, 3))
    var = per_band.var(axis=(0, 1, 3))
    if bands == 1:  # plain batch norm: only the overall statistics are normalised
        mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    np.testing.assert_allclose(mean, 0, atol=1e-4)
    np.testing.assert_allclose(var, 1, atol=1e-2)


def test_bcresnet_block_is_identity_plus_sub_band_term_plus_broadcast_time_term():
    model = models.build("bcresnet", (16, 10, 1), 4, tau=1)
    probe = keras.Model(
        model.input,
        [model.get_layer(n).output for n in (
            "stage1_block1_out", "stage1_block2_ssn_join", "stage1_block2_freq_avg",
            "stage1_block2_pw_conv", "stage1_block2_out",
        )],
    )
    x, aux, avg, y, out = (np.asarray(t) for t in probe(np.random.rand(2, 16, 10, 1).astype("float32")))
    np.testing.assert_allclose(avg, aux.mean(axis=2, keepdims=True), rtol=1e-5, atol=1e-6)
    assert y.shape == (2, 16, 1, 8)  # one value per frame, broadcast over the 10 bins
    np.testing.assert_allclose(out, np.maximum(x + aux + y, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "head_stride", "final_bins", "tail_taps"),
    [((98, 40, 1), 2, 5, 5), ((16, 8, 1), 1, 2, 2)],
)
def test_bcresnet_halves_only_frequency(shape, head_stride, final_bins, tail_taps):
    model = models.build("bcresnet", shape, 12, tau=1)
    assert model.get_layer("head_conv").strides == (1, head_stride)
    assert tuple(model.get_layer("tail_dw").input.shape)[1:3] == (shape[0] + 4, final_bins)
    assert model.get_layer("tail_dw").kernel_size == (5, tail_taps)
    assert tuple(model.get_layer("avg_pool").input.shape)[1:3] == (shape[0], 1)  # time is never downsampled
