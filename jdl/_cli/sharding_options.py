"""``python -m jdl train --strategy fsdp``'s mesh and sharding-rule options (no JAX here:
the parser must answer ``--help`` without importing it).

``--mesh-shape DATA,FSDP`` is the shape of the ``("data", "fsdp")`` mesh
(:func:`jdl.train.fsdp_mesh`); each ``--sharding-rule REGEX=AXES`` places the state leaves
whose path matches ``REGEX`` with ``PartitionSpec(*AXES)`` (:func:`jdl.train.state_shardings`):
``AXES`` is a comma list of ``data``, ``fsdp`` or ``none`` per array axis, empty for
replicated, e.g. ``--sharding-rule 'Dense_0/kernel=fsdp,none'``.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

#: The mesh axis names a rule may name (``none``: that array axis is not split).
AXES = ("data", "fsdp", "none")


def mesh_shape(value: str) -> tuple[int, int]:
    """An argparse ``type`` for ``--mesh-shape``: ``DATA,FSDP``, two positive integers.

    Args:
        value: the option's value, e.g. ``"2,4"``.
    """
    parts = value.replace("x", ",").split(",")
    if len(parts) == 2 and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise argparse.ArgumentTypeError(
        f"expected DATA,FSDP: two positive integers, the sizes of the mesh's data and fsdp "
        f"axes (e.g. 2,4); got {value!r}"
    )


def sharding_rule(value: str) -> tuple[str, tuple[str | None, ...]]:
    """An argparse ``type`` for ``--sharding-rule``: ``REGEX=AXES``.

    Args:
        value: the option's value, e.g. ``"Dense_0/kernel=fsdp,none"``.

    Returns:
        ``(regex, axes)`` with ``None`` for ``none``: ``PartitionSpec(*axes)``.
    """
    regex, sep, spec = value.rpartition("=")
    names = [a.strip() for a in spec.split(",")] if spec.strip() else []
    if not sep or not regex or any(a not in AXES for a in names):
        raise argparse.ArgumentTypeError(
            f"expected REGEX=AXES with AXES a comma list of {', '.join(AXES)} (empty: "
            f"replicated), e.g. 'Dense_0/kernel=fsdp,none'; got {value!r}"
        )
    try:
        re.compile(regex)
    except re.error as err:
        raise argparse.ArgumentTypeError(f"bad regular expression {regex!r}: {err}") from err
    return regex, tuple(None if a == "none" else a for a in names)


def add_sharding_options(train: Any) -> None:
    """Add ``--mesh-shape`` and ``--sharding-rule`` to the ``train`` command's parser."""
    group = train.add_argument_group("sharded parameters (--strategy fsdp)")
    group.add_argument(
        "--mesh-shape",
        type=mesh_shape,
        default=None,
        metavar="DATA,FSDP",
        help="the shape of the (data, fsdp) device mesh (default: every device on fsdp)",
    )
    group.add_argument(
        "--sharding-rule",
        type=sharding_rule,
        action="append",
        default=None,
        metavar="REGEX=AXES",
        help="place the parameters (and their optimiser state) whose path matches REGEX "
        "with PartitionSpec(AXES), AXES a comma list of data/fsdp/none per axis, empty for "
        "replicated; first match wins, the FSDP rule places the rest (repeatable; default: "
        "none)",
    )


def mesh_and_rules(args: argparse.Namespace) -> tuple[Any, list[tuple[str, Any]]]:
    """The ``mesh=`` and ``sharding_rules=`` for ``jdl.fit`` from parsed arguments (imports
    JAX: call it after ``--distributed`` has joined).

    Raises:
        ValueError: ``--mesh-shape`` or ``--sharding-rule`` without ``--strategy fsdp``, or a
            mesh that does not fit the devices.
    """
    from jax.sharding import PartitionSpec

    import jdl

    given = args.sharding_rule or []
    if (args.mesh_shape is not None or given) and args.strategy != "fsdp":
        raise ValueError("--mesh-shape and --sharding-rule shard parameters: add --strategy fsdp.")
    mesh = jdl.train.fsdp_mesh(args.mesh_shape) if args.mesh_shape is not None else None
    rules = [(regex, PartitionSpec(*axes)) for regex, axes in given]
    return mesh, rules
