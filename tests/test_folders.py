"""load_image_folder / load_audio_folder on tiny folders written in tmp_path."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from walloc_features.datasets import load_audio_folder, load_image_folder


def _save_image(path, pixels):
    """Write an (H, W, 3) or (H, W) array as an image, creating the class folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels)).save(path)


def _save_sound(path, audio, rate):
    """Write (T,) or (T, C) float audio as 32-bit float WAV (exact round trip), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, subtype="FLOAT")


def _sine(hz, seconds, rate, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _corrupt(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a media file" * 4)


# --- images ------------------------------------------------------------------------------------


def test_images_layout_labels_order_and_ignored_files(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {name: rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for name in ("a", "b", "c", "d")}
    _save_image(tmp_path / "dog" / "c.png", pixels["c"])
    _save_image(tmp_path / "cat" / "b.png", pixels["b"])
    _save_image(tmp_path / "cat" / "a.bmp", pixels["a"])
    _save_image(tmp_path / "cat" / "deeper" / "d.PNG", pixels["d"])  # sub-folders belong to the class
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0\1")
    _corrupt(tmp_path / "cat" / "._a.bmp")  # macOS resource fork: hidden, so ignored, not an error
    _save_image(tmp_path / ".hidden" / "x.png", pixels["a"])

    X, y, paths = load_image_folder(tmp_path, return_paths=True)

    assert X.shape == (4, 3, 6, 5) and X.dtype == np.uint8
    assert y.tolist() == ["cat", "cat", "cat", "dog"]
    relative = [Path(p).relative_to(tmp_path).as_posix() for p in paths]
    assert relative == ["cat/a.bmp", "cat/b.png", "cat/deeper/d.PNG", "dog/c.png"]
    for i, name in enumerate("abdc"):
        np.testing.assert_array_equal(X[i], pixels[name].transpose(2, 0, 1))  # channel-first, unchanged


def _columns_image(height=20, width=40):
    """A horizontal ramp: column x holds 6 * x in every channel, so geometry shows in the values."""
    ramp = np.broadcast_to((6 * np.arange(width, dtype=np.uint8))[None, :, None], (height, width, 3))
    return np.ascontiguousarray(ramp)


def test_resize_shorter_side_then_centre_crop(tmp_path):
    _save_image(tmp_path / "a" / "wide.png", _columns_image(20, 40))
    X, _ = load_image_folder(tmp_path, size=16)
    assert X.shape == (1, 3, 16, 16)
    # 20 rows -> 16 (scale 0.8), 40 columns -> 32, of which the middle 16 are kept: source columns 10..30.
    source_x = 10 + (np.arange(16) + 0.5) / 0.8 - 0.5
    np.testing.assert_allclose(X[0, 0, 8, 1:-1], 6 * source_x[1:-1], atol=1.5)


def test_centre_crop_keeps_the_middle_block(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = (255, 0, 0)  # cut off on the left
    image[:, 10:30] = (0, 255, 0)  # the centre square (after scaling) is all green
    image[:, 30:] = (0, 0, 255)  # cut off on the right
    _save_image(tmp_path / "a" / "blocks.png", image)
    X, _ = load_image_folder(tmp_path, size=16)
    inner = X[0, :, :, 1:-1]
    assert np.all(inner[1] == 255) and np.all(inner[0] == 0) and np.all(inner[2] == 0)
    assert X[0, 1].min() > 200  # even the border columns are mostly green


def test_resize_without_crop_stretches_the_whole_image(tmp_path):
    _save_image(tmp_path / "a" / "wide.png", _columns_image(20, 40))
    X, _ = load_image_folder(tmp_path, size=16, crop=False)
    assert X.shape == (1, 3, 16, 16)
    source_x = (np.arange(16) + 0.5) * 2.5 - 0.5  # all 40 columns squeezed into 16
    np.testing.assert_allclose(X[0, 0, 8, 1:-1], 6 * source_x[1:-1], atol=1.5)


def test_size_is_height_width(tmp_path):
    _save_image(tmp_path / "a" / "tall.png", np.zeros((30, 10, 3), np.uint8))
    _save_image(tmp_path / "a" / "wide.png", np.zeros((10, 30, 3), np.uint8))
    X, _ = load_image_folder(tmp_path, size=(8, 4))
    assert X.shape == (2, 3, 8, 4)


def test_grayscale_mode_and_16_bit_images(tmp_path):
    red = np.zeros((4, 4, 3), np.uint8)
    red[...] = (255, 0, 0)
    _save_image(tmp_path / "a" / "red.png", red)
    deep = np.array([[0, 257 * 100, 32896, 65535]] * 4, np.uint16)  # 16-bit grayscale PNG
    _save_image(tmp_path / "b" / "deep.png", deep)
    X, y = load_image_folder(tmp_path, mode="L")
    assert X.shape == (2, 1, 4, 4) and y.tolist() == ["a", "b"]
    assert np.all(X[0] == 76)  # ITU-R 601 luma of pure red: 0.299 * 255
    assert X[1, 0, 0].tolist() == [0, 100, 128, 255]  # scaled by 1/257, not clipped at 255
    X, _ = load_image_folder(tmp_path, mode="RGB")
    assert X[1, :, 0, 1].tolist() == [100, 100, 100]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_signed_integer_tiffs_are_refused_naming_their_format(tmp_path, dtype):
    """Pillow reads signed 8-bit TIFF pixels as unsigned (-100 as 156) and widens signed 16-bit ones: refused, named,
    rather than wrapped or blamed on a 32-bit depth; unsigned 16-bit TIFFs still load, scaled."""
    tifffile = pytest.importorskip("tifffile")  # (installed with scikit-image)
    (tmp_path / "c").mkdir()
    tifffile.imwrite(tmp_path / "c" / "signed.tif", np.array([[-100, 0], [100, 127]], dtype))
    with pytest.raises(ValueError, match=rf"signed\.tif.*signed {8 * np.dtype(dtype).itemsize}-bit integer pixels "
                                         r"\(TIFF SampleFormat 2\)"):  # fmt: skip
        load_image_folder(tmp_path, mode="L")
    (tmp_path / "c" / "signed.tif").unlink()
    tifffile.imwrite(tmp_path / "c" / "unsigned.tif", np.array([[0, 257 * 100], [32896, 65535]], np.uint16))
    assert load_image_folder(tmp_path, mode="L")[0][0, 0].tolist() == [[0, 100], [128, 255]]


@pytest.mark.parametrize("maxval", [65535, 4095])
def test_16_and_12_bit_pgm_images_are_scaled(tmp_path, maxval):
    """Depth cameras write 16-bit PGM, which Pillow opens as 32-bit mode "I" (already scaled to 16 bits)."""
    levels = np.array([[0, maxval // 2, maxval, maxval]] * 2, ">u2")
    header = f"P5\n4 2\n{maxval}\n".encode()
    (tmp_path / "depth").mkdir()
    (tmp_path / "depth" / "frame.pgm").write_bytes(header + levels.tobytes())
    X, _ = load_image_folder(tmp_path, mode="L")
    assert X.dtype == np.uint8 and X[0, 0, 0].tolist() == [0, 127, 255, 255]  # half scale: 127.5 rounds down


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    (tmp_path / "a").mkdir()
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:4, :4] = 255  # the stored top-left corner, white
    Image.fromarray(pixels).save(tmp_path / "a" / "photo.png", exif=exif)  # (PNG: lossless, and keeps the tag)
    X, _ = load_image_folder(tmp_path)
    assert X.shape == (1, 3, 30, 10)
    # turned clockwise, the top-left corner lands top-right (a transpose or a turn the other way would not)
    assert X[0, :, :4, -4:].min() == 255 and X[0, :, :4, :4].max() == 0 and X[0, :, -4:, :4].max() == 0


def test_different_sizes_without_size_name_the_file(tmp_path):
    _save_image(tmp_path / "a" / "one.png", np.zeros((8, 8, 3), np.uint8))
    _save_image(tmp_path / "b" / "two.png", np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match=r"(?s)two\.png.*size="):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, size=8)[0].shape == (2, 3, 8, 8)


@pytest.mark.parametrize("size", [None, 96])
def test_memory_peaks_near_the_output_not_twice_it(tmp_path, size, traced_peak):
    """The batch is allocated once and filled in place: stacking a list of images held it twice.

    Decoding one image costs about 100 kB on top (Pillow's 64 kB chunks), a tenth of the output here.
    """
    rng = np.random.default_rng(0)
    for i in range(32):
        _save_image(tmp_path / f"c{i % 2}" / f"{i:02d}.png", rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    _corrupt(tmp_path / "c1" / "99.png")  # one skipped file: the unused row is given back
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        load_image_folder(tmp_path, size=size, on_error="skip")  # imports and Pillow's plugins before measuring
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        (X, _), peak = traced_peak(load_image_folder, tmp_path, size=size, on_error="skip")
    assert X.shape == (32, 3, 96, size or 128) and X.flags.c_contiguous and X.flags.owndata
    assert peak < 1.3 * X.nbytes, (peak, X.nbytes)


def test_corrupt_image_raises_by_default_and_is_skipped_with_one_warning(tmp_path):
    _save_image(tmp_path / "a" / "good.png", np.full((4, 4, 3), 7, np.uint8))
    _save_image(tmp_path / "b" / "good.png", np.full((4, 4, 3), 9, np.uint8))
    _corrupt(tmp_path / "b" / "broken.png")
    with pytest.raises(ValueError, match=r"broken\.png.*on_error='skip' \(on the command line: --skip-unreadable\)"):
        load_image_folder(tmp_path)
    with pytest.warns(UserWarning) as record:
        X, y, paths = load_image_folder(tmp_path, on_error="skip", return_paths=True)
    assert len(record) == 1
    assert "skipped 1 unreadable image file" in str(record[0].message)
    assert "broken.png" in str(record[0].message)
    assert X.shape == (2, 3, 4, 4) and y.tolist() == ["a", "b"] and X[1].max() == 9
    assert not any("broken" in p for p in paths)


def test_class_with_only_unreadable_files_is_an_error_even_when_skipping(tmp_path):
    _save_image(tmp_path / "a" / "good.png", np.zeros((4, 4, 3), np.uint8))
    _corrupt(tmp_path / "b" / "broken.png")
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"class folder .*b.* no readable"):
        warnings.simplefilter("ignore")
        load_image_folder(tmp_path, on_error="skip")


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "missing")
    _save_image(tmp_path / "loose.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"no class folders.*class folders"):
        load_image_folder(tmp_path)
    with pytest.raises(NotADirectoryError):
        load_image_folder(tmp_path / "loose.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"empty has no image files"):
        load_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="no class folders"):
        load_audio_folder(tmp_path / "empty")


def test_media_files_directly_in_the_root_are_left_out_with_a_warning(tmp_path):
    _save_image(tmp_path / "cat" / "1.png", np.zeros((4, 4, 3), np.uint8))
    _save_image(tmp_path / "stray.png", np.zeros((4, 4, 3), np.uint8))
    _save_image(tmp_path / "another.jpg", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "README.txt").write_text("not an image: ignored without a word")
    (tmp_path / "._stray.png").write_bytes(b"hidden: ignored without a word")
    with pytest.warns(UserWarning, match=r"ignored 2 image file\(s\) directly in .*'another\.jpg'.*class folder"):
        X, y = load_image_folder(tmp_path)
    assert X.shape == (1, 3, 4, 4) and y.tolist() == ["cat"]
    _save_sound(tmp_path / "sounds" / "yes" / "1.wav", np.zeros(10), 16000)
    _save_sound(tmp_path / "sounds" / "loose.wav", np.zeros(10), 16000)
    with pytest.warns(UserWarning, match=r"ignored 1 sound file\(s\) .*'loose\.wav'"):
        load_audio_folder(tmp_path / "sounds", duration=None)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"size": 0}, "size"), ({"size": (4, 4, 4)}, "size"), ({"size": 2.5}, "size"), ({"mode": "CMYK"}, "mode"),
     ({"crop": "none"}, "crop"), ({"on_error": "ignore"}, "on_error"), ({"extensions": ()}, "extensions"),
     ({"return_paths": 1}, "return_paths")],
)  # fmt: skip
def test_bad_image_parameters_name_the_parameter(tmp_path, kwargs, name):
    _save_image(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=f"^{name}"):
        load_image_folder(tmp_path, **kwargs)


def test_extensions_select_files(tmp_path):
    _save_image(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    _save_image(tmp_path / "a" / "y.bmp", np.zeros((4, 4, 3), np.uint8))
    _, _, paths = load_image_folder(tmp_path, extensions="BMP", return_paths=True)
    assert [Path(p).name for p in paths] == ["y.bmp"]


def test_link_to_the_root_is_not_followed_into_other_classes(tmp_path):
    _save_image(tmp_path / "cat" / "1.png", np.full((4, 4, 3), 1, np.uint8))
    _save_image(tmp_path / "dog" / "1.png", np.full((4, 4, 3), 2, np.uint8))
    (tmp_path / "cat" / "loop").symlink_to("..")  # followed: dog (and cat, and loop, ...) again under "cat"
    with pytest.warns(UserWarning, match=r"skipped 1 link\(s\) leading outside .*:\n  .*loop -> "):
        X, y = load_image_folder(tmp_path)
    assert y.tolist() == ["cat", "dog"] and X[:, 0, 0, 0].tolist() == [1, 2]


def test_links_inside_a_class_are_read_once_and_links_out_of_it_skipped(tmp_path):
    _save_image(tmp_path / "cat" / "1.png", np.full((4, 4, 3), 1, np.uint8))
    _save_image(tmp_path / "dog" / "1.png", np.full((4, 4, 3), 2, np.uint8))
    _save_image(tmp_path / "dog" / "sub" / "2.png", np.full((4, 4, 3), 3, np.uint8))
    (tmp_path / "cat" / "again").symlink_to(".")  # inside the class, but already walked
    (tmp_path / "cat" / "dogs.png").symlink_to(tmp_path / "dog" / "1.png")  # another class's file
    (tmp_path / "dog" / "sub" / "up").symlink_to("..")  # inside the class: a loop, not an escape
    (tmp_path / "dog" / "same.png").symlink_to("1.png")  # inside the class: kept, as the user put it
    with pytest.warns(UserWarning) as record:
        X, y, paths = load_image_folder(tmp_path, return_paths=True)
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 1 link(s)" in message and "dogs.png" in message
    relative = [Path(p).relative_to(tmp_path).as_posix() for p in paths]
    assert relative == ["cat/1.png", "dog/1.png", "dog/same.png", "dog/sub/2.png"]
    assert y.tolist() == ["cat", "dog", "dog", "dog"] and X[:, 0, 0, 0].tolist() == [1, 2, 2, 3]


def test_class_folder_linked_from_elsewhere_is_read(tmp_path):
    _save_image(tmp_path / "store" / "cats" / "1.png", np.full((4, 4, 3), 1, np.uint8))
    (tmp_path / "store" / "cats" / "self").symlink_to(tmp_path / "store" / "cats")
    _save_image(tmp_path / "root" / "dog" / "1.png", np.full((4, 4, 3), 2, np.uint8))
    (tmp_path / "root" / "cat").symlink_to(tmp_path / "store" / "cats")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, y = load_image_folder(tmp_path / "root")
    assert y.tolist() == ["cat", "dog"] and X[:, 0, 0, 0].tolist() == [1, 2]


def test_a_class_folder_linked_to_a_moved_store_is_refused_not_dropped(tmp_path):
    """A broken link is no folder to ``is_dir``: the class vanished from the labels without a word."""
    _save_image(tmp_path / "root" / "dog" / "1.png", np.full((4, 4, 3), 2, np.uint8))
    (tmp_path / "root" / "cat").symlink_to(tmp_path / "store" / "cats")  # the store moved away
    for load in (load_image_folder, load_audio_folder):
        with pytest.raises(FileNotFoundError, match=r"cat is a link to .*store.cats, which does not exist"):
            load(tmp_path / "root")
    (tmp_path / "root" / "cat").unlink()  # a broken link to a file (a suffix): no class lost, a warning at the call
    (tmp_path / "root" / "README.md").symlink_to(tmp_path / "gone" / "README.md")
    with pytest.warns(UserWarning, match=r"ignored 1 broken link\(s\) in .*\n  .*README.md -> ") as record:
        X, y = load_image_folder(tmp_path / "root")
    assert y.tolist() == ["dog"] and record[0].filename == __file__


def test_links_to_files_outside_the_root_are_read(tmp_path):
    """A split made of links into a shared store (train/cat/1.png -> store/cat1.png), as torchvision reads it."""
    _save_image(tmp_path / "store" / "cat1.png", np.full((4, 4, 3), 1, np.uint8))
    _save_image(tmp_path / "store" / "dogs" / "dog1.png", np.full((4, 4, 3), 2, np.uint8))
    for label, target in [("cat", "cat1.png"), ("dog", "dogs")]:
        (tmp_path / "train" / label).mkdir(parents=True)
        (tmp_path / "train" / label / Path(target).name).symlink_to(tmp_path / "store" / target)
    (tmp_path / "train" / "dog" / "up").symlink_to(tmp_path)  # holds the root: would read every class again
    with pytest.warns(UserWarning, match=r"skipped 1 link\(s\).*\n  .*up -> "):
        X, y = load_image_folder(tmp_path / "train")
    assert y.tolist() == ["cat", "dog"] and X[:, 0, 0, 0].tolist() == [1, 2]


@pytest.mark.parametrize(
    "link, target",
    [("cat/d_link.png", "dog/d.png"),  # a file of the other class
     ("dog/more", ".")],  # a folder holding the other class's folder: would read store/cat under "dog"
    ids=["into-the-other-class", "to-a-folder-holding-it"],
)  # fmt: skip
def test_class_folders_linked_to_a_store_do_not_read_each_other(tmp_path, link, target):
    """root/cat -> store/cat and root/dog -> store/dog: a link from one into the other is still another class."""
    _save_image(tmp_path / "store" / "cat" / "c.png", np.full((4, 4, 3), 1, np.uint8))
    _save_image(tmp_path / "store" / "dog" / "d.png", np.full((4, 4, 3), 2, np.uint8))
    (tmp_path / "store" / link).symlink_to(tmp_path / "store" / target)
    (tmp_path / "root").mkdir()
    for label in ("cat", "dog"):
        (tmp_path / "root" / label).symlink_to(tmp_path / "store" / label)
    with pytest.warns(UserWarning, match=rf"skipped 1 link\(s\).*\n  .*{Path(link).name} -> "):
        X, y = load_image_folder(tmp_path / "root")
    assert y.tolist() == ["cat", "dog"] and X[:, 0, 0, 0].tolist() == [1, 2]


def test_class_names_are_the_same_whichever_way_the_file_system_spells_accents(tmp_path):
    """macOS (HFS+, and zips made there) stores "café" decomposed; Linux composed: same labels, same order."""
    import unicodedata

    labels = {}
    for form in ("NFC", "NFD"):
        for value, name in enumerate(("cafz", "café")):
            _save_image(tmp_path / form / unicodedata.normalize(form, name) / "1.png", np.full((2, 2), value, np.uint8))
        X, y = load_image_folder(tmp_path / form, mode="L")
        labels[form] = (y.tolist(), X[:, 0, 0, 0].tolist())
    assert labels["NFC"] == labels["NFD"] == (["cafz", "café"], [0, 1])  # "é" (U+00E9) sorts after "z"
    _save_image(tmp_path / "NFC" / unicodedata.normalize("NFD", "café") / "2.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="same name spelled two ways"):
        load_image_folder(tmp_path / "NFC", mode="L")


def test_macos_zip_clutter_is_not_a_class(tmp_path):
    _save_image(tmp_path / "cat" / "1.png", np.full((2, 2), 1, np.uint8))
    _save_image(tmp_path / "__MACOSX" / "cat" / "._1.png", np.zeros((2, 2), np.uint8))
    _save_image(tmp_path / "dog" / "__MACOSX" / "2.png", np.zeros((2, 2), np.uint8))
    _save_image(tmp_path / "dog" / "1.png", np.full((2, 2), 2, np.uint8))
    X, y = load_image_folder(tmp_path, mode="L")
    assert y.tolist() == ["cat", "dog"] and X[:, 0, 0, 0].tolist() == [1, 2]


def test_a_link_to_itself_is_passed_over_with_a_warning(tmp_path):
    _save_image(tmp_path / "cat" / "1.png", np.full((4, 4, 3), 1, np.uint8))
    _save_image(tmp_path / "dog" / "1.png", np.full((4, 4, 3), 2, np.uint8))
    (tmp_path / "cat" / "self").symlink_to("self")  # stat: "too many levels of symbolic links"
    with pytest.warns(UserWarning, match=r"self \(cannot be read: Too many levels of symbolic links\)"):
        X, y = load_image_folder(tmp_path)
    assert y.tolist() == ["cat", "dog"]


def test_a_sub_folder_that_cannot_be_listed_is_passed_over_with_a_warning(tmp_path, monkeypatch):
    _save_image(tmp_path / "cat" / "1.png", np.full((4, 4, 3), 1, np.uint8))
    _save_image(tmp_path / "cat" / "private" / "2.png", np.full((4, 4, 3), 2, np.uint8))
    _save_image(tmp_path / "dog" / "1.png", np.full((4, 4, 3), 3, np.uint8))
    scandir = os.scandir

    def refusing(path):  # chmod 000 does not stop root, who runs CI here
        if Path(path).name == "private":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.warns(UserWarning, match=r"private \(cannot be listed: Permission denied\)"):
        X, y = load_image_folder(tmp_path)
    assert y.tolist() == ["cat", "dog"] and X[:, 0, 0, 0].tolist() == [1, 3]


@pytest.mark.parametrize("target", [".", "cat", "cat/deeper"])
def test_class_folders_overlapping_through_links_are_refused(tmp_path, target):
    _save_image(tmp_path / "cat" / "deeper" / "1.png", np.zeros((4, 4, 3), np.uint8))
    _save_image(tmp_path / "dog" / "1.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "all").symlink_to(tmp_path / target)
    with pytest.raises(ValueError, match=r"class folder.*all.*remove the link"):
        load_image_folder(tmp_path)


# --- audio -------------------------------------------------------------------------------------


def _peak_hz(clip, rate):
    return np.argmax(np.abs(np.fft.rfft(clip))) * rate / len(clip)


def test_audio_resampling_keeps_the_frequency(tmp_path):
    _save_sound(tmp_path / "low" / "tone.wav", _sine(440, 1.0, 8000), 8000)
    _save_sound(tmp_path / "high" / "tone.wav", _sine(1000, 1.0, 16000), 16000)
    X, y = load_audio_folder(tmp_path, sample_rate=16000, duration=1.0)
    assert X.shape == (2, 16000) and X.dtype == np.float32 and y.tolist() == ["high", "low"]
    assert _peak_hz(X[1], 16000) == 440  # read at the wrong rate it would show at 880 Hz
    assert _peak_hz(X[0], 16000) == 1000
    assert 0.3 < np.sqrt(np.mean(X[1, 15000:] ** 2)) < 0.4  # a full second, amplitude kept (rms 0.35)


def test_stereo_is_averaged_to_mono_or_kept(tmp_path):
    left, right = _sine(300, 0.25, 16000, 0.6), _sine(700, 0.25, 16000, 0.2)
    _save_sound(tmp_path / "a" / "stereo.wav", np.stack([left, right], axis=1), 16000)
    X, _ = load_audio_folder(tmp_path, duration=None)
    assert X.shape == (1, 4000)
    np.testing.assert_allclose(X[0], (left + right) / 2, atol=1e-6)
    X, _ = load_audio_folder(tmp_path, duration=None, mono=False)
    assert X.shape == (1, 2, 4000)
    np.testing.assert_array_equal(X[0, 0], left)
    np.testing.assert_array_equal(X[0, 1], right)


def test_channel_counts_must_agree_without_mono(tmp_path):
    _save_sound(tmp_path / "a" / "stereo.wav", np.zeros((100, 2)), 16000)
    _save_sound(tmp_path / "b" / "mono.wav", np.zeros(100), 16000)
    with pytest.raises(ValueError, match=r"(?s)channel count.*mono\.wav.*mono=True"):
        load_audio_folder(tmp_path, mono=False)
    assert load_audio_folder(tmp_path, duration=None)[0].shape == (2, 100)


def test_duration_pads_and_cuts(tmp_path):
    short, long = _sine(200, 0.5, 16000), _sine(300, 1.5, 16000)
    _save_sound(tmp_path / "a" / "short.wav", short, 16000)
    _save_sound(tmp_path / "b" / "long.wav", long, 16000)
    X, _ = load_audio_folder(tmp_path, duration=1.0)
    assert X.shape == (2, 16000)
    np.testing.assert_array_equal(X[0, :8000], short)
    assert np.all(X[0, 8000:] == 0)
    np.testing.assert_array_equal(X[1], long[:16000])  # the start is kept
    X, _ = load_audio_folder(tmp_path, duration=0.25)
    assert X.shape == (2, 4000)
    with pytest.raises(ValueError, match=r"(?s)length.*long\.wav.*duration="):
        load_audio_folder(tmp_path, duration=None)


@pytest.mark.parametrize("rate", [44100, 44101, 8000, 16000])
def test_duration_decodes_only_the_frames_the_clip_needs(tmp_path, rate, monkeypatch):
    """A long recording cut to 1 s: decode (and resample) its start only, with the same samples as the whole file
    resampled then cut (two 10-minute files took 3.8 s and 440 MB for 128 kB of clips)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    noise = np.random.default_rng(rate).uniform(-0.5, 0.5, (5 * rate, 2)).astype(np.float32)
    _save_sound(tmp_path / "a" / "long.wav", noise, rate)
    frames, read = [], soundfile.SoundFile.read
    monkeypatch.setattr(soundfile.SoundFile, "read", lambda f, n=-1, **kw: frames.append(n) or read(f, n, **kw))
    X, _ = load_audio_folder(tmp_path, duration=1.0, mono=False)
    assert 0 < frames[0] < 1.1 * rate  # not -1 (everything)
    ratio = Fraction(16000, rate)
    whole = resample_poly(noise.T, ratio.numerator, ratio.denominator, axis=-1)[:, :16000]
    np.testing.assert_array_equal(X[0], whole.astype(np.float32))


def test_integer_pcm_is_scaled_to_float(tmp_path):
    (tmp_path / "a").mkdir()
    soundfile.write(tmp_path / "a" / "pcm.flac", np.full(50, 16384, np.int16), 16000, subtype="PCM_16")
    X, _ = load_audio_folder(tmp_path, duration=None)
    np.testing.assert_array_equal(X, np.full((1, 50), 0.5, np.float32))


def test_corrupt_and_empty_sounds(tmp_path):
    _save_sound(tmp_path / "a" / "ok.wav", _sine(300, 0.1, 16000), 16000)
    _save_sound(tmp_path / "a" / "empty.wav", np.zeros(0), 16000)
    _corrupt(tmp_path / "a" / "broken.flac")
    (tmp_path / "a" / "readme.md").write_text("ignored")
    with pytest.raises(ValueError, match=r"broken\.flac"):
        load_audio_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"(?s)skipped 2 unreadable sound file.*broken\.flac.*empty\.wav.*no samples"):
        X, y = load_audio_folder(tmp_path, on_error="skip")
    assert X.shape == (1, 16000) and y.tolist() == ["a"]


@pytest.mark.parametrize(
    "kwargs, name",
    [({"sample_rate": 0}, "sample_rate"), ({"sample_rate": 8000.5}, "sample_rate"), ({"duration": 0}, "duration"),
     ({"duration": float("nan")}, "duration"), ({"duration": 1e-9}, "duration"), ({"mono": "yes"}, "mono"),
     ({"on_error": "warn"}, "on_error")],
)  # fmt: skip
def test_bad_audio_parameters_name_the_parameter(tmp_path, kwargs, name):
    _save_sound(tmp_path / "a" / "x.wav", np.zeros(10), 16000)
    with pytest.raises(ValueError, match=name):
        load_audio_folder(tmp_path, **kwargs)
