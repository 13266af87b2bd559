"""The ``python -m jdl`` command line (private; :mod:`jdl.__main__` is its entry point).

- :mod:`jdl._cli.parser`: the argument parser. It imports nothing heavy (no JAX, Flax or
  TFDS), so ``--help`` and usage errors answer at once; unknown options and values are
  answered with the closest valid ones.
- :mod:`jdl._cli.models`: the model names of ``--model`` and their builders.
- :mod:`jdl._cli.signals`: Ctrl-C and SIGTERM outside :func:`jdl.fit`'s training loop are
  deferred to safe points, so an interrupted run never crashes inside XLA or Orbax.
- :mod:`jdl._cli.rundir`: the run directory (config.json at once, history.json after every
  epoch, results, curves).
- :mod:`jdl._cli.train`: the ``train`` command.
- :mod:`jdl._cli.app`: :func:`~jdl._cli.app.main`, which dispatches to the commands.
"""
