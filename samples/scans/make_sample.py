"""Rebuild this folder's scanned sample from the CUAD contract PDF (run once; output is committed).

    python samples/scans/make_sample.py ../shared/eval/cuad/pdfs/DRIVENDELIVERIES_INC_05_22_2020-EX-10.4-CONSULTING_AGREEMENT.pdf

Pages 1-2 become an image-only PDF (150 dpi grayscale), page 1 a PNG, and the born-digital text of
each page its gold text for tests.
"""

import sys
from pathlib import Path

import pymupdf

HERE = Path(__file__).resolve().parent
DPI = 150


def main(source: Path) -> None:
    with pymupdf.open(source) as original, pymupdf.open() as scan:
        for index in range(2):
            page = original[index]
            pixmap = page.get_pixmap(dpi=DPI, colorspace=pymupdf.csGRAY, alpha=False)
            if index == 0:
                pixmap.set_dpi(DPI, DPI)
                pixmap.save(HERE / "consulting_agreement_p1.png")
            (HERE / f"consulting_agreement_p{index + 1}.txt").write_text(page.get_text("text"))
            new_page = scan.new_page(width=page.rect.width, height=page.rect.height)
            new_page.insert_image(new_page.rect, stream=pixmap.tobytes("png"))
        scan.save(HERE / "consulting_agreement_scan.pdf", garbage=4, deflate=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
