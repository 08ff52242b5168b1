"""The run's PNG plots are written whole, for grey and colour images and for an empty grid."""

import numpy as np
from PIL import Image

from cnnkit import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curves_and_confusion_matrix(tmp_path):
    history = [{"epoch": e, "loss": 1 / (e + 1), "accuracy": e / 3, "val_loss": 1.2 / (e + 1), "val_accuracy": e / 4} for e in range(3)]
    plots.training_curves(history, tmp_path / "curves.png")
    plots.confusion_matrix([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "curves.png"]  # no temporaries left
    assert all(p.read_bytes()[:8] == PNG for p in tmp_path.iterdir())


def test_misclassified_grid_grey_colour_and_none(tmp_path):
    rng = np.random.default_rng(0)
    plots.misclassified_grid(rng.random((7, 8, 8, 1)), np.zeros(7, int), np.ones(7, int), ["a", "b"], tmp_path / "g.png", misclassified=9, tested=20)
    plots.misclassified_grid(rng.random((2, 5, 6, 3)), np.array([0, 1]), np.array([1, 0]), ["a", "b"], tmp_path / "c.png", misclassified=2, tested=2)
    plots.misclassified_grid(np.zeros((0, 8, 8, 1)), np.zeros(0, int), np.zeros(0, int), ["a", "b"], tmp_path / "n.png", misclassified=0, tested=5)
    for name in ("g.png", "c.png", "n.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 50
