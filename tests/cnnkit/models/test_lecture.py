"""The lecture CNN: its layout, the one-block lecture configuration, and learning on real digits."""

import keras
import numpy as np

from cnnkit import models


def test_default_is_three_conv_pool_blocks_and_a_hidden_layer():
    model = models.build("lecture", (28, 28, 1), 10)
    assert [layer.name for layer in model.layers] == [
        "input", "block1_conv", "block1_pool", "block2_conv", "block2_pool", "block3_conv", "block3_pool",
        "flatten", "fc", "dropout", "logits", "predictions",
    ]
    assert tuple(model.get_layer("flatten").input.shape) == (None, 4, 4, 128)  # 28 -> 14 -> 7 -> 4 ("same")
    # On 8x8 digits the first pool goes: 8 -> 8 -> 4 -> 2.
    small = models.build("lecture", (8, 8, 1), 10)
    assert "block1_pool" not in [layer.name for layer in small.layers]
    assert tuple(small.get_layer("flatten").input.shape) == (None, 2, 2, 128)


def test_single_block_is_the_lecture_example():
    model = models.build("lecture", (4, 4, 1), 4, filters=(1,), dense_units=0, dropout=0.0)
    # conv 3x3 (9 + 1 bias) -> ReLU -> 2x2 pool -> Dense(4 * 4 + 4): the lecture's worked example.
    assert model.count_params() == 10 + 4 * 4 + 4
    assert model.get_layer("block1_conv").activation.__name__ == "relu"


def test_handgrad_flavour_computes_the_same_function():
    shape = (8, 8, 1)
    ref = models.build("lecture", shape, 10)
    hand = models.build("lecture", shape, 10, conv="handgrad")
    hand.set_weights(ref.get_weights())
    x = np.random.rand(4, *shape).astype("float32")
    np.testing.assert_allclose(hand(x, training=False), ref(x, training=False), rtol=1e-5, atol=1e-6)


def test_learns_sklearn_digits():
    """A few epochs on 1,000 of scikit-learn's 8x8 digits; held-out accuracy well above chance."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target
    keras.utils.set_random_seed(0)
    model = models.build("lecture", (8, 8, 1), 10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1000], y[:1000], epochs=4, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x[1000:], y[1000:], verbose=0)
    assert accuracy > 0.85
