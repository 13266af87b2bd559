"""The bad-input battery of issue #14: what jdl does with wrong input at every boundary.

Each :class:`Case` hands one public function one bad argument and states what a user must
get: an exception of a given type whose message names what was expected and what was
found (``says``: words that must all appear in it), a warning (a documented acceptance
that still tells the user), or a documented acceptance. :func:`outcome` runs a case and
classifies what happened:

- ``"clear"``: the expected exception, its message containing every word of ``says``;
- ``"warned"``: a documented acceptance that warns as expected;
- ``"accepted"``: a documented acceptance (``accepted=`` names where it is documented);
- ``"unclear"``: another exception, or the expected one without the words;
- ``"silent"``: no exception and no warning where one was expected.

``tests/reliability/test_battery.py`` requires every case to be clear, warned or accepted.
Run this file (``python tests/reliability/battery.py``) to print the tally -- also against
an older checkout of jdl, to compare (``PYTHONPATH=<old checkout>``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

import jdl  # noqa: E402
from jdl import nn  # noqa: E402

OUTCOMES = ("clear", "warned", "accepted", "unclear", "silent")


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input and what the user must get back.

    Attributes:
        name: ``"<area>: <what is wrong>"``.
        call: runs the public function; gets a fresh temporary directory.
        raises: the exception type(s) expected (``None`` for an acceptance).
        says: lower-case words the exception's (or warning's) message must all contain.
        warns: the warning category of a documented acceptance that must warn.
        accepted: where an acceptance without a warning is documented.
    """

    name: str
    call: Callable[[Path], Any]
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None
    says: tuple[str, ...] = ()
    warns: type[Warning] | None = None
    accepted: str | None = None


def outcome(case: Case) -> tuple[str, str]:
    """Run ``case``; return its outcome (one of :data:`OUTCOMES`) and what happened."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            case.call(Path(tmp))
        except BaseException as exc:  # noqa: BLE001 -- the battery classifies everything
            if isinstance(exc, KeyboardInterrupt):
                raise
            text = f"{type(exc).__name__}: {exc}"
            if case.raises is None or not isinstance(exc, case.raises):
                return "unclear", text
            missing = [w for w in case.says if w not in str(exc).lower()]
            return ("unclear", f"{text} (missing {missing})") if missing else ("clear", text)
    if case.raises is not None:
        return "silent", f"no {_names(case.raises)} raised"
    if case.warns is not None:
        for w in caught:
            message = str(w.message).lower()
            if issubclass(w.category, case.warns) and all(s in message for s in case.says):
                return "warned", f"{w.category.__name__}: {w.message}"
        return "silent", f"no {case.warns.__name__} saying {list(case.says)}"
    return "accepted", case.accepted or ""


def _names(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


# --- the data and models the cases share -----------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 4)).astype(np.float32)
Y = (np.arange(32) % 3).astype(np.int32)
IMAGES = RNG.normal(size=(16, 8, 8, 1)).astype(np.float32)
IMAGE_Y = (np.arange(16) % 3).astype(np.int32)
SEQS = RNG.normal(size=(16, 6, 2)).astype(np.float32)


def mlp(outputs: int = 3, **kwargs: Any) -> Any:
    return nn.MLP(widths=(8,), num_outputs=outputs, **kwargs)


class _Absent(Exception):
    """Stands for an exception class an older jdl does not have (never raised)."""


def error(module: Any, name: str) -> type[BaseException]:
    """``module.<name>``, or :class:`_Absent` where an older jdl (a tally of its outcomes)
    lacks it: any exception it raises instead then counts as unclear."""
    return getattr(module, name, _Absent)


def fit(**overrides: Any) -> Any:
    """``jdl.fit`` of a small MLP on (X, Y) for one step, with some arguments replaced."""
    kwargs: dict[str, Any] = {
        "model": mlp(),
        "train": (X, Y),
        "batch_size": 8,
        "optimizer": ("adam", 1e-3),
        "loss": "cross_entropy",
        "steps": 1,
        "verbose": 0,
    }
    kwargs.update(overrides)
    return jdl.fit(kwargs.pop("model"), kwargs.pop("train"), **kwargs)


def sweep(**overrides: Any) -> Any:
    """``jdl.train.sweep`` of a small MLP on (X, Y), one learning rate, one step."""
    kwargs: dict[str, Any] = {
        "model": mlp(),
        "train": (X, Y),
        "batch_size": 8,
        "loss": "cross_entropy",
        "optimizer": "adam",
        "learning_rates": [1e-3],
        "steps": 1,
        "verbose": 0,
    }
    kwargs.update(overrides)
    return jdl.train.sweep(kwargs.pop("model"), kwargs.pop("train"), **kwargs)


def examples_generator() -> Any:
    """A generator of (X, Y) batches: a one-pass stream, not a dataset."""
    return ({"x": X[i : i + 8], "y": Y[i : i + 8]} for i in range(0, len(X), 8))


def batch_iterator() -> Any:
    """What ``jdl.data.batches`` returns: a one-pass iterator of batches."""
    return jdl.data.batches(jdl.data.from_arrays(X, Y), 8)


def init(model: Any, x: np.ndarray) -> Any:
    import jax

    return model.init(jax.random.key(0), x, train=False)


def apply(model: Any, x: np.ndarray, fresh: np.ndarray | None = None) -> Any:
    """Initialise on ``fresh`` (default ``x``) and apply to ``x``."""
    variables = init(model, x if fresh is None else fresh)
    return model.apply(variables, x, train=False)


def variables_of(model: Any, x: np.ndarray = X) -> dict:
    return dict(init(model, x))


def weight_file(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


class _RunsCode:
    """A pickle payload that would write a marker file if unpickled."""

    def __reduce__(self) -> tuple:
        return (Path.write_text, (Path(tempfile.gettempdir()) / "jdl-battery-pwned", "x"))


def _safetensors(tmp: Path, header: bytes, length: int | None = None, data: bytes = b"") -> Path:
    n = len(header) if length is None else length
    return weight_file(tmp, "w.safetensors", n.to_bytes(8, "little") + header + data)


def _cli_fails(*args: str) -> None:
    """Run the CLI in this process; raise SystemExit with the last line it wrote to stderr
    if it fails (argparse's errors included), so the battery reads what a user reads."""
    import contextlib
    import io

    from jdl.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
    if code:
        raise SystemExit(f"exit {code}: {err.getvalue().strip().splitlines()[-1:]}")


def _resumed(tmp: Path, **changes: Any) -> Any:
    from jdl.train.callbacks import Checkpoint

    fit(steps=4, callbacks=[Checkpoint(tmp / "ckpt")])
    return fit(steps=8, callbacks=[Checkpoint(tmp / "ckpt")], resume=True, **changes)


# --- the cases -------------------------------------------------------------------------


def _optimiser_cases() -> list[Case]:
    opt = jdl.train.optimizer
    return [
        Case("optimizer: nan learning rate", lambda t: opt("adam", float("nan")), ValueError,
             ("learning_rate", "nan")),
        Case("optimizer: inf learning rate", lambda t: opt("adam", float("inf")), ValueError,
             ("learning_rate", "inf")),
        Case("optimizer: negative learning rate", lambda t: opt("adam", -1e-3), ValueError,
             ("learning_rate", "-0.001")),
        Case("optimizer: zero learning rate", lambda t: opt("adam", 0.0), ValueError,
             ("learning_rate", "0")),
        Case("optimizer: string learning rate", lambda t: opt("adam", "0.01"),
             (TypeError, ValueError), ("learning_rate", "'0.01'")),
        Case("optimizer: bool learning rate", lambda t: opt("adam", True),
             (TypeError, ValueError), ("learning_rate", "true")),
        Case("optimizer: unknown name", lambda t: opt("adamw2", 1e-3), ValueError,
             ("adamw2", "adam")),
        Case("optimizer: unknown schedule", lambda t: opt("adam", 1e-3, schedule="zigzag"),
             ValueError, ("zigzag", "cosine")),
        Case("optimizer: cosine schedule without total_steps",
             lambda t: opt("adam", 1e-3, schedule="cosine"), ValueError, ("total_steps",)),
        Case("optimizer: negative clip", lambda t: opt("adam", 1e-3, clip=-1.0), ValueError,
             ("clip", "-1")),
        Case("optimizer: negative weight decay", lambda t: opt("adamw", 1e-3, weight_decay=-0.1),
             ValueError, ("weight_decay", "-0.1")),
        Case("optimizer: unknown keyword", lambda t: opt("adam", 1e-3, momentum_x=0.9),
             TypeError, ("momentum_x",)),
        Case("as_optimizer: a bare number", lambda t: jdl.train.as_optimizer(0.1),
             TypeError, ("optimizer", "0.1")),
        Case("as_optimizer: a one-element tuple", lambda t: jdl.train.as_optimizer(("adam",)),
             (TypeError, ValueError), ("(name, learning_rate)",)),
        Case("make_schedule: nan rate", lambda t: jdl.train.make_schedule("constant", float("nan")),
             ValueError, ("learning_rate", "nan")),
        Case("make_schedule: warmup longer than the run",
             lambda t: jdl.train.make_schedule("cosine", 1e-3, total_steps=10, warmup_steps=20),
             ValueError, ("warmup_steps", "20", "10")),
    ]  # fmt: skip


def _fit_argument_cases() -> list[Case]:
    from jdl.train.callbacks import Checkpoint

    return [
        Case("fit: batch size 0", lambda t: fit(batch_size=0), ValueError, ("batch_size", "0")),
        Case("fit: negative batch size", lambda t: fit(batch_size=-8), ValueError,
             ("batch_size", "-8")),
        Case("fit: float batch size", lambda t: fit(batch_size=8.5), (TypeError, ValueError),
             ("batch_size", "8.5")),
        Case("fit: string batch size", lambda t: fit(batch_size="8"), (TypeError, ValueError),
             ("batch_size", "'8'")),
        Case("fit: batch larger than the dataset", lambda t: fit(batch_size=64), ValueError,
             ("64", "32")),
        Case("fit: neither epochs nor steps", lambda t: fit(steps=None), ValueError,
             ("epochs", "steps")),
        Case("fit: zero epochs", lambda t: fit(steps=None, epochs=0), ValueError, ("epochs", "0")),
        Case("fit: negative steps", lambda t: fit(steps=-3), ValueError, ("steps", "-3")),
        Case("fit: unknown loss", lambda t: fit(loss="hinge2"), ValueError,
             ("hinge2", "cross_entropy")),
        Case("fit: unknown metric", lambda t: fit(metrics=["acc2"]), ValueError,
             ("acc2", "accuracy")),
        Case("fit: unknown strategy", lambda t: fit(strategy="ddp"), ValueError, ("ddp", "jit")),
        Case("fit: log_every 0", lambda t: fit(log_every=0), ValueError, ("log_every", "0")),
        Case("fit: eval_batch_size 0",
             lambda t: fit(validation=(X, Y), eval_batch_size=0, steps=None, epochs=1),
             ValueError, ("eval_batch_size", "0")),
        Case("fit: resume and variables",
             lambda t: fit(resume=True, variables=variables_of(mlp())), ValueError,
             ("resume", "variables")),
        Case("fit: a callback that is not a Callback", lambda t: fit(callbacks=[print]),
             TypeError, ("callback", "builtin_function_or_method")),
        Case("fit: one callback, not in a list",
             lambda t: fit(callbacks=jdl.train.callbacks.TerminateOnNaN()), TypeError,
             ("list", "terminateonnan")),
        Case("fit: a model that is not a flax module", lambda t: fit(model=lambda x: x),
             TypeError, ("module", "function")),
        Case("fit: variables of another model", lambda t: fit(variables=variables_of(mlp(5))),
             ValueError, ("params", "(8, 5)", "(8, 3)")),
        Case("fit: resume with a new learning rate",
             lambda t: _resumed(t, optimizer=("adam", 1e-2)),
             error(jdl.train, "ResumeMismatchError"),
             ("learning", "0.001", "0.01")),
        Case("fit: resume with a new batch size", lambda t: _resumed(t, batch_size=4),
             error(jdl.train, "ResumeMismatchError"), ("batch_size", "8", "4")),
        Case("fit: resume with a new seed", lambda t: _resumed(t, seed=1),
             error(jdl.train, "ResumeMismatchError"), ("seed", "0", "1")),
        Case("fit: resume with no checkpoint yet",
             lambda t: fit(callbacks=[Checkpoint(t / "none")], resume=True), warns=UserWarning,
             says=("does not exist", "from scratch")),
        Case("fit: resume=True without a Checkpoint callback", lambda t: fit(resume=True),
             ValueError, ("checkpoint",)),
        Case("fit: checkpoint directory that is a file",
             lambda t: fit(callbacks=[Checkpoint(weight_file(t, "f", b"x"))]),
             (NotADirectoryError, ValueError, FileExistsError), ("not a directory",)),
        Case("fit: l2 negative", lambda t: fit(l2=-1.0), ValueError, ("l2", "-1")),
        Case("fit: l1 nan", lambda t: fit(l1=float("nan")), ValueError, ("l1", "nan")),
    ]  # fmt: skip


def _fit_data_cases() -> list[Case]:
    y10 = Y.copy()
    y10[5] = 10
    neg = Y.copy()
    neg[3] = -1
    nan_x = X.copy()
    nan_x[7, 2] = np.nan
    inf_y = X[:, 0].copy()
    inf_y[4] = np.inf
    return [
        Case("fit: a label equal to the number of outputs", lambda t: fit(train=(X, y10)),
             ValueError, ("10", "3 outputs")),
        Case("fit: a label of -1", lambda t: fit(train=(X, neg)), ValueError, ("-1", "3 outputs")),
        Case("fit: 5 outputs for 10 classes",
             lambda t: fit(model=mlp(5), train=(X, np.arange(32) % 10)), ValueError,
             ("9", "5 outputs")),
        Case("fit: float labels for cross-entropy", lambda t: fit(train=(X, Y.astype(float) + .5)),
             (TypeError, ValueError), ("integer", "float")),
        Case("fit: NaN in the inputs", lambda t: fit(train=(nan_x, Y)), ValueError,
             ("nan", "x holds", "index 7")),
        Case("fit: inf in regression targets",
             lambda t: fit(model=mlp(1), train=(X, inf_y[:, None]), loss="mse", metrics=[]),
             ValueError, ("inf", "y holds", "index 4")),
        Case("fit: binary targets outside [0, 1]",
             lambda t: fit(model=mlp(1), train=(X, 2.0 * np.ones((32, 1))),
                           loss="binary_cross_entropy"),
             ValueError, ("[0, 1]", "2")),
        Case("fit: string inputs", lambda t: fit(train=(np.array([["a"] * 4] * 32), Y)),
             (TypeError, ValueError), ("x must", "<u1")),
        Case("fit: object inputs", lambda t: fit(train=(X.astype(object), Y)),
             (TypeError, ValueError), ("x must", "object")),
        Case("fit: fewer labels than inputs", lambda t: fit(train=(X, Y[:20])), ValueError,
             ("32", "20")),
        Case("fit: inputs of the wrong width for given variables",
             lambda t: fit(train=(X[:, :3], Y), variables=variables_of(mlp())), ValueError,
             ("4", "3")),
        Case("fit: validation with another input width",
             lambda t: fit(validation=(X[:, :3], Y), steps=None, epochs=1), ValueError,
             ("validation", "4", "3")),
        Case("fit: a source without labels", lambda t: fit(train=[{"x": X[0]}] * 32),
             (KeyError, ValueError), ('"y"', "['x']")),
        Case("fit: a dict of arrays instead of a source", lambda t: fit(train={"x": X, "y": Y}),
             (TypeError, ValueError), ("dict",)),
        Case("fit: a generator instead of a source", lambda t: fit(train=examples_generator()),
             TypeError, ("a generator", "read once", "jdl.data.from_arrays(x, y)")),
        Case("fit: a jdl.data.batches iterator instead of a source",
             lambda t: fit(train=batch_iterator()), TypeError,
             ("a batch iterator", "the source you gave jdl.data.batches", "in_memory=false")),
        Case("fit: cross_entropy with one output",
             lambda t: fit(model=mlp(1), train=(X, Y % 2)), ValueError,
             ("cross_entropy", "1 output", "loss='mse'", "binary_cross_entropy")),
        Case("fit: the accuracy metric on a one-output regression",
             lambda t: fit(model=mlp(1), train=(X, X[:, :1]), loss="mse", metrics=["accuracy"]),
             ValueError, ("'accuracy' metric", "1 output", "mae or rmse")),
        Case("fit: multi-label targets for cross_entropy",
             lambda t: fit(train=(X, np.ones((32, 3), np.float32))), ValueError,
             ("summing to 1", "binary_cross_entropy")),
        Case("fit: an empty dataset", lambda t: fit(train=(X[:0], Y[:0])), ValueError,
             ("empty", "0")),
        Case("fit: regression targets that would broadcast",
             lambda t: fit(model=mlp(2), train=(X, X[:, 0]), loss="mse", metrics=[]),
             ValueError, ("(batch,)", "(batch, 2)")),
        Case("fit: (batch,) regression targets for one output",
             lambda t: fit(model=mlp(1), train=(X, X[:, 0]), loss="mse", metrics=[]),
             accepted="jdl.losses.mse: a (batch,) target against a (batch, 1) prediction"),
        Case("fit: integer images", lambda t: fit(
             model=nn.CNN(features=(4,), num_outputs=3),
             train=((IMAGES * 50).astype(np.uint8), IMAGE_Y)),
             accepted="jdl.fit's docstring: integer inputs are cast to the model's dtype"),
    ]  # fmt: skip


def _evaluate_cases() -> list[Case]:
    def evaluate(**overrides: Any) -> Any:
        kwargs: dict[str, Any] = {"model": mlp(), "variables": variables_of(mlp()),
                                  "data": (X, Y)}  # fmt: skip
        kwargs.update(overrides)
        return jdl.evaluate(kwargs.pop("model"), kwargs.pop("variables"), kwargs.pop("data"),
                            **kwargs)  # fmt: skip

    return [
        Case("evaluate: another model's variables",
             lambda t: evaluate(variables=variables_of(mlp(5))), ValueError,
             ("(8, 5)", "(8, 3)")),
        Case("evaluate: variables of another architecture",
             lambda t: evaluate(variables=variables_of(nn.MLP(widths=(8, 8), num_outputs=3))),
             ValueError, ("unexpected", "dense_1")),
        Case("evaluate: labels out of range", lambda t: evaluate(data=(X, Y + 3)), ValueError,
             ("5", "3 outputs")),
        Case("evaluate: a TrainState of another model",
             lambda t: jdl.evaluate(mlp(activation="tanh"), fit().state, (X, Y)), ValueError,
             ("trainstate of another model", "activation='tanh' given", "state's 'relu'")),
        Case("evaluate: batch size 0", lambda t: evaluate(batch_size=0), ValueError,
             ("batch_size", "0")),
        Case("evaluate: inputs of the wrong width", lambda t: evaluate(data=(X[:, :2], Y)),
             ValueError, ("4", "2")),
        Case("evaluate: the default loss on a one-output regression model",
             lambda t: evaluate(model=mlp(1), variables=variables_of(mlp(1)), data=(X, X[:, :1])),
             ValueError, ("cross_entropy", "1 output", "loss='mse'")),
        Case("evaluate: the accuracy metric on regression targets",
             lambda t: evaluate(data=(X, X[:, :3]), loss="mse", metrics=["accuracy"]),
             ValueError, ("'accuracy' metric", "class probabilities", "mae or rmse")),
        Case("evaluate: a generator instead of a source",
             lambda t: evaluate(data=examples_generator()), TypeError,
             ("data must be a random-access", "a generator", "jdl.data.load")),
        Case("evaluate: a jdl.data.batches iterator instead of a source",
             lambda t: evaluate(data=batch_iterator()), TypeError,
             ("a batch iterator", "jdl.data.batches")),
        Case("evaluate: a dict of arrays instead of a source",
             lambda t: evaluate(data={"x": X, "y": Y}), TypeError,
             ("dict", "jdl.data.from_arrays(data['x'], data['y'])")),
        Case("evaluate: params without the 'params' key",
             lambda t: evaluate(variables=variables_of(mlp())["params"]), (TypeError, ValueError),
             ('"params"', "dense_0")),
    ]  # fmt: skip


def _model_cases() -> list[Case]:
    cnn = nn.CNN(features=(4, 4), num_outputs=3, kernel_size=5, padding="VALID")
    return [
        Case("MLP: zero width", lambda t: apply(nn.MLP(widths=(0,), num_outputs=3), X),
             ValueError, ("widths", "0")),
        Case("MLP: zero outputs", lambda t: apply(mlp(0), X), ValueError, ("num_outputs", "0")),
        Case("MLP: dropout 1.5", lambda t: apply(mlp(dropout=1.5), X), ValueError,
             ("dropout", "1.5")),
        Case("MLP: unknown activation", lambda t: apply(mlp(activation="relu7"), X), ValueError,
             ("relu7", "relu")),
        Case("MLP: unknown initialiser", lambda t: apply(mlp(kernel_init="glorot9"), X),
             ValueError, ("glorot9",)),
        Case("MLP: inputs without features", lambda t: apply(mlp(), X[:, :0]), ValueError,
             ("0",)),
        Case("MLP: input width differs from the variables'", lambda t: apply(mlp(), X[:, :3], X),
             ValueError, ("4", "3")),
        Case("MLP: a scalar input", lambda t: apply(mlp(), np.float32(1.0)), ValueError,
             ("shape",)),
        Case("CNN: image smaller than the receptive field", lambda t: apply(cnn, IMAGES[:, :6, :6]),
             ValueError, ("too small", "(16, 6, 6, 1)")),
        Case("CNN: a rank-2 input to a 2-D CNN",
             lambda t: apply(nn.CNN(features=(4,), num_outputs=3), X), ValueError,
             ("(batch, height, width, channels)", "(32, 4)")),
        Case("CNN: channels differ from the variables'",
             lambda t: apply(nn.CNN(features=(4,), num_outputs=3),
                             np.repeat(IMAGES, 3, axis=-1), IMAGES), ValueError, ("1", "3")),
        Case("CNN: images without pixels",
             lambda t: apply(nn.CNN(features=(4,), num_outputs=3), IMAGES[:, :0, :0]), ValueError,
             ("0",)),
        Case("CNN: unknown pooling", lambda t: apply(nn.CNN(features=(4,), num_outputs=3,
                                                            pool="median"), IMAGES),
             ValueError, ("median", "max")),
        Case("CNN: negative kernel size",
             lambda t: apply(nn.CNN(features=(4,), num_outputs=3, kernel_size=-3), IMAGES),
             ValueError, ("kernel_size", "-3")),
        Case("ResNet: a 0x0 image",
             lambda t: apply(nn.CifarResNet(depth=8, num_outputs=3), IMAGES[:, :0, :0]),
             ValueError, ("0",)),
        Case("CifarResNet: depth 21", lambda t: apply(nn.CifarResNet(depth=21), IMAGES),
             ValueError, ("depth", "21", "6n + 2")),
        Case("CifarResNet: unknown shortcut",
             lambda t: apply(nn.CifarResNet(depth=8, shortcut="Z"), IMAGES), ValueError,
             ("shortcut", "'z'")),
        Case("ResNet: rank-2 inputs", lambda t: apply(nn.resnet18(num_outputs=3), X),
             ValueError, ("(batch, height, width, channels)", "(32, 4)")),
        Case("ResNet: rank-3 images", lambda t: apply(nn.resnet18(num_outputs=3), IMAGES[..., 0]),
             accepted="ResNet.__call__: (batch, height, width) images are one-channel"),
        Case("VGG: unknown config", lambda t: apply(nn.VGG("vgg17"), IMAGES), ValueError,
             ("vgg17", "vgg16")),
        Case("RNNClassifier: unknown cell", lambda t: apply(nn.RNNClassifier(3, cell="gru2"), SEQS),
             ValueError, ("gru2", "lstm")),
        Case("RNNClassifier: a rank-1 input", lambda t: apply(nn.RNNClassifier(3), SEQS[:, 0, 0]),
             ValueError, ("(batch, time, features)", "(16,)")),
        Case("RNNClassifier: a rank-2 input", lambda t: apply(nn.RNNClassifier(3), SEQS[:, :, 0]),
             accepted="RNNClassifier.__call__: (batch, time) is one feature per step"),
        Case("RNNClassifier: lengths past the sequence",
             lambda t: nn.RNNClassifier(3).apply(init(nn.RNNClassifier(3), SEQS), SEQS,
                                                 train=False, lengths=np.full(16, 9)),
             ValueError, ("lengths", "9", "6")),
        Case("RNNClassifier: unknown readout",
             lambda t: apply(nn.RNNClassifier(3, readout="first"), SEQS), ValueError,
             ("readout", "first")),
        Case("RNNClassifier: zero hidden size",
             lambda t: apply(nn.RNNClassifier(3, hidden_size=0), SEQS), ValueError,
             ("hidden_size", "0")),
        Case("get_model: unknown name", lambda t: nn.get_model("resnet19"), (KeyError, ValueError),
             ("resnet19", "resnet18")),
        Case("get_model: unknown override", lambda t: nn.get_model("resnet18", depth=3),
             TypeError, ("depth",)),
    ]  # fmt: skip


def _loss_metric_cases() -> list[Case]:
    logits = np.zeros((4, 3), np.float32)
    return [
        Case("cross_entropy: labels of another batch size",
             lambda t: jdl.losses.cross_entropy(logits, np.zeros(5, np.int32)), ValueError,
             ("(4, 3)", "(5,)")),
        Case("cross_entropy: label smoothing 1.5",
             lambda t: jdl.losses.cross_entropy(logits, np.zeros(4, np.int32),
                                                label_smoothing=1.5),
             ValueError, ("label_smoothing", "1.5")),
        Case("cross_entropy: one-hot of another width",
             lambda t: jdl.losses.cross_entropy(logits, np.eye(4, dtype=np.float32)), ValueError,
             ("3", "4")),
        Case("mse: shapes that would broadcast",
             lambda t: jdl.losses.mse(np.zeros((4, 2)), np.zeros(4)), ValueError,
             ("(4, 2)", "(4,)")),
        Case("mse: (batch,) targets for (batch, 1) predictions",
             lambda t: jdl.losses.mse(np.zeros((4, 1)), np.zeros(4)),
             accepted="jdl.losses.mse: a (batch,) target against a (batch, 1) prediction"),
        Case("mae: one target per two outputs",
             lambda t: jdl.losses.mae(np.zeros((4, 2)), np.zeros((4, 1))), ValueError,
             ("(4, 2)", "(4, 1)")),
        Case("binary_cross_entropy: shapes differ",
             lambda t: jdl.losses.binary_cross_entropy(np.zeros((4, 2)), np.zeros((4, 3))),
             ValueError, ("(4, 2)", "(4, 3)")),
        Case("losses.get: unknown name", lambda t: jdl.losses.get("cross_entropie"), ValueError,
             ("cross_entropie", "cross_entropy")),
        Case("accuracy: labels of another batch size",
             lambda t: jdl.metrics.accuracy(logits, np.zeros(5, np.int32)), ValueError,
             ("(4, 3)", "(5,)")),
        Case("metrics.get: unknown name", lambda t: jdl.metrics.get("acuracy"), ValueError,
             ("acuracy", "accuracy")),
        Case("top_k_accuracy: k larger than the classes",
             lambda t: jdl.metrics.top_k_accuracy(logits, np.zeros(4, np.int32), k=5),
             ValueError, ("k", "5", "3")),
    ]  # fmt: skip


def _data_cases() -> list[Case]:
    data = jdl.data

    def load_into_file(t: Path) -> Any:
        return data.load("iris", data_dir=weight_file(t, "afile", b""))

    return [
        Case("load: unknown dataset", lambda t: data.load("mnist2", data_dir=t),
             error(data, "UnknownDatasetError"), ("mnist2", "mnist")),
        Case("load: unknown split", lambda t: data.load("iris", split="tset", data_dir=t),
             error(data, "UnknownSplitError"), ("tset", "train")),
        Case("load: empty split", lambda t: data.load("iris", split="train[:0]", data_dir=t),
             ValueError, ("train[:0]", "no examples")),
        Case("load: data_dir is a file", load_into_file, NotADirectoryError, ("afile",)),
        Case("load: not prepared, download=False",
             lambda t: data.load("mnist", data_dir=t), error(data, "DatasetNotPreparedError"),
             ("mnist", "download=true")),
        Case("load: not prepared names the data directory and the command line's way",
             lambda t: data.load("mnist", data_dir=t), error(data, "DatasetNotPreparedError"),
             ("chosen by the data_dir argument", "--download", "array_record")),
        Case("batches: a generator instead of a source",
             lambda t: next(data.batches(examples_generator(), 8)), TypeError,
             ("source must be a random-access", "a generator")),
        Case("load: namespace that fetches code without opt-in",
             lambda t: data.load("huggingface:mnist", data_dir=t, download=True),
             error(data, "RemoteCodeError"), ("allow_remote_code",)),
        Case("from_arrays: lengths differ", lambda t: data.from_arrays(X, Y[:10]), ValueError,
             ("32", "10")),
        Case("from_arrays: 0-d inputs", lambda t: data.from_arrays(np.float32(1), np.int32(0)),
             ValueError, ("0-d",)),
        Case("from_arrays: object inputs", lambda t: data.from_arrays(X.astype(object), Y),
             (TypeError, ValueError), ("object",)),
        Case("batches: batch size 0", lambda t: next(data.batches(data.from_arrays(X, Y), 0)),
             ValueError, ("batch_size", "0")),
        Case("batches: batch larger than the source",
             lambda t: next(data.batches(data.from_arrays(X, Y), 64)), ValueError, ("64", "32")),
        Case("batches: shard index out of range",
             lambda t: next(data.batches(data.from_arrays(X, Y), 4, shard_index=2, shard_count=2)),
             ValueError, ("shard_index", "2")),
        Case("random_crop: negative padding",
             lambda t: data.random_crop(_key(), IMAGES, padding=-1), ValueError,
             ("padding", "-1")),
        Case("random_crop: rank-2 images", lambda t: data.random_crop(_key(), X, padding=2),
             ValueError, ("(32, 4)",)),
        Case("gaussian_noise: negative stddev",
             lambda t: data.gaussian_noise(_key(), X, stddev=-1.0), ValueError, ("stddev", "-1")),
    ]  # fmt: skip


def _key() -> Any:
    import jax

    return jax.random.key(0)


def _callback_cases() -> list[Case]:
    cb = jdl.train.callbacks
    return [
        Case("EarlyStopping: negative patience", lambda t: cb.EarlyStopping(patience=-1),
             ValueError, ("patience", "-1")),
        Case("EarlyStopping: unknown mode", lambda t: cb.EarlyStopping(mode="up"), ValueError,
             ("mode", "'up'")),
        Case("EarlyStopping: a metric the run does not log",
             lambda t: fit(callbacks=[cb.EarlyStopping(monitor="val_acc")], steps=None, epochs=1),
             (KeyError, ValueError), ("val_acc", "loss")),
        Case("Checkpoint: every 0", lambda t: cb.Checkpoint(t, every=0), ValueError,
             ("every", "0")),
        Case("Checkpoint: every_steps -5", lambda t: cb.Checkpoint(t, every_steps=-5),
             ValueError, ("every_steps", "-5")),
        Case("Checkpoint: max_to_keep 0", lambda t: cb.Checkpoint(t, max_to_keep=0), ValueError,
             ("max_to_keep", "0")),
        Case("ReduceLROnPlateau: factor 1.5", lambda t: cb.ReduceLROnPlateau(factor=1.5),
             ValueError, ("factor", "1.5")),
        Case("ReduceLROnPlateau: negative cooldown",
             lambda t: cb.ReduceLROnPlateau(cooldown=-1), ValueError, ("cooldown", "-1")),
    ]  # fmt: skip


def _analysis_cases() -> list[Case]:
    a = jdl.analysis
    batch = {"x": X[:8], "y": Y[:8]}
    return [
        Case("lr_find: start_lr above end_lr",
             lambda t: a.lr_find(mlp(), (X, Y), "cross_entropy", start_lr=1.0, end_lr=1e-3),
             ValueError, ("start_lr", "end_lr")),
        Case("lr_find: 1 step", lambda t: a.lr_find(mlp(), (X, Y), "cross_entropy", steps=1),
             ValueError, ("steps", "1")),
        Case("lr_find: nan end_lr",
             lambda t: a.lr_find(mlp(), (X, Y), "cross_entropy", end_lr=float("nan")),
             ValueError, ("end_lr", "nan")),
        Case("overfit_check: zero steps", lambda t: a.overfit_check(mlp(), batch, steps=0),
             ValueError, ("steps", "0")),
        Case("overfit_check: a batch without labels",
             lambda t: a.overfit_check(mlp(), {"x": X[:8]}), (KeyError, ValueError),
             ("missing", "y")),
        Case("overfit_check: labels out of range",
             lambda t: a.overfit_check(mlp(), {"x": X[:8], "y": Y[:8] + 3}, steps=2), ValueError,
             ("5", "3 outputs")),
        Case("gradient_flow: another model's variables",
             lambda t: a.gradient_flow(mlp(), variables_of(mlp(5)), batch, "cross_entropy"),
             ValueError, ("(8, 5)", "(8, 3)")),
        Case("gradient_flow: unknown layer",
             lambda t: a.gradient_flow(mlp(), variables_of(mlp()), batch, "cross_entropy",
                                       layers=["Dense_9"]), (KeyError, ValueError),
             ("dense_9", "dense_0")),
        Case("activation_stats: zero bins",
             lambda t: a.activation_stats(mlp(), variables_of(mlp()), batch, bins=0), ValueError,
             ("bins", "0")),
        Case("scan_fit: zero steps",
             lambda t: a.scan_fit(mlp(), (X, Y), "cross_entropy", optimizer=("adam", 1e-3),
                                  steps=0), ValueError, ("steps", "0")),
        Case("sweep: unknown parameter",
             lambda t: jdl.train.sweep(mlp(), (X, Y), batch_size=8, loss="cross_entropy",
                                       optimizer="adam", learning_rates=[1e-3], steps=1,
                                       params={"widht": [1.0]}, verbose=0),
             ValueError, ("widht",)),
        Case("sweep: nan learning rate",
             lambda t: jdl.train.sweep(mlp(), (X, Y), batch_size=8, loss="cross_entropy",
                                       optimizer="adam", learning_rates=[float("nan")], steps=1,
                                       verbose=0), ValueError, ("nan",)),
        Case("sweep: cross_entropy with one output",
             lambda t: sweep(model=mlp(1), train=(X, Y % 2)), ValueError,
             ("cross_entropy", "1 output", "loss='mse'")),
        Case("sweep: the accuracy metric on a one-output regression",
             lambda t: sweep(model=mlp(1), train=(X, X[:, :1]), loss="mse", metrics=["accuracy"]),
             ValueError, ("'accuracy' metric", "1 output")),
        Case("sweep: a generator instead of a source",
             lambda t: sweep(train=examples_generator()), TypeError,
             ("train must be a random-access", "a generator", "jdl.data.from_arrays(x, y)")),
        Case("sweep: a jdl.data.batches iterator instead of a source",
             lambda t: sweep(train=batch_iterator()), TypeError,
             ("a batch iterator", "jdl.data.batches")),
        Case("sweep: a dict of arrays instead of a source",
             lambda t: sweep(train={"x": X, "y": Y}), TypeError,
             ("dict", "jdl.data.from_arrays(train['x'], train['y'])")),
        Case("sweep: labels out of range",
             lambda t: jdl.train.sweep(mlp(), (X, Y + 3), batch_size=8, loss="cross_entropy",
                                       optimizer="adam", learning_rates=[1e-3], steps=1,
                                       verbose=0), ValueError, ("5", "3 outputs")),
    ]  # fmt: skip


def _pretrained_cases() -> list[Case]:
    from jdl import pretrained as pt

    def nan_weights(t: Path) -> Any:
        v = variables_of(mlp())
        v["params"]["Dense_0"]["kernel"] = v["params"]["Dense_0"]["kernel"] * np.nan
        path = pt.save(t / "nan.safetensors", mlp(), v, input_shape=(1, 4))
        return pt.load(path)

    def jdl_file_into(t: Path, model: Any, input_shape: Any = (1, 4)) -> Any:
        path = pt.save(t / "m.safetensors", mlp(), variables_of(mlp()), input_shape=input_shape)
        return pt.load(path, model=model)

    return [
        Case("load: unknown name", lambda t: pt.load("resnet19.tv_in1k", cache_dir=t),
             (FileNotFoundError, ValueError), ("resnet19.tv_in1k", "resnet18")),
        Case("load: a missing file", lambda t: pt.load(t / "nope.safetensors"),
             FileNotFoundError, ("nope.safetensors",)),
        Case("load: NaN weights", nan_weights, warns=RuntimeWarning,
             says=("nan", "dense_0")),
        Case("load: a jdl file into another model", lambda t: jdl_file_into(t, mlp(5)),
             error(pt, "WeightMismatchError"), ("(8, 5)", "(8, 3)")),
        Case("load: a jdl file without input shape into another model",
             lambda t: jdl_file_into(t, nn.MLP(widths=(8, 8), num_outputs=3), None),
             (error(pt, "WeightMismatchError"), ValueError), ("dense_1", "input_shape")),
        Case("load: a config naming sys.exit",
             lambda t: pt.load(_crafted_config(t, "jdl.pretrained._config:sys.exit")),
             error(pt, "WeightFileError"), ("sys.exit", "allowed")),
        Case("load: a config naming os.system",
             lambda t: pt.load(_crafted_config(t, "jdl.pretrained._config:os.system")),
             error(pt, "WeightFileError"), ("os.system", "allowed")),
        Case("load: a crafted pickle .pth",
             lambda t: pt.read_state_dict(weight_file(t, "evil.pth", pickle.dumps(_RunsCode()))),
             error(pt, "WeightFileError"), ("evil.pth",)),
        Case("load: a text file named .safetensors",
             lambda t: pt.read_state_dict(weight_file(t, "w.safetensors", b"hello world")),
             error(pt, "WeightFileError"), ("w.safetensors",)),
        Case("load: a safetensors header longer than the file",
             lambda t: pt.read_state_dict(_safetensors(t, b"{}", length=2**40)),
             error(pt, "WeightFileError"), ("w.safetensors", "header")),
        Case("load: a truncated safetensors header",
             lambda t: pt.read_state_dict(_safetensors(t, b'{"a": {"dtype": "F32"', length=40)),
             error(pt, "WeightFileError"), ("w.safetensors",)),
        Case("load: safetensors data past the end",
             lambda t: pt.read_state_dict(_safetensors(
                 t, b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', data=b"\0" * 4)),
             error(pt, "WeightFileError"), ("w.safetensors",)),
        Case("load: a text file named .h5",
             lambda t: pt.read_keras_weights(weight_file(t, "w.h5", b"not hdf5")),
             error(pt, "WeightFileError"), ("w.h5",)),
        Case("HubEntry: a file name escaping the cache",
             lambda t: pt.register(pt.HubEntry(name="x.evil", url="https://e.invalid/a",
                                               format="jdl", sha256="0" * 64,
                                               filename="../outside.safetensors")),
             ValueError, ("../outside.safetensors",)),
        Case("save: an input_shape without the batch axis",
             lambda t: pt.save(t / "m.safetensors", mlp(), variables_of(mlp()), input_shape=(4,)),
             ValueError, ("input_shape=(4,)", "batch axis")),
        Case("save: an input_shape of another width",
             lambda t: pt.save(t / "m.safetensors", mlp(), variables_of(mlp()),
                               input_shape=(1, 5)),
             ValueError, ("(5, 8)", "(4, 8)")),
        Case("replace_head: zero outputs",
             lambda t: pt.replace_head(mlp(), variables_of(mlp()), 0, input_shape=(4,)),
             ValueError, ("num_outputs", "0")),
    ]  # fmt: skip


def _crafted_config(tmp: Path, ref: str) -> Path:
    """A jdl weight file whose recorded MLP activation is the reference ``ref``."""
    from safetensors.numpy import save_file

    config = {"class": "jdl.nn.mlp:MLP", "fields": {"widths": {"__tuple__": [2]},
              "num_outputs": 2, "activation": {"__ref__": ref}}}  # fmt: skip
    meta = {"format": "jdl", "format_version": "1", "model": json.dumps(config), "info": "{}"}
    path = tmp / "evil.safetensors"
    save_file({"params/head/kernel": np.zeros((2, 2), np.float32)}, str(path), metadata=meta)
    return path


def _cli_cases() -> list[Case]:
    return [
        Case("CLI: --lr inf", lambda t: _cli_fails("train", "--lr", "inf", "--steps", "1",
                                                   "--model", "mlp", "--data-dir", str(t)),
             SystemExit, ("exit 2", "--lr", "finite", "inf")),
        Case("CLI: --lr nan", lambda t: _cli_fails("train", "--lr", "nan", "--steps", "1",
                                                   "--model", "mlp", "--data-dir", str(t)),
             SystemExit, ("exit 2", "--lr", "nan")),
        Case("CLI: --batch-size 0", lambda t: _cli_fails("train", "--batch-size", "0",
                                                         "--steps", "1", "--data-dir", str(t)),
             SystemExit, ("batch",)),
        Case("CLI: unknown model", lambda t: _cli_fails("train", "--model", "mlp9"), SystemExit,
             ("mlp9",)),
    ]  # fmt: skip


def cases() -> list[Case]:
    """Every case of the battery."""
    return [
        *_optimiser_cases(),
        *_fit_argument_cases(),
        *_fit_data_cases(),
        *_evaluate_cases(),
        *_model_cases(),
        *_loss_metric_cases(),
        *_data_cases(),
        *_callback_cases(),
        *_analysis_cases(),
        *_pretrained_cases(),
        *_cli_cases(),
    ]


def main() -> None:
    """Print every case's outcome and the tally (``--json PATH`` also writes them)."""
    results = []
    for case in cases():
        result, detail = outcome(case)
        results.append({"case": case.name, "outcome": result, "detail": detail})
        print(f"{result:9s} {case.name}: {detail[:300]}", flush=True)
    tally = Counter(r["outcome"] for r in results)
    print("tally:", {k: tally.get(k, 0) for k in OUTCOMES}, "of", len(results))
    if "--json" in sys.argv:
        out = Path(sys.argv[sys.argv.index("--json") + 1])
        out.write_text(json.dumps({"tally": tally, "cases": results}, indent=1))


if __name__ == "__main__":
    main()
