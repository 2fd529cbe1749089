"""``JPEGCoefficients``: learn from JPEG files without decoding them to pixels."""

from __future__ import annotations

import io
import mmap
import os
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._progress import progress
from .._warnings import warn
from ._base import SignalTransformer, fill_rows, forget_fit
from ._jpeg import block_idct, ycbcr_to_rgb, zigzag_order
from ._signals import SignalLayout

__all__ = ["JPEGCoefficients", "read_jpeg_coefficients"]


def read_jpeg_coefficients(source):
    """Quantized DCT blocks of one JPEG (a path or its bytes), read by libjpeg through jpeglib.

    Returns ``(planes, tables, size, factors)``: a list of int16 arrays
    ``(blocks_h, blocks_w, 8, 8)`` (Y, then Cb and Cr when present), their 8x8 quantization
    tables, ``(height, width)``, and the chroma subsampling ``(vertical, horizontal)``
    (``(2, 2)`` for 4:2:0, ``(1, 1)`` for 4:4:4 and grayscale) from the file's sampling factors.
    """
    try:
        import jpeglib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("JPEGCoefficients needs jpeglib: pip install 'walloc-features[jpeg]'") from exc

    if isinstance(source, (bytes, bytearray, memoryview)):
        with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as f:
            f.write(bytes(source))
        try:
            return read_jpeg_coefficients(f.name)
        except ValueError as exc:  # name the bytes, not the temporary file they passed through
            raise ValueError(str(exc).replace(f.name, f"{len(source)} bytes")) from exc.__cause__
        finally:
            os.unlink(f.name)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no JPEG file at {path}")
    _check_complete(path)
    try:
        jpeg = jpeglib.read_dct(str(path))
        planes = [jpeg.Y] + ([jpeg.Cb, jpeg.Cr] if jpeg.has_chrominance else [])
        tables = [jpeg.qt[i] for i in jpeg.quant_tbl_no[: len(planes)]]
        size = (int(jpeg.height), int(jpeg.width))
        colour_space = str(jpeg.jpeg_color_space)
        sampling = np.asarray(jpeg.samp_factor)  # rows (vertical, horizontal) per component
    except Exception as exc:  # libjpeg reports corrupt or foreign files in several ways
        raise ValueError(f"{path} could not be read as a JPEG: {exc}") from exc
    if not ("YCbCr" in colour_space or "GRAYSCALE" in colour_space):
        raise ValueError(f"{path} is a {colour_space} JPEG; only grayscale and YCbCr JPEGs are supported")
    factors = (1, 1)
    if len(planes) == 3:
        luma, cb, cr = (tuple(int(f) for f in row) for row in sampling[:3])
        if cb != cr or any(y % c for y, c in zip(luma, cb, strict=True)):
            raise ValueError(  # one chroma grid serves both planes: Cr at Cb's factor was silently repeated
                f"{path} samples Y at {luma}, Cb at {cb} and Cr at {cr} (vertical, horizontal); only files whose "
                "Cb and Cr share one sampling that divides Y's are supported (4:4:4, 4:2:2, 4:2:0, ...)"
            )
        factors = tuple(y // c for y, c in zip(luma, cb, strict=True))
    planes = [np.asarray(p, dtype=np.int16) for p in planes]
    return planes, [np.asarray(t, dtype=np.float32) for t in tables], size, factors


def _check_complete(path: Path) -> None:
    """Refuse a file whose image data ends before its end-of-image marker: libjpeg only prints "Premature end
    of JPEG file" and fills the missing blocks with zeros (Pillow, and so load_image_folder, refuse it). Files
    that are no JPEG, or JPEGs of other than 8-bit samples, are refused naming that: libjpeg prints its reason
    on stderr, and its exception only says the read failed.

    The file is mapped, not read: the walk touches its headers and, searching backwards, its last bytes (reading
    it whole before libjpeg read it again cost 4% of a read of small files)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < 4:  # (nothing to map) not a JPEG: libjpeg's error says so
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:2] != b"\xff\xd8":
                kind = next((name for magic, name in _OTHER_FORMATS.items() if data[: len(magic)] == magic), None)
                hint = f" (a {kind} file: decode it to pixels for DCTTransformer)" if kind else ""
                raise ValueError(f"{path} is not a JPEG: it starts with {bytes(data[:4])!r}, not 0xFF 0xD8{hint}")
            if _scan_ends(data, path):
                return
    raise ValueError(f"{path} is truncated: its image data ends before the end-of-image marker")


#: First bytes of the image formats most often passed for a JPEG.
_OTHER_FORMATS = {b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
                  b"RIFF": "RIFF (WebP?)"}  # fmt: skip
#: Start-of-frame markers (0xC0-0xCF but DHT, JPG and DAC), whose segment gives the sample precision.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _scan_ends(data, path) -> bool:
    """Whether a JPEG's first scan is followed by an end-of-image marker; a frame of other than 8-bit samples
    (12-bit, or lossless 16-bit) is refused on the way."""
    i = 2  # past SOI: walk the marker segments (an EXIF thumbnail's own markers lie inside APP1) to the first scan
    while i + 4 <= len(data):
        if data[i] != 0xFF:  # stray bytes between segments: skipped to the next marker, as libjpeg does (it warns)
            i = data.find(b"\xff", i)
            if i < 0:
                return False
            continue
        if data[i + 1] == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if data[i + 1] in _SOF_MARKERS and i + 4 < len(data) and data[i + 4] != 8:
            raise ValueError(
                f"{path} is a JPEG of {data[i + 4]}-bit samples; only 8-bit JPEGs (baseline, extended or "
                "progressive) are supported"
            )
        if data[i + 1] == 0xDA:  # SOS: entropy-coded data follows, where 0xFF is always stuffed or a marker
            return data.rfind(b"\xff\xd9", i + 2 + length) >= 0
        i += 2 + length
    return False


class JPEGCoefficients(SignalTransformer):
    """Quantized DCT coefficients read straight out of JPEG files, never decoded to pixels.

    The output has :class:`DCTTransformer`'s layout, ``(N, C * keep, H / 8, W / 8)`` on the
    luminance block grid, so the same models apply. Coefficients are those libjpeg stores
    (zig-zag order, first ``keep`` per block): integers with ``quantize=True``, or multiplied by
    their quantization table (the DCT of the level-shifted YCbCr pixels, as
    ``DCTTransformer(quality=None)`` computes it, but in the last block row and column of a side
    that is not a multiple of 8: libjpeg pads it by repeating the edge, DCTTransformer by mirroring)
    with ``quantize=False``.

    Chroma subsampling: in a 4:2:0 (or 4:2:2) JPEG the Cb and Cr planes have fewer blocks than
    Y. ``chroma="repeat"`` repeats each chroma block over the luminance blocks it covers (2x2 for
    4:2:0), so all channels share one grid; ``chroma="drop"`` keeps Y alone. ``inverse_transform``
    decodes the chroma planes at their own resolution and upsamples them bilinearly (close to,
    not identical with, libjpeg's "fancy" upsampling).

    Orientation: coefficients are read as stored, as ``torchvision.io.decode_jpeg`` reads pixels by
    default. Files tagged with an EXIF orientation (phone photos held sideways) lie rotated or
    mirrored, where :func:`~walloc_features.datasets.load_image_folder` turns pixels upright;
    ``transform`` warns of them. Rotate such files losslessly first (``exiftran -ai``,
    ``jpegtran -rotate``) to learn from upright images.

    Parameters
    ----------
    reduction : float, default=16
        Sets ``keep`` when it is None: ``round(64 / reduction)`` coefficients per block and channel,
        ``round(3 * 64 / reduction)`` of Y with ``chroma="drop"`` on colour files (Y alone then
        carries the budget of all three planes). As for :class:`DCTTransformer`, sizes that are not
        multiples of 8 pad to whole blocks: ``reduction_`` is what was reached.
    keep : int, default=None
        Coefficients per block and channel (1 = DC only, 64 = all).
    chroma : {"repeat", "drop"}, default="repeat"
    quantize : bool, default=True
        Integer coefficients (int16) as stored; False: dequantized float32. Integer codes are
        only comparable between files quantized with the same tables, so with ``quantize=True``
        every file must share the fitted file's tables (use ``quantize=False`` for mixed
        qualities).
    output : {"flat", "tensor"}, default="flat"
    batch_size : int, default=64
        Images decoded at a time by ``inverse_transform``.
    verbose : bool, default=False

    Attributes
    ----------
    keep_ : int
    channels_ : int
        1 (grayscale or ``chroma="drop"``) or 3.
    image_size_ : tuple
        ``(height, width)`` of the fitted file; every file must have this size, colour layout
        and chroma subsampling.
    chroma_factor_ : tuple
        Chroma subsampling ``(vertical, horizontal)``: ``(2, 2)`` for 4:2:0.
    quant_tables_ : ndarray of shape (channels_, keep_)
        Zig-zag quantization steps of the first fitted file, used to dequantize integer codes
        in ``inverse_transform``.
    latent_shape_ : tuple
        ``(channels_ * keep_, H / 8, W / 8)``.
    reduction_ : float
        The file's pixels times its channels per coefficient: with ``chroma="drop"`` a colour
        file's Cb and Cr count too (they were stored; the output leaves them out), so budgets
        compare with ``chroma="repeat"`` and with the other transformers on the same images. The
        coefficients are those of the output: with ``chroma="repeat"`` on subsampled chroma, each
        repeated chroma coefficient counts every time it appears (4:2:0 at ``keep=4``: 16, where the
        file stores one coefficient per 32 samples), so ``reduction_`` (and the budgets built on it)
        prices the features a model reads, not the file's size.
    bits_per_code_ : int
        11: baseline JPEG's coefficients of 8-bit samples.
    code_range_ : tuple of int
        ``(-1024, 1023)``, the range of those coefficients.
    grid_ : tuple of int
        Blocks ``(rows, columns)`` of the output (the first plane's).
    colour_ : bool
        Whether the fitted file has three planes (YCbCr).
    tables_ : ndarray of shape (planes, 8, 8)
        Quantization tables of the first fitted file's planes, in natural (row-major) order.
    modality_, input_shape_, input_dtype_, layout_
        ``"image"``, ``(channels_, *image_size_)``, ``"|u1"`` and their layout: the decoded planes as
        :class:`WaLLoCTransformer` would record them.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from walloc_features.features import JPEGCoefficients
    >>> rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    >>> jpeg = JPEGCoefficients(keep=6, output="tensor").fit([buffer.getvalue()])
    >>> jpeg.transform([buffer.getvalue()]).shape
    (1, 18, 4, 4)
    """

    _parameter_constraints: dict = {
        "reduction": [Interval(Real, 1, None, closed="left")],
        "keep": [Interval(Integral, 1, 64, closed="both"), None],
        "chroma": [StrOptions({"repeat", "drop"})],
        "quantize": ["boolean"],
        "output": [StrOptions({"flat", "tensor"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(
        self, reduction=16, *, keep=None, chroma="repeat", quantize=True, output="flat", batch_size=64, verbose=False
    ):
        self.reduction = reduction
        self.keep = keep
        self.chroma = chroma
        self.quantize = quantize
        self.output = output
        self.batch_size = batch_size
        self.verbose = verbose

    def fit(self, X, y=None):
        """Read the first file's geometry and tables (``X``: list of paths or bytes)."""
        self._validate_params()
        forget_fit(self)
        sources = self._sources(X)
        planes, tables, size, factors = _read_item(0, sources[0])
        channels = 1 if self.chroma == "drop" else len(planes)
        keep = self.keep or int(np.clip(round(64 * len(planes) / channels / self.reduction), 1, 64))
        zigzag = zigzag_order()[:keep]
        self.keep_ = keep
        self.channels_ = channels
        self.image_size_ = size
        self.grid_ = planes[0].shape[:2]
        self.colour_ = len(planes) == 3
        self.chroma_factor_ = factors
        self.tables_ = np.stack(tables)
        self.quant_tables_ = np.stack([t.ravel()[zigzag] for t in tables[:channels]])
        self.bits_per_code_ = 11  # baseline JPEG: 8-bit samples give coefficients in [-1024, 1023]
        layout = SignalLayout("image", channels, size, has_channel_axis=True)
        self._set_fitted(layout, np.uint8, (channels * keep, *self.grid_))
        self.reduction_ *= len(planes) / channels  # the stored file's samples, not the output layout's
        if not self.keep:  # a reduction no whole number of coefficients gives, or tiny images padded up
            self._warn_if_reduction_missed(self.reduction, f" with {keep} of 64 coefficients a block",
                                           per_block=64 * len(planes) / channels / keep)  # fmt: skip
        return self

    @property
    def code_range_(self) -> tuple[int, int]:
        """Inclusive range of baseline JPEG's quantized coefficients (8-bit samples): ``(-1024, 1023)``."""
        check_is_fitted(self)
        return (-1024, 1023)

    def transform(self, X):
        """Coefficients ``(N, channels * keep, H / 8, W / 8)`` (flat rows by default)."""
        check_is_fitted(self)
        sources = self._sources(X)
        zigzag = zigzag_order()[: self.keep_]
        out = np.empty((len(sources), *self.latent_shape_), dtype=np.int16 if self.quantize else np.float32)
        oriented = {}
        for i, source in enumerate(progress(sources, self.verbose, desc="JPEG", leave=False)):
            planes, tables, size, factors = _read_item(i, source)
            self._check_file(i, planes, tables, size, factors)
            orientation = _exif_orientation(source)
            if orientation not in (1, None):
                oriented[i] = orientation
            for c in range(self.channels_):
                coeffs = planes[c].reshape(*planes[c].shape[:2], 64)[..., zigzag]  # (bh, bw, keep)
                if not self.quantize:
                    coeffs = coeffs * tables[c].ravel()[zigzag]
                coeffs = _repeat_to_grid(coeffs, self.grid_, factors if c else (1, 1))
                out[i, c * self.keep_ : (c + 1) * self.keep_] = np.moveaxis(coeffs, -1, 0)
        if oriented:
            first, orientation = next(iter(oriented.items()))
            warn(
                f"{len(oriented)} of {len(sources)} JPEG files carry an EXIF orientation (file {first}: "
                f"{orientation}, {_ORIENTATIONS.get(orientation, 'unknown')} to display): their coefficients are "
                "read as stored, so those images lie rotated or mirrored (load_image_folder turns pixels upright). "
                "Rotate the files losslessly first (exiftran -ai, jpegtran) to learn from upright images",
                UserWarning,
            )  # fmt: skip
        return self._format_output(out)

    def inverse_transform(self, X, output_size=None):
        """Pixels ``(N, C, H, W)`` in [0, 1] from coefficients: integer codes (``quantize=True``, scaled by
        ``quant_tables_``; fractions are refused; integer arrays are read as codes whatever ``quantize`` is,
        as ResolutionReducer reads them) or dequantized coefficients (float, ``quantize=False``)."""
        Z = self._read_latents(X)
        padded = [n * 8 for n in Z.shape[2:]]  # whole 8x8 blocks
        height, width = self._output_size(Z.shape[2:], output_size, limit=padded) or padded
        step = self.batch_size
        batches = ((i, self._decode(Z[i : i + step], height, width)) for i in range(0, len(Z), step))
        return self._restore(fill_rows(len(Z), batches))  # each batch written in place: the output held once

    def _decode(self, Z: np.ndarray, height: int, width: int) -> np.ndarray:
        """One batch of coefficients -> pixels on [0, 1] (before clipping)."""
        codes = self.quantize or Z.dtype.kind in "iu"  # integer arrays are codes whatever quantize is now
        if codes and Z.dtype.kind == "f" and not np.array_equal(Z, np.round(Z)):
            raise ValueError(  # as ResolutionReducer: rounding (a regressor's codes, say) is the caller's choice
                "quantize=True: expected integer codes, got fractions; for the dequantized coefficients of "
                "quantize=False, set_params(quantize=False) first"
            )
        Z = Z.astype(np.float32)
        if codes:
            Z = Z * self.quant_tables_.reshape(1, -1, 1, 1)
        n = len(Z)
        coeffs = torch.from_numpy(Z).view(n, self.channels_, self.keep_, *Z.shape[2:])
        order = zigzag_order()[: self.keep_]
        planes = [block_idct(coeffs[:, :1], 8, order)]  # Y on the full grid
        if self.channels_ == 3:
            factor = self.chroma_factor_
            chroma = coeffs[:, 1:, :, :: factor[0], :: factor[1]]
            small = block_idct(chroma, 8, order)
            planes.append(F.interpolate(small, scale_factor=factor, mode="bilinear", align_corners=False))
        x = torch.cat([p[..., : planes[0].shape[2], : planes[0].shape[3]] for p in planes], dim=1) + 128
        if self.channels_ == 3:
            x = ycbcr_to_rgb(x)
        return (x[..., :height, :width] / 255).numpy()

    # ---------------------------------------------------------------------------- helpers --
    def _check_file(self, i, planes, tables, size, factors) -> None:
        """Refuse a file whose coefficients would not mean what the fitted file's mean."""
        problems = []
        if size != self.image_size_:
            problems.append(f"size {size[0]}x{size[1]} (fitted: {self.image_size_[0]}x{self.image_size_[1]})")
        # (a grayscale file for a fit that read chroma is refused even after set_params(chroma="drop"): no planes)
        if (len(planes) == 3) != self.colour_ and (self.chroma != "drop" or len(planes) < self.channels_):
            problems.append("colour" if len(planes) == 3 else "grayscale")
        elif self.channels_ == 3 and factors != self.chroma_factor_:
            problems.append(f"chroma subsampling {factors} (fitted: {self.chroma_factor_})")
        if self.quantize and not np.array_equal(np.stack(tables[: len(self.tables_)]), self.tables_[: len(tables)]):
            problems.append("other quantization tables (integer codes would be on another scale; use quantize=False)")
        if problems:
            raise ValueError(f"JPEG file {i} differs from the fitted one: {'; '.join(problems)}")

    @staticmethod
    def _sources(X) -> list:
        if isinstance(X, (str, bytes, os.PathLike)) or not hasattr(X, "__len__"):
            raise TypeError("X must be a list of JPEG paths or bytes, not a single item")
        if len(X) == 0:
            raise ValueError("Found 0 JPEG file(s) while a minimum of 1 is required.")
        for i, item in enumerate(X):
            if not isinstance(item, (str, bytes, bytearray, memoryview, os.PathLike)):
                raise TypeError(
                    f"item {i} of X is a {type(item).__name__}; JPEGCoefficients reads JPEG files (paths or bytes). "
                    "For decoded pixel arrays use DCTTransformer."
                )
        return list(X)


def _read_item(i: int, source):
    """:func:`read_jpeg_coefficients` of item ``i`` of X, whose errors say which item it was."""
    try:
        return read_jpeg_coefficients(source)
    except (ValueError, FileNotFoundError) as exc:
        raise type(exc)(f"item {i} of X: {exc}") from exc


#: What EXIF orientation tags (0x0112) ask of a viewer (TIFF 6.0 / EXIF 2.3).
_ORIENTATIONS = {2: "mirrored left-right", 3: "rotated 180 degrees", 4: "mirrored top-bottom",
                 5: "transposed", 6: "rotated 90 degrees clockwise", 7: "transversed",
                 8: "rotated 90 degrees counter-clockwise"}  # fmt: skip


def _exif_orientation(source):
    """The EXIF orientation tag of a JPEG (a path or bytes), None when absent or unreadable: Pillow parses only
    the header, not the image data."""
    from PIL import Image, UnidentifiedImageError

    try:
        opened = source if not isinstance(source, (bytes, bytearray, memoryview)) else io.BytesIO(bytes(source))
        with Image.open(opened) as image:
            return image.getexif().get(0x0112)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def _repeat_to_grid(coeffs: np.ndarray, grid: tuple, factors: tuple) -> np.ndarray:
    """Repeat subsampled chroma blocks ``(ch, cw, k)`` over the luminance blocks they cover."""
    return np.repeat(np.repeat(coeffs, factors[0], axis=0), factors[1], axis=1)[: grid[0], : grid[1]]
