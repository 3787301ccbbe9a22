"""kiosk.live.imaging.load_rgb on bad and awkward inputs, and square_resize."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from kiosk.errors import ImageReadError
from kiosk.live.imaging import MAX_FULL_DECODE_PIXELS, load_rgb, square_resize

ORIENTATION = 0x0112


def save_jpeg(path: Path, rgb: np.ndarray, **kwargs) -> Path:
    Image.fromarray(rgb).save(path, "JPEG", quality=95, **kwargs)
    return path


def test_reads_rgb_jpeg(tmp_path: Path):
    rgb = np.zeros((30, 40, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    arr = load_rgb(save_jpeg(tmp_path / "red.jpg", rgb))
    assert arr.dtype == np.uint8
    assert arr.shape == (30, 40, 3)
    assert abs(int(arr[..., 0].mean()) - 200) < 5


def test_zero_byte_file(tmp_path: Path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"is empty \(0 bytes\)"):
        load_rgb(p)


def test_text_file(tmp_path: Path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="not an image Pillow can read"):
        load_rgb(p)


def test_truncated_jpeg(tmp_path: Path):
    rng = np.random.default_rng(0)
    full = save_jpeg(tmp_path / "full.jpg", rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
    p = tmp_path / "truncated.jpg"
    p.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        load_rgb(p)


def test_nonexistent_path(tmp_path: Path):
    with pytest.raises(ImageReadError, match="file not found"):
        load_rgb(tmp_path / "missing.jpg")


def test_directory(tmp_path: Path):
    with pytest.raises(ImageReadError, match="is a directory"):
        load_rgb(tmp_path)


def test_grayscale_jpeg_becomes_rgb(tmp_path: Path):
    p = tmp_path / "gray.jpg"
    Image.fromarray(np.full((20, 30), 90, dtype=np.uint8), "L").save(p, "JPEG")
    arr = load_rgb(p)
    assert arr.shape == (20, 30, 3)
    assert np.array_equal(arr[..., 0], arr[..., 1])
    assert np.array_equal(arr[..., 1], arr[..., 2])


def test_png_alpha_composited_on_white(tmp_path: Path):
    rgba = np.zeros((10, 20, 4), dtype=np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)  # opaque red on the left
    rgba[:, 10:] = (0, 0, 255, 0)  # fully transparent on the right
    p = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(p)
    arr = load_rgb(p)
    assert arr.shape == (10, 20, 3)
    assert tuple(arr[5, 2]) == (255, 0, 0)
    assert tuple(arr[5, 15]) == (255, 255, 255)


def test_exif_orientation_is_respected(tmp_path: Path):
    # Stored 40 wide × 20 high, red left half, blue right half. Orientation 6 means "rotate 90°
    # clockwise to display": the displayed image is 20 wide × 40 high with red on top.
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    p = save_jpeg(tmp_path / "rotated.jpg", stored, exif=exif.tobytes())
    with Image.open(p) as im:
        assert im.getexif()[ORIENTATION] == 6
    arr = load_rgb(p)
    assert arr.shape == (40, 20, 3)
    top, bottom = arr[:15].reshape(-1, 3).mean(0), arr[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 50  # red
    assert bottom[2] > 200 and bottom[0] < 50  # blue


def test_huge_jpeg_is_decoded_reduced_with_sane_memory(tmp_path: Path):
    p = tmp_path / "huge.jpg"
    im = Image.new("RGB", (10_000, 10_000), (180, 120, 90))
    ImageDraw.Draw(im).rectangle((0, 0, 4999, 9999), fill=(40, 60, 200))
    im.save(p, "JPEG", quality=10)
    del im
    # Decode in a fresh process so its peak memory is this decode's, not this test run's.
    script = textwrap.dedent(
        f"""
        import resource
        from kiosk.live.imaging import load_rgb
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        arr = load_rgb({str(p)!r})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(arr.shape[0], arr.shape[1], arr.shape[2], (after - before) // 1024)
        print(*arr[arr.shape[0] // 2, 10], *arr[arr.shape[0] // 2, -10])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    line1, line2 = result.stdout.split("\n")[:2]
    h, w, c, grew_mb = map(int, line1.split())
    assert c == 3
    assert h == w
    assert 1000 <= h <= 2500  # libjpeg draft scaling, not 10000
    # A full decode would need 300 MB for the RGB pixels alone.
    assert grew_mb < 100, f"peak memory grew by {grew_mb} MB"
    left, right = np.array(line2.split()[:3], int), np.array(line2.split()[3:], int)
    assert left[2] > 150 and right[0] > 150  # the picture survived: blue left, orange right
    assert square_resize(np.zeros((h, w, 3), np.uint8), 224).shape == (224, 224, 3)


def test_huge_png_rejected_with_clear_message(tmp_path: Path):
    p = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000), 128).save(p, "PNG", compress_level=1)
    assert MAX_FULL_DECODE_PIXELS < 10_000 * 10_000
    with pytest.raises(ImageReadError, match=r"PNG image is 10000×10000; at most 50 megapixels"):
        load_rgb(p)


class TestSquareResize:
    def test_centre_crop_then_resize(self):
        rgb = np.zeros((100, 300, 3), dtype=np.uint8)
        rgb[:, 100:200] = 255  # the centre square is all white
        out = square_resize(rgb, 50)
        assert out.shape == (50, 50, 3)
        assert out.min() == 255

    def test_upscales_small_images(self):
        out = square_resize(np.full((10, 12, 3), 7, np.uint8), 224)
        assert out.shape == (224, 224, 3)
        assert out.dtype == np.uint8


@pytest.mark.parametrize("side", [1000, 3000])  # 3000: reduced after decoding (over 2048 px)
def test_a_16_bit_picture_keeps_its_range_at_any_size(tmp_path: Path, side: int) -> None:
    ramp = np.tile(np.linspace(0, 65535, side, dtype=np.uint16), (side, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # a uint16 array is a 16-bit grayscale PNG
    rgb = load_rgb(path)
    assert max(rgb.shape[:2]) <= 2048
    row = rgb[rgb.shape[0] // 2, :, 0].astype(int)
    assert row[0] < 10 and row[-1] > 245 and 100 < row[len(row) // 2] < 155, "a ramp, not white"
