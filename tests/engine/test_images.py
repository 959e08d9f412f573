"""Image ZIPs read in memory with their safety refusals, and base64 images at predict time."""

from __future__ import annotations

import base64
import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from engine.data.arrays.dataset import ArrayData
from engine.data.arrays.preprocessor import ArrayPreprocessor, fit_array_preprocessor
from engine.data.images import read_image_zip
from engine.errors import DataError, InvalidInstances
from engine.spec.data import DataConfig


def _png(size: tuple[int, int], mode: str = "L", value: int = 128) -> bytes:
    """A PNG of `size` (width, height) filled with a horizontal gradient offset by `value`."""
    width, height = size
    gradient = (np.arange(width)[None, :] * 7 + value) % 256
    pixels = np.broadcast_to(gradient, (height, width)).astype(np.uint8)
    image = Image.fromarray(pixels, "L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def _two_classes(prefix: str = "") -> dict[str, bytes]:
    return {
        f"{prefix}cats/1.png": _png((10, 8)),
        f"{prefix}cats/2.png": _png((10, 8), value=10),
        f"{prefix}dogs/1.png": _png((10, 8), value=200),
        f"{prefix}dogs/2.png": _png((12, 12), value=50),
    }


def test_class_folders_become_labels_at_the_most_common_size():
    data = read_image_zip(_zip(_two_classes()))

    assert data.kind == "image"
    assert data.x.shape == (4, 1, 8, 10)
    assert data.x.dtype == np.uint8
    assert data.classes == ["cats", "dogs"]
    assert data.y.tolist() == [0, 0, 1, 1]


def test_one_top_folder_is_allowed_and_colour_makes_every_image_rgb():
    members = _two_classes("pets/")
    members["pets/dogs/3.png"] = _png((10, 8), mode="RGB")

    data = read_image_zip(_zip(members), size=(6, 5))

    assert data.x.shape == (5, 3, 6, 5)
    assert data.classes == ["cats", "dogs"]


def test_mac_metadata_and_dotfiles_are_ignored():
    members = _two_classes()
    members["__MACOSX/cats/._1.png"] = b"not an image"
    members["cats/.DS_Store"] = b"junk"
    members[".hidden/1.png"] = b"junk"

    assert read_image_zip(_zip(members)).x.shape[0] == 4


def test_a_parent_path_member_is_refused():
    members = _two_classes()
    members["../evil/1.png"] = _png((10, 8))

    with pytest.raises(DataError, match="unsafe path"):
        read_image_zip(_zip(members))


def test_an_absolute_path_member_is_refused():
    members = _two_classes()
    members["/etc/cats/1.png"] = _png((10, 8))

    with pytest.raises(DataError, match="unsafe path"):
        read_image_zip(_zip(members))


def test_an_oversize_member_is_refused_before_it_is_read():
    members = _two_classes()
    members["dogs/big.png"] = b"\0" * 5000  # compresses to almost nothing: a small bomb

    with pytest.raises(DataError, match="dogs/big.png.*5,000 bytes"):
        read_image_zip(_zip(members), max_member_bytes=4096)


def test_the_total_uncompressed_size_is_limited():
    with pytest.raises(DataError, match="ZIP bombs"):
        read_image_zip(_zip(_two_classes()), max_total_bytes=100)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"cats/1.png": _png((4, 4)), "cats/2.png": _png((4, 4))}, "one class folder"),
        ({"readme.txt": b"hello"}, "no PNG or JPEG"),
        ({"1.png": _png((4, 4)), "dogs/2.png": _png((4, 4))}, "one folder per class"),
        ({"cats/1.png": b"garbage", "dogs/1.png": _png((4, 4))}, "cats/1.png"),
    ],
)
def test_unusable_zips_are_refused(members, message):
    with pytest.raises(DataError, match=message):
        read_image_zip(_zip(members))


def test_too_many_images_are_refused():
    with pytest.raises(DataError, match="limit is 3"):
        read_image_zip(_zip(_two_classes()), max_images=3)


def _image_model(channels: int = 1) -> ArrayPreprocessor:
    x = np.random.default_rng(0).integers(0, 255, (6, channels, 8, 10), dtype=np.uint8)
    return fit_array_preprocessor(ArrayData(x, np.arange(6) % 2, ["a", "b"], "image"), np.arange(6))


def test_base64_png_instances_are_resized_to_the_training_size():
    model = _image_model()
    png = _png((20, 16))
    b64 = base64.b64encode(png).decode()

    batch = model.instances_to_array([b64, {"b64": b64}, f"data:image/png;base64,{b64}"])

    assert batch.shape == (3, 1, 8, 10)
    expected = np.asarray(Image.open(io.BytesIO(png)).resize((10, 8), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(batch[0, 0], expected)
    np.testing.assert_array_equal(batch[1], batch[0])
    np.testing.assert_array_equal(batch[2], batch[0])


def test_a_grey_png_is_converted_for_a_colour_model():
    model = _image_model(channels=3)

    batch = model.instances_to_array([base64.b64encode(_png((10, 8))).decode()])

    assert batch.shape == (1, 3, 8, 10)
    np.testing.assert_array_equal(batch[0, 0], batch[0, 2])


def test_undecodable_images_are_named_by_index():
    model = _image_model()
    good = base64.b64encode(_png((10, 8))).decode()

    with pytest.raises(InvalidInstances) as caught:
        model.instances_to_array([good, "not base64 !", base64.b64encode(b"text").decode()])

    assert caught.value.problems == [
        {"field": "instances[1]", "reason": "not valid base64"},
        {"field": "instances[2]", "reason": "not a decodable PNG or JPEG image"},
    ]


def test_data_config_image_size_is_two_sides_within_range():
    assert DataConfig.model_validate({}).image_size is None
    assert DataConfig.model_validate({"image_size": [28, 32]}).image_size == (28, 32)
    for bad in ([3, 28], [28, 513], [28]):
        with pytest.raises(ValidationError, match="image_size"):
            DataConfig.model_validate({"image_size": bad})
