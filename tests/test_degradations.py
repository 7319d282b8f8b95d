"""The one degradation registry: every protocol's entry resolves to a registered kind and degrades an image; an
unknown kind or entry is refused with an error that names what is known."""
import numpy as np
import pytest

from plqa_nb import degradations as dg

PROTOCOLS = {"dev": dg.DEV_PROTOCOL, "held-out": dg.HELD_OUT_PROTOCOL, "photo": dg.PHOTO_PROTOCOL}


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_entry_resolves_in_the_registry_and_degrades(name):
    protocol = PROTOCOLS[name]
    shape = (90, 120, 3) if protocol.scale is dg.photo_scale else (112, 112, 3)
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    levels = protocol.levels()
    assert [(n, lv) for n, lv, _ in levels] == [(n, lv) for n, e in protocol.entries.items()
                                                for lv in range(1, len(e.values) + 1)]
    for entry, level, value in levels:
        assert protocol.entry(entry).kind in dg.KINDS
        out = protocol.apply(image, entry, value, np.random.default_rng(0))
        assert out.dtype == np.uint8 and out.shape == shape and not np.array_equal(out, image), (entry, level)


def test_an_unknown_kind_or_entry_is_refused():
    with pytest.raises(KeyError, match=r"unknown degradation kind 'fog'; known kinds: blur \(Gaussian σ"):
        dg.Protocol(dg.crop_scale, {"fog": dg.Degradation("fog", (0.5,))})
    crop = np.zeros((112, 112, 3), np.uint8)
    with pytest.raises(KeyError, match="unknown degradation 'motion'; available: blur, jpeg, pixelate"):
        dg.DEV_PROTOCOL.apply(crop, "motion", 6, np.random.default_rng(0))


def test_crop_lengths_in_pixels_are_to_crop_px():
    for side in (112, 150, 160):
        scale = dg.crop_scale(np.zeros((side, side, 3), np.uint8))
        for length in (*range(1, 131), 1.5, 2.5, 3.5):
            assert dg.pixels(scale, length) == dg.to_crop_px(length, side)
