"""Image loading: every input type and the typed errors that name the file."""
import numpy as np
import pytest
from PIL import Image

from plqa_nb.errors import (CorruptImageError, EmptyFileError, ImageTooLargeError, ImageTooSmallError,
                            InvalidValuesError, NotAFileError, NotAnImageError)
from plqa_nb.images import encode_png, iter_image_files, load_image


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


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_declared_size_above_the_limit_is_refused_before_decoding(tmp_path, declaring, fmt):
    pil_guard = Image.MAX_IMAGE_PIXELS
    path = tmp_path / f"big.{fmt.lower()}"
    for w, h in ((50000, 50000), (12000, 5000)):  # beyond PIL's own guard, and between it and ours
        path.write_bytes(declaring(fmt, w, h))
        problem = f"image of {w}×{h} pixels exceeds the limit of 40 megapixels (--max-pixels)"
        with pytest.raises(ImageTooLargeError) as info:
            load_image(path)
        assert str(info.value) == f"{path}: {problem}" and info.value.kind == "too_large"
        with pytest.raises(ImageTooLargeError) as info:  # an upload
            load_image(path.read_bytes())
        assert str(info.value) == f"<upload of {path.stat().st_size} bytes>: {problem}"
    with pytest.raises(ImageTooLargeError, match=f"{path}: image of 12000×5000 pixels"):
        load_image(Image.open(path))  # a PIL image is judged before it is loaded
    assert Image.MAX_IMAGE_PIXELS == pil_guard  # PIL's own guard is left as it was


def test_pixel_limit_is_configurable_for_files_and_arrays(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    with pytest.raises(ImageTooLargeError, match="image of 80×64 pixels exceeds the limit of 0.005 megapixels"):
        load_image(tmp_path / "a.png", max_pixels=5000)
    with pytest.raises(ImageTooLargeError, match="<array 64x80x3 uint8>: image of 80×64 pixels"):
        load_image(rgb, max_pixels=5000)
    assert load_image(rgb, max_pixels=80 * 64).shape == (64, 80, 3)


def test_folder_walk_is_recursive_sorted_unique(tmp_path, rgb):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files = iter_image_files([tmp_path, tmp_path / "a.jpg"])
    assert [f.name for f in files] == ["a.jpg", "b.png", "c.PNG"]


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 3), (7, 1, 3), (33, 17, 3), (300, 600, 3)])
def test_png_encoder_keeps_every_pixel(tmp_path, shape):
    """``encode_png``'s file is a valid PNG (PIL verifies its chunks and checksums) of exactly the pixels given:
    random pixels, where the difference to the left neighbour wraps modulo 256 somewhere, contiguous or not."""
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    for rgb in (pixels, pixels[:, ::-1]):  # a view that is not contiguous
        path = tmp_path / "a.png"
        path.write_bytes(encode_png(rgb))
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.mode == "RGB" and img.size == (shape[1], shape[0])
            np.testing.assert_array_equal(np.asarray(img), rgb)


def test_png_encoder_on_a_face_and_its_map(london_faces, tmp_path):
    """A real face beside a PLQ map with an outline, as ``plqa explain`` writes it, read back exactly."""
    from plqa_nb.figures import side_by_side_png

    crop = london_faces[0][1]
    plq = np.linspace(0.0, 1.0, crop.shape[0] * crop.shape[1], dtype=np.float32).reshape(crop.shape[:2])
    picture = side_by_side_png(crop, plq, 0.5, outline=plq > 0.8)
    (tmp_path / "face.png").write_bytes(encode_png(picture))
    np.testing.assert_array_equal(load_image(tmp_path / "face.png"), picture)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_png_encoder_refuses_what_is_not_rgb_bytes(bad):
    with pytest.raises(ValueError, match=r"uint8 RGB \[H, W, 3\]"):
        encode_png(bad)
