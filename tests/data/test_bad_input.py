"""Bad data input gets an error that says what was expected (not one from deep inside)."""

import numpy as np
import pytest

import jdl
import jdl.data as jd


def test_an_empty_split_is_named_with_the_split_sizes():
    with pytest.raises(ValueError, match=r"'train\[:0\]' of dataset 'iris' selects no examples"):
        jd.load("iris", split="train[:0]")
    assert len(jd.load("iris", split="train[:10]")) == 10


@pytest.mark.parametrize("name", ["iris", "mnist"])
def test_a_data_dir_that_is_a_file_is_refused(tmp_path, name):
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    with pytest.raises(NotADirectoryError, match=r"data_dir must be a directory.*is a file"):
        jd.load(name, data_dir=path)
    assert path.read_text() == "not a directory"


class ShortLabels:
    """A user source whose __len__ counts x but whose y is shorter."""

    def __init__(self):
        self.x = np.zeros((10, 2), np.float32)
        self.y = np.zeros(8, np.int32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def test_a_source_shorter_than_its_len_is_named():
    with pytest.raises(IndexError, match=r"example 8 of a source of length 10.*ShortLabels"):
        jdl.fit(jdl.nn.MLP(widths=(2,), num_outputs=2), ShortLabels(), batch_size=5,
                loss="ce", optimizer=("sgd", 0.1), epochs=1, verbose=0, shuffle=False)  # fmt: skip


def test_a_dict_of_arrays_is_refused_naming_the_tuple_to_pass():
    # a dict has len() and [key], so it passed as a "source" and failed with KeyError: 0
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int32)
    with pytest.raises(TypeError, match=r"got a dict with keys \['x', 'y'\].*\(train\['x'\]"):
        jdl.fit(jdl.nn.MLP(widths=(4,), num_outputs=2), {"x": x, "y": y}, batch_size=2,
                optimizer=("sgd", 0.1), loss="cross_entropy", steps=1, verbose=0)  # fmt: skip


def test_an_empty_source_is_named_before_its_first_example_is_read():
    x, y = np.zeros((0, 2), np.float32), np.zeros(0, np.int32)
    with pytest.raises(ValueError, match=r"data is empty \(0 examples\)"):
        jdl.evaluate(jdl.nn.MLP(widths=(4,), num_outputs=2), {"params": {}}, (x, y))
