"""The lecture's small CNN, worked by hand, trained with cnnkit's hand-written gradients.

One 4x4 grey image goes through a zero-padded 3x3 convolution (bias 0.02), ReLU,
2x2 max pooling with stride 2 and a fully connected layer with a softmax over four
"direction" classes; plain SGD (learning rate 0.5) trains it on that one image for
7 iterations. Every gradient comes from ``cnnkit.handgrad``'s backward passes, and
the conv bias's update is the lecture's ``b <- b - 0.5 * sum(dL/dA)`` where ``A`` is
the convolution's output before the ReLU.

The lecture leaves two things open; here they are fixed:

* the fully connected weights are drawn from N(0, 0.1^2) with NumPy seed 0, its
  biases start at zero;
* the target class is "right": the image is dark on the left and bright on the
  right, so its edge faces right.

Run it with ``python examples/lecture_by_hand.py``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cnnkit.handgrad import conv2d, dense, max_pool2d

IMAGE = np.array(
    [[0.1, 0.0, 0.9, 0.9], [0.3, 0.2, 1.0, 0.9], [0.0, 0.1, 0.8, 1.0], [0.1, 0.2, 0.9, 0.8]],
)
KERNEL = np.array([[-0.38, -0.80, 0.07], [-0.34, -0.43, 0.98], [-0.62, -0.29, -0.94]])
CONV_BIAS = 0.02
CLASSES = ("up", "down", "left", "right")
TARGET = CLASSES.index("right")
LEARNING_RATE = 0.5
ITERATIONS = 7


def initial_parameters(seed: int = 0) -> dict[str, np.ndarray]:
    """Kernel ``(3, 3, 1, 1)``, conv bias ``(1,)``, FC weights ``(4, 4)`` and FC bias ``(4,)`` (float64)."""
    return {
        "kernel": KERNEL.reshape(3, 3, 1, 1),
        "conv_bias": np.array([CONV_BIAS]),
        "fc_weights": np.random.default_rng(seed).normal(0.0, 0.1, size=(4, len(CLASSES))),
        "fc_bias": np.zeros(len(CLASSES)),
    }


def step(params: dict[str, np.ndarray], image: np.ndarray = IMAGE) -> dict:
    """One forward and backward pass on ``image`` ``(4, 4)``.

    Returns:
        ``prediction`` (4 class probabilities), ``loss`` (cross-entropy of the
        target), ``dL/dA`` ``(4, 4)`` and the gradient of every parameter, by name.
    """
    x = tf.constant(image.reshape(1, 4, 4, 1))
    weights = {name: tf.constant(value) for name, value in params.items()}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(list(weights.values()))
        a = conv2d(x, weights["kernel"], weights["conv_bias"], padding="same")  # (1, 4, 4, 1), before ReLU
        tape.watch(a)
        pooled = max_pool2d(tf.nn.relu(a), 2, 2)  # (1, 2, 2, 1)
        logits = dense(tf.reshape(pooled, [1, 4]), weights["fc_weights"], weights["fc_bias"])
        prediction = tf.nn.softmax(logits)[0]
        loss = -tf.math.log(prediction[TARGET])
    grads = tape.gradient(loss, weights)
    return {
        "prediction": prediction.numpy(),
        "loss": float(loss),
        "dL/dA": tape.gradient(loss, a).numpy()[0, :, :, 0],
        "grads": {name: g.numpy() for name, g in grads.items()},
    }


def train(iterations: int = ITERATIONS, learning_rate: float = LEARNING_RATE, seed: int = 0) -> list[dict]:
    """Plain SGD on the one image; one record per iteration.

    Each record holds the iteration's ``prediction`` and ``loss`` (before its
    update), ``sum_dL_dA``, and the conv bias ``bias_before`` and ``bias_after`` the update.
    """
    params = initial_parameters(seed)
    history = []
    for iteration in range(1, iterations + 1):
        result = step(params)
        bias_before = float(params["conv_bias"][0])
        params = {name: value - learning_rate * result["grads"][name] for name, value in params.items()}
        history.append(
            {
                "iteration": iteration,
                "prediction": result["prediction"],
                "loss": result["loss"],
                "sum_dL_dA": float(result["dL/dA"].sum()),
                "bias_before": bias_before,
                "bias_after": float(params["conv_bias"][0]),
            }
        )
    return history


def main() -> None:
    print(f"classes {CLASSES}, target {CLASSES[TARGET]!r}, SGD learning rate {LEARNING_RATE}")
    for record in train():
        probabilities = " ".join(f"{p:.4f}" for p in record["prediction"])
        print(
            f"iteration {record['iteration']}: prediction [{probabilities}]  loss {record['loss']:.4f}  "
            f"conv bias {record['bias_before']:.4f} - {LEARNING_RATE} * {record['sum_dL_dA']:.4f} = {record['bias_after']:.4f}"
        )


if __name__ == "__main__":
    main()
