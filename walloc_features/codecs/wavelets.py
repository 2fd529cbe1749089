"""Wavelet packet transform (WPT) in PyTorch: 1-D and 2-D, batched, differentiable.

The filters come from PyWavelets, which is also the reference the tests compare against.
Boundaries are periodized (``mode="periodization"`` in PyWavelets), so a signal of even
length ``N`` gives exactly ``N / 2`` coefficients per band and the transform is invertible.

A *full packet tree* splits every band again at each level. In 2-D one level turns ``C``
channels into ``4 C``, channel-major (output channel ``c * 4 + band``), with the bands in the
order of :func:`pywt.dwt2`'s ``(cA, (cH, cV, cD))``; in 1-D one level gives ``2 C`` channels
ordered ``(cA, cD)``. After ``J`` levels, channel ``c * B**J + b1 * B**(J-1) + ... + bJ`` holds
the packet whose path from the root is ``b1 ... bJ`` (``B = 4`` or ``2``), which is PyWavelets'
``WaveletPacket2D(...).get_level(J, order="natural")`` order.

Index convention (checked against PyWavelets for filter lengths 2 to 12): for a filter of even
length ``L``, analysis computes ``c[o] = sum_j h[j] x[(2 o + L/2 - j) mod N]`` and synthesis adds
``c[o] g[j]`` into ``x[(2 o + j + 1 - L/2) mod N]``.

Speed: the analysis fuses up to :data:`FUSED_LEVELS` levels into one filter bank per axis. Along one
axis, ``g`` levels of a full packet tree are ``2**g`` filters of about ``(L - 1)(2**g - 1)`` taps applied
at stride ``2**g`` (circular convolutions compose into a circular convolution), and the 2-D tree is
the tensor product of the 1-D trees along the two axes (the 2-D packet index interleaves the bits of
the two 1-D ones). Inference runs each fused bank as one batched matmul over a strided view of
overlapping windows (no im2col copy): along an outer axis the windows are blocks of whole rows
(``(P s, P s + taps - s) @ (P s + taps - s, columns)``, the fast wide form, with ``P`` neighbouring
outputs a window for banks of fewer than 8 filters; audio is cut into segments that become columns; a
batch of images lies side by side), along the contiguous axis of images they are rows, several outputs
per row (``(rows, P s + taps - s) @ (P s + taps - s, P s)``, a block-Toeplitz matrix, mostly ``P = 2``).
:meth:`WaveletPacketTransform.project` chains the 1x1 projection of the codec's encoder onto the
matmuls' own layout instead of putting packets in channel order. When gradients flow, strided
convolutions do the same (cheaper autograd); the level-by-level cascade stays as ``cascade_forward``,
the reference the tests hold both paths to, and as the structure of the inverse.
"""

from __future__ import annotations

import functools
import math
import threading
from contextlib import contextmanager

import numpy as np
import pywt
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WaveletPacketTransform", "pad_to_multiple", "FUSED_LEVELS", "strided_convolutions"]

#: Levels fused into one convolution per axis (more costs more multiply-adds than it saves in passes).
FUSED_LEVELS = 3

#: Audio inference of at least this many samples in all (N C T) fuses pairs of levels instead: 4 filters of
#: 25 taps a pass (29 MACs a sample with two outputs a window) against 57 for 3 levels, one more pass. On an
#: AMD EPYC host (2 threads) pairs ran 1-11% faster from 2**20 samples up (a stereo 2**19 clip at J = 8:
#: 4.41 -> 3.99 ms; 128 clips of 16384: 9.38 -> 8.36), and up to 15% slower below (one 16384-sample clip).
PAIRED_LEVELS_SAMPLES = 2**20


def _periodic_extend(x: torch.Tensor, dim: int, left: int, right: int) -> torch.Tensor:
    """Circular padding that wraps as often as needed (F.pad's 'circular' wraps at most once)."""
    shape = list(x.shape)
    shape[dim] += left + right
    out = x.new_empty(shape)
    _periodic_fill(out, x, dim, left)
    return out


def _periodic_fill(dst: torch.Tensor, src: torch.Tensor, dim: int, left: int, start: int = 0, stop=None) -> None:
    """``dst[m] = src[(m - left) % n]`` along ``dim`` for ``start <= m < stop``, by slice copies (no gather)."""
    n, stop = src.shape[dim], dst.shape[dim] if stop is None else stop
    m = start
    while m < stop:
        k = (m - left) % n
        length = min(n - k, stop - m)
        dst.narrow(dim, m, length).copy_(src.narrow(dim, k, length))
        m += length


def _segments(x: torch.Tensor, n_segments: int, left: int, extra: int) -> torch.Tensor:
    """Cut periodic rows ``(R, n)`` into ``(R, S, n / S + extra)``: segment ``k`` starts ``left`` samples
    before sample ``k n / S`` and runs ``extra`` samples into the next one, so each is self-contained."""
    rows, n = x.shape
    length = n // n_segments
    right = extra - left
    if max(left, right) > min(length, n):  # short rows: a gather wraps as often as needed
        idx = torch.arange(n_segments, device=x.device)[:, None] * length
        idx = (idx + torch.arange(length + extra, device=x.device) - left) % n
        return x.index_select(1, idx.flatten()).view(rows, n_segments, length + extra)
    out = x.new_empty(rows, n_segments, length + extra)
    out[:, :, left : left + length] = x.view(rows, n_segments, length)
    _fill_segment_borders(out.permute(2, 0, 1), length, left, right)
    return out


def _fill_segment_borders(buf: torch.Tensor, length: int, left: int, right: int) -> None:
    """Borders of periodic segments stored along the first axis, segment index on the last axis:
    ``buf[:left]`` and ``buf[left + length:]`` come from the neighbouring segments' interiors."""
    buf[:left, ..., 1:] = buf[length : length + left, ..., :-1]
    buf[:left, ..., 0] = buf[length : length + left, ..., -1]
    buf[left + length :, ..., :-1] = buf[left : left + right, ..., 1:]
    buf[left + length :, ..., -1] = buf[left : left + right, ..., 0]


def _untracked(*tensors) -> bool:
    """No autograd mode follows any of ``tensors`` (None counts as untracked): only such values may share
    a cached operand, or skip the convolutions whose autograd is cheaper."""
    for t in tensors:
        if t is None:
            continue
        if torch.is_grad_enabled() and t.requires_grad:
            return False
        if torch._C._functorch.is_functorch_wrapped_tensor(t):  # vmap, grad, jvp wrappers hide requires_grad
            return False
        if torch.autograd.forward_ad.unpack_dual(t).tangent is not None:
            return False
    return True


def _block_toeplitz(kernel: torch.Tensor, positions: int) -> torch.Tensor:
    """The filter bank ``(s, taps)`` on ``positions`` consecutive outputs as one matrix
    ``(positions * s + taps - s, positions * s)``; column ``j * s + q`` is filter ``q`` at output ``j``."""
    step, taps = kernel.shape
    out = kernel.new_zeros(positions * step + taps - step, positions, step)
    for j in range(positions):
        out[j * step : j * step + taps, j] = kernel.T
    return out.reshape(-1, positions * step)


#: A 1-D pass splits long rows into segments until the matmul has about this many rows.
MATMUL_ROWS = 256

#: Up to this many latents, the image projection takes each pair of positions as one block-diagonal
#: product (twice the multiply-adds, no copy); more latents, or more than two positions a window (images
#: of 1 or 2 levels), copy the packets apart first and project one position a row.
BLOCK_DIAGONAL_LATENTS = 24

#: The audio projection cuts signals into segments until its products have at most this many columns
#: (more signals than that: one segment each). Each segment brings its own borders to copy: 32 measured
#: 20-30% faster than 256 on an AMD EPYC host (stereo and mono 2**19 samples at 20x, batch 1 and 16), the
#: products themselves as fast.
SEGMENT_COLUMNS = 32


#: Intermediates of at least this many bytes are kept between calls (:class:`_Workspace`); smaller ones are
#: allocated each call. Measured on an AMD EPYC host: a stereo 2**19 clip's 4 MiB buffers came back as
#: fresh pages in two processes of three that had loaded a saved transformer (2,072 page faults a call,
#: 6.9 ms against 4.5), and a batch of 16 512x512 images' 50 MB ones in every fresh process that projected
#: them directly (51,508 faults a call, 120 ms against 66); a single such image's 3.4 MB ones never faulted,
#: and reusing them ran about 6% slower between calls of the published encoder (a fresh block is often
#: memory just freed, still in the caches; a kept one was evicted by that work).
REUSE_BYTES = 4 << 20


class _Workspace(threading.local):
    """Large intermediate buffers of the CPU inference passes, kept between calls, one set per thread.

    A multi-megabyte buffer allocated each call can be pages the allocator just returned to the system
    (glibc maps blocks above its threshold afresh and trims its heap), which the next call page-faults
    through again: see :data:`REUSE_BYTES`. One buffer is kept per slot (two for images, three for audio)
    and compute dtype, each as large as the largest call asked: 2-3x the input batch in that dtype
    (16 512x512 RGB images in float32: 101 MiB), freed with the module, by moving it (``.to()``) or when
    the thread ends. CUDA tensors are left to PyTorch's caching allocator, which already reuses memory
    and orders it across streams.
    """

    def __init__(self):
        self.buffers = {}  # (slot, dtype, device) -> flat tensor, grown to the largest request

    def take(self, slot: str, shape, like: torch.Tensor, dtype) -> torch.Tensor:
        """An uninitialized ``shape`` tensor on ``like``'s device, over ``slot``'s buffer if it is large:
        only for values no caller keeps."""
        numel = math.prod(shape)  # (math.prod: np.prod cost ~5 us a call, six calls an audio encoding)
        if numel * dtype.itemsize < REUSE_BYTES or like.device.type != "cpu":
            return like.new_empty(shape, dtype=dtype)
        key = (slot, dtype, like.device)
        flat = self.buffers.get(key)
        if flat is None or flat.numel() < numel:
            flat = self.buffers[key] = None  # the old block freed before its successor (unless still read)
            with torch.inference_mode(False):  # a normal tensor, writable outside inference mode later
                flat = self.buffers[key] = torch.empty(numel, dtype=dtype, device=like.device)
        return flat[:numel].view(shape)


def _copy_segments_time_major(dst: torch.Tensor, x: torch.Tensor, workspace: _Workspace) -> None:
    """``dst[i, c, n, s] = x[n, c, s * L + i]``: signals ``(N, C, S L)`` cut into ``S`` segments, time-major
    ``(L, C, N, S)``. Two copies: runs of ``b`` samples first, then small ``(S, b)`` tiles transposed in
    cache; one strided copy reads 4-byte pieces ``L`` samples apart (a stereo 2**19 clip, AMD EPYC: 1.49
    ms against 0.27 for the two; its 20x encoder 6.2 -> 5.3 ms)."""
    length, c, n, n_segments = dst.shape
    block = _largest_divisor(length, 32)
    if block < 8:  # short runs: the two copies would not pay
        dst.copy_(x.view(n, c, n_segments, length).permute(3, 1, 0, 2))
        return
    source = x.reshape(n, c, n_segments, length // block, block).permute(3, 0, 1, 2, 4)  # (L/b, N, C, S, b)
    runs = workspace.take("runs", source.shape, dst, dst.dtype).copy_(source)
    dst.view(length // block, block, c, n, n_segments).copy_(runs.permute(0, 4, 2, 1, 3))


@functools.lru_cache(maxsize=64)
def _divisors(n: int) -> tuple:
    """The divisors of ``n``, ascending (cached: the audio projection's search read all ``n`` candidates a call,
    0.1 ms for a stereo clip's 2048 positions)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return tuple(small + [n // d for d in reversed(small) if d * d != n])


def _largest_divisor(n: int, limit: int) -> int:
    return max((d for d in _divisors(n) if d <= limit), default=1)


def _symmetric_indices(n: int, total: int, device) -> torch.Tensor:
    """Indices of a half-sample symmetric extension of length ``total`` (numpy's 'symmetric')."""
    k = torch.arange(total, device=device) % (2 * n)
    return torch.where(k < n, k, 2 * n - 1 - k)


def pad_to_multiple(x: torch.Tensor, multiple: int, ndim: int) -> torch.Tensor:
    """Pad the last ``ndim`` axes of ``x`` at their end to a multiple of ``multiple``.

    The extension is half-sample symmetric (``numpy.pad(mode="symmetric")``), which adds no
    artificial edge; crop the reconstruction back with ordinary slicing.

    Parameters
    ----------
    x : torch.Tensor
    multiple : int
    ndim : int
        Trailing axes to pad (2 for images, 1 for audio).

    Returns
    -------
    torch.Tensor
        ``x`` itself when no axis needs padding.
    """
    for axis in range(x.ndim - ndim, x.ndim):
        n = x.shape[axis]
        target = -(-n // multiple) * multiple
        if target != n:
            x = x.index_select(axis, _symmetric_indices(n, target, x.device))
    return x


_STRIDED = threading.local()  # per thread: a FLOP count leaves other threads' transforms on their own path


@contextmanager
def strided_convolutions():
    """Run the calling thread's packet transforms as strided convolutions, whatever ``matmul_inference`` says:
    the arithmetic FLOP counts report. Other threads, and the attribute, are left as they were (a count that
    flipped the shared attribute moved another thread's transform onto the convolutions, and reset a user's
    ``False`` to ``True``)."""
    before = getattr(_STRIDED, "active", False)
    _STRIDED.active = True
    try:
        yield
    finally:
        _STRIDED.active = before


class WaveletPacketTransform(nn.Module):
    """Full wavelet packet tree of ``levels`` levels, periodized boundaries.

    Parameters
    ----------
    wavelet : str or pywt.Wavelet, default="bior4.4"
        Any discrete wavelet PyWavelets knows (``pywt.wavelist(kind="discrete")``).
    levels : int, default=3
        Number of levels ``J``. Every spatial size must be divisible by ``2**J``
        (see :func:`pad_to_multiple`).
    ndim : {1, 2}, default=2
        1 for signals ``(N, C, T)``, 2 for images ``(N, C, H, W)``.

    Attributes
    ----------
    matmul_inference : bool, default=True
        Run inference (no gradient through the input) as batched matmuls; False keeps the strided
        convolutions, whose arithmetic is the transform's own (the matmuls also filter a single
        image's periodic border columns and multiply the zeros of block-Toeplitz matrices and, for few
        latents, of a block-diagonal projection). FLOP counts use :func:`strided_convolutions` instead,
        which switches the calling thread alone.

    Examples
    --------
    >>> import torch
    >>> wpt = WaveletPacketTransform("bior4.4", levels=3, ndim=2)
    >>> x = torch.rand(2, 3, 64, 64)
    >>> coeffs = wpt(x)
    >>> tuple(coeffs.shape)
    (2, 192, 8, 8)
    >>> bool(torch.allclose(wpt.inverse(coeffs), x, atol=1e-5))
    True
    """

    def __init__(self, wavelet="bior4.4", levels: int = 3, ndim: int = 2):
        super().__init__()
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
        if int(levels) < 0:
            raise ValueError(f"levels must be >= 0, got {levels!r}")
        w = pywt.Wavelet(wavelet) if not isinstance(wavelet, pywt.Wavelet) else wavelet
        if w.dec_len % 2:
            raise ValueError(f"wavelet {w.name!r} has an odd filter length {w.dec_len}")
        self.wavelet = w.name
        self.levels = int(levels)
        self.ndim = ndim
        self.filter_length = w.dec_len
        # Analysis filters are flipped once here, since conv layers compute correlations.
        # Kept in float64 and cast per call, so float64 inputs get exact filters.
        dec = torch.tensor(np.array([w.dec_lo[::-1], w.dec_hi[::-1]]), dtype=torch.float64)
        rec = torch.tensor(np.array([w.rec_lo, w.rec_hi]), dtype=torch.float64)
        self.register_buffer("dec", dec, persistent=False)
        self.register_buffer("rec", rec, persistent=False)
        self._fused = {}  # levels per group -> (kernel (2**g, K) float64, left pad, 2-D channel order)
        self._operands = {}  # (group, positions, dtype, device) -> the kernel as a matmul operand
        self._projection = None  # the last projection's operands, see _projection_operands
        self._workspace = _Workspace()  # inference intermediates reused between calls
        self.matmul_inference = True


    @property
    def bands_per_level(self) -> int:
        return 2**self.ndim

    def output_channels(self, in_channels: int) -> int:
        """Number of packets for ``in_channels`` input channels."""
        return in_channels * self.bands_per_level**self.levels

    def extra_repr(self) -> str:
        return f"wavelet={self.wavelet!r}, levels={self.levels}, ndim={self.ndim}"

    # -- one level along one axis ---------------------------------------------------------
    def _analysis_axis(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        """Split every channel of ``x`` into (low, high) along ``axis``; channels double."""
        length = self.filter_length
        channels = x.shape[1]
        x = _periodic_extend(x, axis, length // 2 - 1, length // 2 - 1)
        kernel = self.dec.to(x.dtype).repeat(channels, 1)  # (2C, L): c*2 + {lo, hi}
        if self.ndim == 1:
            return F.conv1d(x, kernel[:, None, :], stride=2, groups=channels)
        if axis == 3:
            return F.conv2d(x, kernel[:, None, None, :], stride=(1, 2), groups=channels)
        return F.conv2d(x, kernel[:, None, :, None], stride=(2, 1), groups=channels)

    def _synthesis_axis(self, c: torch.Tensor, axis: int) -> torch.Tensor:
        """Merge channel pairs (low, high) along ``axis``; channels halve, length doubles."""
        length = self.filter_length
        groups = c.shape[1] // 2
        n_out = 2 * c.shape[axis]
        pad = length // 4 + 1  # enough periodic copies for every output sample
        c = _periodic_extend(c, axis, pad, pad)
        kernel = self.rec.to(c.dtype).repeat(groups, 1)  # (2G, L): g*2 + {lo, hi}
        if self.ndim == 1:
            y = F.conv_transpose1d(c, kernel[:, None, :], stride=2, groups=groups)
        elif axis == 3:
            y = F.conv_transpose2d(c, kernel[:, None, None, :], stride=(1, 2), groups=groups)
        else:
            y = F.conv_transpose2d(c, kernel[:, None, :, None], stride=(2, 1), groups=groups)
        start = 2 * pad + length // 2 - 1
        return y.narrow(axis, start, n_out)

    # -- full tree ----------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.ndim + 2:
            layout = "(N, C, T)" if self.ndim == 1 else "(N, C, H, W)"
            raise ValueError(f"expected a {self.ndim + 2}-D tensor {layout}, got shape {tuple(x.shape)}")

    def _check_divisible(self, x: torch.Tensor) -> None:
        self._check_input(x)
        multiple = 2**self.levels
        for size in x.shape[2:]:
            if size % multiple:
                raise ValueError(
                    f"size {tuple(x.shape[2:])} is not divisible by 2**levels = {multiple}; "
                    "pad it first (pad_to_multiple)"
                )

    def _fused_kernel(self, group: int):
        """Composite filters of ``group`` 1-D levels, from the cascade's response to unit impulses."""
        if group not in self._fused:
            with torch.inference_mode(False):  # cached tensors must stay usable by autograd later
                self._fused[group] = self._compose_levels(group)
        return self._fused[group]

    def _apply(self, fn, recurse=True):
        # .to(), .cpu(), .double(): would hold the old device's memory
        self._operands, self._projection, self._workspace = {}, None, _Workspace()
        return super()._apply(fn, recurse)

    def __getstate__(self):
        state = super().__getstate__()
        # Rebuilt on use: a pickle must not carry CUDA tensors or scratch memory (nor can it hold a thread-local).
        return {**state, "_operands": {}, "_projection": None, "_workspace": None}

    def _scratch(self) -> _Workspace:
        """This module's buffers for inference intermediates (created here for modules unpickled without)."""
        if getattr(self, "_workspace", None) is None:
            self._workspace = _Workspace()
        return self._workspace

    def _operand(self, group: int, positions: int, dtype, device) -> torch.Tensor:
        """The fused bank in ``dtype`` on ``device``: ``(s, taps)`` for ``positions=0``, else its block
        Toeplitz for ``positions`` outputs (:func:`_block_toeplitz`). Built once per dtype and device:
        at batch 1 rebuilding them cost a few percent of the 2-D pass."""
        key = (group, positions, dtype, torch.device(device))
        if key not in self._operands:
            with torch.inference_mode(False):
                kernel = self._fused_kernel(group)[0].to(device=device, dtype=dtype)
                self._operands[key] = _block_toeplitz(kernel, positions) if positions else kernel
        return self._operands[key]

    def _wide_operand(self, group: int, outputs: int, dtype, device):
        """The bank for ``operand @ windows`` (windows of whole rows) and its outputs per window ``P``.

        ``(s, taps)``, or for banks of fewer than 8 filters up to ``8 / s`` neighbouring outputs (the
        largest divisor of ``outputs`` there) as the transposed block Toeplitz ``(P s, P s + taps - s)``,
        which leaves the outputs in the same order: MKL ran the thin products slower (AMD EPYC: 2 levels
        of a stereo clip, ``(4, 25)``, 0.74 ms against 0.60 for ``(8, 29)``).
        """
        positions = _largest_divisor(outputs, max(1, 8 // 2**group))
        if positions > 1:
            return self._operand(group, positions, dtype, device).T, positions
        return self._operand(group, 0, dtype, device), 1

    def _compose_levels(self, group: int):
        """``_fused_kernel``'s uncached computation."""
        step = 2**group
        n = step * (2 * self.filter_length + 2)  # long enough that the support does not wrap
        cascade = WaveletPacketTransform(self.wavelet, group, ndim=1)
        response = cascade.cascade_forward(torch.eye(n, dtype=torch.float64)[:, None, :])  # (n, 2**g, n / 2**g)
        middle = n // step // 2
        taps = response[:, :, middle]  # (sample, packet) for output position `middle`
        support = torch.nonzero(taps.abs().sum(1) > 0).flatten()
        first, last = int(support.min()), int(support.max())
        kernel = taps[first : last + 1].T.contiguous()  # (2**g, K): correlation taps
        left = step * middle - first  # samples before 2*o that output o reads
        # 2-D channel order: index of (height packet p, width packet q) in the interleaved tree.
        order = torch.empty(step * step, dtype=torch.long)
        for p in range(step):
            for q in range(step):
                index = 0
                for bit in reversed(range(group)):
                    index = index * 4 + 2 * ((q >> bit) & 1) + ((p >> bit) & 1)
                order[index] = p * step + q
        return kernel, left, order

    def _fused_axis(self, x: torch.Tensor, group: int, axis: int) -> torch.Tensor:
        """``group`` levels along ``axis`` of ``(B, 1, ...)``: packets land on the channel axis."""
        kernel, left, _ = self._fused_kernel(group)
        step, taps = kernel.shape
        x = _periodic_extend(x, axis, left, taps - step - left)
        weight = self._operand(group, 0, x.dtype, x.device)
        if self.ndim == 1:
            return F.conv1d(x, weight[:, None, :], stride=step)
        if axis == 3:
            return F.conv2d(x, weight[:, None, None, :], stride=(1, step))
        return F.conv2d(x, weight[:, None, :, None], stride=(step, 1))

    def _matmul_1d(self, x: torch.Tensor) -> torch.Tensor:
        """All levels along periodic rows ``(R, T)`` -> ``(R * 2**J, T / 2**J)``, one matmul per fused group.

        Rows are cut into self-contained segments (:func:`_segments`) until there are about
        :data:`MATMUL_ROWS`. A strided view sees every block of ``P`` outputs of a segment as a row of
        ``P s + taps - s`` samples, multiplied by the block-Toeplitz filter matrix; the product is
        written straight into the next group's segments, whose borders are copied from their neighbours.
        """
        rows, n = x.shape
        n_segments = _largest_divisor(n >> self.levels, -(-MATMUL_ROWS // rows))
        groups, seg = self._groups(x.numel()), None
        for index, group in enumerate(groups):
            kernel, left, _ = self._fused_kernel(group)
            step, taps = kernel.shape
            if seg is None:
                seg = _segments(x, n_segments, left, taps - step)  # (R, S, n / S + taps - s)
            length, width = n // n_segments, seg.shape[2]
            positions = _largest_divisor(length // step, max(1, 32 // step))  # 32 outputs per block measured best
            block = positions * step
            windows = seg.as_strided((length // block, rows * n_segments, block + taps - step), (block, width, 1))
            y = torch.matmul(windows, self._operand(group, positions, x.dtype, x.device))  # (blocks, R S, P s)
            y = y.view(length // block, rows, n_segments, positions, step).permute(1, 4, 2, 0, 3)  # (R, s, S, ., P)
            rows, n = rows * step, n // step
            if index == len(groups) - 1:
                return y.reshape(rows, n)
            following, left, _ = self._fused_kernel(groups[index + 1])
            extra = following.shape[1] - following.shape[0]  # taps - s of the next group
            length, right = n // n_segments, extra - left
            if length < max(left, right):  # segments too short for their neighbours to fill the borders
                x, seg = y.reshape(rows, n), None
                continue
            seg = y.new_empty(rows, n_segments, length + extra)
            seg[:, :, left : left + length].view(y.shape).copy_(y)
            _fill_segment_borders(seg.permute(2, 0, 1), length, left, right)

    def _project_1d(self, x: torch.Tensor, weight: torch.Tensor, bias, dtype):
        """Audio analysis + projection with every level in the wide matmul form, or None if too short.

        Each ``(n, c)`` signal is cut into ``S`` segments, copied once into a buffer ``(time, C, N, S)``
        with borders; every fused group is then one batched ``(P s, P s + taps - s) @ (P s + taps - s,
        columns)`` product over windows of rows (``P`` outputs a window: up to ``8 / s``, dividing them),
        written into the next group's buffer (borders copied from neighbouring segments). The last
        product is ``(T', s_G, ..., s_1, C, N S)``, so the projection is one more batched product with the
        weight's columns reordered to ``(q_G, ..., q_1, c)``.
        """
        n, c, t = x.shape
        groups = self._groups(x.numel())
        kernels = [self._fused_kernel(g)[:2] for g in groups]
        final = t >> self.levels
        for n_segments in _divisors(final)[::-1]:
            length, fits = t // n_segments, True
            for (kernel, left), group in zip(kernels, groups, strict=True):
                fits &= length >= max(left, kernel.shape[1] - kernel.shape[0] - left)
                length >>= group
            if fits and (n_segments == 1 or n_segments * n * c <= SEGMENT_COLUMNS):  # many signals: 1 each
                break
        else:
            return None
        length, columns = t // n_segments, c * n * n_segments
        kernel, left = kernels[0]
        # Intermediates in reused buffers, each product reading one and writing the other; the last product
        # is kept for backward when the weight is tracked, so it is then a fresh tensor.
        workspace, slots = self._scratch(), ("even", "odd")
        buf = workspace.take("even", (length + kernel.shape[1] - kernel.shape[0], c, n, n_segments), x, dtype)
        _copy_segments_time_major(buf[left : left + length], x, workspace)
        _fill_segment_borders(buf, length, left, kernel.shape[1] - kernel.shape[0] - left)
        for index, (group, (kernel, left)) in enumerate(zip(groups, kernels, strict=True)):
            step = kernel.shape[0]
            outputs = length // step
            operand, positions = self._wide_operand(group, outputs, dtype, x.device)
            span = operand.shape[1]  # P s + taps - s samples a window
            windows = buf.as_strided((outputs // positions, span, columns), (positions * step * columns, columns, 1))
            if index + 1 < len(kernels):
                following, left = kernels[index + 1]
                extra = following.shape[1] - following.shape[0]
                buf = workspace.take(slots[(index + 1) % 2], (outputs + extra, step, *buf.shape[1:]), x, dtype)
                into = buf[left : left + outputs].view(outputs // positions, positions * step, columns)
                torch.matmul(operand, windows, out=into)
                _fill_segment_borders(buf, outputs, left, extra - left)
            elif _untracked(weight, bias):
                y = workspace.take(slots[(index + 1) % 2], (outputs // positions, len(operand), columns), x, dtype)
                torch.matmul(operand, windows, out=y)
            else:
                y = torch.matmul(operand, windows)
            length, columns = outputs, columns * step
        steps = [2**g for g in groups]
        order = (0, *range(len(steps) + 1, 1, -1), 1)  # (K, c, q_1..q_G) -> (K, q_G..q_1, c)
        packed = weight.reshape(len(weight), c, *steps).permute(order).reshape(len(weight), -1).to(y.dtype)
        out = torch.matmul(packed, y.view(length, -1, n * n_segments))  # (T', K, N S)
        if bias is not None:
            out += bias.to(out.dtype)[:, None]
        return out.view(length, -1, n, n_segments).permute(2, 1, 3, 0).reshape(n, len(weight), -1)

    def _matmul_2d(self, x: torch.Tensor, group: int, dtype=None, scratch_result: bool = True) -> torch.Tensor:
        """``group`` levels of ``(N, C, H, W)`` as two matmuls -> ``(W/s/P, N, H/s, s_h, C, P, s_w)``, contiguous.

        Height first: the batch is copied once into a buffer ``(H + taps - s, N, C, W)``, each image
        extended periodically along the height and the images side by side, so a single product per
        window of rows (``(s, taps) @ (taps, N C W)``, stride ``s``; several outputs a window for fewer
        than 8 filters, :meth:`_wide_operand`) filters the height of all of them, with no window wasted
        between images. The result's rows ``(i, p, n, c)`` are copied in ``(n, i, p, c)`` order and
        extended periodically to ``W' = W + taps - s`` (for a single image the buffer already holds those
        width borders, and nothing is copied). Intermediates live in reused buffers (:class:`_Workspace`), and
        so does the result unless ``scratch_result`` is False (a caller whose autograd graph keeps it).
        ``(W/s/P, rows, P s + taps - s) @ (P s + taps - s, P s)`` then filters every row along the
        width, ``P`` outputs per window (the largest divisor of ``W / s`` up to ``max(2, 16 / s)``), which
        leaves the ``(p, c, j, q)`` packets of ``P`` neighbouring positions contiguous.
        """
        _, left, _ = self._fused_kernel(group)
        if dtype is None:  # integers convert in the first copy
            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        kernel = self._operand(group, 0, dtype, x.device)
        step, taps = kernel.shape
        n, c, h, w = x.shape
        extra, width = taps - step, w + taps - step
        workspace = self._scratch()
        buf = workspace.take("even", (h + extra, n, c, width if n == 1 else w), x, dtype)
        inner = buf[..., left : left + w] if n == 1 else buf
        _periodic_fill(inner, x.permute(2, 0, 1, 3), 0, left)
        if n == 1:
            _periodic_fill(buf, inner, 3, left, 0, left)
            _periodic_fill(buf, inner, 3, left, left + w, width)
        columns = buf[0].numel()
        operand, positions = self._wide_operand(group, h // step, dtype, x.device)
        span = operand.shape[1]
        windows = buf.as_strided((h // step // positions, span, columns), (positions * step * columns, columns, 1))
        # (H/s, s_h, N C W'), or N C W when N > 1: rows (i, p, n, c), contiguous for the strided view below.
        y = workspace.take("odd", (len(windows), len(operand), columns), x, dtype)
        torch.matmul(operand, windows, out=y)
        if n > 1:
            rows = workspace.take("even", (n, h // step, step, c, width), x, dtype)  # buf is spent
            inner = rows[..., left : left + w]
            inner.copy_(y.view(h // step, step, n, c, w).permute(2, 0, 1, 3, 4))
            _periodic_fill(rows, inner, 4, left, 0, left)
            _periodic_fill(rows, inner, 4, left, left + w, width)
            y = rows
        # Several outputs per window, 16 packets a row of the product where the width allows: a wider
        # product, ~25% faster for pairs of 8 packets; 2 or 4 packets a row ran slower still under MKL
        # (AMD EPYC, one 512x512 RGB image at J = 2, this pass and the column pass's: 3.7-4.3 -> 2.8-3.7 ms).
        pair = _largest_divisor(w // step, max(2, 16 // step))
        toeplitz = self._operand(group, pair, dtype, x.device)
        windows = y.as_strided((w // step // pair, n * h * c, len(toeplitz)), (step * pair, width, 1))
        shape = (w // step // pair, n, h // step, step, c, pair, step)
        if not scratch_result:
            return torch.matmul(windows, toeplitz).view(shape)
        out = workspace.take("odd" if n > 1 else "even", (len(windows), n * h * c, toeplitz.shape[1]), x, dtype)
        return torch.matmul(windows, toeplitz, out=out).view(shape)

    def _fast(self, x: torch.Tensor) -> bool:
        """Matmul passes for inference. The convolutions keep autograd cheap when gradients flow, carry
        forward-mode tangents (matmul's ``out=`` cannot) and serve torch.func transforms (vmap, grad, jvp),
        which refuse the passes' writes into reused buffers."""
        if not self.matmul_inference or getattr(_STRIDED, "active", False) or self.levels == 0 or x.numel() == 0:
            return False
        return _untracked(x) and torch._C._functorch.peek_interpreter_stack() is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis: ``(N, C, *S)`` -> ``(N, C * B**J, *S / 2**J)`` (fused levels, see the module notes)."""
        self._check_divisible(x)
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        if self._fast(x) and self.ndim == 1:
            n, c, t = x.shape
            return self._matmul_1d(x.reshape(n * c, t)).reshape(n, c * 2**self.levels, -1)
        if self._fast(x) and self.levels <= FUSED_LEVELS:
            z = self._matmul_2d(x, self.levels)  # (W/s/P, N, H/s, p, C, P, q)
            n, c, step, height = x.shape[0], x.shape[1], 2**self.levels, x.shape[2] >> self.levels
            z = z.permute(1, 4, 3, 6, 2, 0, 5).reshape(n, c, step * step, height, -1)
            order = self._fused_kernel(self.levels)[2].to(x.device)
            return z.index_select(2, order).reshape(n, c * step * step, height, -1)
        for group in self._groups():
            n, c = x.shape[:2]
            if self.ndim == 1:
                t = x.shape[2]  # explicit sizes: -1 is ambiguous for empty batches
                x = self._fused_axis(x.reshape(n * c, 1, t), group, 2).reshape(n, c * 2**group, t >> group)
                continue
            step, (h, w) = 2**group, x.shape[2:]
            y = self._fused_axis(x.reshape(n * c, 1, h, w), group, 3)  # (nc, q, h, w / step)
            y = self._fused_axis(y.reshape(n * c * step, 1, h, w // step), group, 2)  # (nc q, p, h/s, w/s)
            y = y.reshape(n, c, step, step, h // step, w // step).transpose(2, 3)  # (.., p, q, ..)
            order = self._fused_kernel(group)[2].to(x.device)
            y = y.reshape(n, c, step * step, h // step, w // step).index_select(2, order)
            x = y.reshape(n, c * step * step, h // step, w // step)
        return x

    def _groups(self, samples: int = 0):
        """Levels per fused pass, e.g. 8 -> (3, 3, 2); (2, 2, 2, 2) for the matmul passes over audio of at least
        :data:`PAIRED_LEVELS_SAMPLES` ``samples`` (the convolutions, and so FLOP counts, keep groups of 3)."""
        fused = 2 if self.ndim == 1 and samples >= PAIRED_LEVELS_SAMPLES else FUSED_LEVELS
        full, rest = divmod(self.levels, fused)
        return (fused,) * full + ((rest,) if rest else ())

    def project(self, x: torch.Tensor, weight: torch.Tensor, bias=None, *, scale: float = 1.0) -> torch.Tensor:
        """Analysis followed by a 1x1 projection: equals ``conv(self(x * scale), weight, bias)``, faster.

        ``weight`` is ``(K, C * B**J)`` (or a 1x1 conv weight). For images of at most
        :data:`FUSED_LEVELS` levels without gradients, the packets are never put in channel order:
        the projection's columns are permuted to the matmul passes' layout instead. The transform is
        linear, so ``scale`` (e.g. ``1 / 255`` for uint8 pixels) multiplies the weight, not the input.
        Integer samples are filtered in the weight's dtype.

        Examples
        --------
        >>> import torch
        >>> wpt = WaveletPacketTransform("bior4.4", levels=3, ndim=2)
        >>> x, weight = torch.rand(1, 3, 64, 64), torch.randn(12, 192)
        >>> z = wpt.project(x, weight)
        >>> tuple(z.shape)
        (1, 12, 8, 8)
        >>> bool(torch.allclose(z, torch.nn.functional.conv2d(wpt(x), weight[..., None, None]), atol=1e-4))
        True
        >>> pixels = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)  # converted inside, scale folded
        >>> scaled = wpt.project(pixels, weight, scale=1 / 255)
        >>> bool(torch.allclose(scaled, wpt.project(pixels / 255, weight), atol=1e-4))
        True
        """
        weight = weight.reshape(weight.shape[0], -1)
        self._check_input(x)
        scale = float(scale)
        if weight.shape[1] != self.output_channels(x.shape[1]):
            raise ValueError(
                f"weight has {weight.shape[1]} columns, the packets {self.output_channels(x.shape[1])} channels"
            )
        # Integer samples are filtered in the weight's dtype on every path (they convert in the first copy).
        dtype = x.dtype if x.is_floating_point() else weight.dtype if weight.is_floating_point() else None
        fast = self._fast(x)
        folded = fast and self.ndim == 2 and self.levels <= FUSED_LEVELS  # the packets never in channel order
        if scale != 1.0 and not folded:
            weight = weight * scale  # the folded path puts it into its cached operand instead
        if fast and self.ndim == 1:
            self._check_divisible(x)
            out = self._project_1d(x, weight, bias, dtype or torch.get_default_dtype())
            if out is not None:
                return out
        if not folded:
            coeffs = self(x.to(dtype) if dtype is not None else x)
            if coeffs.requires_grad or not _untracked(weight, bias):  # (a Parameter under no_grad is untracked)
                conv = F.conv1d if self.ndim == 1 else F.conv2d
                weight = weight.to(coeffs.dtype).reshape(*weight.shape, *(1,) * self.ndim)
                return conv(coeffs, weight, None if bias is None else bias.to(coeffs.dtype))
            out = torch.matmul(weight.to(coeffs.dtype), coeffs.flatten(2))  # a 1x1 conv, as a faster matmul
            if bias is not None:
                out += bias.to(out.dtype)[:, None]
            return out.view(*out.shape[:2], *coeffs.shape[2:])
        self._check_divisible(x)
        n, c = x.shape[:2]
        # The row pass always takes several positions a window when it can: one position per window, its
        # product `(rows, 57) @ (57, 8)` ran 4.7x slower than the pairs' (MKL on an AMD EPYC, 3.4 ms vs 0.74).
        # (W/s/P, N, H/s, p, C, P, q); in a reused buffer unless autograd keeps it for the weight's gradient
        z = self._matmul_2d(x, self.levels, dtype=dtype, scratch_result=_untracked(weight, bias))
        pair, k = z.shape[5], weight.shape[0]
        if pair > 2 or (pair > 1 and k > BLOCK_DIAGONAL_LATENTS):
            # Many latents, or more than pairs: a block-diagonal projection (P times the multiply-adds)
            # costs more than copying the packets apart, (W/s/P, N, H/s, P, p, C, q), one position a row.
            z, pair = z.permute(0, 1, 2, 5, 3, 4, 6).unsqueeze(-2), 1  # (..., P, p, C, 1, q)
        blocks, shift = self._projection_operands(weight, bias, pair, z.dtype, scale)
        rows = z.flatten(0, -5).flatten(1)  # (positions, p C P q): a view, a copy where the pairs were split
        out = torch.matmul(rows, blocks) if shift is None else torch.addmm(shift, rows, blocks)
        out = out.view(*z.shape[:3], -1, k)  # (W/s/P, N, H/s, P, K)
        return out.permute(1, 4, 2, 0, 3).reshape(n, k, z.shape[2], -1)

    def _projection_operands(self, weight: torch.Tensor, bias, pair: int, dtype, scale: float = 1.0):
        """``project``'s ``weight * scale`` as the ``(p C P q, P K)`` matrix of the matmul layout,
        block-diagonal over the ``P`` positions of a pair, and the bias repeated per position (or None).

        Cached on the values of ``weight`` and ``bias`` (compared exactly, a few microseconds), not on
        their identity: callers may pass fresh copies, ``.data`` edits leave no trace in ``_version``, and
        rebuilding cost ~0.1 ms, 5% of encoding a 512x512 image. Never cached while any autograd mode
        (backward, forward-mode duals, torch.func) tracks them: the result must join their computation.
        """
        tracked = not _untracked(weight, bias)
        key = (pair, dtype, scale, weight.dtype, weight.shape, weight.device, None if bias is None else bias.dtype)
        cached = getattr(self, "_projection", None)  # absent from modules pickled before it existed
        if not tracked and cached is not None and cached[0] == key and torch.equal(cached[1], weight):
            if bias is None or torch.equal(cached[2], bias):
                return cached[3]
        # Outside inference mode, or a cached operand could not serve autograd later; with a graph only if tracked.
        with torch.inference_mode(False), torch.set_grad_enabled(tracked):
            k, step = weight.shape[0], 2**self.levels
            c = weight.shape[1] // (step * step)
            scaled = weight * scale if scale != 1.0 else weight
            order = self._fused_kernel(self.levels)[2].to(weight.device)
            packed = torch.empty_like(scaled.view(k, c, step * step))
            packed[:, :, order] = scaled.view(k, c, step * step)  # column (c, p * s + q)
            packed = packed.view(k, c, step, step).transpose(1, 2)  # (K, p, C, q)
            blocks = packed.new_zeros(pair, k, step, c, pair, step)  # one projection per position j of the pair
            for j in range(pair):
                blocks[j, :, :, :, j] = packed
            operands = (blocks.view(pair * k, -1).T.to(dtype), None if bias is None else bias.to(dtype).repeat(pair))
        if not tracked:
            saved = [None if t is None else t.detach().clone() for t in (weight, bias)]
            self._projection = (key, *saved, operands)
        return operands

    def cascade_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same analysis level by level and axis by axis: the straightforward reference."""
        self._check_divisible(x)
        for _ in range(self.levels):
            if self.ndim == 1:
                x = self._analysis_axis(x, 2)
            else:  # width first, then height: band index = w * 2 + h = (A, H, V, D)
                x = self._analysis_axis(self._analysis_axis(x, 3), 2)
        return x

    def inverse(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Synthesis: exact inverse of :meth:`forward` (up to float rounding)."""
        self._check_input(coeffs)
        if coeffs.shape[1] % self.bands_per_level**self.levels:
            raise ValueError(
                f"{coeffs.shape[1]} channels is not a multiple of {self.bands_per_level}**{self.levels}"
            )
        for _ in range(self.levels):
            if self.ndim == 1:
                coeffs = self._synthesis_axis(coeffs, 2)
            else:
                coeffs = self._synthesis_axis(self._synthesis_axis(coeffs, 2), 3)
        return coeffs
