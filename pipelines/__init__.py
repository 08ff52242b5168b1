"""The three jobs built from cnnkit: image classification, speech recognition, image compression.

Each module exposes a frozen ``Config`` dataclass and ``run(cfg) -> dict``.
"""
