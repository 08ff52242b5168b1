"""Seed ensembles: several trained classifiers as one model that averages their probabilities.

Members trained from different random initialisations (and data orders) make
partly independent errors; averaging their class probabilities cancels part of
them (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and scalable predictive
uncertainty estimation using deep ensembles"; Hansen & Salamon 1990). The result
is an ordinary Keras model, so saving, loading, evaluating, predicting and
exporting work as for one member.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cnnkit.errors import InputError

__all__ = ["average_ensemble"]


def average_ensemble(members: Sequence[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model whose output is the mean of ``members``' class probabilities.

    ``p(y | x) = (1 / N) * sum_i p_i(y | x)``: probabilities are averaged, not
    logits, so each member keeps its own calibration and the output stays a
    distribution.

    Args:
        members: N >= 2 classifiers with the same input shape and the same
            number of classes, each from ``(batch, *input_shape)`` to
            ``(batch, num_classes)`` probabilities.
        name: the ensemble model's name.

    Returns:
        A model from ``(batch, *input_shape)`` to ``(batch, num_classes)``
        float32 probabilities; member i is its sub-model ``member{i}`` and the
        last layer is the ``Average`` named ``predictions``.

    Raises:
        InputError: fewer than two members, or members that disagree on the
            input shape or the class count.
    """
    if len(members) < 2:
        raise InputError(f"an ensemble needs at least 2 members, got {len(members)}")
    input_shape = tuple(members[0].input_shape[1:])
    num_classes = members[0].output_shape[-1]
    for i, member in enumerate(members):
        if tuple(member.input_shape[1:]) != input_shape or member.output_shape[-1] != num_classes:
            raise InputError(
                f"ensemble member {i}: input {tuple(member.input_shape[1:])} -> {member.output_shape[-1]} classes, "
                f"expected {input_shape} -> {num_classes} like member 0"
            )
    inputs = keras.Input(input_shape, name="input")
    # Re-wrapped under unique names: every member of one architecture carries the same
    # model name, and a functional model's direct layers must be named uniquely.
    outputs = [keras.Model(m.input, m.output, name=f"member{i}")(inputs) for i, m in enumerate(members)]
    probabilities = keras.layers.Average(name="predictions", dtype="float32")(outputs)
    return keras.Model(inputs, probabilities, name=name)
