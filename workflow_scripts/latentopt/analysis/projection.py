"""Pixel scaling of the time-budget projection: a run on cropped images projected to the full
BSDS500 plan scales the measured cost per image by the pixels the autoencoder sees for a full
image over those it saw for the run's crops (cost taken as linear in pixels, which a
convolutional encoder and decoder are to first order); the basis text says so."""

from __future__ import annotations

import numpy as np

from latentopt.data.images import model_input, preprocess

# Every BSDS500 image is 481 x 321 (landscape) or 321 x 481 (portrait).
BSDS500_IMAGE_HW = (321, 481)


def model_input_hw(mode: str, multiple: int, size: int, crop_box: tuple[int, int] | None) -> tuple[int, int]:
    """Height and width of what the autoencoder sees for a BSDS500 image under this
    preprocessing (data.images.preprocess, then model_input's padding)."""
    reference = preprocess(np.zeros((*BSDS500_IMAGE_HW, 3), dtype=np.uint8), mode, multiple=multiple, size=size, crop_box=crop_box)
    return model_input(reference, mode, multiple)[0].shape[:2]


def pixel_scale(mode: str, multiple: int, size: int, crop_box: tuple[int, int] | None) -> tuple[float, str]:
    """(factor, text): a full BSDS500 image's pixels over a crop's, under the same preprocessing;
    (1.0, "") when the crop changes nothing (or there is none)."""
    full = model_input_hw(mode, multiple, size, None)
    run = model_input_hw(mode, multiple, size, crop_box) if crop_box else full
    if full == run:
        return 1.0, ""
    factor = (full[0] * full[1]) / (run[0] * run[1])
    return factor, (f" x {factor:.3g} for pixels (a full BSDS500 image is {full[1]}x{full[0]} = {full[0] * full[1]} px as the autoencoder sees it, "
                    f"this run's crops {run[1]}x{run[0]} = {run[0] * run[1]} px; cost taken as linear in pixels)")
