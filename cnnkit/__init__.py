"""cnnkit: convolutional neural networks on images and audio.

The library the pipelines share. Nothing here knows about click or about the
files of a run; see README.md for where each piece lives.
"""

__version__ = "0.1.0"
