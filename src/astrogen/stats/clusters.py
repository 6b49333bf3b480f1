"""Cluster (graph) statistics of thresholded maps: counts, sizes, masses and filament skeleton length.

Pixels above ``threshold x sigma0`` are graph nodes linked to their 4 or 8 neighbours; clusters are the
connected components. With ``periodic`` the graph wraps around opposite edges, so a structure crossing the
border is one cluster. All maps of the stack are labelled in one ``scipy.ndimage.label`` call with a
structuring element that couples only the two image axes; the periodic merge is a connected-components
pass (``scipy.sparse.csgraph``) over the label pairs that touch across opposite edges, and sizes and masses
are ``bincount`` sums over labels. Filament length is the number of pixels of the skeleton
(``skimage.morphology.skeletonize``) of the excursion set; all maps are skeletonised in one call as a
tall image with empty rows between maps. The skeleton does not wrap around the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import skeletonize

from astrogen.errors import DataError
from astrogen.stats._common import as_maps
from astrogen.stats.peaks import _channel_sigma


@dataclass
class Clusters:
    """Cluster statistics per threshold.

    Attributes
    ----------
    threshold : np.ndarray
        ``[T]`` thresholds in units of ``sigma0``.
    count : np.ndarray
        ``[N, C, T]`` number of clusters per map.
    sizes : list of np.ndarray
        Per threshold: sizes (pixels) of all clusters of all maps and channels, pooled.
    masses : list of np.ndarray
        Per threshold: sum of the field values over each cluster (field units), same order as ``sizes``.
    skeleton_length : np.ndarray
        ``[N, C, T]`` number of skeleton pixels of the excursion set per map.
    sigma0 : np.ndarray
        ``[C]`` field units per unit of threshold that were used.
    """

    threshold: np.ndarray
    count: np.ndarray
    sizes: list
    masses: list
    skeleton_length: np.ndarray
    sigma0: np.ndarray


def _wrap_pairs(labels: np.ndarray, diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Label pairs ``(a, b)`` of foreground pixels that touch across opposite edges of each map."""
    firsts, lasts = [], []
    for first, last in ((labels[..., :, 0], labels[..., :, -1]), (labels[..., 0, :], labels[..., -1, :])):
        # ``first``/``last`` are [M, L] edge lines; diagonal neighbours are the line shifted by one (wrapped)
        for shift in (0, 1, -1) if diagonal else (0,):
            firsts.append(first.ravel())
            lasts.append(np.roll(last, shift, axis=-1).ravel())
    a, b = np.concatenate(firsts), np.concatenate(lasts)
    keep = (a > 0) & (b > 0)
    return a[keep], b[keep]


def clusters(maps, thresholds=None, sigma0=None, periodic: bool = False, connectivity: int = 8) -> Clusters:
    """Connected clusters of pixels above ``threshold x sigma0``, for every map and threshold.

    Parameters
    ----------
    maps : array ``[N, C, H, W]`` or ``[H, W]`` (NumPy or torch)
    thresholds : array ``[T]``, optional
        Thresholds in units of ``sigma0``; default ``[1.0]`` (pixels above sigma0).
    sigma0 : float or array ``[C]``, optional
        Field units per unit of threshold, e.g. the initial-field noise scale; default the per-channel
        pixel std over the whole input set.
    periodic : bool
        Clusters wrap around opposite edges (periodic boxes); the skeleton does not.
    connectivity : {4, 8}
        Pixel neighbourhood linking nodes.
    """
    x = as_maps(maps)
    if connectivity not in (4, 8):
        raise DataError(f"connectivity must be 4 or 8, got {connectivity}")
    levels = np.array([1.0]) if thresholds is None else np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if levels.ndim != 1 or not np.isfinite(levels).all():
        raise DataError(f"thresholds must be a finite 1D array, got {thresholds}")
    s = _channel_sigma(x, sigma0)
    n, c, h, w = x.shape
    m = n * c
    flat = x.reshape(m, h, w)
    structure = np.zeros((3, 3, 3), dtype=bool)  # no coupling along the stacked-map axis
    structure[1] = np.ones((3, 3), dtype=bool) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
    count = np.zeros((m, levels.size))
    skeleton = np.zeros((m, levels.size))
    sizes, masses = [], []
    for t, level in enumerate(levels):  # a loop over a handful of thresholds; each step is whole-stack
        binary = flat > (level * s)[np.arange(m) % c, None, None]
        labels, n_labels = ndimage.label(binary, structure=structure)
        # per-label sums over foreground pixels only; boolean indexing keeps raster order, so the map of
        # each foreground pixel is a repeat of the map index by the per-map foreground count
        fg = labels[binary] - 1
        pixels = np.bincount(fg, minlength=n_labels)
        mass = np.bincount(fg, weights=flat[binary], minlength=n_labels)
        fg_map = np.repeat(np.arange(m), binary.sum(axis=(1, 2)))
        owner = np.zeros(n_labels, dtype=np.int64)
        owner[fg] = fg_map  # every pixel of a label lies in the same map
        if periodic and n_labels:
            a, b = _wrap_pairs(labels, diagonal=connectivity == 8)
            graph = coo_matrix((np.ones(a.size), (a - 1, b - 1)), shape=(n_labels, n_labels))
            group = connected_components(graph, directed=False)[1]
        else:
            group = np.arange(n_labels)
        n_groups = int(group.max()) + 1 if n_labels else 0
        sizes.append(np.bincount(group, weights=pixels, minlength=n_groups))
        masses.append(np.bincount(group, weights=mass, minlength=n_groups))
        first_label = np.unique(group, return_index=True)[1]
        count[:, t] = np.bincount(owner[first_label], minlength=m)
        tall = np.pad(binary, ((0, 0), (0, 1), (0, 0))).reshape(m * (h + 1), w)  # empty row between maps
        skeleton[:, t] = skeletonize(tall).reshape(m, h + 1, w).sum(axis=(1, 2))
    return Clusters(threshold=levels, count=count.reshape(n, c, -1), sizes=sizes, masses=masses,
                    skeleton_length=skeleton.reshape(n, c, -1), sigma0=s)
