"""
Vectorisation: a Python loop, ``jax.vmap`` and a batched matmul
================================================================

This tutorial computes one dense layer, ``tanh(x @ W + b)``, for a batch of 2,048
examples in three ways: (a) a Python loop that calls a jitted *per-example* function once
per example, (b) ``jax.vmap`` of that same per-example function, jitted, and (c) the layer
written on the whole batch, jitted. All three give the same numbers. The loop is two orders
of magnitude slower, because it pays the cost of a call from Python 2,048 times for a
few thousand multiply-adds each; ``vmap`` is as fast as the hand-batched version, and the
compiled programs show why: XLA receives the same single matrix multiplication (``dot``)
and the same fused bias-add and ``tanh`` in both cases. Write the function for one
example, and let ``vmap`` add the batch dimension.
"""

# %%
# One layer, one example at a time
# --------------------------------
# The layer is jdl's :class:`jdl.nn.MLP` with no hidden layers: a single ``Dense`` of 100
# units (the width of the MNIST-1D MLP's first layer, on its 40 inputs) followed by a tanh.
# jdl's models take batches, so the per-example function adds a batch axis of one and
# removes it again. That is the function one writes when thinking about one example.
import os
import re
import time
from collections import Counter

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jdl

BATCH, FEATURES, UNITS = 2048, 40, 100
model = jdl.nn.MLP(widths=(), num_outputs=UNITS, output_activation="tanh")
x = jax.random.normal(jax.random.key(0), (BATCH, FEATURES))
variables = model.init(jax.random.key(1), x[:1], train=False)
print(jax.tree_util.tree_map(jnp.shape, variables))


def layer_one(variables, example):
    """``tanh(example @ W + b)`` for one example of shape ``(FEATURES,)``."""
    return model.apply(variables, example[None], train=False)[0]


# %%
# Three ways to run it on the batch
# ---------------------------------
# (a) a Python loop over the examples, each a call of the jitted per-example function,
# then ``jnp.stack``; (b) ``jax.vmap`` maps the per-example function over axis 0 of ``x``
# (``in_axes=(None, 0)``: the same parameters for every example) and ``jax.jit`` compiles
# the result; (c) the model applied to the whole batch, the way a training step calls it.
layer_one_jit = jax.jit(layer_one)


def python_loop(variables, x):
    return jnp.stack([layer_one_jit(variables, example) for example in x])


vmapped = jax.jit(jax.vmap(layer_one, in_axes=(None, 0)))
batched = jax.jit(lambda variables, x: model.apply(variables, x, train=False))
contenders = {
    "Python loop\n(jitted per example)": python_loop,
    "jax.vmap\n(jitted)": vmapped,
    "batched matmul\n(jitted)": batched,
}

outputs = {name.split("\n")[0]: f(variables, x) for name, f in contenders.items()}  # compiles
by_hand = np.tanh(np.asarray(x) @ variables["params"]["head"]["kernel"]
                  + variables["params"]["head"]["bias"])  # fmt: skip
for name, out in outputs.items():
    print(f"{name:15s} {out.shape}, max |difference from NumPy| "
          f"{float(np.max(np.abs(np.asarray(out) - by_hand))):.1e}")  # fmt: skip
for out in outputs.values():
    np.testing.assert_allclose(out, by_hand, rtol=1e-5, atol=1e-5)

# %%
# Timing them fairly
# ------------------
# Everything is compiled already (the calls above), every measurement waits for the result
# with ``block_until_ready`` (JAX dispatches asynchronously, so without it we would time
# only the dispatch), and the three contenders are timed *in turn* in each of several
# rounds, so that whatever else the machine is doing slows them alike. Each measurement
# starts with one untimed call, and the two fast contenders swap places every round:
# whatever ran right after the loop's 2,048 small calls was measurably slowed here (by up
# to 2x), so each of them comes right after the loop in half of the rounds. A fast
# contender is called 10 times per measurement, so the clock's resolution does not
# matter. We report the median time per call, and ratios rather than absolute times, which
# depend on the machine: each ratio is the median over the rounds of the ratio *within* a
# round, which cancels most of the changes in the machine's load from one round to the next.
ROUNDS = 16
LOOP, VMAP, BATCHED = contenders  # the three names


def seconds_per_call(f, calls):
    f(variables, x).block_until_ready()  # untimed
    start = time.perf_counter()
    for _ in range(calls):
        out = f(variables, x)
    out.block_until_ready()
    return (time.perf_counter() - start) / calls


times = {name: [] for name in contenders}
for round_number in range(ROUNDS):
    order = (LOOP, VMAP, BATCHED) if round_number % 2 == 0 else (LOOP, BATCHED, VMAP)
    for name in order:
        calls = 1 if name == LOOP else 10  # the loop is slow enough to time once
        times[name].append(seconds_per_call(contenders[name], calls))
median = {name: float(np.median(t)) for name, t in times.items()}
loop_t, vmap_t, batched_t = (np.asarray(times[name]) for name in (LOOP, VMAP, BATCHED))
loop_vs_vmap = float(np.median(loop_t / vmap_t))
loop_vs_batched = float(np.median(loop_t / batched_t))
vmap_vs_batched = float(np.median(vmap_t / batched_t))
batched_s = median[BATCHED]
print(f"batch of {BATCH}, median of {ROUNDS} rounds "
      f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")  # fmt: skip
for name, t in median.items():
    print(f"  {name.replace(chr(10), ' '):40s} {1e3 * t:9.3f} ms  ({t / batched_s:7.1f}x batched)")
print(f"median ratios within a round: loop / vmap {loop_vs_vmap:.0f}x, "
      f"loop / batched {loop_vs_batched:.0f}x, vmap / batched {vmap_vs_batched:.2f}x")  # fmt: skip

# %%
fig, ax = plt.subplots(figsize=(7, 4))
bars = ax.bar(list(median), [1e3 * t for t in median.values()], color=["C3", "C0", "C2"])
ax.bar_label(bars, labels=[f"{t / batched_s:.1f}x" for t in median.values()])
for i, t in enumerate(times.values()):  # every round, beside its bar, to show the spread
    ax.scatter([i + 0.3] * len(t), 1e3 * np.asarray(t), color="k", s=6, zorder=3)
ax.set(yscale="log", ylabel="milliseconds per batch (log scale)",
       title=f"tanh(x @ W + b) on {BATCH} examples of {FEATURES} features, {UNITS} units\n"
       "(bar: median of the rounds, label: time relative to the batched matmul)")  # fmt: skip
fig.tight_layout()

# %%
# What XLA compiles
# -----------------
# ``jax.jit(f).lower(...)`` traces ``f`` into an XLA program and ``.compile()`` optimises
# it for this machine; ``.as_text()`` prints the result. Below are the instructions of the
# two programs' entry computations (metadata removed). ``vmap`` did not produce a loop:
# its batching rule turned the per-example vector-matrix product into one matrix-matrix
# ``dot`` over the whole batch, exactly as in the hand-batched program, and XLA fused the
# bias-add and the tanh into one loop over the output in both (on this CPU the ``dot``
# itself sits in a fusion of its own, a call to a matrix-multiplication library; the
# vmapped one also carries a free ``bitcast``, the ``[None]`` and ``[0]`` of the
# per-example function). The per-example program, which the Python loop runs 2,048
# times, has the same shape with a batch of one.


def entry_instructions(compiled_text):
    """The instructions of the ENTRY computation, without metadata and backend config."""
    entry = compiled_text[compiled_text.index("\nENTRY") :].splitlines()[1:]
    lines = [re.sub(r", (metadata|backend_config)=.*", "", line.strip()) for line in entry]
    return [line for line in lines if "=" in line and "parameter(" not in line]


def op_counts(compiled_text):
    """How many ``dot`` operations the whole program has, and its entry opcodes."""
    opcodes = Counter(re.search(r"= \S+ ([\w-]+)\(", line)[1]
                      for line in entry_instructions(compiled_text))  # fmt: skip
    return {"dot": len(re.findall(r" dot\(", compiled_text)), **opcodes}


hlo = {
    "jax.vmap": vmapped.lower(variables, x).compile().as_text(),
    "batched matmul": batched.lower(variables, x).compile().as_text(),
    "per example": layer_one_jit.lower(variables, x[0]).compile().as_text(),
}
counts = {name: op_counts(text) for name, text in hlo.items()}
for name, text in hlo.items():
    print(f"--- {name}: {counts[name]}")
    for line in entry_instructions(text):
        print("   ", line[:150])
    dot = next(line.strip() for line in text.splitlines() if " dot(" in line)
    print("    the dot:", re.sub(r", metadata=.*", "", dot))

# %%
# Takeaway
# --------
# ``jax.vmap`` is not a loop: it rewrites a function written for one example into the same
# batched program one would write by hand — here one ``dot`` and one fused bias-add and
# tanh — so it runs as fast as the batched matmul (within noise), while a Python loop over
# the examples, even of a jitted function, is slower by two orders of magnitude because
# every example pays a call from Python. Write and test the per-example function, then
# ``vmap`` it (and ``jit`` the result); the checks below fail if the three results differ,
# if the programs differ in their ``dot`` and fusions, or if the timings stop showing this.
assert counts["jax.vmap"] == counts["batched matmul"], counts
assert counts["jax.vmap"]["dot"] == 1, counts
assert 1 / 3 < vmap_vs_batched < 3, (vmap_vs_batched, times)
assert min(loop_vs_vmap, loop_vs_batched) > 10, (loop_vs_vmap, loop_vs_batched)
plt.show()
