"""Tiny codecs for the codec and compression-pipeline tests: a few channels, random weights, no training."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_tiny_weights(folder: Path, qualities=(1, 2, 3, 4), model: str = "factorized") -> Path:
    """Write ``<model>-q<N>.npz`` codec files with 4-channel random-weight models into ``folder``."""
    import keras

    from cnnkit.codec import codec, models

    folder.mkdir(parents=True, exist_ok=True)
    for quality in qualities:
        keras.utils.set_random_seed(quality)
        model_ = models.build(model, filters=4, latent=4, lmbda=0.01 * quality)
        codec.save(model_, quality, folder / f"{model}-q{quality}.npz")
    return folder


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A folder with four tiny `factorized` codec files (qualities 1-4)."""
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def tiny_codec(tiny_weights):
    """The quality-1 tiny codec, loaded."""
    from cnnkit.codec import codec

    return codec.load(tiny_weights / "factorized-q1.npz")


@pytest.fixture(scope="session")
def tiny_hyperprior_file(tmp_path_factory) -> Path:
    """The codec file of a tiny random-weight `hyperprior` model (quality 1)."""
    folder = make_tiny_weights(tmp_path_factory.mktemp("hyperprior"), qualities=(1,), model="hyperprior")
    return folder / "hyperprior-q1.npz"


@pytest.fixture(scope="session")
def tiny_hyperprior(tiny_hyperprior_file):
    """The tiny `hyperprior` codec, loaded."""
    from cnnkit.codec import codec

    return codec.load(tiny_hyperprior_file)
