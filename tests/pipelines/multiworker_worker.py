"""One worker of the two-process MultiWorkerMirroredStrategy test; ``TF_CONFIG`` says which.

Run by ``test_multiworker.py`` as ``python -m tests.pipelines.multiworker_worker OUT``.
It trains the lecture CNN on 320 of scikit-learn's digits for 2 epochs through
the same library calls as the training commands (``setup_compute``,
``run_folder``, ``runs.start``, ``training.fit``, ``runs.finish``) and prints
one JSON line: where this worker wrote, whether it is the chief, and its history.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from cnnkit import distribute, models, runs, training

PER_REPLICA_BATCH = 16
EPOCHS = 2


def main(out: str) -> None:
    strategy = distribute.setup_compute(device="cpu", strategy="multiworker")
    digits = load_digits()
    x = (digits.images[:320, :, :, None] / 16.0).astype("float32")
    y = digits.target[:320]
    batch = distribute.global_batch_size(PER_REPLICA_BATCH, strategy)
    # A fixed shuffle seed: DATA sharding needs every worker to see the same order.
    train = distribute.shard_by_data(tf.data.Dataset.from_tensor_slices((x[:256], y[:256])).shuffle(256, seed=0).batch(batch))
    val = distribute.shard_by_data(tf.data.Dataset.from_tensor_slices((x[256:], y[256:])).batch(batch))
    with distribute.run_folder(out, strategy) as folder:
        run_dir = runs.start(folder, task="multiworker-test", config={"epochs": EPOCHS, "batch": PER_REPLICA_BATCH})
        with strategy.scope():
            model = models.build("lecture", (8, 8, 1), 10, filters=(8, 16), dense_units=32)
            training.compile_classifier(model, lr=3e-3, epochs=EPOCHS, steps_per_epoch=256 // batch)
        result = training.fit(model, train, validation=val, epochs=EPOCHS, run_dir=run_dir, verbose=False)
        scores = model.evaluate(val, return_dict=True, verbose=0)
        runs.finish(run_dir, {"epochs_run": result.epochs_run, "val_accuracy": scores["accuracy"], "val_loss": scores["loss"]})
    report = {
        "chief": distribute.is_chief(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "run_dir": str(run_dir),
        "epochs": [row["epoch"] for row in result.history],
        "val_accuracy": scores["accuracy"],
        "weights_checksum": float(sum(np.abs(w).sum() for w in model.get_weights())),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
