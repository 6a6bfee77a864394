"""Image clean-up before reading: grayscale, skew measurement, and upscaling low-DPI scans.

Choices measured on ../shared/eval/ocr (see docs/ocr.md): Tesseract reads low-DPI scans (faxes,
~100 dpi forms) much better upscaled, and best when told the true DPI. Global (Otsu) binarisation
before Tesseract was measured and made things worse, so pages go in as grayscale and Tesseract's own
thresholding does that step.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Scans below LOW_DPI (faxes, ~100 dpi forms) are upscaled to TARGET_DPI: on FUNSD's ~90 dpi forms,
# upscaling 2x read much better, 3x-4x no better, and a 200 dpi scan upscaled read worse.
LOW_DPI = 150
TARGET_DPI = 200
MAX_UPSCALE = 4.0
MAX_SKEW_DEGREES = 5.0
# Tesseract copes with skew below ~1 degree itself, and rotating resamples every letter (deskewing a
# half-degree page read worse than leaving it), so only larger skew is corrected.
MIN_SKEW_DEGREES = 1.0
_SKEW_STEP_DEGREES = 0.25
_SKEW_ANALYSIS_WIDTH_PX = 1000


def to_grayscale(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        # Transparent regions of PNGs are paper, not ink: flatten onto white.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L")


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Dark pixels, split from paper by Otsu's threshold (used to find skew, not for reading)."""
    histogram = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    probability = histogram / max(histogram.sum(), 1.0)
    weight = np.cumsum(probability)
    mean = np.cumsum(probability * np.arange(256))
    between = (mean[-1] * weight - mean) ** 2 / (weight * (1.0 - weight) + 1e-12)
    return gray <= int(np.argmax(between))


def upscale_factor(dpi: float) -> float:
    """How much to enlarge a page scanned at ``dpi`` before Tesseract reads it (1.0 = keep as is)."""
    if dpi >= LOW_DPI:
        return 1.0
    return min(MAX_UPSCALE, TARGET_DPI / dpi)


def upscale(image: Image.Image, factor: float) -> Image.Image:
    if factor == 1.0:
        return image
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS)


def skew_angle(gray: Image.Image) -> float:
    """Counter-clockwise degrees that make text lines horizontal, by the sharpest row profile."""
    scale = min(1.0, _SKEW_ANALYSIS_WIDTH_PX / gray.width)
    small = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))))
    ink = Image.fromarray((ink_mask(np.asarray(small)) * 255).astype(np.uint8))
    best_angle, best_score = 0.0, -1.0
    for angle in np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 1e-9, _SKEW_STEP_DEGREES):
        rows = np.asarray(ink.rotate(float(angle), resample=Image.Resampling.NEAREST)).sum(axis=1)
        # Aligned text gives alternating dense and empty rows: the highest variance of row sums.
        score = float(np.var(rows))
        if score > best_score:
            best_angle, best_score = float(angle), score
    return best_angle


