"""The exceptions of :mod:`jdl.pretrained`: each names what was expected and what was found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["ChecksumError", "WeightFileError", "WeightMismatchError"]


class WeightFileError(ValueError):
    """A weight file that cannot be read safely: corrupt, truncated, or of a refused kind."""


class ChecksumError(WeightFileError):
    """A downloaded file whose SHA-256 differs from the registered one (it was discarded)."""


def _lines(title: str, items: Sequence[str], limit: int) -> list[str]:
    if not items:
        return []
    shown = [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more")
    return [f"{title} ({len(items)}):", *shown]


class WeightMismatchError(ValueError):
    """Weights whose names or shapes do not fit the model, listing every problem at once.

    Attributes:
      missing: model variables (``"params/conv1/kernel"``) that the weights do not provide.
      unexpected: source names that map to no variable of the model.
      mismatched: ``(name, expected_shape, found_shape)`` for each variable present on both
        sides with different shapes.

    ``summary`` (e.g. that the weights are of another architecture) goes on the first line
    of the message, ``hint`` replaces the closing "Fix: ..." line. ``shapes`` (path ->
    shape: the model's for missing paths, the weights' for unexpected ones) adds each
    listed path's shape to the message.
    """

    def __init__(
        self,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
        *,
        source: str = "the weights",
        summary: str = "",
        hint: str = "",
        limit: int = 20,
        shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        lines = [
            f"{source} do not match the model: {summary}"
            if summary
            else f"{source} do not match the model:"
        ]
        shapes = dict(shapes or {})
        shaped = lambda names: [  # noqa: E731
            f"{n} {tuple(shapes[n])}" if n in shapes else n for n in names
        ]
        lines += _lines("missing (in the model, not in the weights)", shaped(self.missing), limit)
        lines += _lines(
            "unexpected (in the weights, not in the model)", shaped(self.unexpected), limit
        )
        lines += _lines(
            "shape mismatch (model expects vs weights have)",
            [f"{n}: expected {tuple(e)}, found {tuple(f)}" for n, e, f in self.mismatched],
            limit,
        )
        lines.append(
            hint
            or "Fix: build the model that matches the weights (architecture, num_outputs, input "
            "size), or pass strict=False to load what matches and get a report of the rest."
        )
        super().__init__("\n".join(lines))
