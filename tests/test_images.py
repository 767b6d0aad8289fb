"""Image discovery in the accepted layouts, robust reading, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from latentopt.data.images import ImageReadError, model_input, preprocess, read_rgb
from latentopt.workflow.sources import discover_splits


def _img(path, size=(21, 13), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


@pytest.mark.parametrize("entry", ["", "BSR", "BSR/BSDS500", "BSR/BSDS500/data/images"])
def test_official_layout_from_any_level(tmp_path, entry):
    images = tmp_path / "BSR" / "BSDS500" / "data" / "images"
    for split in ("train", "val", "test"):
        _img(images / split / f"{split}1.jpg")
        _img(images / split / f"{split}2.jpg")
        (images / split / "Thumbs.db").write_bytes(b"junk")
    found = discover_splits(tmp_path / entry, ["train", "val", "test"])
    assert {s: [e.image_id for e in v] for s, v in found.items()} == {
        s: [f"{s}1", f"{s}2"] for s in ("train", "val", "test")
    }


def test_plain_split_folders_and_limit(tmp_path):
    for i in range(5):
        _img(tmp_path / "train" / f"{i:03d}.png")
        _img(tmp_path / "test" / f"{i:03d}.png")
    found = discover_splits(tmp_path, ["train", "test"], limit_per_split=2)
    assert [e.image_id for e in found["train"]] == ["000", "001"]


def test_flat_folder_is_one_split(tmp_path):
    _img(tmp_path / "a.jpg")
    _img(tmp_path / "b.png")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    found = discover_splits(tmp_path, ["train", "val", "test"], single_split_name="all")
    assert list(found) == ["all"] and [e.image_id for e in found["all"]] == ["a", "b"]


def test_missing_root_and_partial_splits_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        discover_splits(tmp_path / "nope", ["train"])
    _img(tmp_path / "train" / "x.jpg")
    with pytest.raises(FileNotFoundError, match=r"not \['test'\]"):
        discover_splits(tmp_path, ["train", "test"])


def test_read_converts_grayscale_cmyk_palette_alpha_16bit(tmp_path):
    for mode in ("L", "CMYK", "P", "RGBA"):
        ext = "jpg" if mode == "CMYK" else "png"
        arr = read_rgb(_img(tmp_path / f"{mode}.{ext}", mode=mode))
        assert arr.shape == (13, 21, 3) and arr.dtype == np.uint8
    gray = np.asarray(Image.open(tmp_path / "L.png"))
    np.testing.assert_array_equal(read_rgb(tmp_path / "L.png")[..., 1], gray)
    sixteen = (np.arange(13 * 21).reshape(13, 21) * 200).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "16.png")
    arr = read_rgb(tmp_path / "16.png")
    expected = np.round(sixteen.astype(np.float64) / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(arr[..., 0], expected)


def test_truncated_and_garbage_files_raise_image_read_error(tmp_path):
    good = _img(tmp_path / "good.jpg", size=(64, 64))
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all")
    for name in ("trunc.jpg", "garbage.jpg"):
        with pytest.raises(ImageReadError, match=name):
            read_rgb(tmp_path / name)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_an_unreadable_image_reason_is_a_plain_sentence_naming_the_file(tmp_path, content):
    """The preparation job decodes bytes already read; Pillow's message then named the buffer
    ('cannot identify image file <_io.BytesIO object at 0x7f...>'), which reached the record."""
    from latentopt.data.prepare import prepare_image
    from latentopt.workflow.sources import ImageEntry

    path = tmp_path / "photo.jpg"
    if content == "truncated":
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:400])
    else:
        path.write_bytes(content)
    entry = ImageEntry(split="test", image_id="photo", path=path)
    record = prepare_image(entry, {"mode": "center_crop", "multiple": 8, "size": 32, "crop_box": None}, str(tmp_path / "results"))
    assert record["status"] == "failed" and record["failure_kind"] == "input"
    assert str(path) in record["reason"] and " object at 0x" not in record["reason"] and "BytesIO" not in record["reason"], record["reason"]


def test_center_crop_keeps_orientation():
    land = np.zeros((321, 481, 3), np.uint8)
    port = np.zeros((481, 321, 3), np.uint8)
    assert preprocess(land).shape == (320, 480, 3)
    assert preprocess(port).shape == (480, 320, 3)


def test_center_crop_is_centred():
    arr = np.arange(11 * 19 * 3, dtype=np.uint32).reshape(11, 19, 3).astype(np.uint8)
    out = preprocess(arr, multiple=8)
    np.testing.assert_array_equal(out, arr[1:9, 1:17])


def test_reflect_pad_region_recovers_original():
    arr = np.random.default_rng(1).integers(0, 256, (321, 481, 3), dtype=np.uint8)
    ref = preprocess(arr, "reflect_pad")
    padded, region = model_input(ref, "reflect_pad", 8)
    assert padded.shape == (328, 488, 3)
    rows, cols = region.slices()
    np.testing.assert_array_equal(padded[rows, cols], arr)


def test_resize_crop_is_square():
    arr = np.zeros((321, 481, 3), np.uint8)
    assert preprocess(arr, "resize_crop", size=512).shape == (512, 512, 3)


def test_crop_box_before_mode():
    arr = np.zeros((321, 481, 3), np.uint8)
    assert preprocess(arr, crop_box=(100, 150)).shape == (96, 144, 3)


@pytest.mark.parametrize("name,pil_filter", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR),
                                              ("lanczos", Image.LANCZOS), ("box", Image.BOX)])
def test_resize_crop_filter_is_pils_short_side_resize_then_centre_crop(name, pil_filter):
    # a COCO-sized landscape image: short side 427 -> 256, long side 640 -> round(640 * 256 / 427) = 384,
    # then the centre 256 columns (64 cut on each side)
    arr = np.random.default_rng(3).integers(0, 256, (427, 640, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(arr).resize((384, 256), pil_filter))[:, 64:320]
    np.testing.assert_array_equal(preprocess(arr, "resize_crop", size=256, resize_filter=name), expected)
    # portrait: the rows are cropped instead
    tall = np.ascontiguousarray(arr.transpose(1, 0, 2))
    expected_tall = np.asarray(Image.fromarray(tall).resize((256, 384), pil_filter))[64:320]
    np.testing.assert_array_equal(preprocess(tall, "resize_crop", size=256, resize_filter=name), expected_tall)


def test_resize_filter_default_is_bicubic_and_filters_differ():
    arr = np.random.default_rng(4).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    out = {f: preprocess(arr, "resize_crop", size=64, resize_filter=f) for f in ("bicubic", "bilinear", "lanczos", "box")}
    np.testing.assert_array_equal(preprocess(arr, "resize_crop", size=64), out["bicubic"])
    assert len({o.tobytes() for o in out.values()}) == 4
    with pytest.raises(ValueError, match="resize_filter"):
        preprocess(arr, "resize_crop", size=64, resize_filter="cubic")
