"""The model config of jdl's weight files: :mod:`jdl.nn._config`'s codec, as JSON text.

The codec (which classes and functions a config may name, and how each field is written)
has one home, :mod:`jdl.nn._config`, shared with :func:`jdl.train.save_model`. Here it is
wrapped for :func:`jdl.pretrained.save` / :func:`~jdl.pretrained.load_jdl`: the config is
JSON text in the safetensors header, refusals at load time are
:class:`~jdl.pretrained.WeightFileError`, and each message ends with this module's way out
(save the weights alone, ``model=None``, and pass the model at load time).
"""

from __future__ import annotations

import json

import flax.linen as nn

from jdl.nn import _config as codec
from jdl.pretrained.errors import WeightFileError

_SAVE_WAY_OUT = "or save with model=None and pass the model to load_jdl"
_LOAD_WAY_OUT = "Pass model= to load the weights into a model you build yourself"


def encode_model(model: nn.Module) -> str:
    """JSON for ``model``'s class and fields (``name``/``parent`` left out).

    Raises:
      ValueError: the class or a field is something :func:`decode_model` would refuse.
    """
    return json.dumps(codec.encode_model(model, way_out=_SAVE_WAY_OUT))


def decode_model(text: str) -> nn.Module:
    """Rebuild a model from :func:`encode_model`'s JSON (registered model classes only).

    Raises:
      WeightFileError: malformed JSON, a class or reference outside the registry, or a field
        the class does not have.
    """
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, TypeError) as err:
        raise WeightFileError(f"the model config in the file is malformed: {err}") from err
    return codec.decode_model(config, error=WeightFileError, way_out=_LOAD_WAY_OUT)
