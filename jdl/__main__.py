"""The ``python -m jdl`` command line (the code is in the private package :mod:`jdl._cli`).

``python -m jdl train`` trains a model on a dataset with :func:`jdl.fit` and writes a run
directory::

    runs/mnist1d-cnn-20261122-101500/
        config.json      every setting, the model, its parameter count, versions, devices
                         (written when the directory is created; the count at the end)
        history.json     per-epoch metrics (jdl.train.History.to_json), after every epoch
        history.csv      the same, one row per epoch
        history.png      loss and accuracy curves
        results.json     final test metrics, best test accuracy and its epoch (a number
                         that is NaN or infinite is written as null)
        model/           the final model for inference: jdl.load_model(".../model")
        checkpoints/     the final TrainState (Orbax), resumable with --resume

Settings are checked against the dataset first (``--batch-size`` against the number of
training examples, ...): a refused run exits with status 2 and writes nothing.

``--resume`` continues the run in ``--out`` exactly: ``--steps 50`` then ``--steps 100
--resume`` ends as ``--steps 100`` would have. Any setting but the length (``--steps``,
``--epochs``) must be the checkpoint's (the run is refused with the differences listed),
and so must the length too when the learning rate follows a schedule over it. Training
that produces a NaN or infinite loss stops there, writes the run directory (no checkpoint
of non-finite parameters) and exits with status 1; with ``--debug`` it stops at the first
step with a NaN or inf anywhere (:func:`jdl.fit` ``debug=True``), prints which batch, layer
and parameter went non-finite first, and exits with status 1.

Ctrl-C (SIGINT) or SIGTERM at any moment -- importing, loading the data, compiling,
training, saving a checkpoint, evaluating, writing the curves -- stops at the next safe
point (a step boundary while training: a checkpoint of that step is saved, resumable
exactly with ``--resume``), prints one line saying where and what the run directory holds
(config.json and history.json at least), and exits with status 130 (SIGINT) or 143
(SIGTERM); a second Ctrl-C stops at once.

``python -m jdl train`` with no options trains the MNIST-1D paper's CNN on the bundled
MNIST-1D with the paper's setup (Adam, learning rate 1e-2, batch 100, 6,000 steps) and
prints its test accuracy (about 94 %). ``python -m jdl`` with no command prints the help
and exits with status 2. ``python -m jdl train --help`` lists the options; it imports
neither JAX nor the rest of jdl, so it answers at once.
"""

from __future__ import annotations

import sys

from jdl._cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
