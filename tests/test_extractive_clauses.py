"""The offline answerer and clause questions (pipeline/clause_match.py): a question about a known kind
of clause is recognised however it is worded, the sentence with the clause's operative wording is
quoted before one that only mentions it, and a clause that is not in the evidence is refused with
what was looked for. On the real sample contracts (CUAD, CC BY 4.0) and the packaged encoder."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from conftest import DUOS, NETGEAR
from pipeline.clause_match import PROFILES, clause_profile, states_clause, states_clause_strongly
from pipeline.extractive import ExtractiveReasoner
from pipeline.reasoning import Evidence

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "contracts"


@pytest.fixture(scope="module")
def reasoner(tmp_path_factory: pytest.TempPathFactory) -> ExtractiveReasoner:
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    home = tmp_path_factory.mktemp("clauses-home")
    return ExtractiveReasoner(Docket(load_settings(home=home, actor="test")).store.encoder.encode_for_question)


def _pages(name: str, pages: list[int]) -> list[Evidence]:
    document = pymupdf.open(SAMPLES / name)
    return [
        Evidence(label=f"S{i}", rank=i, chunk_id=i, doc_sha256=name, doc_name=name, page=page, char_start=0,
                 char_end=len(text), text=text, score=1.0, method="pymupdf")
        for i, (page, text) in enumerate(((p, document[p - 1].get_text()) for p in pages), start=1)
    ]


def _first_quote(answer: str) -> str:
    return " ".join(answer.splitlines()[0].split())


@pytest.mark.parametrize(("question", "category"), [
    ("Can the distributor assign this agreement to someone else?", "Anti-Assignment"),
    ("Is there a non-compete?", "Non-Compete"),
    ("Does either party have the right to audit the other's records?", "Audit Rights"),
    ("Must the supplier carry insurance?", "Insurance"),
    ("Is the license irrevocable?", "Irrevocable Or Perpetual License"),
    ("Does the licensee get better terms if a third party is offered a lower price? Is there a most favored nation clause?",
     "Most Favored Nation"),
    ("Which state's law governs the agreement?", "Governing Law"),
    ("Does the contract contain a license granted by one party to its counterparty?", "License Grant"),
    ("Is there a liquidated damages clause?", "Liquidated Damages"),
])
def test_a_clause_question_is_recognised_however_it_is_worded(question: str, category: str) -> None:
    profile = clause_profile(question)
    assert profile is not None and profile.name == category, (question, profile and profile.name)


@pytest.mark.parametrize("question", ["Who are the parties that signed this contract?", "What is the date of this contract?",
                                      "What is the notice period required to terminate renewal?"])
def test_questions_about_values_name_no_clause(question: str) -> None:
    assert clause_profile(question) is None


def test_exclusivity_wording_is_not_any_exclusive() -> None:
    exclusivity = next(p for p in PROFILES if p.name == "Exclusivity")
    assert states_clause(exclusivity, "Licensor appoints Reseller as its exclusive distributor in the Territory.")
    assert states_clause_strongly(exclusivity, "Licensor hereby grants Reseller an exclusive license to sell the Products.")
    for sentence in ("Distributor's appointment shall be non-exclusive and NETGEAR may appoint other distributors.",
                     "Prices are exclusive of any tax, value-added tax, fee or duty.",
                     "End-users' exclusive remedy is to receive a replacement Product.",
                     "The courts of Florida shall have exclusive jurisdiction.",
                     "THIS EXCLUSIVE DISTRIBUTOR AGREEMENT is made as of March 1, 2005."):
        assert not states_clause(exclusivity, sentence), sentence


def test_the_operative_insurance_clause_is_quoted_before_a_mention_of_insurance(reasoner) -> None:
    # NETGEAR page 3 makes the distributor pay freight "handling, insurance and other transportation
    # charges"; page 7 is the clause: NETGEAR "agrees to maintain insurance coverage".
    out = reasoner.answer("Is there a requirement for insurance that must be maintained by one party?",
                          _pages(NETGEAR, [3, 7]))
    assert out.status == "answered", out.answer
    assert "maintain insurance coverage" in _first_quote(out.answer), out.answer
    assert "clause asked about: Insurance" in out.trace


def test_the_anti_assignment_clause_is_quoted_not_an_assignment_of_works(reasoner) -> None:
    # DUOS page 3 assigns the Works to ISA (an IP assignment); page 6 is "11.2 No Assignment".
    out = reasoner.answer("Is consent or notice required of a party if the contract is assigned to a third party?",
                          _pages(DUOS, [3, 6]))
    assert out.status == "answered", out.answer
    first = _first_quote(out.answer)
    assert "Neither Party shall transfer, assign" in first, out.answer
    assert out.citations and out.citations[0] == "S2"


def test_an_absent_clause_is_refused_saying_what_was_looked_for(reasoner) -> None:
    # NETGEAR's appointment is non-exclusive, its prices exclusive of tax, its remedy exclusive: none
    # of them is an exclusive dealing commitment.
    out = reasoner.answer("Is there an exclusive dealing commitment with the counterparty?", _pages(NETGEAR, [1, 2, 4]))
    assert out.status == "refused", out.answer
    assert out.answer.startswith("Not found in the documents.")
    assert "exclusive dealing commitment" in out.answer
    assert "Looked for an exclusive dealing commitment" in out.trace
    escrow = reasoner.answer("Is one party required to deposit its source code into escrow?", _pages(NETGEAR, [1, 2, 3]))
    assert escrow.status == "refused" and "source code escrow" in escrow.answer, escrow.answer


def test_only_sentences_sharing_something_with_the_question_are_embedded(reasoner) -> None:
    # Embedding is most of an answer's cost: a sentence with none of the question's words, no value of
    # the wanted kind, no clause wording and no matching heading is not embedded, and the answer is the
    # one the answerer gives embedding every sentence.
    seen: list[list[str]] = []

    def counting(texts: list[str]):
        seen.append(list(texts))
        return reasoner.embed(texts)

    evidence = _pages(NETGEAR, [3, 6, 7])
    question = "Is there a requirement for insurance that must be maintained by one party?"
    filtered = ExtractiveReasoner(counting).answer(question, evidence)
    embedded = len(seen[-1]) - 1
    everything = ExtractiveReasoner(counting, prefilter=False).answer(question, evidence)
    assert filtered.answer == everything.answer and filtered.status == everything.status == "answered"
    assert 0 < embedded < len(seen[-1]) - 1, (embedded, len(seen[-1]) - 1)


def test_a_clause_question_adds_passages_only_when_none_retrieved_has_its_wording(ingested_samples: Path) -> None:
    # The ask's own search, restricted as the ask is (here: the NETGEAR contract of the samples).
    from pipeline.app import Docket
    from pipeline.ask import to_evidence
    from pipeline.clause_match import MAX_EXTRA_PASSAGES, passages_to_add
    from pipeline.settings import load_settings

    store = Docket(load_settings(home=ingested_samples, actor="test")).store
    netgear = store.resolve(NETGEAR, "samples").id
    queries: list[str] = []

    def search(query: str, k: int):
        queries.append(query)
        return store.search(query, k, collection="samples", document_ids=[netgear])

    question = "Is there a requirement for insurance that must be maintained by one party?"
    retrieved = to_evidence(search(question, 5))
    without = [e for e in retrieved if "insur" not in e.text.lower()]
    added = passages_to_add(question, without, search)
    assert queries[-1] == clause_profile(question).looks_for
    assert 0 < len(added) <= MAX_EXTRA_PASSAGES and not {e.chunk_id for e in added} & {e.chunk_id for e in without}
    assert any("insurance" in " ".join(e.text.split()).lower() for e in added), [e.text[:80] for e in added]
    assert all(e.doc_name == NETGEAR for e in added)
    searched = len(queries)
    with_clause = [e for e in retrieved if "insur" in e.text.lower()]
    assert with_clause and passages_to_add(question, with_clause, search) == []
    assert passages_to_add("Who are the parties that signed this contract?", without, search) == []
    assert len(queries) == searched  # neither searched again


def test_the_renewal_term_is_the_duration_the_renewal_names(reasoner) -> None:
    # One sentence gives the initial term, the renewal and the notice to end it: the renewal term is
    # the duration nearest the renewal words, not the initial term nor the notice period.
    text = ("2. Term. The term of this Agreement shall be two (2) years from the Effective Date with automatic "
            "annual renewals thereafter unless either party gives sixty (60) days notice of non-renewal.\n"
            "3. Fees. The Distributor shall pay the fees set out in Exhibit A within thirty (30) days of invoice.\n")
    evidence = [Evidence(label="S1", rank=1, chunk_id=1, doc_sha256="made-up", doc_name="made-up.pdf", page=2,
                         char_start=0, char_end=len(text), text=text, score=1.0, method="pymupdf")]
    out = reasoner.answer("What is the renewal term after the initial term expires?", evidence)
    assert out.status == "answered" and out.answer.splitlines()[0] == "annual [S1]", out.answer
