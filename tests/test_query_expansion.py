"""Query expansion and document references: a question about a clause also searches for how such a clause
is drafted (``pipeline.clause_match.clause_expansion``, the store's expander); a lead-in naming the
document ("In the DISTRIBUTOR AGREEMENT (NETGEAR): ...") picks the document across many and weighs little
within the one it names. Real sample contracts, the real encoder, FAISS and BM25."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import NETGEAR
from ingest import query
from ingest.query import CONTENT, INSTRUCTION, REFERENCE, WEIGHTS, plan_query
from ingest.retrieval import RetrievalOptions
from pipeline.clause_match import EXEMPLARS, PROFILES, clause_expansion

ASSIGNMENT = "In the DISTRIBUTOR AGREEMENT (NETGEAR): Is consent or notice required of a party if the contract is assigned to a third party?"
EXPIRY = "In the DISTRIBUTOR AGREEMENT (NETGEAR): On what date will the contract's initial term expire?"


def test_a_lead_in_naming_the_document_is_a_reference_weighed_by_how_many_documents_are_searched():
    across, within = plan_query(EXPIRY), plan_query(EXPIRY, one_document=True)
    assert across.clauses[0] == (REFERENCE, "In the DISTRIBUTOR AGREEMENT (NETGEAR)")
    assert across.clauses[1][0] == CONTENT
    assert across.terms["netgear"] == WEIGHTS[CONTENT] and within.terms["netgear"] == WEIGHTS[INSTRUCTION]
    assert within.terms["expir"] == WEIGHTS[CONTENT]  # the question proper is untouched
    assert "NETGEAR" in within.text  # the encoder still reads the whole question
    # A question that only starts with "In" is content: it asks something.
    assert plan_query("In 2019, what was 3M's revenue?").clauses == [(CONTENT, "In 2019, what was 3M's revenue?")]


def test_every_clause_profile_has_an_exemplar_and_only_clause_questions_are_expanded():
    assert {p.name for p in PROFILES} == set(EXEMPLARS)
    expansion = clause_expansion(ASSIGNMENT)
    assert expansion is not None and expansion.passage == EXEMPLARS["Anti-Assignment"]
    planned = plan_query(ASSIGNMENT, (clause_expansion,))
    assert expansion.passage in planned.text and planned.terms["consent"] == expansion.weight
    # A financial question and a date question name no clause: nothing is added.
    for question in ("What is the FY2018 capital expenditure amount (in USD millions) for 3M?", EXPIRY):
        assert clause_expansion(question) is None
        assert plan_query(question, (clause_expansion,)) == plan_query(question)


@pytest.fixture(scope="module")
def netgear_store(ingested_samples: Path):
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    store = Docket(load_settings(home=ingested_samples)).store  # the store as ask and eval open it
    return store, next(d.id for d in store.documents() if d.name == NETGEAR)


def test_an_assignment_question_finds_the_assignment_clause_by_its_drafting(netgear_store):
    store, netgear = netgear_store
    hits = store.search(ASSIGNMENT, 2, document_ids=[netgear])
    clause = " ".join(next(h for h in hits if h.page == 8).text.split())
    assert "may not be assigned by either party without prior written permission" in clause
    # Without the expansion the question's own words ("notice", "third party") lead elsewhere.
    plain = store.search(ASSIGNMENT, 3, document_ids=[netgear], options=RetrievalOptions(query_expansion=False))
    assert 8 not in [h.page for h in plain]


def test_within_the_named_document_its_name_does_not_outweigh_the_question(netgear_store, monkeypatch):
    store, netgear = netgear_store
    assert store.search(EXPIRY, 1, document_ids=[netgear])[0].page == 6  # "A. TERM" and its expiry
    # Weighed as content, "DISTRIBUTOR AGREEMENT NETGEAR" pulls the search to the pages that say the names.
    monkeypatch.setitem(query.REFERENCE_WEIGHT, True, WEIGHTS[CONTENT])
    assert store.search(EXPIRY, 1, document_ids=[netgear])[0].page != 6


def test_a_record_made_before_a_retrieval_setting_existed_replays_without_it(home: Path):
    from pipeline.app import Docket
    from pipeline.replay.recorded import RecordedAnswer
    from pipeline.replay.runner import replay_settings
    from pipeline.settings import load_settings

    docket = Docket(load_settings())
    assert docket.settings.retrieval.query_expansion  # today's default
    old = RecordedAnswer(seq=7, event_type="answer", time="", actor="a", payload={"retrieval": {"top_k": 5}},
                         payload_version=2, settings={"retrieval": {"top_k": 5, "mode": "hybrid"}})
    settings, missing = replay_settings(docket, old)
    assert missing == [] and settings.retrieval.query_expansion is False
    assert settings.retrieval.page_repeat_penalty == 0.0 < docket.settings.retrieval.page_repeat_penalty
    assert settings.retrieval.name_routing is False and docket.settings.retrieval.name_routing is True
    assert any("predates the setting retrieval.query_expansion" in note for note in old.notes)
    # A record that names the setting replays with its own value, and no note.
    new = RecordedAnswer(seq=8, event_type="answer", time="", actor="a", payload={"retrieval": {"top_k": 5}},
                         payload_version=2, settings={"retrieval": {"top_k": 5, "query_expansion": True,
                                                                    "page_repeat_penalty": 0.2, "name_routing": True}})
    settings, _ = replay_settings(docket, new)
    assert settings.retrieval.query_expansion is True and new.notes == []
