"""Waveform -> spectrogram front ends (:mod:`features`) and audio augmentation steps (:mod:`augment`)."""
