r"""Exact linear regions of ReLU networks along lines and on 2-D slices.

A ReLU MLP :math:`f = L_{D+1}\circ\mathrm{ReLU}\circ L_D \circ\dots\circ\mathrm{ReLU}\circ L_1`
is continuous and piecewise affine; its *linear regions* are the sets of inputs
sharing one activation pattern (the signs of all hidden pre-activations). On a
line :math:`x(t) = x_0 + t\,u` each pre-activation is affine in :math:`t` on every
piece of the partition made by the layers below it, so the pieces are found
exactly by refining the partition layer by layer: on a piece
:math:`[t_a, t_b]` where layer :math:`l` sees the affine input :math:`a + t c`,
neuron :math:`i` switches where :math:`z_i(t) = 0`. No sampling is involved: the
breakpoints are the roots of affine functions, computed in float64. On a 2-D
slice :math:`x = x_0 + s\,u + t\,v` the same refinement splits convex polygons
by the lines :math:`z_i(s, t) = 0`.

Known counts (checks of the routines, in ``tests/test_regions.py``):

* one hidden layer of :math:`n_1` neurons in general position: :math:`n_1 + 1`
  pieces on a line crossing every hyperplane, and
  :math:`\sum_{i \le 2}\binom{n_1}{i}` regions of an arrangement of
  :math:`n_1` lines in the plane (Zaslavsky 1975);
* Telgarsky's sawtooth (depth :math:`L`, width 2): :math:`2^L` pieces on
  :math:`[0, 1]`.

References:
  Hanin & Rolnick, `Complexity of Linear Regions in Deep Networks
  <https://arxiv.org/abs/1901.09021>`_, 2019.
  Telgarsky, `Benefits of depth in neural networks
  <https://arxiv.org/abs/1602.04485>`_, 2016.
  Zaslavsky, Facing up to arrangements, Mem. AMS 154, 1975.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from wideth import _checks

__all__ = ["Layers", "affine_layers", "line_breakpoints", "line_regions", "slice_regions"]

Layers = Sequence[tuple[Any, Any]]


class LineRegions(NamedTuple):
    """Pieces of a ReLU network along a segment.

    Attributes:
      breakpoints: ``(m,)`` sorted interior parameters :math:`t` where the
        activation pattern changes.
      neurons_per_breakpoint: ``(m,)`` how many neurons switch at each breakpoint
        (1 in general position).
      num_regions: ``m + 1``.
      layer_breakpoints: breakpoints contributed by each hidden layer.
    """

    breakpoints: np.ndarray
    neurons_per_breakpoint: np.ndarray
    num_regions: int
    layer_breakpoints: list[int]


def affine_layers(model: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    r"""The hidden affine maps :math:`(W_l, b_l)` of a ReLU network, as float64 arrays.

    Args:
      model: a :class:`wideth.models.MLP` with ``activation="relu"`` (or a
        per-layer tuple of ``"relu"``; its
        parameterisation multipliers are folded into :math:`W_l, b_l`), or a
        sequence of ``(W, b)`` with ``W`` of shape ``(n_in, n_out)``.

    Returns:
      ``[(W_1, b_1), ..., (W_D, b_D)]``; the readout is omitted (it creates no
      breakpoints).

    Raises:
      TypeError / ValueError: not a ReLU MLP, or mismatched shapes.
    """
    if hasattr(model, "hidden") and hasattr(model, "activation"):
        per_layer = model.activation if isinstance(model.activation, tuple) else (model.activation,)
        if any(str(a) != "relu" for a in per_layer):
            raise ValueError(f"model: expected a ReLU network, got activation {model.activation!r}")
        layers = [
            (
                np.asarray(layer.w[...], np.float64) * layer.w_mult,
                np.asarray(layer.b[...], np.float64) * layer.b_mult,
            )
            for layer in model.hidden
        ]
    elif isinstance(model, list | tuple):
        layers = []
        for i, item in enumerate(model):
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise TypeError(
                    f"model: entry {i} must be a pair (W, b), got {type(item).__name__}"
                )
            w = _checks.array(f"model[{i}] W", item[0], ndim=2, kind="real")
            b = _checks.array(f"model[{i}] b", item[1], ndim=1, kind="real")
            layers.append((np.asarray(w, np.float64), np.asarray(b, np.float64)))
    else:
        raise TypeError(
            f"model: expected a wideth.models.MLP or a list of (W, b), got {type(model).__name__}"
        )
    if not layers:
        raise ValueError("model: expected at least one hidden layer, got none")
    for i, (w, b) in enumerate(layers):
        if w.shape[1] != b.shape[0]:
            raise ValueError(f"model: layer {i} has W {w.shape} but b {b.shape}")
        if i and layers[i - 1][0].shape[1] != w.shape[0]:
            raise ValueError(
                f"model: layer {i} takes {w.shape[0]} inputs but layer {i - 1} has "
                f"{layers[i - 1][0].shape[1]} outputs"
            )
    return layers


def _line(layers, x0, u, t_range):
    d = layers[0][0].shape[0]
    x0 = np.asarray(_checks.array("x0", x0, shape=(d,), kind="real"), np.float64)
    u = np.asarray(_checks.array("direction", u, shape=(d,), kind="real"), np.float64)
    if not np.any(u):
        raise ValueError("direction: expected a nonzero vector, got zeros")
    if isinstance(t_range, str | bytes) or not isinstance(t_range, Sequence | np.ndarray):
        raise TypeError(f"t_range: expected a pair (lo, hi), got {t_range!r}")
    if len(t_range) != 2:
        raise ValueError(f"t_range: expected a pair (lo, hi), got {t_range!r}")
    lo, hi = (_checks.real("t_range", t) for t in t_range)
    if not lo < hi:
        raise ValueError(f"t_range: expected (lo, hi) with lo < hi, got {(lo, hi)}")
    return x0, u, lo, hi


def line_regions(
    model: Any, x0: Any, direction: Any, t_range: tuple[float, float] = (-1.0, 1.0)
) -> LineRegions:
    r"""Exact linear pieces of a ReLU network on the segment :math:`x_0 + t u`, t in ``t_range``.

    The partition of ``t_range`` is refined layer by layer: on each current
    piece the layer's pre-activations are affine, :math:`z(t) = a + t c`, and
    neuron :math:`i` adds the breakpoint :math:`t = -a_i/c_i` when it lies
    strictly inside the piece. Breakpoints closer than :math:`10^{-12}` (in
    units of the segment) are merged and counted as one (several neurons switching
    together, a measure-zero event for random weights).

    Args:
      model: see :func:`affine_layers`.
      x0: ``(d,)`` a point of the line.
      direction: ``(d,)`` its direction :math:`u` (not normalised: :math:`t`
        is in units of :math:`\|u\|`).
      t_range: ``(lo, hi)``.

    Returns:
      :class:`LineRegions`.

    Examples:
      >>> import numpy as np
      >>> w = np.array([[1.0, 1.0, 1.0]]); b = np.array([0.5, 0.0, -0.5])
      >>> line_regions([(w, b)], [0.0], [1.0]).num_regions
      4
    """
    layers = affine_layers(model)
    x0, u, lo, hi = _line(layers, x0, u=direction, t_range=t_range)
    # Pieces [ta, tb] with the layer input a + t c on each (rows of a, c).
    ta, tb = np.array([lo]), np.array([hi])
    a, c = x0[None], u[None]
    per_layer = []
    tol = 1e-12 * (hi - lo)
    for w, b in layers:
        za, zc = a @ w + b, c @ w
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = np.where(zc != 0, -za / zc, np.nan)
        inside = (roots > ta[:, None] + tol) & (roots < tb[:, None] - tol)
        piece, _ = np.nonzero(inside)
        per_layer.append(int(piece.size))
        # Sub-piece starts: every piece's own start and its interior roots, sorted per piece.
        idx = np.concatenate([np.arange(ta.size), piece])
        start = np.concatenate([ta, roots[inside]])
        order = np.lexsort((start, idx))
        idx, start = idx[order], start[order]
        last = np.append(idx[1:] != idx[:-1], True)
        end = np.where(last, tb[idx], np.append(start[1:], 0.0))
        mid = 0.5 * (start + end)
        on = (za[idx] + mid[:, None] * zc[idx]) > 0
        ta, tb, a, c = start, end, za[idx] * on, zc[idx] * on
    starts = ta[1:]
    if starts.size:
        keep = np.concatenate([[True], np.diff(starts) > tol])
        merged, multiplicity = starts[keep], np.bincount(np.cumsum(keep) - 1)
    else:
        merged, multiplicity = starts, np.zeros(0, int)
    return LineRegions(merged, multiplicity, int(merged.size + 1), per_layer)


def line_breakpoints(
    model: Any, x0: Any, direction: Any, t_range: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """The sorted breakpoints of :func:`line_regions` (``(m,)`` parameters :math:`t`)."""
    return line_regions(model, x0, direction, t_range).breakpoints


def _split_polygon(poly: np.ndarray, g: np.ndarray, h: float):
    """Split a convex polygon (vertices ``(k, 2)``, in order) by ``g . p + h = 0``."""
    vals = poly @ g + h
    if np.all(vals >= -1e-12) or np.all(vals <= 1e-12):
        return [poly], bool(np.all(vals >= -1e-12) and np.any(vals > 1e-12))
    pos, neg = [], []
    k = len(poly)
    for i in range(k):
        p, q = poly[i], poly[(i + 1) % k]
        vp, vq = vals[i], vals[(i + 1) % k]
        if vp >= 0:
            pos.append(p)
        if vp <= 0:
            neg.append(p)
        if (vp > 0 > vq) or (vp < 0 < vq):
            r = p + (q - p) * (vp / (vp - vq))
            pos.append(r)
            neg.append(r)
    return [np.array(pos), np.array(neg)], None


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def slice_regions(
    model: Any,
    x0: Any,
    u: Any,
    v: Any,
    box: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0),
    *,
    min_area: float = 1e-14,
) -> int:
    r"""Exact number of linear regions of a ReLU network on the 2-D slice :math:`x_0 + s u + t v`.

    Every region of the slice is a convex polygon; the box
    ``(s_lo, s_hi, t_lo, t_hi)`` is split layer by layer by the lines where a
    pre-activation (affine on each current polygon) vanishes, and the final
    polygons are counted (slivers below ``min_area`` times the box area are
    dropped: they come from lines through a vertex, not new regions).

    Args:
      model: see :func:`affine_layers`.
      x0, u, v: ``(d,)`` origin and the two directions of the slice.
      box: parameter rectangle.
      min_area: relative area below which a polygon is not counted.

    Returns:
      The number of regions met by the box.

    Examples:
      >>> import numpy as np
      >>> w = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]); b = np.array([0.1, -0.2, 0.3])
      >>> slice_regions([(w, b)], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0])  # 3 lines: 1+3+3
      7
    """
    layers = affine_layers(model)
    d = layers[0][0].shape[0]
    x0 = np.asarray(_checks.array("x0", x0, shape=(d,), kind="real"), np.float64)
    u = np.asarray(_checks.array("u", u, shape=(d,), kind="real"), np.float64)
    v = np.asarray(_checks.array("v", v, shape=(d,), kind="real"), np.float64)
    if not np.any(u):
        raise ValueError("u: expected a nonzero direction, got zeros")
    if np.linalg.matrix_rank(np.stack([u, v])) < 2:
        raise ValueError(
            "v: expected a direction independent of u (the slice is a line, not a plane), "
            f"got u={u.tolist()} and v={v.tolist()}"
        )
    if isinstance(box, str | bytes) or not isinstance(box, Sequence | np.ndarray):
        raise TypeError(f"box: expected (s_lo, s_hi, t_lo, t_hi), got {box!r}")
    if len(box) != 4:
        raise ValueError(f"box: expected (s_lo, s_hi, t_lo, t_hi), got {box!r}")
    min_area = float(_checks.scalar("min_area", min_area, 0.0, 1.0, high_open=True))
    s0, s1, t0, t1 = (_checks.real("box", x) for x in box)
    if not (s0 < s1 and t0 < t1):
        raise ValueError(f"box: expected s_lo < s_hi and t_lo < t_hi, got {box!r}")
    rect = np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]])
    floor = min_area * (s1 - s0) * (t1 - t0)
    # Each polygon carries the layer input as an affine map of (s, t): x = a + s cu + t cv.
    polys = [(rect, x0, u, v)]
    for w, b in layers:
        new = []
        for poly, a, cu, cv in polys:
            za, zu, zv = a @ w + b, cu @ w, cv @ w
            parts = [poly]
            for i in range(w.shape[1]):
                g, h = np.array([zu[i], zv[i]]), za[i]
                if not np.any(g):
                    continue
                nxt = []
                for p in parts:
                    pieces, _ = _split_polygon(p, g, h)
                    nxt += [q for q in pieces if len(q) >= 3 and _area(q) > floor]
                parts = nxt
            for p in parts:
                c = p.mean(axis=0)
                on = (za + c[0] * zu + c[1] * zv) > 0
                new.append((p, za * on, zu * on, zv * on))
        polys = new
    return len(polys)
