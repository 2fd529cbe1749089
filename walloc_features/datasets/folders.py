"""The user's own images and sounds, laid out as one folder per class: ``root/<class>/<file>``.

The layout is torchvision's ``ImageFolder``: every sub-folder of ``root`` is a class, named
after the folder; files in deeper sub-folders belong to the class folder they sit in. Classes
and files are read in sorted order, so the same folder always gives the same arrays. Files
with other extensions (``README.txt``) and hidden files and folders (``.DS_Store``, macOS's
``._photo.jpg`` and the ``__MACOSX`` folder of zips made there) are ignored; class names are
Unicode NFC (macOS stores "é" as "e" plus an accent, Linux as one character: the same folders
give the same labels and order on both); image or sound files directly in ``root``, outside any class
folder, are left out with a warning that counts them. Files that cannot be decoded are never dropped silently: by
default they raise; with ``on_error="skip"`` they are left out and one warning lists them.
Links are followed, to anywhere outside ``root`` too (a split made of links into a shared
store), but each folder is read once (a link to ``..`` does not loop); links into ``root``
outside their class folder, into another class's folder (wherever its link leads) or a folder
holding one, or to a folder holding ``root`` are left out, and so are sub-folders that cannot be listed and links to
themselves, with one warning that lists them, so no file is read under another class's label.
"""

from __future__ import annotations

import math
import os
import unicodedata
from fractions import Fraction
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from .. import _memory
from .._warnings import warn

__all__ = ["load_image_folder", "load_audio_folder", "IMAGE_EXTENSIONS", "AUDIO_EXTENSIONS"]

#: File name endings read by :func:`load_image_folder` (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: File name endings read by :func:`load_audio_folder` (case-insensitive; mp3 and opus need
#: libsndfile >= 1.1 / 1.0.29, else those files are reported as unreadable).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")

_IMAGE_MODES = {"RGB": 3, "L": 1}
_ON_ERROR = ("raise", "skip")
_LISTED_SKIPS = 20  # the skip warning names at most this many files


def load_image_folder(path, *, size=None, crop: bool = True, mode: str = "RGB", extensions=IMAGE_EXTENSIONS,
                      on_error: str = "raise", return_paths: bool = False):  # fmt: skip
    """Load a folder of images with one sub-folder per class, as a uint8 ``(N, C, H, W)`` batch.

    Images are read with Pillow, turned upright by their EXIF orientation tag, and converted
    to ``mode`` (transparency is dropped, as in torchvision; 16-bit grayscale is scaled to 8
    bits, not clipped). The first frame of animated or multi-page files is used.

    Parameters
    ----------
    path : str or path-like
        The root folder: ``path/<class>/<image>``. Class names are the sub-folder names.
    size : int or (height, width), default=None
        Size of every returned image; an int gives square images. With ``crop=True`` each image
        is scaled so that it covers ``size`` (its shorter side, relative to the target's aspect
        ratio, fits exactly) and the centre is cut out, so nothing is distorted; with
        ``crop=False`` it is resized to ``size`` and its aspect ratio may change. Resampling is
        bilinear with antialiasing. ``None`` keeps images as they are; they must then all have
        the same size.
    crop : bool, default=True
        Centre-crop (True) or stretch (False) images whose aspect ratio differs from ``size``.
    mode : {"RGB", "L"}, default="RGB"
        Colour (3 channels) or grayscale (1 channel, ITU-R 601 luma).
    extensions : str or sequence of str, default=IMAGE_EXTENSIONS
        File name endings to read (case-insensitive); other files are ignored.
    on_error : {"raise", "skip"}, default="raise"
        For files that cannot be decoded: raise a ValueError naming the file and the reason, or
        leave them out and emit one ``UserWarning`` that counts and names them.
    return_paths : bool, default=False
        Also return the path of each image.

    Returns
    -------
    X : ndarray of shape (n_images, C, H, W), dtype uint8
        Channel-first images, ``C`` = 3 for ``"RGB"`` and 1 for ``"L"``; the transformers read
        uint8 as value / 255.
    y : ndarray of shape (n_images,), dtype str
        The class (folder name, in Unicode NFC) of each image, in sorted class order.
    paths : list of str
        Only with ``return_paths=True``: the file of each image.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist, has no class folders, or a class folder has no image files.
    ValueError
        Bad parameters; an undecodable file (``on_error="raise"``); a class whose files are all
        undecodable; images of different sizes without ``size``; class folders that overlap
        through links.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from PIL import Image
    >>> from walloc_features.datasets import load_image_folder
    >>> with tempfile.TemporaryDirectory() as root:
    ...     for name, colour in [("cat", (255, 0, 0)), ("dog", (0, 0, 255))]:
    ...         os.mkdir(os.path.join(root, name))
    ...         Image.new("RGB", (48, 32), colour).save(os.path.join(root, name, "1.png"))
    ...     X, y = load_image_folder(root, size=24)
    >>> X.shape, X.dtype, y.tolist()
    ((2, 3, 24, 24), dtype('uint8'), ['cat', 'dog'])
    >>> X[0, :, 0, 0].tolist()
    [255, 0, 0]
    """
    from PIL import Image, ImageOps

    target = _check_size(size)
    _check_flag("crop", crop)
    _check_flag("return_paths", return_paths)
    if mode not in _IMAGE_MODES:
        raise ValueError(f"mode must be one of {tuple(_IMAGE_MODES)}, got {mode!r}")

    def decode(file):
        return _decode_image(file, mode)

    def prepare(image):
        if target is not None and image.size != target[::-1]:  # Pillow sizes are (width, height)
            resize = ImageOps.fit if crop else Image.Image.resize
            image = resize(image, target[::-1], Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)

    checks = [("image size", lambda shape: f"{shape[1]}x{shape[2]} (HxW)", "pass size=(height, width) to resize them")]
    X, labels, paths = _load_folder(path, extensions, decode, prepare, on_error, "image", checks)
    return _result(X, labels, paths, return_paths)


def load_audio_folder(path, *, sample_rate: int = 16000, duration: float | None = 1.0, mono: bool = True,
                      extensions=AUDIO_EXTENSIONS, on_error: str = "raise", return_paths: bool = False):  # fmt: skip
    """Load a folder of sound files with one sub-folder per class, as float32 clips of one length.

    Files are read with soundfile (libsndfile): integer PCM becomes float in [-1, 1), float
    files keep their values. Files at another rate are resampled to ``sample_rate`` with
    :func:`scipy.signal.resample_poly` (polyphase, anti-aliased).

    Parameters
    ----------
    path : str or path-like
        The root folder: ``path/<class>/<sound>``. Class names are the sub-folder names.
    sample_rate : int, default=16000
        Rate of the returned clips, in Hz.
    duration : float or None, default=1.0
        Length of every clip in seconds: longer clips keep their first ``duration`` seconds,
        shorter ones are padded with zeros at the end. ``None`` keeps clips whole; they must
        then all have the same length.
    mono : bool, default=True
        Average the channels into one (``X`` is ``(N, T)``), or keep them (``X`` is
        ``(N, C, T)``, even for ``C=1``; all files must then have the same channel count).
    extensions : str or sequence of str, default=AUDIO_EXTENSIONS
        File name endings to read (case-insensitive); other files are ignored.
    on_error : {"raise", "skip"}, default="raise"
        For files that cannot be decoded or hold no samples: raise a ValueError naming the file
        and the reason, or leave them out and emit one ``UserWarning`` that counts and names them.
    return_paths : bool, default=False
        Also return the path of each clip.

    Returns
    -------
    X : ndarray of shape (n_clips, T) or (n_clips, C, T), dtype float32
        ``T = round(sample_rate * duration)`` samples per clip.
    y : ndarray of shape (n_clips,), dtype str
        The class (folder name, in Unicode NFC) of each clip, in sorted class order.
    paths : list of str
        Only with ``return_paths=True``: the file of each clip.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist, has no class folders, or a class folder has no sound files.
    ValueError
        Bad parameters; an undecodable or empty file (``on_error="raise"``); a class whose
        files are all undecodable; different channel counts with ``mono=False``; different
        lengths with ``duration=None``; class folders that overlap through links.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> import soundfile
    >>> from walloc_features.datasets import load_audio_folder
    >>> t = np.arange(4000) / 8000  # half a second at 8 kHz
    >>> with tempfile.TemporaryDirectory() as root:
    ...     for word, hz in [("no", 300), ("yes", 500)]:
    ...         os.mkdir(os.path.join(root, word))
    ...         soundfile.write(os.path.join(root, word, "1.wav"), 0.5 * np.sin(2 * np.pi * hz * t), 8000)
    ...     X, y = load_audio_folder(root, sample_rate=16000, duration=1.0)
    >>> X.shape, X.dtype, y.tolist()
    ((2, 16000), dtype('float32'), ['no', 'yes'])
    >>> bool(np.all(X[:, 8000:] == 0))  # padded from 0.5 s to 1 s
    True
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, Integral) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, Real)
                                 or not math.isfinite(duration) or duration <= 0):  # fmt: skip
        raise ValueError(f"duration must be a positive number of seconds or None, got {duration!r}")
    _check_flag("mono", mono)
    _check_flag("return_paths", return_paths)
    length = None if duration is None else int(round(sample_rate * duration))
    if length == 0:
        raise ValueError(f"duration={duration!r} is less than one sample at sample_rate={sample_rate}")

    def prepare(decoded):
        audio, rate = decoded
        if mono:
            audio = audio.mean(axis=0, keepdims=True)
        if rate != sample_rate:
            ratio = Fraction(int(sample_rate), int(rate))
            audio = resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1)
        if length is not None:
            audio = _fit_length(audio, length)
        audio = audio.astype(np.float32, copy=False)
        return audio[0] if mono else audio

    length_hint = "pass duration= (seconds) to pad or cut them to one length"
    if mono:
        checks = [("length", lambda shape: f"{shape[0]} samples", length_hint)]
    else:
        checks = [("channel count", lambda shape: shape[0], "pass mono=True to mix them down to one channel"),
                  ("length", lambda shape: f"{shape[1]} samples", length_hint)]  # fmt: skip
    def decode(file):
        return _decode_audio(file, length, sample_rate)

    X, labels, paths = _load_folder(path, extensions, decode, prepare, on_error, "sound", checks)
    return _result(X, labels, paths, return_paths)


def _check_flag(name: str, value) -> None:
    """Refuse non-bool flags: ``crop="none"`` is truthy and would silently mean the opposite."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_size(size):
    """``size`` as (height, width) or None, refused early rather than failing inside Pillow."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, Integral) else size
    try:
        height, width = pair
    except (TypeError, ValueError):
        raise ValueError(f"size must be None, an int or a (height, width) pair, got {size!r}") from None
    if any(isinstance(s, bool) or not isinstance(s, Integral) or s <= 0 for s in (height, width)):
        raise ValueError(f"size must hold positive integers, got {size!r}")
    return int(height), int(width)


def _check_extensions(extensions) -> tuple:
    """Lower-case endings with a leading dot, so ``"PNG"``, ``"png"`` and ``".png"`` all work."""
    if isinstance(extensions, str):
        extensions = (extensions,)
    try:
        extensions = tuple(extensions)
    except TypeError:
        raise ValueError(f"extensions must be a str or a sequence of str, got {extensions!r}") from None
    if not extensions or not all(isinstance(e, str) and e.strip(".") for e in extensions):
        raise ValueError(f"extensions must be a non-empty sequence of file name endings, got {extensions!r}")
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


def _decode_image(file: Path, mode: str):
    """The image in ``mode`` and upright; 16-bit pixels are scaled, since Pillow would clip them."""
    from PIL import Image, ImageOps

    with Image.open(file) as image:
        _refuse_signed_tiff(image)
        # Pillow opens 9- to 16-bit PGM as mode "I", already scaled to 0..65535
        sixteen_bit = image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PPM")
        image = ImageOps.exif_transpose(image)  # a copy: its format is None
        if sixteen_bit:
            pixels = np.asarray(image).astype(np.uint32)
            image = Image.fromarray(((pixels + 128) // 257).astype(np.uint8))
        elif image.mode in ("I", "F"):
            raise ValueError(f"32-bit {'integer' if image.mode == 'I' else 'float'} pixels have no standard "
                             "8-bit scale; save the image with 8 or 16 bits per channel")  # fmt: skip
        return image.convert(mode)


def _refuse_signed_tiff(image) -> None:
    """Pillow opens signed 8-bit TIFF pixels as unsigned (-100 becomes 156) and widens signed 16-bit ones to 32 bits,
    whose error would blame the wrong depth: name the signed format instead."""
    if image.format != "TIFF":
        return
    formats = image.tag_v2.get(339, 1)  # SampleFormat: 1 unsigned, 2 signed, 3 float (one per sample, or one)
    if 2 in (formats if isinstance(formats, tuple) else (formats,)):
        bits = image.tag_v2.get(258, ("?",))
        bits = bits[0] if isinstance(bits, tuple) else bits
        raise ValueError(
            f"signed {bits}-bit integer pixels (TIFF SampleFormat 2) have no standard 8-bit scale; save the image "
            "with unsigned 8 or 16 bits per channel"
        )


def _decode_audio(file: Path, length: int | None = None, sample_rate: int | None = None):
    """``((C, T) float32 samples, sample rate)``; an empty file counts as unreadable, not as silence.

    With ``length`` (samples at ``sample_rate``), only the frames those samples are resampled from
    are decoded: a 10-minute file cut to 1 s is not decoded and resampled whole.
    """
    import soundfile

    with soundfile.SoundFile(file) as sound:
        rate = sound.samplerate
        frames = -1 if length is None else _frames_needed(length, rate, sample_rate)
        audio = sound.read(frames, dtype="float32", always_2d=True)
    if audio.size == 0:
        raise ValueError("the file holds no samples")
    return audio.T, rate


def _frames_needed(length: int, rate: int, sample_rate: int) -> int:
    """Input frames that ``length`` output samples of ``resample_poly`` depend on, filter reach included."""
    if rate == sample_rate:
        return length
    ratio = Fraction(int(sample_rate), int(rate))
    up, down = ratio.numerator, ratio.denominator
    reach = 10 * max(up, down) // up + 2  # scipy's filter: 10 * max(up, down) taps a side at the up-sampled rate
    return math.ceil(length * down / up) + reach


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Keep the first ``length`` samples, zero-padding the end of shorter clips."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


def _is_hidden(name: str) -> bool:
    """Dot files and ``__MACOSX`` are system clutter (``.DS_Store``, macOS ``._x.jpg`` forks), never data."""
    return name.startswith(".") or name == "__MACOSX"


def _nfc(name: str) -> str:
    """One spelling of a name, however the file system composed its accents (macOS decomposes)."""
    return unicodedata.normalize("NFC", name)


def _class_files(folder: Path, extensions: tuple, skipped: list | None = None, root: Path | None = None,
                 classes: tuple = ()) -> list:  # fmt: skip
    """Media files anywhere under a class folder, in a fixed order (torchvision walks deep too).

    Links are followed -- to anywhere outside ``root`` too, as in a split built of links to a
    shared store -- but a directory already walked is not entered again (a link to ``..`` would
    loop), and a link into ``root`` outside this class folder, into another class's real folder
    (``classes``: the real paths of all class folders, which may be links to a store), or to a folder
    holding ``root`` is left out and appended to ``skipped`` (when given) as ``"link -> target"``:
    followed, it would file another class's data under this class. Sub-folders that cannot be
    listed and entries that cannot be read (a link to itself) are appended there too, with the
    reason, instead of failing the load (``os.walk`` skipped them silently).
    """
    skipped = [] if skipped is None else skipped
    real_folder = os.path.realpath(folder)
    real_root = os.path.realpath(folder.parent if root is None else root)
    others = [c for c in classes if c != real_folder]
    visited = {_identity(folder)}
    files, pending = [], [folder]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted((e for e in scan if not _is_hidden(e.name)), key=lambda e: (_nfc(e.name), e.name))
        except OSError as exc:
            if directory == folder:  # the class folder itself: not a sub-folder to pass over
                raise
            skipped.append(f"{directory} (cannot be listed: {exc.strerror or exc})")
            continue
        subfolders = []
        for entry in entries:
            path = Path(directory, entry.name)
            try:
                is_dir = entry.is_dir()  # follows links; False for broken ones
                identity = _identity(path) if is_dir else None
            except OSError as exc:  # a link to itself: "too many levels of symbolic links"
                skipped.append(f"{path} (cannot be read: {exc.strerror or exc})")
                continue
            if not is_dir and not entry.name.lower().endswith(extensions):
                continue
            if entry.is_symlink():
                target = os.path.realpath(path)
                inside_root = _within(target, real_root) and not _within(target, real_folder)
                crosses = any(_within(target, other) or _within(other, target) for other in others)
                if inside_root or _within(real_root, target) or crosses:
                    skipped.append(f"{path} -> {target} (outside its class folder)")
                    continue
            if not is_dir:
                files.append(path)
            elif identity not in visited:
                visited.add(identity)
                subfolders.append(path)
        pending += reversed(subfolders)  # depth-first, in sorted order
    return files


def _within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (both real paths)."""
    return os.path.commonpath([path, folder]) == folder


def _identity(folder: Path) -> tuple:
    """What makes two paths the same directory, whichever links lead there."""
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def _check_disjoint(root: Path, folders: list) -> None:
    """Refuse class folders that are, through links, the root, each other, or inside each other.

    Their files would be read under two labels (or, for a link to the root, under one label
    for every class).
    """
    real_root = Path(os.path.realpath(root))
    real = sorted(((Path(os.path.realpath(f)), f) for f in folders), key=lambda pair: pair[0].parts)
    for target, folder in real:
        if real_root.is_relative_to(target):
            raise ValueError(f"class folder {folder} leads to {target}, which holds the root folder {root}; "
                             "remove the link")  # fmt: skip
    # sorted by path components, a folder's sub-folders directly follow it
    for (outer, outer_folder), (inner, inner_folder) in zip(real[:-1], real[1:], strict=True):
        if inner.is_relative_to(outer):
            raise ValueError(f"class folders {outer_folder} and {inner_folder} overlap (through links, "
                             f"{inner} is inside {outer}), so their files would get two labels; remove the link")


def _class_folders(root: Path, extensions: tuple, kind: str) -> list:
    """The class folders of ``root``, sorted; errors say what layout was expected."""
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a folder of class folders, got a file: {root}")
    # A class folder linked from a store that moved is a broken link: is_dir is False, and its class would vanish
    # without a word. Names without a suffix are class folders' (refused); others, likely files, are warned of.
    broken = sorted(p for p in root.iterdir() if p.is_symlink() and not p.exists() and not _is_hidden(p.name))
    folders_lost = [p for p in broken if not p.suffix]
    if folders_lost:
        raise FileNotFoundError(
            f"{folders_lost[0]} is a link to {os.readlink(folders_lost[0])}, which does not exist"
            f"{f' (and {len(folders_lost) - 1} more)' if len(folders_lost) > 1 else ''}: restore its target or "
            "remove the link"
        )
    if broken:
        _warn_list(f"ignored {len(broken)} broken link(s) in {root}", [f"{p} -> {os.readlink(p)}" for p in broken])
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)), key=lambda p: _nfc(p.name))
    if not folders:
        loose = _loose_files(root, extensions)
        hint = (f"; it holds {len(loose)} {kind} file(s) directly: put them in class folders, or pass the "
                "folder above if this is one class folder" if loose else "")  # fmt: skip
        raise FileNotFoundError(f"no class folders in {root}: expected {root}/<class>/<{kind} file>{hint}")
    for a, b in zip(folders[:-1], folders[1:], strict=True):
        if _nfc(a.name) == _nfc(b.name):
            raise ValueError(f"class folders {a.name!r} and {b.name!r} are the same name spelled two ways "
                             "(composed and decomposed accents): merge them into one folder")  # fmt: skip
    return folders


def _loose_files(root: Path, extensions: tuple) -> list:
    """Names of the media files directly in ``root``, outside any class folder."""
    return sorted(p.name for p in root.iterdir()
                  if not _is_hidden(p.name) and p.name.lower().endswith(extensions) and p.is_file())  # fmt: skip


def _load_folder(path, extensions, decode, prepare, on_error: str, kind: str, checks):
    """Decode every file of every class into one array; decoding errors follow ``on_error``.

    Only ``decode`` is guarded: a file that a decoder rejects is a data problem, whereas a
    failure in ``prepare`` (resizing, resampling) would be a bug and must not pass as a skip.
    The array is allocated for every listed file once the first is decoded and each sample is
    written in place, so memory peaks at the dataset plus one sample (not twice the dataset, as
    a list of samples stacked at the end would). Samples of another shape than the first raise
    the ValueError of the first of ``checks`` -- ``(what, describe(shape), hint)`` -- that tells
    them apart.
    """
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    extensions = _check_extensions(extensions)
    root = Path(path)
    folders = _class_folders(root, extensions, kind)
    _check_disjoint(root, folders)
    passed_over = []
    real_classes = tuple(os.path.realpath(folder) for folder in folders)
    classes = [(folder, _class_files(folder, extensions, passed_over, root, real_classes)) for folder in folders]
    for folder, files in classes:
        if not files:
            raise FileNotFoundError(f"class folder {folder} has no {kind} files (extensions {', '.join(extensions)})")
    n_files = sum(len(files) for _, files in classes)
    X, labels, paths, skipped = None, [], [], []
    for folder, files in classes:
        n_before = len(paths)
        for file in files:
            try:
                decoded = decode(file)
            except Exception as exc:  # decoders of untrusted files raise many types
                reason = f"{type(exc).__name__}: {exc}"
                if on_error == "raise":
                    raise ValueError(f"cannot read {kind} file {file} ({reason}); pass on_error='skip' (on the "
                                     "command line: --skip-unreadable) to leave unreadable files out"
                                     ) from exc  # fmt: skip
                skipped.append(f"{file} ({reason})")
                continue
            sample = prepare(decoded)
            if X is None:
                X = np.empty((n_files,) + sample.shape, sample.dtype)
            elif sample.shape != X.shape[1:]:
                _refuse_shape(checks, paths[0], X.shape[1:], file, sample.shape)
            X[len(paths)] = sample
            labels.append(_nfc(folder.name))
            paths.append(str(file))
        if len(paths) == n_before:
            raise ValueError(f"class folder {folder} has no readable {kind} files ({len(files)} unreadable); "
                             "fix or remove them, or remove the folder")  # fmt: skip
    if len(paths) < n_files:  # skipped files: give their rows back
        _memory.shrink_in_place(X, len(paths))  # safe: no view of X exists
    if loose := _loose_files(root, extensions):
        warn(f"ignored {len(loose)} {kind} file(s) directly in {root} (e.g. {loose[0]!r}): only files in "
             f"class folders are read ({root}/<class>/<file>); move them into a class folder",
             UserWarning)  # fmt: skip
    if passed_over:
        _warn_list(f"skipped {len(passed_over)} link(s) leading outside their class folder, or entries that "
                   f"cannot be read or listed, under {root}", passed_over)
    if skipped:
        _warn_list(f"skipped {len(skipped)} unreadable {kind} file(s) under {root}", skipped)
    return X, labels, paths


def _refuse_shape(checks, first_file: str, first_shape: tuple, file: Path, shape: tuple) -> None:
    """The ValueError for a sample shaped unlike the first, naming both files and what differs."""
    for what, describe, hint in checks:
        if describe(first_shape) != describe(shape):
            raise ValueError(f"{what} differs between files: {first_file} has {describe(first_shape)}, "
                             f"{file} has {describe(shape)}; {hint}")  # fmt: skip
    raise ValueError(f"shape differs between files: {first_file} gives {first_shape}, {file} gives {shape}")


def _warn_list(message: str, items: list) -> None:
    """One UserWarning, at the loader's caller, naming the first few of ``items``."""
    listed = "\n  ".join(items[:_LISTED_SKIPS])
    more = f"\n  ... and {len(items) - _LISTED_SKIPS} more" if len(items) > _LISTED_SKIPS else ""
    warn(f"{message}:\n  {listed}{more}", UserWarning)


def _result(X, labels, paths, return_paths: bool):
    """``(X, y)`` or ``(X, y, paths)``; labels as a str array, which scikit-learn takes as classes."""
    y = np.array(labels, dtype=str)
    return (X, y, paths) if return_paths else (X, y)
