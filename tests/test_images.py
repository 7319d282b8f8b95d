"""Image loading: every input type and the typed errors that name the file."""
import numpy as np
import pytest
from PIL import Image

from plqa_nb.errors import (CorruptImageError, EmptyFileError, ImageTooSmallError, InvalidValuesError,
                            NotAFileError, NotAnImageError)
from plqa_nb.images import iter_image_files, load_image


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)


def test_rgb_path_pil_and_array_agree(tmp_path, rgb):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for src in (path, str(path), Image.open(path), rgb):
        out = load_image(src)
        assert out.dtype == np.uint8 and out.shape == (64, 80, 3)
        np.testing.assert_array_equal(out, rgb)


def test_grey_rgba_and_16bit(tmp_path, rgb):
    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), np.repeat(grey[..., None], 3, 2))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0  # fully transparent pixel → white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out[1:, 1:], rgb[1:, 1:])
    assert tuple(out[0, 0]) == (255, 255, 255)
    deep = grey.astype(np.uint16) * 257
    Image.fromarray(deep).save(tmp_path / "d16.png")
    np.testing.assert_array_equal(load_image(tmp_path / "d16.png"), np.repeat(grey[..., None], 3, 2))
    np.testing.assert_array_equal(load_image(rgb.astype(np.float32) / 255.0), rgb)


@pytest.mark.parametrize("make, error, words", [
    (lambda p: p.write_bytes(b""), EmptyFileError, "empty"),
    (lambda p: p.write_text("hello, I am not a photo"), NotAnImageError, "not a readable image"),
    (lambda p: Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p, "PNG"), ImageTooSmallError, "too small"),
])
def test_bad_files_name_file_and_problem(tmp_path, make, error, words):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(error) as info:
        load_image(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_truncated_jpeg_and_missing_file(tmp_path, rgb):
    path = tmp_path / "t.jpg"
    Image.fromarray(np.kron(rgb, np.ones((4, 4, 1), np.uint8))).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises((CorruptImageError, NotAnImageError)) as info:
        load_image(path)
    assert str(path) in str(info.value)
    with pytest.raises(NotAFileError):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(NotAFileError):
        load_image(tmp_path)


def test_nan_and_odd_arrays():
    bad = np.full((40, 40, 3), 0.5, np.float32)
    bad[3, 3, 1] = np.nan
    with pytest.raises(InvalidValuesError, match="NaN"):
        load_image(bad)
    with pytest.raises(NotAnImageError):
        load_image(np.zeros((40, 40, 5), np.uint8))


def test_folder_walk_is_recursive_sorted_unique(tmp_path, rgb):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files = iter_image_files([tmp_path, tmp_path / "a.jpg"])
    assert [f.name for f in files] == ["a.jpg", "b.png", "c.PNG"]
