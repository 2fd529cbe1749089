"""JPEG facts shared by DCTTransformer and JPEGCoefficients.

Quantization tables: ITU-T T.81 (JPEG), Annex K.1, tables K.1 (luminance) and K.2 (chrominance).
Quality scaling: the Independent JPEG Group's formula (libjpeg ``jpeg_quality_scaling``, integer
arithmetic): ``scale = 5000 // q`` for ``q < 50`` else ``200 - 2 q``;
``table = clip((T * scale + 50) // 100, 1, 255)`` (equal to libjpeg's tables for every quality).
Colour: JFIF full-range YCbCr (ITU-R BT.601 weights, offset 128 on chroma).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=np.float64)  # fmt: skip

CHROMA_TABLE = np.array([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
], dtype=np.float64)  # fmt: skip

#: JFIF RGB -> YCbCr (on 0..255; add 128 to Cb and Cr).
RGB_TO_YCBCR = np.array([
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
])  # fmt: skip
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def quality_table(table: np.ndarray, quality: int) -> np.ndarray:
    """IJG quality scaling of a base table (quality 1..100; 50 is the table itself)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality!r}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((table * scale + 50) // 100, 1, 255)


def zigzag_order(n: int = 8) -> np.ndarray:
    """Flat indices ``row * n + col`` of an ``n x n`` block in JPEG zig-zag order."""
    cells = [(i, j) for i in range(n) for j in range(n)]
    cells.sort(key=lambda c: (c[0] + c[1], c[0] if (c[0] + c[1]) % 2 else -c[0]))
    return np.array([i * n + j for i, j in cells])


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D`` with ``D @ x == scipy.fft.dct(x, norm="ortho")``."""
    return dct(np.eye(n), norm="ortho", axis=0)


def rgb_to_ycbcr(x):
    """``(n, 3, H, W)`` RGB on 0..255 -> JFIF YCbCr on 0..255 (torch)."""
    import torch

    matrix = torch.as_tensor(RGB_TO_YCBCR, dtype=x.dtype, device=x.device)
    y = torch.einsum("ij,njhw->nihw", matrix, x)
    y[:, 1:] += 128
    return y


def ycbcr_to_rgb(y):
    """Inverse of :func:`rgb_to_ycbcr` (torch)."""
    import torch

    y = y.clone()
    y[:, 1:] -= 128
    return torch.einsum("ij,njhw->nihw", torch.as_tensor(YCBCR_TO_RGB, dtype=y.dtype, device=y.device), y)


def _kept_basis(block: int, order, ndim: int) -> np.ndarray:
    """The DCT basis functions of the kept coefficients, ``(len(order), block ** ndim)``: row ``p`` is
    ``D[u] (x) D[v]`` for ``order[p] = u * block + v`` in 2-D, ``D[order[p]]`` in 1-D."""
    D = dct_matrix(block)
    if ndim == 1:
        return D[np.asarray(order)]
    u, v = np.divmod(np.asarray(order), block)
    return (D[u][:, :, None] * D[v][:, None, :]).reshape(len(u), block * block)


def _direct(block: int, order) -> bool:
    """Whether a 2-D block's kept coefficients cost less as one product with their basis (``2 keep block**2``
    FLOPs) than as the separable transform of every coefficient (``4 block**3``): below ``keep = 2 block``. (In
    1-D the kept rows of the DCT matrix are always the cheaper product.)"""
    return len(order) < 2 * block


def block_dct(x, block: int, order):
    """Orthonormal block DCT-II of ``(n, C, *S)`` (sizes multiples of ``block``; 1-D or 2-D).

    Returns ``(n, C, len(order), *grid)``: the coefficients at flat positions ``order`` (zig-zag
    for 2-D, ``u * block + v`` indexing) of every block. Only the kept coefficients are computed where
    that is the cheaper way (:func:`_direct`): JPEG-like 16x keeps 4 of 64 (4x fewer FLOPs than the full
    transform), audio 16x 16 of 256 (16x fewer).
    """
    import torch

    n, c = x.shape[:2]
    if x.ndim == 4:
        blocks = x.view(n, c, x.shape[2] // block, block, x.shape[3] // block, block)
        if _direct(block, order):
            basis = torch.as_tensor(_kept_basis(block, order, 2), dtype=x.dtype, device=x.device)
            patches = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c, blocks.shape[2], blocks.shape[4], block * block)
            return (patches @ basis.T).permute(0, 1, 4, 2, 3)
        D = torch.as_tensor(dct_matrix(block), dtype=x.dtype, device=x.device)
        coeffs = torch.einsum("uk,nchkwl,vl->nchwuv", D, blocks, D).flatten(-2)
        return coeffs[..., torch.as_tensor(order, device=x.device)].movedim(-1, 2)
    basis = torch.as_tensor(_kept_basis(block, order, 1), dtype=x.dtype, device=x.device)
    return torch.einsum("uk,nctk->nuct", basis, x.view(n, c, x.shape[2] // block, block)).movedim(1, 2)


def block_idct(coeffs, block: int, order):
    """Inverse of :func:`block_dct`: ``(n, C, len(order), *grid)`` -> ``(n, C, *grid * block)``, from the kept
    coefficients alone where that is cheaper (the dropped ones are zero)."""
    import torch

    n, c, _, *grid = coeffs.shape
    if len(grid) == 1:
        basis = torch.as_tensor(_kept_basis(block, order, 1), dtype=coeffs.dtype, device=coeffs.device)
        return torch.einsum("uk,ncut->nctk", basis, coeffs).reshape(n, c, grid[0] * block)
    if _direct(block, order):
        basis = torch.as_tensor(_kept_basis(block, order, 2), dtype=coeffs.dtype, device=coeffs.device)
        patches = coeffs.permute(0, 1, 3, 4, 2) @ basis  # (n, C, h, w, block * block)
        x = patches.view(n, c, *grid, block, block).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(n, c, grid[0] * block, grid[1] * block)
    full = coeffs.new_zeros(n, c, block * block, *grid)
    full[:, :, torch.as_tensor(order, device=coeffs.device)] = coeffs
    D = torch.as_tensor(dct_matrix(block), dtype=coeffs.dtype, device=coeffs.device)
    x = torch.einsum("uk,ncuvhw,vl->nchkwl", D, full.view(n, c, block, block, *grid), D)
    return x.reshape(n, c, grid[0] * block, grid[1] * block)
