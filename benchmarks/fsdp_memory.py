"""Per-device parameter + optimiser-state memory of ResNet-50 and VGG-16 with Adam,
replicated (``strategy="sharded"``) vs FSDP (``strategy="fsdp"``) over 8 devices.

Nothing is trained or allocated: the state's shapes come from ``jax.eval_shape`` of
:func:`jdl.train.create_state`, and each array's per-device share from the sharding
:func:`jdl.train.state_shardings` gives it (the FSDP rule, threshold
:data:`jdl.train.FSDP_MIN_SIZE`). Run::

    python benchmarks/fsdp_memory.py [--devices 8] [--out benchmarks/results/fsdp_memory.json]

(it simulates the devices on the CPU, so it runs anywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def measure(devices: int) -> dict:
    """The table: per model, total and per-device bytes of parameters + optimiser state."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    import jdl
    from jdl.train import create_state, fsdp_mesh, optimizer, per_device_bytes, state_shardings

    mesh = fsdp_mesh((1, devices), jax.devices()[:devices])
    sample = {"x": np.zeros((1, 224, 224, 3), np.float32), "y": np.zeros((1,), np.int64)}
    rows = {}
    for name, make in (("resnet50", jdl.nn.resnet50), ("vgg16", jdl.nn.vgg16)):
        model = make(num_outputs=1000)
        abstract = jax.eval_shape(
            lambda m=model: create_state(m, optimizer("adam", 1e-3), sample, 0)
        )
        tree = {"params": abstract.params, "opt_state": abstract.opt_state}
        replicated = jax.tree_util.tree_map(lambda _: NamedSharding(mesh, PartitionSpec()), tree)
        fsdp = state_shardings(tree, mesh)
        leaves = jax.tree_util.tree_leaves(tree)
        sharded = [s for s in jax.tree_util.tree_leaves(fsdp) if "fsdp" in tuple(s.spec)]
        rep, sh = per_device_bytes(tree, replicated), per_device_bytes(tree, fsdp)
        rows[name] = {
            "parameters": int(sum(x.size for x in jax.tree_util.tree_leaves(abstract.params))),
            "arrays": len(leaves),
            "arrays_sharded": len(sharded),
            "replicated_bytes_per_device": rep,
            "fsdp_bytes_per_device": sh,
            "ratio": rep / sh,
        }
    return {
        "devices": devices,
        "mesh": dict(mesh.shape),
        "optimizer": "adam (params + mu + nu)",
        "min_size": jdl.train.FSDP_MIN_SIZE,
        "jax": jax.__version__,
        "command": f"python benchmarks/fsdp_memory.py --devices {devices}",
        "models": rows,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, measure, write the JSON (atomically) and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/fsdp_memory.json")
    args = parser.parse_args(argv)
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.devices}"
    )
    if "jax" in sys.modules:
        raise RuntimeError(
            "Run fsdp_memory.py as a script: it must set XLA_FLAGS before jax loads."
        )
    from jdl._core.files import atomic_write_text

    result = measure(args.devices)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    for name, row in result["models"].items():
        print(
            f"{name}: {row['parameters']:,} parameters; replicated "
            f"{row['replicated_bytes_per_device'] / 2**20:.1f} MiB/device, FSDP "
            f"{row['fsdp_bytes_per_device'] / 2**20:.1f} MiB/device ({row['ratio']:.2f}x less; "
            f"{row['arrays_sharded']} of {row['arrays']} arrays sharded)"
        )


if __name__ == "__main__":
    main()
