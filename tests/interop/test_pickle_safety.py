"""With torch installed, crafted ``.pth`` files go through ``torch.load(weights_only=True)``
and are refused without running their code (zip and legacy layouts, built with plain pickle;
the torch-free refusal is tested in ``tests/pretrained/test_pickle_safety.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from pretrained.test_pickle_safety import crafted_pth  # tests/pretrained: one payload builder

from jdl import pretrained
from jdl.pretrained import _files

pytestmark = pytest.mark.interop

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_crafted_pth_is_refused_by_weights_only(tmp_path, layout):
    assert _files.torch_available()
    marker = tmp_path / "marker"
    path = crafted_pth(tmp_path / "evil.pth", marker, layout)
    for read in (pretrained.load, pretrained.from_torchvision, _files.read_torch_pickle):
        with pytest.raises(pretrained.WeightFileError, match="weights_only=True") as info:
            read(path)
        assert repr(str(path)) in str(info.value) and "refused" in str(info.value)
    assert not marker.exists()


def test_a_plain_state_dict_still_loads(tmp_path):
    """Control: weights_only=True refuses the payload, not every .pth."""
    path = tmp_path / "ok.pth"
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, path)
    assert np.array_equal(_files.read_torch_pickle(path)["w"], np.arange(6.0).reshape(2, 3))
