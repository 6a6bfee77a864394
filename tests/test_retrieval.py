"""Retrieval: tokenisation, structure context, chunk limits with context, query analysis, fusion, indexes,
and page recall on real CUAD questions over the sample contracts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import DRIVEN, DUOS, NETGEAR, SAMPLES, shared_eval_or_skip
from ingest import vector_index
from ingest.chunking import chunk_document
from ingest.config import ChunkingSettings, EmbeddingSettings, OcrSettings
from ingest.embedding import Encoder
from ingest.extract import read_document
from ingest.lexical import LexicalIndex, tokenize
from ingest.query import (
    BALANCE_SHEET,
    CASH_FLOWS,
    CONTENT,
    INCOME,
    INSTRUCTION,
    NAME_WEIGHT,
    REFERENCE_WEIGHT,
    WEIGHTS,
    plan_query,
)
from ingest.registry import ChunkRow, PageRow
from ingest.retrieval import (
    ChunkFacts,
    RetrievalOptions,
    convex_fusion,
    document_signals,
    mmr,
    pool_pages,
    reciprocal_rank_fusion,
    spread_pages,
)
from ingest.store import DocumentStore
from ingest.structure import MAJOR, MINOR, heading_level, statement_kind


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EmbeddingSettings())


def _store(home: Path) -> DocumentStore:
    return DocumentStore(f"sqlite:///{home / 'registry.db'}", home / "index")


# -- tokenisation ----------------------------------------------------------------------------------
def test_tokens_keep_numbers_periods_section_numbers_and_mixed_terms():
    tokens = tokenize("FY2018 capex was (1,577) million; see Section 12.3 of the 10-K and PP&E.")
    for expected in ("fy2018", "2018", "1577", "12.3", "10-k", "pp&e"):
        assert expected in tokens, expected
    assert "the" not in tokens and "of" not in tokens


def test_english_words_are_stemmed_so_split_headings_still_match():
    # PyMuPDF reads "Cash Flows" of some filings as "Cash Flow s"; questions say "cash flows".
    assert set(tokenize("Statements of Cash Flows")) <= set(tokenize("Consolidated Statement of Cash Flow s"))
    assert tokenize("terminated")[0] == tokenize("termination")[0]


def test_japanese_text_becomes_character_bigrams():
    tokens = tokenize("本契約は日本法に準拠する。第12条")
    assert "契約" in tokens and "日本" in tokens and "準拠" in tokens
    assert "12" in tokens
    index = LexicalIndex.build([1, 2], ["本契約は日本法に準拠する。", "売主は商品を引き渡す。"])
    assert index.search("準拠法は日本法", 2)[0][0] == 1


# -- structure -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("5.       SHIPMENT, CANCELLATION, RETURNS, TITLE", MAJOR),
        ("ARTICLE 12 GOVERNING LAW", MAJOR),
        ("Consolidated Statement of Cash Flows", MAJOR),
        ("12.3 Governing Law", MINOR),
        ("Cash Flows from Investing Activities", MINOR),
        ("This Agreement shall be governed by the laws of the State of California, without regard to", None),
        ("2018 2017 2016", None),
    ],
)
def test_heading_levels(line: str, level: int | None):
    assert heading_level(" ".join(line.split())) == level


def test_contract_chunks_carry_their_clause_heading(encoder: Encoder):
    document = read_document(SAMPLES / NETGEAR, OcrSettings(mode="never"))
    chunks = chunk_document(document, encoder.token_offsets, ChunkingSettings(), encoder.max_tokens - 2)
    shipment = next(c for c in chunks if "NETGEAR will ship" in " ".join(c.text.split()))
    assert "SHIPMENT, CANCELLATION" in shipment.context
    assert all("SHIPMENT" not in c.context for c in chunks if c.page == 1)  # not before the heading


def test_a_filing_statement_page_puts_title_and_column_header_in_context(encoder: Encoder):
    pdf = shared_eval_or_skip() / "financebench" / "pdfs" / "3M_2018_10K.pdf"
    document = read_document(pdf, OcrSettings(mode="never"))
    document.pages = [p for p in document.pages if p.number == 60]  # the cash-flow statement
    chunks = chunk_document(document, encoder.token_offsets, ChunkingSettings(), encoder.max_tokens - 2)
    capex = next(c for c in chunks if "Purchases of property, plant and equipment" in c.text)
    assert "Consolidated Statement of Cash Flow" in capex.context
    # The column header as a Markdown header row (ingest.tables): the rows below read as a small table.
    assert "| 2018 | 2017 | 2016 |" in capex.context
    assert "Cash Flows from Investing Activities" in capex.context or "Investing" in capex.text


def test_context_and_text_together_fit_the_encoder(ingested_samples: Path):
    store = _store(ingested_samples)
    limit = store.encoder.max_tokens - 2
    with store.sessions() as session:
        chunks = session.execute(select(ChunkRow)).scalars().all()
        pages = {(p.version_id, p.number): p.text for p in session.execute(select(PageRow)).scalars()}
    assert sum(bool(c.context) for c in chunks) == len(chunks)
    for chunk in chunks:
        # Exactly what the store embeds; longer input would be cut silently by the encoder.
        assert store.encoder.count_tokens(f"{chunk.context}\n{chunk.text}") <= limit
        assert pages[(chunk.version_id, chunk.page)][chunk.char_start : chunk.char_end] == chunk.text


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("Consolidated Statement of Cash Flow s", CASH_FLOWS),  # as PyMuPDF reads 3M's 2018 10-K
        ("Statements of Consolidated Cash Flows", CASH_FLOWS),
        ("Condensed Consolidated Balance Sheets (Unaudited)", BALANCE_SHEET),
        ("CONSOLIDATED STATEMENTS OF OPERATIONS (in millions, except per share data)", INCOME),
        ("Consolidated Statements of Operations and Comprehensive Income", INCOME),
        ("Consolidated Statement of Comprehensive Income", None),
        ("Consolidated Statement of Changes in Equity", None),
        ("Notes to Consolidated Financial Statements", None),
        ("Balance Sheet:", None),  # an MD&A sub-heading, not the statement
        ("Amounts recognized in the Consolidated Balance Sheet as of", None),  # a note's table
        ("NOTE 7. Supplemental Balance Sheet Information", None),
    ],
)
def test_statement_titles_are_recognised_and_nothing_else(heading: str, kind: str | None):
    assert statement_kind(heading) == kind


# -- query analysis --------------------------------------------------------------------------------
def test_instructions_do_not_drown_the_question():
    plan = plan_query(
        "What is the FY2018 capital expenditure amount (in USD millions) for 3M? Give a response to the "
        "question by relying on the details shown in the cash flow statement."
    )
    assert [kind for kind, _ in plan.clauses] == [CONTENT, INSTRUCTION]
    assert "Give a response" not in plan.text and "Consolidated Statements of Cash Flows" in plan.text
    assert plan.terms["fy2018"] == 1.0 and plan.terms["3m"] == 1.0
    assert plan.terms["respons"] < 0.5  # instruction words count little
    assert plan.terms["purchas"] > 0  # capex in the words of a cash-flow statement
    assert plan.terms["flow"] == 1.0  # the statement named, even inside an instruction


def test_the_statements_a_question_is_about_and_opening_questions():
    named = plan_query("What is the FY2018 capex for 3M? Give a response by relying on the cash flow statement.")
    assert named.statements == {CASH_FLOWS: 1.0} and not named.opening
    implied = plan_query("Does AMCOR have an improving gross margin profile as of FY2023?")
    assert implied.statements == {INCOME: 0.5}
    both = plan_query("What is the FY2019 fixed asset turnover ratio? Use the balance sheet.")
    assert both.statements == {BALANCE_SHEET: 1.0, INCOME: 0.5}
    assert plan_query("In the DISTRIBUTOR AGREEMENT (NETGEAR): What is the date of this contract?").opening
    assert plan_query("Who are the parties that signed this contract?").opening
    clause = plan_query("Is consent or notice required of a party if the contract is assigned to a third party?")
    assert not clause.opening and not clause.statements


def test_within_its_own_filing_the_company_a_question_names_weighs_as_an_instruction():
    [acme] = tokenize("Acme")
    question = "Did Acme Corp's growth come from the Orion acquisition in FY2018 (in USD millions)?"
    within, across = plan_query(question, one_document=True), plan_query(question)
    assert NAME_WEIGHT == WEIGHTS[INSTRUCTION]
    assert within.terms[acme] == within.terms["corp"] == NAME_WEIGHT
    assert across.terms[acme] == across.terms["corp"] == 1.0  # across filings the name finds the filing
    assert within.terms["orion"] == 1.0  # a later name is what the question asks about
    assert within.terms["fy2018"] == within.terms["usd"] == 1.0  # periods and currencies are not names
    assert within.text == across.text  # the encoder reads the question either way
    sheet = plan_query("What is Acme's net PP&E in the Consolidated Balance Sheet?", one_document=True)
    assert sheet.terms[acme] == NAME_WEIGHT and sheet.terms["consolid"] == sheet.terms["sheet"] == 1.0
    assert plan_query("Has Acme Health reported any legal proceedings?", one_document=True).terms["health"] == NAME_WEIGHT
    assert plan_query("What was the FY2018 EBITDA of 3M?", one_document=True).terms["3m"] == NAME_WEIGHT
    assert plan_query("What was the FY2018 EBITDA of 3M?", one_document=True).terms["ebitda"] == 1.0
    # A contract question's reference is weighed as a reference; its content names nothing.
    contract = plan_query("In the SUPPLY AGREEMENT (Acme): Who are the parties that signed this contract?", one_document=True)
    assert contract.terms["parti"] == 1.0 and contract.terms["agreement"] == REFERENCE_WEIGHT[True]


def test_a_question_that_is_all_instruction_keeps_its_words():
    plan = plan_query("Explain the termination rights.")
    assert plan.text == "Explain the termination rights." and plan.terms["termin"] == 1.0


# -- fusion, diversity, options --------------------------------------------------------------------
def test_reciprocal_rank_fusion_weights_and_convex_fusion():
    dense, lexical = [(1, 0.9), (2, 0.8), (3, 0.1)], [(2, 12.0), (4, 6.0)]
    assert [c for c, _ in reciprocal_rank_fusion([dense, lexical])][:2] == [2, 1]  # 2 is high in both lists
    assert reciprocal_rank_fusion([dense, lexical], weights=[1.0, 0.0])[0][0] == 1
    assert [c for c, _ in convex_fusion(dense, lexical, 1.0, 1.0)] == [2, 1, 4, 3]  # 0.8 + 1.0, 0.9, 0.5, 0.1


def test_mmr_prefers_a_different_chunk_over_a_near_duplicate():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    ranking = [(1, 1.0), (2, 0.99), (3, 0.9)]
    vectors = {1: a, 2: a, 3: b}
    assert [c for c, _ in mmr(ranking, vectors, 2, 0.5)] == [1, 3]
    assert [c for c, _ in mmr(ranking, vectors, 2, 1.0)] == [1, 2]


def test_options_come_from_a_settings_section_by_field_name():
    from pipeline.settings import RetrievalSettings

    options = RetrievalOptions.from_settings(RetrievalSettings(rrf_k=10, candidates=30))
    assert (options.rrf_k, options.candidates, options.fusion) == (10, 30, "convex")  # the rest: defaults
    assert RetrievalOptions.from_settings({"fusion": "rrf", "top_k": 5}).fusion == "rrf"  # top_k: not an option


def test_every_retrieval_option_is_a_setting_with_the_same_default():
    """A config file can set every option, and the settings' defaults are the options' own."""
    from dataclasses import fields

    from pipeline.settings import RetrievalSettings

    defaults = RetrievalSettings()
    for option in fields(RetrievalOptions):
        assert option.name in RetrievalSettings.model_fields, f"retrieval.{option.name} cannot be configured"
        assert getattr(defaults, option.name) == option.default, option.name
    assert RetrievalOptions.from_settings(RetrievalSettings(page_pooling=0.0, statement_boost=0.25)).page_pooling == 0.0


def _facts() -> ChunkFacts:
    # Document version 1: page 1 (chunks 1, 2), page 2 a cash-flow statement (3, 4, 5), page 3 (6).
    contexts = ["", "", "Consolidated Statements of Cash Flows; (Millions)", "Consolidated Statements of Cash Flows | "
                "Cash Flows from Investing Activities", "Consolidated Statements of Cash Flows", "NOTE 5. Debt"]
    pages = [1, 1, 2, 2, 2, 3]
    return ChunkFacts.build([(i + 1, 1, pages[i], 10 * i, contexts[i]) for i in range(6)])


def test_chunk_facts_know_openings_and_statement_pages():
    facts = _facts()
    assert facts.opening.tolist() == [True, True, False, False, False, False]
    assert sorted(facts.with_signal(plan_query("What were the capital expenditures per the cash flow statement?"))) == [3, 4, 5]
    assert sorted(facts.with_signal(plan_query("Who are the parties to this agreement?"))) == [1, 2]


def test_document_signals_lift_statement_pages_and_openings_only_when_asked():
    facts, ranking = _facts(), [(6, 1.0), (1, 0.9), (3, 0.8)]
    options = RetrievalOptions(statement_boost=0.3, opening_boost=0.5)
    cash_flow = plan_query("What is the FY2018 capex? Use the cash flow statement.")
    assert [c for c, _ in document_signals(ranking, facts, cash_flow, options)] == [3, 6, 1]  # 0.8 + 0.3
    assert [c for c, _ in document_signals(ranking, facts, plan_query("What is the date of this contract?"), options)] == [1, 6, 3]
    governing = plan_query("Which law governs the contract?")
    assert document_signals(ranking, facts, governing, options) == ranking
    assert document_signals(ranking, facts, cash_flow, RetrievalOptions(statement_boost=0.0)) == ranking


def test_page_pooling_lifts_a_page_whose_chunks_all_match():
    facts = _facts()
    # Page 3 has the single best chunk; page 2's three chunks each match a little less.
    ranking = [(6, 1.0), (3, 0.9), (4, 0.8), (5, 0.7), (1, 0.2)]
    assert [c for c, _ in pool_pages(ranking, facts, 0.0)] == [6, 3, 4, 5, 1]
    pooled = pool_pages(ranking, facts, 0.1)  # page 2: 0.9 + 0.1 x (0.8 + 0.7) = 1.05
    assert [c for c, _ in pooled][:2] == [3, 6]
    assert [c for c, _ in pooled][2:] == [4, 5, 1]  # the page's other chunks keep their own scores


def test_spreading_steps_a_pages_later_chunks_back_behind_other_pages():
    facts = _facts()
    # Page 2's three chunks lead; page 3's one chunk and page 1's come next.
    ranking = [(3, 1.0), (4, 0.95), (5, 0.9), (6, 0.85), (1, 0.7)]
    assert spread_pages(ranking, facts, 0.0) == ranking
    spread = spread_pages(ranking, facts, 0.2)  # chunk 4: 0.95 - 0.2; chunk 5: 0.9 - 0.4
    assert [c for c, _ in spread] == [3, 6, 4, 1, 5]
    assert dict(spread)[5] == pytest.approx(0.5)
    # A page's own chunks keep their order; a later chunk far ahead of other pages keeps its place.
    assert [c for c, _ in spread_pages([(3, 1.0), (4, 0.99), (6, 0.5)], facts, 0.2)] == [3, 4, 6]


# A filing whose balance sheet fills its page (several chunks of rows, each with the statement's title and
# header) and whose debt is explained in a note: a question naming the balance sheet lifts all of that
# page's chunks.
_DEBT_ROWS = [
    "Cash and cash equivalents", "Short-term investments", "Accounts receivable, net", "Inventories",
    "Prepaid expenses and other current assets", "Total current assets", "Property, plant and equipment, net",
    "Operating lease right-of-use assets", "Goodwill", "Intangible assets, net", "Deferred income taxes",
    "Other assets", "Total assets", "Short-term borrowings and current portion of long-term debt",
    "Accounts payable", "Accrued payroll", "Accrued income taxes", "Other current liabilities",
    "Total current liabilities", "Long-term debt", "Pension and postretirement benefits",
    "Operating lease liabilities", "Other liabilities", "Total liabilities", "Common stock", "Additional paid-in capital",
    "Retained earnings", "Treasury stock, at cost", "Accumulated other comprehensive loss", "Total equity",
    "Total liabilities and equity",
]
_DEBT_FILING_PAGES = [
    "Item 7. Management's Discussion and Analysis\n\nResults of Operations\n\nNet sales grew in every "
    "segment, led by industrial products, while selling expenses rose with the new distribution centres.",
    "Acme Corp and Subsidiaries\nConsolidated Balance Sheets\nAt December 31\n(Millions)\n2018 2017\n"
    + "\n".join(f"{row} {1000 + 37 * i:,} {950 + 41 * i:,}" for i, row in enumerate(_DEBT_ROWS)),
    "NOTE 7. Debt\n\nAcme's long-term debt at December 31, 2018 consisted of senior notes due 2023 to 2048. "
    "Long-term debt increased to USD 13.4 billion from USD 12.1 billion in 2017, as Acme issued notes to fund "
    "acquisitions; the current portion of long-term debt is shown within short-term borrowings.",
]


def _built_filing_store(tmp_path: Path, pages: list[str], rect: tuple[int, int, int, int], fontsize: int) -> DocumentStore:
    """A store holding one filing PDF drawn from ``pages`` (one text box a page), ingested."""
    import pymupdf

    pdf = tmp_path / "acme_2018_10k.pdf"
    document = pymupdf.open()
    for text in pages:
        document.new_page().insert_textbox(pymupdf.Rect(*rect), text, fontsize=fontsize)
    document.save(pdf)
    store = _store(tmp_path / "home")
    assert store.ingest([pdf]).count("added") == 1
    return store


def test_a_statement_filling_its_page_leaves_room_for_the_note_behind_it(tmp_path: Path):
    store = _built_filing_store(tmp_path, _DEBT_FILING_PAGES, (54, 54, 560, 790), 9)
    question = "Has Acme increased its long-term debt on the balance sheet between 2017 and 2018?"
    unspread = [hit.page for hit in store.search(question, 2, options=RetrievalOptions(page_repeat_penalty=0.0))]
    assert unspread == [2, 2]  # the balance sheet's two chunks fill the top 2
    assert [hit.page for hit in store.search(question, 2)] == [2, 3]  # by default the note joins them
    assert [hit.page for hit in store.search(question, 3)] == [2, 3, 2]  # the sheet's other chunk follows


# -- the vector index ------------------------------------------------------------------------------
def test_hnsw_index_agrees_with_flat_and_filters_exactly():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(10, 3010, dtype=np.int64)
    flat, hnsw = vector_index.VectorIndex(32), vector_index.VectorIndex(32, kind="hnsw")
    flat.add(ids, vectors)
    hnsw.add(ids, vectors)
    queries = vectors[:50] + 0.1 * rng.standard_normal((50, 32)).astype(np.float32)
    overlap = np.mean([len({i for i, _ in flat.search(q, 10)} & {i for i, _ in hnsw.search(q, 10)}) / 10 for q in queries])
    assert overlap >= 0.9
    allowed = [int(i) for i in ids[100:140]]
    assert [i for i, _ in hnsw.search(queries[0], 5, allowed)] == [i for i, _ in flat.search(queries[0], 5, allowed)]
    with pytest.raises(ValueError):
        hnsw.remove([10])


def test_the_flat_scan_gives_faiss_exact_results_after_adds_removes_and_a_reload(tmp_path: Path):
    """The flat search reads FAISS's storage as a matrix (vector_index._flat_arrays): its ids and scores
    must be IndexFlatIP's own, also once removals have moved rows and after a save and load."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((4000, 48)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = rng.permutation(1_000_000)[:4000].astype(np.int64)  # ids unrelated to row order
    index = vector_index.VectorIndex(48)
    index.add(ids[:2500], vectors[:2500])
    index.remove([int(i) for i in ids[100:400]])
    index.add(ids[2500:], vectors[2500:])
    index.save(tmp_path, "model", generation=1)
    reloaded = vector_index.VectorIndex.load(tmp_path, "model", 48, generation=1)
    for candidate in (index, reloaded):
        for row in (0, 150, 3999):
            query = vectors[row] + 0.05 * rng.standard_normal(48).astype(np.float32)
            scores, found = candidate.index.search(query[None, :], 30)
            hits = candidate.search(query, 30)
            assert [i for i, _ in hits] == found[0].tolist()
            np.testing.assert_allclose([s for _, s in hits], scores[0], atol=1e-5)
    assert int(ids[150]) not in {i for i, _ in index.search(vectors[150], 5)}  # removed: never found


def test_a_search_runs_on_one_thread_and_gives_the_threads_back():
    """One query gains nothing from OpenMP's team and pays for waking it (vector_index._one_thread); the
    caller's own setting, which HNSW building uses, must come back unchanged, even after an error."""
    import faiss

    index = vector_index.VectorIndex(8)
    index.add(np.arange(1, 6, dtype=np.int64), np.eye(5, 8, dtype=np.float32))
    seen = []
    real_search = index.index.search
    index.index.search = lambda *args, **kwargs: (seen.append(faiss.omp_get_max_threads()), real_search(*args, **kwargs))[1]
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        # A filtered search is FAISS's (an unfiltered flat one is a matrix product, see the test above).
        assert [i for i, _ in index.search(np.eye(1, 8, 2, dtype=np.float32)[0], 2, [2, 3])][0] == 3
        assert seen == [1] and faiss.omp_get_max_threads() == 2
        index.index.search = lambda *args, **kwargs: 1 / 0
        with pytest.raises(ZeroDivisionError):
            index.search(np.ones(8, dtype=np.float32), 2, [1, 2])
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


def test_the_store_switches_to_hnsw_past_the_flat_limit_and_rebuilds_on_removal(
    samples_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    store = _store(samples_copy)
    count = store.vectors().count
    monkeypatch.setattr(vector_index, "FLAT_LIMIT", count // 2)
    flat_hits = store.search("laws of the State of California", 10, mode="dense")
    store.remove(DUOS)  # the removal rebuilds, now above the (lowered) limit
    assert store.vectors().kind == "hnsw" and store.vectors().count < count
    hnsw_hits = store.search("laws of the State of California", 5, mode="dense")
    assert [h.chunk_id for h in hnsw_hits] == [h.chunk_id for h in flat_hits if h.doc_name != DUOS][:5]


# -- search options on the real store -------------------------------------------------------------
def test_neighbour_expansion_widens_hits_to_exact_page_spans(ingested_samples: Path):
    store = _store(ingested_samples)
    plain = store.search("Distributor may not cancel or reschedule any order", 3)
    wide = store.search("Distributor may not cancel or reschedule any order", 3, options=RetrievalOptions(neighbours=1))
    assert [h.chunk_id for h in wide] == [h.chunk_id for h in plain]
    with store.sessions() as session:
        pages = {(p.version_id, p.number): p.text for p in session.execute(select(PageRow)).scalars()}
        version = {c.id: c.version_id for c in session.execute(select(ChunkRow)).scalars()}
    assert any(w.char_end - w.char_start > p.char_end - p.char_start for w, p in zip(wide, plain, strict=True))
    for hit in wide:
        assert pages[(version[hit.chunk_id], hit.page)][hit.char_start : hit.char_end] == hit.text


# A filing in miniature: MD&A prose that repeats the question's words but holds no figure, then the
# three primary statements, each a title with its column header and a few rows.
_FILING_PAGES = [
    "Item 7. Management's Discussion and Analysis\n\nLiquidity and Capital Resources\n\n"
    "Capital expenditures. Acme expects capital expenditures of about USD 1.6 billion in 2019, after the "
    "FY2018 capital expenditure amount reflected investments in new plants and in information technology.",
    "Acme Corp and Subsidiaries\nConsolidated Statements of Cash Flows\nYears ended December 31\n(Millions)\n2018 2017\n"
    "Cash Flows from Operating Activities\nNet income 5,363 4,869\nDepreciation and amortization 1,488 1,544\n"
    "Net cash provided by operating activities 6,439 6,240\nCash Flows from Investing Activities\n"
    "Purchases of property, plant and equipment (PP&E) (1,577) (1,373)\nAcquisitions, net of cash acquired 13 (2,023)\n"
    "Net cash used in investing activities (222) (3,086)",
    "Acme Corp and Subsidiaries\nConsolidated Balance Sheets\nAt December 31\n(Millions)\n2018 2017\n"
    "Cash and cash equivalents 2,853 3,053\nAccounts receivable 5,020 4,911\nInventories 4,366 4,034\n"
    "Property, plant and equipment, net 8,738 8,866\nTotal assets 36,500 37,987",
    "Acme Corp and Subsidiaries\nConsolidated Statements of Income\nYears ended December 31\n(Millions)\n2018 2017\n"
    "Net sales 32,765 31,657\nCost of sales 16,682 16,055\nSelling, general and administrative expenses 7,602 6,626\n"
    "Operating income 7,207 7,692\nNet income 5,363 4,869",
]


def test_a_question_naming_a_statement_finds_that_statement_page_of_a_built_filing(tmp_path: Path):
    store = _built_filing_store(tmp_path, _FILING_PAGES, (72, 72, 540, 770), 11)
    question = (
        "What is the FY2018 capital expenditure amount (in USD millions) for Acme? Give a response to the "
        "question by relying on the details shown in the cash flow statement."
    )
    assert store.search(question, 4)[0].page == 2  # the cash-flow statement, by default
    # The boost is what does it: without it the MD&A prose, which says the question's words, wins.
    assert store.search(question, 4, options=RetrievalOptions(statement_boost=0.0))[0].page == 1
    # Only the statement named is lifted: a balance-sheet question gets the balance sheet.
    assert store.search("What is Acme's FY2018 net PP&E in the balance sheet?", 4)[0].page == 3


# A filing's business overview and its list of subsidiaries: the list names the company on every line.
_SUBSIDIARY_FILING_PAGES = [
    "Item 1. Business\n\nWhere we operate\n\nWe operate in three geographic divisions: North America (the United "
    "States and Canada), Europe (Germany, France and the United Kingdom) and Asia Pacific (China, Japan and "
    "Australia). North America accounted for 61% of net sales in 2018.",
    "Exhibit 21\n\nSubsidiaries of Acme Corp\n\n"
    "Acme Corp Holdings LLC, Delaware\nAcme Corp Canada Ltd., Canada\nAcme Corp Deutschland GmbH, Germany\n"
    "Acme Corp France SAS, France\nAcme Corp UK Limited, United Kingdom\nAcme Corp Japan KK, Japan\n"
    "Acme Corp Australia Pty Ltd, Australia",
]


def test_within_its_filing_the_company_name_does_not_pull_a_question_to_the_subsidiary_list(tmp_path: Path):
    store = _built_filing_store(tmp_path, _SUBSIDIARY_FILING_PAGES, (72, 72, 540, 770), 11)
    [filing] = [d.id for d in store.documents()]
    question = "Which countries does Acme Corp operate in?"
    assert [hit.page for hit in store.search(question, 2, document_ids=[filing])] == [1, 2]
    # Searched with no document given, the name counts fully (it is what finds a filing among many),
    # and the exhibit that repeats it wins.
    assert [hit.page for hit in store.search(question, 2)] == [2, 1]


def test_a_parties_or_date_question_finds_the_contract_opening(ingested_samples: Path):
    store = _store(ingested_samples)
    netgear = next(d.id for d in store.documents() if d.name == NETGEAR)
    question = "In the DISTRIBUTOR AGREEMENT (NETGEAR): What is the date of this contract?"
    assert 1 in [h.page for h in store.search(question, 3, document_ids=[netgear])]
    # "date" and "effective date" are words of many clauses: without the opening signal page 1 is lost.
    plain = store.search(question, 5, document_ids=[netgear], options=RetrievalOptions(opening_boost=0.0))
    assert 1 not in [h.page for h in plain]


RENEWAL = "What is the renewal term after the initial term expires? This includes automatic extensions."


def test_a_question_naming_its_contract_is_searched_within_that_contract(ingested_samples: Path):
    store = _store(ingested_samples)
    netgear = next(d.id for d in store.documents() if d.name == NETGEAR)
    question = f"In the DISTRIBUTOR AGREEMENT (NETGEAR): {RENEWAL}"
    named = store.search(question, 5)
    # The search a user who picked the contract runs: the same hits, in the same order, the same scores.
    within = store.search(question, 5, document_ids=[netgear])
    assert [(h.chunk_id, h.score) for h in named] == [(h.chunk_id, h.score) for h in within]
    assert {h.doc_name for h in named} == {NETGEAR}
    # Neither routed nor boosted by its name, another contract's renewal clause reads closer.
    unnamed = store.search(question, 5, options=RetrievalOptions(name_routing=False, name_boost=0.0))
    assert unnamed[0].doc_name != NETGEAR
    # Not routed, the name boost alone leaves other contracts among the hits.
    boosted = store.search(question, 5, options=RetrievalOptions(name_routing=False))
    assert len({h.doc_name for h in boosted}) > 1


def test_a_question_naming_no_document_searches_them_all(ingested_samples: Path):
    store = _store(ingested_samples)
    hits = store.search(RENEWAL, 5)
    assert len({h.doc_name for h in hits}) > 1
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in store.search(RENEWAL, 5, options=RetrievalOptions(name_routing=False))]
    # Dense-only and BM25-only searches stay plain references: a name does not route them.
    question = f"In the DISTRIBUTOR AGREEMENT (NETGEAR): {RENEWAL}"
    assert len({h.doc_name for h in store.search(question, 10, mode="bm25")}) > 1


def test_the_documents_a_question_names_are_those_its_name_matches_best():
    from ingest.retrieval import ChunkFacts, named_versions

    names = {1: "BESTBUY_2023_10K.pdf", 2: "3M_2018_10K.pdf", 3: "3M_2022_10K.pdf", 4: "AMCOR_2023_10K.pdf"}
    facts = ChunkFacts.build([(10 * v + i, v, 1, 100 * i, "") for v in names for i in range(2)], names)

    def named(question: str, chunk_ids=None) -> set[int]:
        return named_versions(facts, plan_query(question), chunk_ids)

    assert named("Are Best Buy's gross margins historically consistent?") == {1}  # as the file name joins it
    assert named("What is the FY2018 capital expenditure for 3M?") == {2, 3}  # both of 3M's filings
    assert named("What drove the reduction in SG&A expense in FY2023?") == set()  # no name
    assert named("Which 10-K reports the largest goodwill?") == set()  # in every name: names none of them
    assert named("What drove gross margin for AMCOR?", [10, 11, 40, 41]) == {4}
    assert named("What drove gross margin for AMCOR?", [10, 11]) == set()  # not among those searched
    assert named("In the SUPPLY AGREEMENT (AMCOR): who are the parties?") == {4}


def test_a_reranker_that_is_not_a_local_folder_is_a_clear_error(ingested_samples: Path):
    from ingest.retrieval import RerankerError

    store = _store(ingested_samples)
    with pytest.raises(RerankerError, match="not a local cross-encoder folder"):
        store.search("governing law", 3, options=RetrievalOptions(reranker="cross-encoder/ms-marco-MiniLM-L-6-v2"))


def test_cuad_questions_on_the_sample_contracts_find_their_pages(ingested_samples: Path):
    eval_root = shared_eval_or_skip()
    store = _store(ingested_samples)
    ids = {d.name: d.id for d in store.documents()}
    samples = {DRIVEN, DUOS, NETGEAR}
    questions = [
        q
        for q in map(json.loads, (eval_root / "cuad" / "questions.jsonl").read_text().splitlines())
        if Path(q["pdf_path"]).name in samples and q["evidence"]
    ]
    assert len(questions) >= 10
    found_at_1 = found_at_5 = 0
    for q in questions:
        gold = {e["page_1based"] for e in q["evidence"]}
        pages = [h.page for h in store.search(q["question"], 5, document_ids=[ids[Path(q["pdf_path"]).name]])]
        found_at_1 += pages[0] in gold
        found_at_5 += bool(gold & set(pages))
    assert found_at_5 / len(questions) >= 0.9
    assert found_at_1 / len(questions) >= 0.6


@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=60),
    st.integers(1, 80),
)
def test_best_is_a_stable_sort_of_all_scores_cut_at_k(levels, k):
    """The vector index's top-k selection partitions instead of sorting everything; with ties (duplicate
    chunks have identical vectors) it must still pick what a stable sort of every score picks."""
    scores = np.asarray(levels, dtype=np.float32) / 4
    ids = np.arange(1000, 1000 + len(scores))
    expected = [(int(ids[i]), float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k]]
    assert vector_index._best(ids, scores, k) == expected
