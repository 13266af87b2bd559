"""
Validation curves, dropout and early stopping
=============================================

This tutorial shows overfitting as it happens and two standard cures. A wide MLP trained
on only 400 MNIST-1D examples drives its training loss towards zero while its validation
loss, after an early minimum, climbs again: the validation curve is how you see that the
network has started memorising. Dropout slows the memorisation and lowers the validation
loss; early stopping (:class:`jdl.train.callbacks.EarlyStopping` with ``restore_best=True``)
stops when the validation loss stops improving and hands back the weights of the best
epoch.
"""

# %%
# A small training set
# --------------------
# 400 training examples (40 per class on average) from MNIST-1D's 4,000; the 1,000 test
# examples serve as the validation set. With so few examples a 2 x 256 MLP (78k
# parameters) can memorise the training set.
import time

import matplotlib.pyplot as plt
import numpy as np

import jdl

full = jdl.data.as_arrays(jdl.data.load("mnist1d", split="train"))
subset = np.random.default_rng(0).permutation(len(full["y"]))[:400]
# jdl.data.from_arrays: a source over arrays, which jdl.fit reads like a loaded split.
train = jdl.data.from_arrays(full["x"][subset], full["y"][subset])
validation = jdl.data.load("mnist1d", split="test")
print(f"{len(train)} training examples, {len(validation)} validation examples")
print("training examples per class:", np.bincount(train.y, minlength=10))

EPOCHS = 80  # 8 steps per epoch at batch 50: 640 steps


def train_mlp(dropout: float = 0.0, callbacks=()) -> jdl.train.History:
    model = jdl.nn.MLP(widths=(256, 256), num_outputs=10, dropout=dropout)
    return jdl.fit(
        model,
        train,
        batch_size=50,
        optimizer=jdl.train.optimizer("adam", 1e-3),
        loss="cross_entropy",
        epochs=EPOCHS,
        validation=validation,
        callbacks=callbacks,
        seed=0,
        verbose=0,
    )


# %%
# Overfitting, seen in the validation curve
# -----------------------------------------
start = time.perf_counter()
plain = train_mlp()
best_epoch, best_val = plain.best("val_loss")
m = plain.metrics
print(f"no regularisation ({time.perf_counter() - start:.1f} s):")
print(f"  final train loss {m['loss'][-1]:.3f}, train accuracy {m['accuracy'][-1]:.1%}")
print(
    f"  validation loss: best {best_val:.3f} at epoch {best_epoch}, final {m['val_loss'][-1]:.3f}"
)
print(f"  validation accuracy: final {m['val_accuracy'][-1]:.1%}")

# %%
# Dropout
# -------
# ``MLP(dropout=0.5)`` zeroes each hidden unit's input with probability 0.5 at every
# training step (and rescales the rest by 2), so no unit can rely on any particular other
# unit; at evaluation time dropout is off. It is an implicit ensemble of thinned networks.
start = time.perf_counter()
dropped = train_mlp(dropout=0.5)
d_epoch, d_val = dropped.best("val_loss")
d = dropped.metrics
print(f"dropout 0.5 ({time.perf_counter() - start:.1f} s):")
print(f"  final train loss {d['loss'][-1]:.3f}, train accuracy {d['accuracy'][-1]:.1%}")
print(f"  validation loss: best {d_val:.3f} at epoch {d_epoch}, final {d['val_loss'][-1]:.3f}")
print(f"  validation accuracy: final {d['val_accuracy'][-1]:.1%}")

# %%
# Early stopping
# --------------
# ``EarlyStopping(monitor="val_loss", patience=5, restore_best=True)`` stops once the
# validation loss has not improved for 5 epochs and restores the weights of the best epoch,
# so ``history.variables`` are the best model, not the last one. We check that by evaluating
# them again with :func:`jdl.evaluate`.
stopper = jdl.train.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best=True)
early = train_mlp(callbacks=[stopper])
restored = jdl.evaluate(jdl.nn.MLP(widths=(256, 256), num_outputs=10), early.variables, validation)
print(f"early stopping: ran {early.epochs[-1]} of {EPOCHS} epochs; reason: {early.stop_reason}")
print(
    f"  restored weights: validation loss {restored['loss']:.3f} "
    f"(best epoch {stopper.best_epoch}: {stopper.best:.3f}), accuracy {restored['accuracy']:.1%}"
)
np.testing.assert_allclose(restored["loss"], stopper.best, rtol=1e-4)

# %%
# Loss and accuracy can disagree: the plain network's validation *accuracy* peaks later than
# its validation *loss*, because after a while it keeps getting a few more examples right
# while growing ever more confident on the ones it gets wrong (which the cross-entropy
# punishes). Early stopping should watch the number you care about; ``monitor=
# "val_accuracy"`` works the same way.
acc_epoch, acc_best = plain.best("val_accuracy")
print(
    f"no regularisation: best validation accuracy {acc_best:.1%} at epoch {acc_epoch}, "
    f"best validation loss at epoch {best_epoch}"
)

# %%
# The curves
# ----------
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
for history, name, color in ((plain, "no regularisation", "C0"), (dropped, "dropout 0.5", "C1")):
    axes[0].plot(
        history.epochs, history.metrics["loss"], color=color, ls="--", label=f"{name}: train"
    )
    axes[0].plot(
        history.epochs, history.metrics["val_loss"], color=color, label=f"{name}: validation"
    )
    axes[1].plot(history.epochs, history.metrics["val_accuracy"], color=color, label=name)
for ax in axes:
    ax.axvline(early.epochs[-1], color="C3", ls=":", label=f"early stop (epoch {early.epochs[-1]})")
    ax.axvline(stopper.best_epoch, color="C2", ls=":", label=f"best epoch ({stopper.best_epoch})")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
axes[0].set(
    yscale="log", ylabel="cross-entropy", title="Training vs validation loss (400 examples)"
)
axes[1].set(ylabel="validation accuracy", title="Validation accuracy")
axes[0].legend(fontsize=9)
axes[1].legend(fontsize=9, loc="lower right")
fig.tight_layout()

# %%
# Takeaway
# --------
# Always watch a validation curve next to the training curve: the moment the validation
# loss turns up while the training loss keeps falling, the network is fitting noise in its
# few training examples. Dropout makes memorising harder and keeps the validation loss
# lower for longer; early stopping with ``restore_best=True`` simply keeps the weights from
# the best epoch and saves the remaining compute. Neither replaces more data — the next
# tutorials add penalties on the weights and augmented data. The checks below fail if the
# plain run stops showing the turn (validation loss up by half from its minimum while the
# training loss falls tenfold), if dropout stops reaching a lower minimum later and ending
# lower, or if early stopping stops saving most of the epochs.
train_loss_at_best = m["loss"][plain.epochs.index(best_epoch)]
assert m["val_loss"][-1] > 1.5 * best_val, (best_val, m["val_loss"][-1])
assert m["loss"][-1] < 0.1 * train_loss_at_best, (train_loss_at_best, m["loss"][-1])
assert d_val < best_val and d_epoch > 2 * best_epoch, (d_val, d_epoch, best_val, best_epoch)
assert d["val_loss"][-1] < 0.75 * m["val_loss"][-1], (d["val_loss"][-1], m["val_loss"][-1])
assert stopper.best_epoch == best_epoch and early.epochs[-1] < EPOCHS // 2, early.stop_reason
assert acc_epoch > best_epoch, (acc_epoch, best_epoch)  # accuracy peaks after the loss
plt.show()
