"""handgrad layers: same outputs, gradients and config as the Keras layers; XLA, mixed precision, .keras round trip."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from cnnkit import handgrad
from cnnkit.handgrad.check import relative_error

PAIRS = [
    (handgrad.Conv2D, keras.layers.Conv2D, {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}),
    (handgrad.Conv2D, keras.layers.Conv2D, {"filters": 3, "kernel_size": (2, 3), "dilation_rate": 2, "use_bias": False}),
    (handgrad.Dense, keras.layers.Dense, {"units": 5, "activation": "tanh"}),
    (handgrad.MaxPooling2D, keras.layers.MaxPooling2D, {"pool_size": 3, "strides": 2, "padding": "same"}),
    (handgrad.AveragePooling2D, keras.layers.AveragePooling2D, {"pool_size": 2, "padding": "same"}),
]


def _twins(ours_cls, keras_cls, kwargs, input_shape, dtype=None):
    ours, theirs = ours_cls(**kwargs, dtype=dtype), keras_cls(**kwargs, dtype=dtype)
    ours.build(input_shape)
    theirs.build(input_shape)
    for variable, value in zip(ours.weights, [w.numpy() for w in theirs.weights]):
        variable.assign(value)
    return ours, theirs


def _loss_and_grads(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
    return y, tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize(("ours_cls", "keras_cls", "kwargs"), PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_layer_matches_keras_layer(ours_cls, keras_cls, kwargs):
    shape = (2, 7, 6, 3) if ours_cls is not handgrad.Dense else (4, 6)
    x = tf.constant(np.random.default_rng(0).standard_normal(shape), tf.float32)
    ours, theirs = _twins(ours_cls, keras_cls, kwargs, shape)
    (y_ours, grads_ours), (y_theirs, grads_theirs) = _loss_and_grads(ours, x), _loss_and_grads(theirs, x)
    assert relative_error(y_ours, y_theirs) <= 1e-5
    assert len(grads_ours) == len(grads_theirs)
    for got, want in zip(grads_ours, grads_theirs):
        assert relative_error(got, want) <= 1e-4
    assert ours.get_config() == theirs.get_config() | {"name": ours.name}


def _small_model(layers):
    conv, max_pool, avg_pool, dense = layers
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((10, 9, 2)),
            conv(4, 3, padding="same", activation="relu"),
            max_pool(2),
            conv(6, 2, strides=2, padding="same"),
            avg_pool(2, padding="same"),
            keras.layers.Flatten(),
            dense(3),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )


HANDGRAD_LAYERS = (handgrad.Conv2D, handgrad.MaxPooling2D, handgrad.AveragePooling2D, handgrad.Dense)
KERAS_LAYERS = (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dense)


def _train_step(model, jit_compile):
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_weights)

    return step


def test_xla_compiled_step_matches_keras():
    x = tf.constant(np.random.default_rng(1).random((4, 10, 9, 2)), tf.float32)
    y = tf.constant([0, 1, 2, 1])
    ours, theirs = _small_model(HANDGRAD_LAYERS), _small_model(KERAS_LAYERS)
    loss_ours, grads_ours = _train_step(ours, jit_compile=True)(x, y)
    loss_theirs, grads_theirs = _train_step(theirs, jit_compile=False)(x, y)
    assert relative_error(loss_ours, loss_theirs) <= 1e-5
    for got, want in zip(grads_ours, grads_theirs):
        assert relative_error(got, want) <= 1e-4


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_gradients_come_back_in_variable_dtype(policy):
    shape = (2, 7, 6, 3)
    x = tf.constant(np.random.default_rng(2).random(shape), tf.float32)
    kwargs = {"filters": 4, "kernel_size": 3, "padding": "same"}
    mixed, reference = handgrad.Conv2D(**kwargs, dtype=policy), keras.layers.Conv2D(**kwargs)
    for layer in (mixed, reference):
        layer.build(shape)
    for variable, value in zip(mixed.weights, [w.numpy() for w in reference.weights]):
        variable.assign(value)
    y_mixed, grads_mixed = _loss_and_grads(mixed, x)
    _, grads_reference = _loss_and_grads(reference, x)
    assert y_mixed.dtype == keras.DTypePolicy(policy).compute_dtype
    assert [g.dtype for g in grads_mixed[1:]] == [tf.float32, tf.float32]
    for got, want in zip(grads_mixed[1:], grads_reference[1:]):
        assert relative_error(got, want) <= 5e-2  # half precision carries ~3 significant digits


def test_keras_file_round_trip(tmp_path):
    model = _small_model(HANDGRAD_LAYERS)
    x = np.random.default_rng(3).random((2, 10, 9, 2)).astype("float32")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded(x), model(x))


def test_channels_first_and_groups_are_refused():
    with pytest.raises(ValueError, match="channels_last"):
        handgrad.Conv2D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="groups=1"):
        handgrad.Conv2D(4, 3, groups=2)
    with pytest.raises(ValueError, match="channels_last"):
        handgrad.MaxPooling2D(2, data_format="channels_first")
