"""DocumentStore: the one object callers hold for a workspace's documents, indexes and search.

It composes the parts, one job each, over one registry session factory and one encoder:

- ``ingest.ingestion.Ingestion``: ingest files (hash, extract, chunk, embed, commit a version);
- ``ingest.index_cache.IndexCache``: the FAISS and BM25 indexes, cached by the registry's generation,
  and the writer lock;
- ``ingest.documents.Documents``: list, resolve, tag and remove documents, and their facts;
- ``ingest.search.Search``: hybrid search over the documents a caller may read.

Its methods are theirs, delegated; the names callers import from here (``FileResult``,
``DocumentFilter``, ``ChunkHit``, ...) are re-exported from the module that defines them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
from sqlalchemy.orm import sessionmaker

from ingest.config import ChunkingSettings, EmbeddingSettings, IngestSettings, OcrSettings
from ingest.documents import DocumentFacts, DocumentFilter, Documents, DocumentTags, VersionFacts
from ingest.embedding import Encoder, encode_groups
from ingest.index_cache import LEXICAL_LAYOUT, IndexCache, lexical_recipe
from ingest.ingestion import (
    FileResult,
    IngestReport,
    Ingestion,
    Outcome,
    chunk_for_encoder,
    embedding_text,
    encode_texts,
    iter_input_files,
)
from ingest.lexical import LexicalIndex
from ingest.models import Chunk, ExtractedDocument
from ingest.query import QueryExpander
from ingest.registry import ChunkRow, Document, open_registry
from ingest.retrieval import RetrievalOptions, SearchMode
from ingest.search import ChunkHit, Search
from ingest.vector_index import VectorIndex

__all__ = [
    "LEXICAL_LAYOUT", "ChunkHit", "DocumentFacts", "DocumentFilter", "DocumentStore",
    "DocumentTags", "FileResult", "IngestReport", "Outcome", "VersionFacts", "chunk_for_encoder", "embedding_text",
    "encode_groups", "encode_texts", "iter_input_files", "lexical_recipe",
]


class DocumentStore:
    def __init__(
        self,
        registry_url: str,
        index_dir: Path,
        embedding: EmbeddingSettings | None = None,
        chunking: ChunkingSettings | None = None,
        ocr: OcrSettings | None = None,
        limits: IngestSettings | None = None,
        query_expanders: Sequence[QueryExpander] = (),
    ):
        self.sessions: sessionmaker = open_registry(registry_url)
        self.limits = limits or IngestSettings()
        self.index_dir = Path(index_dir)
        self.encoder = Encoder(embedding or EmbeddingSettings())
        self.chunking = chunking or ChunkingSettings()
        self.ocr = ocr or OcrSettings()
        self.indexes = IndexCache(self.sessions, self.index_dir, self.encoder)
        self.ingestion = Ingestion(self.sessions, self.indexes, self.encoder, self.chunking, self.ocr, self.limits)
        self.catalog = Documents(self.sessions, self.indexes)
        self.searcher = Search(self.sessions, self.indexes, self.encoder, query_expanders)

    # -- ingest (ingest.ingestion) -------------------------------------------------------------------
    def ingest(
        self,
        paths: Iterable[Path],
        collection: str = "default",
        on_file: Callable[[FileResult], None] | None = None,
        tags: DocumentTags | None = None,
    ) -> IngestReport:
        return self.ingestion.ingest(paths, collection, on_file, tags)

    def find_unchanged(self, path: Path, collection: str, tags: DocumentTags) -> tuple[str, FileResult | None]:
        return self.ingestion.find_unchanged(path, collection, tags)

    def stored_vectors(self, chunks: list[Chunk]) -> dict[tuple[str, str], bytes]:
        return self.ingestion.stored_vectors(chunks)

    def commit_version(
        self, path: Path, collection: str, extracted: ExtractedDocument, chunks: list[Chunk], vectors: np.ndarray,
        tags: DocumentTags,
    ) -> FileResult:
        return self.ingestion.commit_version(path, collection, extracted, chunks, vectors, tags)

    # -- the derived indexes (ingest.index_cache) ----------------------------------------------------
    def writer_lock(self) -> AbstractContextManager[None]:
        return self.indexes.writer_lock()

    def generation(self) -> int:
        return self.indexes.generation()

    def vectors(self) -> VectorIndex:
        return self.indexes.vectors()

    def lexical(self) -> LexicalIndex:
        return self.indexes.lexical()

    # -- documents (ingest.documents) ----------------------------------------------------------------
    def documents(
        self, collection: str | None = None, include_removed: bool = False, where: DocumentFilter | None = None
    ) -> list[Document]:
        return self.catalog.documents(collection, include_removed, where)

    def resolve(self, ref: str, collection: str | None = None) -> Document:
        return self.catalog.resolve(ref, collection)

    def matching_document_ids(self, where: DocumentFilter) -> list[int]:
        return self.catalog.matching_document_ids(where)

    def tag(self, ref: str, tags: DocumentTags, collection: str | None = None) -> Document:
        return self.catalog.tag(ref, tags, collection)

    def remove(self, ref: str, collection: str | None = None) -> Document:
        return self.catalog.remove(ref, collection)

    def document_facts(self, document_id: int) -> DocumentFacts:
        return self.catalog.document_facts(document_id)

    def find_current(self, path: Path, collection: str) -> int | None:
        return self.catalog.find_current(path, collection)

    def chunk(self, chunk_id: int) -> ChunkRow | None:
        return self.catalog.chunk(chunk_id)

    # -- search (ingest.search) ----------------------------------------------------------------------
    def live_chunk_ids(self, collection: str | None = None, document_ids: list[int] | None = None) -> list[int]:
        return self.searcher.live_chunk_ids(collection, document_ids)

    def live_collections(self, document_ids: list[int] | None = None) -> list[str]:
        return self.searcher.live_collections(document_ids)

    def count_live_chunks(self) -> int:
        return self.searcher.count_live_chunks()

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        collection: str | None = None,
        document_ids: list[int] | None = None,
        mode: SearchMode = "hybrid",
        candidates: int | None = None,
        rrf_k: int | None = None,
        options: RetrievalOptions | None = None,
        allowed_documents: Collection[int] | None = None,
    ) -> list[ChunkHit]:
        return self.searcher.search(
            query, k, collection=collection, document_ids=document_ids, mode=mode, candidates=candidates,
            rrf_k=rrf_k, options=options, allowed_documents=allowed_documents,
        )
