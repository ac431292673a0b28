"""2D projections of embeddings, latents and denoising trajectories: PCA (fast default) or UMAP.

Both are deterministic: PCA is exact (signs fixed so the largest loading of each axis is positive), UMAP is seeded
with `random_state`. Fitted reducers are cached by (method, settings, data fingerprint), so projecting the same data
twice, or new points with a fitted reducer, costs nothing extra.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHODS = ("pca", "umap")
_CACHE: OrderedDict[str, Projector] = OrderedDict()
_CACHE_SIZE = 16
_UMAP_COMPILED = False


@dataclass
class Projector:
    """A fitted 2D (or nD) projection. `transform` places new points in the same map."""

    method: str
    n_components: int
    random_state: int
    model: Any = field(repr=False)
    explained_variance_ratio: np.ndarray | None = None  # PCA only

    def transform(self, x: Any) -> np.ndarray:
        return np.asarray(self.model.transform(_as_2d(x)), dtype=np.float64)

    @property
    def axis_labels(self) -> tuple[str, ...]:
        if self.method == "pca" and self.explained_variance_ratio is not None:
            return tuple(f"PC{i + 1} ({100 * r:.0f}% of variance)" for i, r in enumerate(self.explained_variance_ratio))
        return tuple(f"{self.method.upper()} {i + 1}" for i in range(self.n_components))


def _as_2d(x: Any) -> np.ndarray:
    """Tensor / array / list of arrays -> float64 (n, features), flattening everything after the first axis."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    if isinstance(x, (list, tuple)):
        x = np.stack([np.asarray(v.detach().float().cpu().numpy() if hasattr(v, "detach") else v) for v in x])
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    arr = arr.reshape(arr.shape[0], -1)
    if not np.isfinite(arr).all():
        raise ValueError("cannot project data holding NaN or inf values")
    return arr


def _fingerprint(x: np.ndarray, *parts: Any) -> str:
    h = hashlib.sha1(np.ascontiguousarray(x).tobytes())
    h.update(repr((x.shape, parts)).encode())
    return h.hexdigest()


def fit(x: Any, method: str = "pca", n_components: int = 2, random_state: int = 0, n_neighbors: int = 15,
        min_dist: float = 0.1, metric: str = "euclidean", cache: bool = True, verbose: bool = True) -> Projector:
    """Fit a reducer on `x` (n samples x any shape). Cached: the same data and settings return the same Projector."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    data = _as_2d(x)
    if data.shape[0] < 2:
        raise ValueError(f"need at least 2 points to project, got {data.shape[0]}")
    key = _fingerprint(data, method, n_components, random_state, n_neighbors, min_dist, metric)
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if method == "pca":
        proj = _fit_pca(data, n_components, random_state)
    else:
        proj = _fit_umap(data, n_components, random_state, n_neighbors, min_dist, metric, verbose)
    if cache:
        _CACHE[key] = proj
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return proj


def _fit_pca(data: np.ndarray, n_components: int, random_state: int) -> Projector:
    from sklearn.decomposition import PCA

    k = min(n_components, data.shape[0], data.shape[1])
    pca = PCA(n_components=k, svd_solver="full", random_state=random_state).fit(data)
    # SVD signs are arbitrary: make each axis's largest loading positive so plots never flip between runs.
    flip = np.sign(pca.components_[np.arange(k), np.abs(pca.components_).argmax(axis=1)])
    pca.components_ *= flip[:, None]
    return Projector("pca", k, random_state, pca, pca.explained_variance_ratio_.copy())


def _fit_umap(data: np.ndarray, n_components: int, random_state: int, n_neighbors: int, min_dist: float,
              metric: str, verbose: bool) -> Projector:
    global _UMAP_COMPILED
    if not _UMAP_COMPILED and verbose:
        print("UMAP: the first fit in this Python session compiles numba code (about 16 s on 2 CPU cores); "
              "later fits take a second or two.", file=sys.stderr, flush=True)
    import warnings

    import umap

    # UMAP needs n_neighbors < n samples; small lesson batches get a proportionally small neighbourhood.
    nn = max(2, min(n_neighbors, data.shape[0] - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and friends
        init = "spectral" if data.shape[0] > n_components + 1 else "random"
        reducer = umap.UMAP(n_components=n_components, n_neighbors=nn, min_dist=min_dist, metric=metric,
                            random_state=random_state, init=init)
        reducer.fit(data)
    _UMAP_COMPILED = True
    return Projector("umap", n_components, random_state, reducer)


def project(x: Any, method: str = "pca", n_components: int = 2, random_state: int = 0,
            reducer: Projector | None = None, **kwargs: Any) -> tuple[np.ndarray, Projector]:
    """Project `x` to `n_components` dims. With `reducer`, reuse it (new points land on the same map).

    Returns (coordinates (n, n_components), the fitted Projector).
    """
    data = _as_2d(x)
    if reducer is None:
        reducer = fit(data, method, n_components, random_state, **kwargs)
        if reducer.method == "umap":
            return np.asarray(reducer.model.embedding_, dtype=np.float64), reducer
    return reducer.transform(data), reducer


def clear_cache() -> None:
    """Forget every fitted reducer."""
    _CACHE.clear()


def trajectories(paths: list[Any], method: str = "pca", random_state: int = 0,
                 reducer: Projector | None = None, **kwargs: Any) -> tuple[list[np.ndarray], Projector]:
    """Project several trajectories (each a sequence of latents, (steps, ...)) into one shared 2D map.

    The reducer is fitted on all points of all paths together, so the paths are comparable.
    """
    if not paths:
        raise ValueError("trajectories needs at least one path")
    arrays = [_as_2d(p) for p in paths]
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise ValueError(f"all trajectories must have latents of the same size, got sizes {sorted(widths)}")
    stacked = np.concatenate(arrays)
    coords, reducer = project(stacked, method, 2, random_state, reducer=reducer, **kwargs)
    out, i = [], 0
    for a in arrays:
        out.append(coords[i:i + len(a)])
        i += len(a)
    return out, reducer
