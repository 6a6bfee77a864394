"""Pages read from pixels: page routing, image preprocessing, and the Tesseract and vision readers.

``classify_page`` says whether a PDF page's text layer can be trusted; ``ocr_pdf_pages`` and
``read_image_file`` read pages from pixels with the reader chosen in ``OcrSettings``.
"""

from ingest.ocr.pages import ocr_pdf_pages, read_image_file
from ingest.ocr.routing import PageRoute, classify_page

__all__ = ["PageRoute", "classify_page", "ocr_pdf_pages", "read_image_file"]
