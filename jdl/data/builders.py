"""TFDS builders of jdl's bundled datasets, generated locally without network access.

Each builder writes its splits in the ``array_record`` format, which
``builder.as_data_source()`` reads with random access and without TensorFlow. Every
dataset has two features: ``"x"`` (float32 inputs) and ``"y"`` (an int64 class label, or
float32 regression targets), and ``supervised_keys == ("x", "y")``. Examples are stored
in generation order (``disable_shuffling=True``), so split ``i`` of a dataset holds
exactly the ``i``-th example of the arrays it was built from.

TFDS already registers a builder named ``iris``, so the builders are registered as
``jdl_iris``, ``jdl_digits``, ``jdl_mnist1d`` and ``jdl_coffee``; users reach them
through :func:`jdl.data.load` by their short names (``"iris"``, ...), see
:data:`BUILDERS`.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from jdl.data._cleanup import LocalDatasetInfo
from jdl.data.coffee import _NOISE_STDDEV, _make_coffee_split

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]

_SKLEARN_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B.
          and Grisel, O. and Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V.
          and Vanderplas, J. and Passos, A. and Cournapeau, D. and Brucher, M. and
          Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}"""

#: Seed of the fixed stratified train/test splits of iris and digits.
SPLIT_SEED = 0


class _BundledBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared machinery: features ``x``/``y``, ``array_record``, fixed example order.

    Subclasses set the class attributes below and implement :meth:`_make_arrays`.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}

    #: Name users pass to :func:`jdl.data.load`.
    SHORT_NAME: ClassVar[str]
    #: Shape of one example's ``x``.
    X_SHAPE: ClassVar[tuple[int, ...]]
    #: Number of classes of ``y``, or ``None`` for float32 regression targets.
    NUM_CLASSES: ClassVar[int | None]
    #: Shape of one example's ``y`` when it is a regression target.
    Y_SHAPE: ClassVar[tuple[int, ...]] = ()
    #: Number of examples of each split (checked after generation).
    SPLIT_SIZES: ClassVar[dict[str, int]]
    DESCRIPTION: ClassVar[str]
    CITATION: ClassVar[str] = ""
    HOMEPAGE: ClassVar[str] = ""

    def _info(self) -> tfds.core.DatasetInfo:
        if self.NUM_CLASSES is None:
            y_feature = tfds.features.Tensor(shape=self.Y_SHAPE, dtype=np.float32)
        else:
            y_feature = tfds.features.ClassLabel(num_classes=self.NUM_CLASSES)
        # Generated locally, never on TFDS' GCS bucket: LocalDatasetInfo skips TFDS' bucket
        # lookup, which would leave an empty tmp*tfds directory in the system temp dir.
        return LocalDatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {"x": tfds.features.Tensor(shape=self.X_SHAPE, dtype=np.float32), "y": y_feature}
            ),
            supervised_keys=("x", "y"),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            disable_shuffling=True,
        )

    # TFDS prints "Downloading and preparing dataset Unknown size (download: Unknown size,
    # ...)" before preparing and "Dataset ... downloaded and prepared to ..." after, to
    # stdout: untrue here (nothing is downloaded, the sizes are not unknown). jdl prints its
    # own line instead (jdl.data.prepare); tests/data/test_data_messages.py checks that
    # these two overrides still silence TFDS.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager  # Nothing is downloaded.
        arrays = self._make_arrays()
        sizes = {name: len(y) for name, (_, y) in arrays.items()}
        if sizes != self.SPLIT_SIZES:
            raise RuntimeError(
                f"{self.name}: generated split sizes {sizes}, expected {self.SPLIT_SIZES}"
            )
        return {name: self._generate_examples(x=x, y=y) for name, (x, y) in arrays.items()}

    def _generate_examples(  # type: ignore[override]
        self, x: np.ndarray, y: np.ndarray
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for i in range(len(y)):
            yield i, {"x": x[i], "y": y[i]}

    @abc.abstractmethod
    def _make_arrays(self) -> Arrays:
        """Returns ``{split: (x, y)}`` with ``x`` float32 and ``y`` int64 or float32."""


def _stratified_split(
    x: np.ndarray, y: np.ndarray, test_size: int | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=SPLIT_SEED)


class JdlIris(_BundledBuilder):
    """Fisher's iris flowers (via ``sklearn.datasets.load_iris``), registered as ``jdl_iris``.

    150 examples, ``x``: float32 ``(4,)`` (sepal length, sepal width, petal length, petal
    width in cm, unscaled), ``y``: int64 class in ``{0: setosa, 1: versicolor,
    2: virginica}``. Splits: ``train`` 120 / ``test`` 30, a fixed stratified split
    (``sklearn.model_selection.train_test_split(test_size=30, stratify=y,
    random_state=0)``), so ``"train+test"`` holds all 150 examples.
    """

    SHORT_NAME = "iris"
    X_SHAPE = (4,)
    NUM_CLASSES = 3
    SPLIT_SIZES: ClassVar[dict[str, int]] = {"train": 120, "test": 30}
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/53/iris"
    DESCRIPTION = (
        "Fisher's iris data (150 flowers, 3 species, 50 each) from scikit-learn's bundled "
        "copy. x: float32 (4,) = sepal length, sepal width, petal length, petal width (cm, "
        "unscaled); y: int64 species 0=setosa, 1=versicolor, 2=virginica. Fixed stratified "
        "split train 120 / test 30 (train_test_split, random_state=0)."
    )
    CITATION = (
        "@article{fisher1936iris,\n  title={The use of multiple measurements in taxonomic "
        "problems},\n  author={Fisher, R. A.},\n  journal={Annals of Eugenics},\n  "
        "volume={7},\n  number={2},\n  pages={179--188},\n  year={1936}\n}\n" + _SKLEARN_CITATION
    )

    def _make_arrays(self) -> Arrays:
        from sklearn.datasets import load_iris

        data = load_iris()
        x = data.data.astype(np.float32)
        y = data.target.astype(np.int64)
        x_train, x_test, y_train, y_test = _stratified_split(x, y, test_size=30)
        return {"train": (x_train, y_train), "test": (x_test, y_test)}


class JdlDigits(_BundledBuilder):
    """scikit-learn's 8x8 handwritten digits (UCI optdigits test set), registered as ``jdl_digits``.

    1,797 examples, ``x``: float32 ``(8, 8, 1)`` grey levels scaled to ``[0, 1]``
    (``pixel / 16``), ``y``: int64 digit 0-9. Splits: ``train`` 1,437 / ``test`` 360, a
    fixed stratified split (``train_test_split(test_size=0.2, stratify=y,
    random_state=0)``).
    """

    SHORT_NAME = "digits"
    X_SHAPE = (8, 8, 1)
    NUM_CLASSES = 10
    SPLIT_SIZES: ClassVar[dict[str, int]] = {"train": 1437, "test": 360}
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"
    DESCRIPTION = (
        "scikit-learn's digits: 1,797 8x8 images of handwritten digits (UCI optdigits). "
        "x: float32 (8, 8, 1) in [0, 1] (pixel / 16); y: int64 digit 0-9. Fixed stratified "
        "split train 1,437 / test 360 (train_test_split, test_size=0.2, random_state=0)."
    )
    CITATION = (
        "@misc{alpaydin1998optdigits,\n  title={Optical Recognition of Handwritten Digits},\n"
        "  author={Alpaydin, E. and Kaynak, C.},\n  howpublished={UCI Machine Learning "
        "Repository},\n  year={1998},\n  doi={10.24432/C50P49}\n}\n" + _SKLEARN_CITATION
    )

    def _make_arrays(self) -> Arrays:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = (data.images.astype(np.float32) / np.float32(16.0))[..., None]
        y = data.target.astype(np.int64)
        x_train, x_test, y_train, y_test = _stratified_split(x, y, test_size=0.2)
        return {"train": (x_train, y_train), "test": (x_test, y_test)}


def make_mnist1d_arrays() -> dict[str, np.ndarray]:
    """Generates MNIST-1D exactly as the paper, with the ``mnist1d`` package's defaults.

    Calls ``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())``, which builds
    the data procedurally (it never downloads). That function reseeds Python's and
    NumPy's *global* random generators; their states are restored afterwards, so
    calling this has no effect on other code's randomness.

    Returns:
        The package's dict: ``"x"`` (4000, 40) and ``"x_test"`` (1000, 40) float64,
        ``"y"`` and ``"y_test"`` int64, plus ``"t"`` and ``"templates"``.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    # mnist1d seeds the legacy global generators; save them to restore them after.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        return make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


class JdlMnist1d(_BundledBuilder):
    """MNIST-1D (Greydanus 2020), generated procedurally, registered as ``jdl_mnist1d``.

    Built with ``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())`` (seed 42,
    5,000 examples), i.e. the paper's data: ``train`` 4,000 / ``test`` 1,000 examples in
    the package's order, ``x``: float32 ``(40,)`` (the package's float64 values rounded
    to float32), ``y``: int64 digit 0-9.
    """

    SHORT_NAME = "mnist1d"
    X_SHAPE = (40,)
    NUM_CLASSES = 10
    SPLIT_SIZES: ClassVar[dict[str, int]] = {"train": 4000, "test": 1000}
    HOMEPAGE = "https://github.com/greydanus/mnist1d"
    DESCRIPTION = (
        "MNIST-1D: ten 1-D digit templates, randomly padded, translated, scaled, sheared and "
        "noised into 40-sample signals; procedurally generated with the mnist1d package's "
        "default arguments (seed 42), reproducing the paper's data. x: float32 (40,); "
        "y: int64 digit 0-9. Splits train 4,000 / test 1,000."
    )
    CITATION = (
        "@article{greydanus2020scaling,\n  title={Scaling down Deep Learning with MNIST-1D},\n"
        "  author={Greydanus, Sam and Kobak, Dmitry},\n  journal={arXiv preprint "
        "arXiv:2011.14439},\n  year={2020}\n}"
    )

    def _make_arrays(self) -> Arrays:
        data = make_mnist1d_arrays()
        return {
            "train": (data["x"].astype(np.float32), data["y"].astype(np.int64)),
            "test": (data["x_test"].astype(np.float32), data["y_test"].astype(np.int64)),
        }


class JdlCoffee(_BundledBuilder):
    """Coffee demand over the time of day, a smooth 1-D regression, registered as ``jdl_coffee``.

    ``x``: float32 ``(1,)``, the time of day as a fraction of the day (``hour / 24``,
    uniform in ``[0, 1)``); ``y``: float32 ``(1,)``, the demand
    :func:`jdl.data.coffee_demand` ``(24 * x)`` plus Gaussian noise of standard deviation
    0.03. Splits: ``train`` 512 (seed 0) / ``test`` 128 (seed 1), examples in random
    order.
    """

    SHORT_NAME = "coffee"
    X_SHAPE = (1,)
    NUM_CLASSES = None
    Y_SHAPE = (1,)
    SPLIT_SIZES: ClassVar[dict[str, int]] = {"train": 512, "test": 128}
    SPLIT_SEEDS: ClassVar[dict[str, int]] = {"train": 0, "test": 1}
    DESCRIPTION = (
        "Synthetic coffee demand by time of day (jdl): a 0.05 baseline plus Gaussian bumps "
        "at 08:00 (tallest), 10:30, 13:00 and 15:30; see jdl.data.coffee_demand. "
        "x: float32 (1,) = hour / 24 in [0, 1); y: float32 (1,) = demand + "
        f"N(0, {_NOISE_STDDEV}^2). Splits train 512 (seed 0) / test 128 (seed 1)."
    )

    def _make_arrays(self) -> Arrays:
        return {
            split: _make_coffee_split(size, self.SPLIT_SEEDS[split])
            for split, size in self.SPLIT_SIZES.items()
        }


#: Short name -> builder class of every bundled dataset, in a fixed order.
BUILDERS: dict[str, type[_BundledBuilder]] = {
    cls.SHORT_NAME: cls for cls in (JdlIris, JdlDigits, JdlMnist1d, JdlCoffee)
}
