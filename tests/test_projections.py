"""PCA / UMAP projections: deterministic, cached, reusable for new points."""

from __future__ import annotations

import numpy as np
import pytest

from explainer import projections


def _blobs(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[5.0] * 6, [-5.0] * 6])
    return np.concatenate([c + rng.standard_normal((n // 2, 6)) for c in centres])


def test_pca_is_deterministic_and_sign_fixed():
    x = _blobs()
    projections.clear_cache()
    a, ra = projections.project(x, "pca")
    projections.clear_cache()
    b, _ = projections.project(x.copy(), "pca")
    np.testing.assert_array_equal(a, b)
    comps = ra.model.components_
    assert np.all(comps[np.arange(2), np.abs(comps).argmax(1)] > 0)
    # PCA equals the textbook SVD projection up to the fixed signs
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    np.testing.assert_allclose(np.abs(a), np.abs(ref), atol=1e-9)
    assert ra.axis_labels[0].startswith("PC1 (") and ra.explained_variance_ratio[0] > 0.8


def test_fitted_reducers_are_cached_and_reused():
    x = _blobs()
    r1 = projections.fit(x, "pca")
    assert projections.fit(x.copy(), "pca") is r1  # same data, same settings: no refit
    assert projections.fit(x, "pca", random_state=1) is not r1
    new, r = projections.project(x[:3] + 0.1, reducer=r1)
    assert r is r1 and new.shape == (3, 2)
    np.testing.assert_allclose(new, r1.transform(x[:3] + 0.1))


def test_trajectories_share_one_map():
    rng = np.random.default_rng(1)
    paths = [rng.standard_normal((5, 4, 2, 2)) for _ in range(3)]
    out, red = projections.trajectories(paths)
    assert [p.shape for p in out] == [(5, 2)] * 3
    np.testing.assert_allclose(out[1], red.transform(paths[1]))
    with pytest.raises(ValueError, match="same size"):
        projections.trajectories([np.zeros((3, 4)), np.zeros((3, 5))])


def test_bad_input():
    with pytest.raises(ValueError, match="method"):
        projections.fit(_blobs(), "tsne")
    with pytest.raises(ValueError, match="at least 2"):
        projections.fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        projections.fit(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_umap_is_deterministic_and_says_it_compiles(capsys):
    pytest.importorskip("umap")
    x = _blobs(30)
    projections.clear_cache()
    projections._UMAP_COMPILED = False
    a, r = projections.project(x, "umap", random_state=7, n_neighbors=8)
    assert "numba" in capsys.readouterr().err  # the one-time compile message
    projections.clear_cache()
    b, _ = projections.project(x, "umap", random_state=7, n_neighbors=8)
    assert "numba" not in capsys.readouterr().err
    np.testing.assert_allclose(a, b)
    assert a.shape == (30, 2) and r.method == "umap" and r.axis_labels == ("UMAP 1", "UMAP 2")
    # the two blobs stay apart
    d_in = np.linalg.norm(a[:15].mean(0) - a[15:].mean(0))
    assert d_in > 3 * max(a[:15].std(0).max(), a[15:].std(0).max())
