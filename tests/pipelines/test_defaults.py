"""pipelines.defaults: what the training commands choose from the data when an option is left unset."""

import pytest

from cnnkit.data.synth_speech import DIGITS
from pipelines import defaults


@pytest.mark.parametrize("dataset", ["fsdd:recordings", "folder:clips", "tfds:spoken_digit"])
def test_recordings_train_with_vtlp_and_filter_augment_by_default(dataset):
    assert defaults.speech_augmentation(dataset, "tf", None, None) == {"vtlp": 0.15, "filter_augment": 3.0}


def test_the_synthetic_digits_and_the_librosa_front_end_keep_them_off():
    off = {"vtlp": 0.0, "filter_augment": 0.0}
    assert defaults.speech_augmentation("synth-digits", "tf", None, None) == off
    assert defaults.speech_augmentation("synth-digits:extended", "tf", None, None) == off
    assert defaults.speech_augmentation("fsdd:recordings", "librosa", None, None) == off


def test_off_switches_and_given_values_win():
    assert defaults.speech_augmentation("fsdd:recordings", "tf", 0.0, 0.0) == {"vtlp": 0.0, "filter_augment": 0.0}
    assert defaults.speech_augmentation("synth-digits", "tf", 0.1, 6.0) == {"vtlp": 0.1, "filter_augment": 6.0}


def test_extra_train_auto_adds_the_espeak_voices_to_recorded_digits_only():
    shuffled = list(reversed(DIGITS))
    assert defaults.speech_extra_train("fsdd:recordings", "auto", shuffled) == "synth-digits:extended"
    assert defaults.speech_extra_train("folder:words", "auto", ["yes", "no"]) == ""
    assert defaults.speech_extra_train("folder:words", "auto", DIGITS[:9]) == ""
    assert defaults.speech_extra_train("synth-digits", "auto", DIGITS) == ""
    assert defaults.speech_extra_train("fsdd:recordings", "none", DIGITS) == ""
    assert defaults.speech_extra_train("fsdd:recordings", "synth-digits", DIGITS) == "synth-digits"
