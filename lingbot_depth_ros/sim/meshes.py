"""Procedural meshes: smooth random blobs (a UV sphere with a low-order random displacement)."""

from __future__ import annotations

import numpy as np


def blob_mesh(rng: np.random.Generator, radius: float, rings: int = 24, segments: int = 48):
    """Vertices (N, 3) float32 centred on the origin, faces (M, 3) uint32 and uvs (N, 2)."""
    theta = np.linspace(0.0, np.pi, rings + 1)            # polar angle, pole to pole
    phi = np.linspace(0.0, 2.0 * np.pi, segments + 1)     # seam duplicated for the uvs
    t, p = np.meshgrid(theta, phi, indexing="ij")
    bump = np.ones_like(t)
    for _ in range(4):  # a few random low-frequency lobes
        k, m = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        bump += rng.uniform(-0.15, 0.15) * np.sin(k * t) * np.cos(m * p + rng.uniform(0, 2 * np.pi))
    scale = rng.uniform(0.7, 1.3, 3)
    r = radius * bump
    vertices = np.stack([r * np.sin(t) * np.cos(p) * scale[0], r * np.sin(t) * np.sin(p) * scale[1],
                         r * np.cos(t) * scale[2]], axis=-1).reshape(-1, 3)
    uvs = np.stack([p / (2 * np.pi), t / np.pi], axis=-1).reshape(-1, 2)
    index = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b = index[:-1, :-1], index[:-1, 1:]
    c, d = index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3),
                            np.stack([b, c, d], -1).reshape(-1, 3)])
    return vertices.astype(np.float32), faces.astype(np.uint32), uvs.astype(np.float32)
