"""Classification metrics against hand-computed values."""

import numpy as np
import pytest

from cnnkit import metrics


def test_classification_report_by_hand():
    y = np.array([0, 0, 1, 1, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25]])
    report = metrics.classification_report(y, probs, ["a", "b", "c"])
    assert report["n"] == 5
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.3, 0.7, 0.8, 0.25])))
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    a, b, c = (report["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 0.5, 2)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0
    assert b["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_loss_clips_zero_probabilities():
    report = metrics.classification_report(np.array([1]), np.array([[1.0, 0.0]]), ["a", "b"])
    assert report["loss"] == pytest.approx(-np.log(1e-7))


def test_top_k_order_and_names():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    top = metrics.top_k(probs, ["x", "y", "z"], 2)
    assert top == [
        [{"label": "y", "probability": 0.6}, {"label": "z", "probability": 0.3}],
        [{"label": "x", "probability": 0.5}, {"label": "z", "probability": 0.3}],
    ]
