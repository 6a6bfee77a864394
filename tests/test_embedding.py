"""The encoder's invariants, with the real packaged MiniLM: unit vectors in input order, token offsets that
point into the text, and the optional int8 ONNX backend agreeing with torch on real contract text."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DRIVEN, DUOS, SAMPLES
from ingest.config import EmbeddingSettings
from ingest.embedding import Encoder, length_batches, onnx_path


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EmbeddingSettings(backend="torch"))


@pytest.fixture(scope="module")
def contract_paragraphs() -> list[str]:
    """Text blocks of two sample contracts: real paragraphs of very different lengths."""
    texts = []
    for name in (DRIVEN, DUOS):
        with pymupdf.open(SAMPLES / name) as pdf:
            for page in pdf:
                texts += [block[4].strip() for block in page.get_text("blocks") if len(block[4].strip()) >= 20]
    return texts[:48]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def int8_encoder(onnx_cache: Path) -> Encoder:
    """The int8 backend, exported from the packaged weights into a fresh cache folder (no download)."""
    cache = onnx_cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        encoder = Encoder(EmbeddingSettings(backend="onnx-int8", threads=2))
        _ = encoder.onnx_session
        assert onnx_path(encoder.model_path, encoder.model_id, "int8").is_relative_to(cache)
    return encoder


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_vectors_are_unit_float32_in_input_order(backend, encoder, int8_encoder, contract_paragraphs):
    chosen = int8_encoder if backend == "onnx-int8" else encoder
    texts = contract_paragraphs[:24]
    assert len({len(t) for t in texts}) > 10, "the sample must mix lengths, or sorting proves nothing"
    vectors = chosen.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), chosen.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Each row is the vector of the text at that position, whatever order the batches ran in. int8
    # activations are scaled per batch, so its vector of a text alone differs slightly from in a batch.
    same = 0.9999 if backend == "torch" else 0.99
    for i in (0, 7, 23):
        assert float(vectors[i] @ chosen.encode_query(texts[i])) > same
    assert float(vectors[0] @ vectors[7]) < 0.95
    shuffled = np.random.default_rng(7).permutation(len(texts))
    np.testing.assert_allclose(chosen.encode([texts[i] for i in shuffled]), vectors[shuffled], atol=1e-4)


def test_different_texts_get_different_vectors(encoder):
    a, b, c = encoder.encode(
        [
            "The Consultant shall be paid a monthly fee of five thousand dollars.",
            "Fees owed to the consultant are $5,000 per month.",
            "This Agreement is governed by the laws of the State of Nevada.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_int8_agrees_with_torch_on_real_text(encoder, int8_encoder, contract_paragraphs):
    fp32 = encoder.encode(contract_paragraphs)
    int8 = int8_encoder.encode(contract_paragraphs)
    cosine = (fp32 * int8).sum(axis=1)
    assert cosine.mean() > 0.99 and cosine.min() > 0.97, (cosine.mean(), cosine.min())
    # Neighbours survive quantisation. Two near-tied neighbours may swap places, so the test is that the
    # paragraph int8 finds nearest is, by fp32's own similarities, within 0.02 of fp32's nearest.
    fp32_sim, int8_sim = fp32 @ fp32.T, int8 @ int8.T
    np.fill_diagonal(fp32_sim, -2.0)
    np.fill_diagonal(int8_sim, -2.0)
    rows = np.arange(len(fp32))
    shortfall = fp32_sim[rows, fp32_sim.argmax(axis=1)] - fp32_sim[rows, int8_sim.argmax(axis=1)]
    assert shortfall.max() < 0.02, shortfall.max()
    assert (fp32_sim.argmax(axis=1) == int8_sim.argmax(axis=1)).mean() > 0.8


def test_int8_export_is_reused_and_keyed_by_the_model_files(int8_encoder, onnx_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))
    exported = onnx_path(int8_encoder.model_path, int8_encoder.model_id, "int8")
    assert exported.is_file() and [p.name for p in exported.parent.iterdir()] == ["model-int8.onnx"]
    before = exported.stat().st_mtime_ns
    again = Encoder(EmbeddingSettings(backend="onnx-int8", batch_size=4))
    again.encode(["the export is read from the cache, not made again"])
    assert exported.stat().st_mtime_ns == before
    changed = tmp_path / "model"
    shutil.copytree(int8_encoder.model_path, changed)
    config = changed / "config_sentence_transformers.json"
    config.write_text(config.read_text() + "\n")
    assert onnx_path(changed, int8_encoder.model_id, "int8") != exported


def test_token_offsets_point_into_the_text(encoder, contract_paragraphs):
    text = "Net revenue rose 12% to $4.1 billion; the Company's CEO (Jane Doe) signed.\n\nSee Exhibit 10.4."
    for sample in [text, *contract_paragraphs[:10]]:
        offsets = encoder.token_offsets(sample)
        tokens = encoder.tokenizer.encode(sample, add_special_tokens=False).tokens
        assert len(offsets) == len(tokens) == encoder.count_tokens(sample)
        assert all(a < b for a, b in offsets) and offsets == sorted(offsets)
        for (start, end), token in zip(offsets, tokens):
            if token != encoder.tokenizer.model.unk_token:
                assert _as_the_tokenizer_sees(sample[start:end]) == token.removeprefix("##"), (sample[start:end], token)


def _as_the_tokenizer_sees(text: str) -> str:
    """The uncased BERT normaliser: lower case, compatibility forms (\u037e -> ;), accents stripped."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def test_max_tokens_is_what_the_model_reads(encoder):
    assert encoder.max_tokens == 256
    long = "word " * 600
    # Past max_tokens the model ignores the rest: only the start of a long text decides its vector.
    a, b = encoder.encode([long + "apple banana", long + "tax litigation"])
    assert float(a @ b) > 0.9999


@given(
    lengths=st.lists(st.integers(1, 256), max_size=200).map(lambda xs: sorted(xs, reverse=True)),
    max_texts=st.integers(1, 64),
    max_tokens=st.integers(256, 8192),
)
def test_length_batches_cover_every_text_once_within_both_bounds(lengths, max_texts, max_tokens):
    batches = length_batches(lengths, max_texts, max_tokens)
    assert [i for batch in batches for i in range(len(lengths))[batch]] == list(range(len(lengths)))
    for batch in batches:
        size = batch.stop - batch.start
        assert 1 <= size <= max_texts
        # Sorted longest first, so a batch's first text is its longest; one text alone may exceed the budget.
        assert size == 1 or size * lengths[batch.start] <= max_tokens


def test_token_budget_changes_batches_not_vectors(encoder, contract_paragraphs):
    small = Encoder(EmbeddingSettings(backend="torch", max_batch_tokens=256))
    assert len(length_batches(sorted(map(encoder.count_tokens, contract_paragraphs), reverse=True), 32, 256)) > 10
    np.testing.assert_allclose(small.encode(contract_paragraphs), encoder.encode(contract_paragraphs), atol=1e-5)


def test_the_int8_backend_asks_with_fp32_questions(encoder, contract_paragraphs):
    """Documents go through int8; a question through the same fp32 session as the torch backend's: torch's
    vector, with neither the torch model nor the int8 graph loaded, and not dependent on its batch."""
    question = "Which state's law governs the agreement?"
    int8 = Encoder(EmbeddingSettings(backend="onnx-int8"))
    vector = int8.encode_query(question)
    assert np.array_equal(vector, Encoder(EmbeddingSettings(backend="torch")).encode_query(question))
    assert float(vector @ encoder.encode([question])[0]) > 0.9999
    assert "onnx_session" not in int8.__dict__ and "model" not in int8.__dict__
    sentences = contract_paragraphs[:6]
    together = int8.encode_for_question(sentences)
    np.testing.assert_allclose(together[2], int8.encode_for_question(sentences[2:3])[0], atol=1e-6)
    assert int8.fp32_questions and not Encoder(EmbeddingSettings(backend="onnx-int8", onnx_queries=False)).fp32_questions


def test_int8_runs_without_the_torch_model_and_tokenises_alike(encoder, int8_encoder, onnx_cache, contract_paragraphs):
    fresh = Encoder(EmbeddingSettings(backend="onnx-int8", threads=2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(onnx_cache))  # where int8_encoder exported the model
        vectors = fresh.encode(contract_paragraphs[:8])
    assert "model" not in fresh.__dict__, "the int8 backend loaded the torch model"
    assert (fresh.dimension, fresh.max_tokens) == (encoder.dimension, encoder.max_tokens)
    assert vectors.shape == (8, encoder.dimension)
    assert fresh.token_ids(contract_paragraphs) == encoder.token_ids(contract_paragraphs)


def test_the_runtime_tokenizer_is_transformers_tokenizer(encoder, contract_paragraphs):
    """Asking tokenises with the ``tokenizers`` package alone (no transformers import); it must give the
    word pieces, offsets and cuts of the tokenizer sentence-transformers loads, on real and awkward text."""
    reference = encoder.model.tokenizer  # transformers', loaded with the torch model
    texts = [
        *contract_paragraphs,
        "Net revenue rose 12% to $4.1 billion; the Company\u2019s CEO (Jane Doe) signed.\n\nSee Exhibit 10.4.",
        "Quelle est la durée du contrat ? 契約期間はいつまでですか Ωmega ﬁnancial ①②",
        "[CLS] a literal [SEP] and [UNK] in the text \u200b\t tabs",
        "",
        " ".join(contract_paragraphs)[:5000],  # longer than the model reads: cut where transformers cuts it
    ]
    expected = reference(texts, truncation=True, max_length=encoder.max_tokens, verbose=False)["input_ids"]
    assert encoder.token_ids(texts) == expected
    assert len(expected[-1]) == encoder.max_tokens
    for text in texts:
        plain = reference(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        assert encoder.count_tokens(text) == len(plain["input_ids"])
        assert encoder.token_offsets(text) == [tuple(span) for span in plain["offset_mapping"]]
    assert encoder.pad_token_id == reference.pad_token_id


@pytest.fixture(scope="module")
def query_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("query-cache")


def test_questions_embedded_by_onnx_get_torchs_vectors(encoder, query_cache, contract_paragraphs):
    """The torch backend embeds questions with an fp32 ONNX export of the same forward: it must give the
    vectors torch gives (stored documents were embedded by torch), for short, long and non-ASCII text."""
    texts = [
        "Which state's law governs the agreement?",
        "What is the FY2018 capital expenditure amount (in USD millions) for 3M?",
        "Quelle est la durée du contrat ? 契約期間はいつまでですか",
        " ".join(contract_paragraphs)[:4000],  # longer than the model reads: cut where torch cuts it
        *contract_paragraphs[:6],
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(query_cache))
        Encoder(EmbeddingSettings(backend="torch")).encode_query("the first question exports the model (from torch's weights)")
        exported = sorted(p.name for p in query_cache.rglob("*.onnx"))
        fast = Encoder(EmbeddingSettings(backend="torch", threads=2))
        by_onnx = np.stack([fast.encode_query(text) for text in texts])
    assert exported == ["model-fp32.onnx"], exported
    assert "model" not in fast.__dict__, "embedding questions from the cached export loaded the torch model"
    assert fast.dimension == encoder.dimension and "model" not in fast.__dict__
    by_torch = encoder.encode(texts)
    cosines = (by_onnx * by_torch).sum(axis=1)
    assert cosines.min() > 0.99999, cosines
    assert np.abs(by_onnx - by_torch).max() < 1e-4


def test_the_answerers_sentence_vectors_are_torchs(encoder, int8_encoder, onnx_cache, query_cache, contract_paragraphs):
    """The extractive answerer embeds a question and its evidence's sentences by the question session
    (``encode_for_question``), with no torch model loaded: the vectors must be torch's, for either backend;
    with ``onnx_queries`` off, the int8 backend's must be those its ``encode`` gives."""
    from ingest.chunking import sentence_spans

    sentences = [p[a:b] for p in contract_paragraphs for a, b in sentence_spans(p) if len(p[a:b].split()) >= 6]
    texts = ["How much notice must a party give to terminate?", *sentences[:60]]
    assert len(texts) > 40
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(query_cache))
        fresh = Encoder(EmbeddingSettings(backend="torch"))
        by_question_session = fresh.encode_for_question(texts)
    assert "model" not in fresh.__dict__, "the answerer's sentences loaded the torch model"
    cosines = (by_question_session * encoder.encode(texts)).sum(axis=1)
    assert cosines.min() > 0.999, cosines.min()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(query_cache))
        by_int8_backend = Encoder(EmbeddingSettings(backend="onnx-int8", threads=2)).encode_for_question(texts)
    assert (by_int8_backend * encoder.encode(texts)).sum(axis=1).min() > 0.999
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(onnx_cache))
        int8_only = Encoder(EmbeddingSettings(backend="onnx-int8", threads=2, onnx_queries=False))
        np.testing.assert_allclose(int8_only.encode_for_question(texts), int8_encoder.encode(texts), atol=1e-6)


def test_onnx_queries_can_be_switched_off(encoder, query_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(query_cache / "unused"))
        plain = Encoder(EmbeddingSettings(backend="torch", onnx_queries=False))
        vector = plain.encode_query("Can either party terminate for convenience?")
    assert plain.query_session is None and not (query_cache / "unused").exists()
    assert np.array_equal(vector, encoder.encode(["Can either party terminate for convenience?"])[0])


def test_exports_are_fused_and_checked_against_torch(encoder, int8_encoder, onnx_cache, query_cache):
    """Both exports run one fused attention op per layer (the speed of the ONNX encoders rests on it), and
    an export whose vectors stray from torch's is refused before it is cached."""
    import onnx

    from ingest.embedding import EmbeddingModelError
    from ingest.onnx_export import check_export

    layers = encoder.model[0].auto_model.config.num_hidden_layers
    for cache, precision, fused_op in ((onnx_cache, "int8", "QAttention"), (query_cache, "fp32", "Attention")):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("XDG_CACHE_HOME", str(cache))
            path = onnx_path(encoder.model_path, encoder.model_id, precision)
        if not path.is_file():  # the query test exports it; run alone, this one does
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("XDG_CACHE_HOME", str(cache))
                Encoder(EmbeddingSettings(backend="torch")).encode_query("export the fp32 graph")
        ops = [node.op_type for node in onnx.load(str(path)).graph.node]
        assert ops.count(fused_op) == layers, (precision, sorted(set(ops)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(onnx_cache))
        int8_graph = onnx_path(encoder.model_path, encoder.model_id, "int8")
    check_export(encoder.model, int8_graph, "int8", "MiniLM", encoder.model_path)  # int8 within its own bound
    with pytest.raises(EmbeddingModelError, match=r"fp32 ONNX export of MiniLM disagrees with torch"):
        check_export(encoder.model, int8_graph, "fp32", "MiniLM")  # but not fp32's


def test_question_sessions_do_not_leave_threads_spinning(int8_encoder, onnx_cache):
    """A question is one short run followed by a search on the same cores: its session must not keep
    ONNX Runtime's threads spinning after it (ingest's long series of batches keeps them); neither
    plans memory per input shape (each new batch shape would grow the arena)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(onnx_cache))
        questions = int8_encoder.query_session.get_session_options()
    documents = int8_encoder.onnx_session.get_session_options()
    assert questions.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(Exception):  # not set: ONNX Runtime's default, spinning
        documents.get_session_config_entry("session.intra_op.allow_spinning")
    assert not questions.enable_mem_pattern and not documents.enable_mem_pattern


def test_smoothing_keeps_the_product_and_evens_the_channels(encoder, query_cache, contract_paragraphs, tmp_path):
    """The int8 recipe rescales each down-projection's input channels (``smooth``) before quantising. In
    fp32 the rewrite must change nothing: the smoothed graph gives the same vectors. And it must reach
    the channels: measured after the rescaling, the largest channel sits much nearer the median one."""
    import onnx
    import onnxruntime as ort

    from ingest.onnx_export import SMOOTHING_ALPHA, activation_max, down_projections, smooth

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(query_cache))
        fp32 = onnx_path(encoder.model_path, encoder.model_id, "fp32")
        if not fp32.is_file():
            Encoder(EmbeddingSettings(backend="torch")).encode_query("export the fp32 graph")
    model = onnx.load(str(fp32))
    down = down_projections(model.graph)
    assert len(down) == encoder.model[0].auto_model.config.num_hidden_layers
    inputs = {node.name: node.input[0] for node in model.graph.node if node.name in down}
    before = activation_max(fp32, list(inputs.values()), encoder.model.tokenizer, encoder.max_tokens)
    smooth(model.graph, {name: before[inputs[name]] for name in down}, SMOOTHING_ALPHA)
    smoothed = tmp_path / "smoothed.onnx"
    onnx.save(model, str(smoothed))

    ids = encoder.token_ids(contract_paragraphs[:16])
    vectors = [encoder.encode_ids(ort.InferenceSession(str(path)), ids) for path in (fp32, smoothed)]
    assert (vectors[0] * vectors[1]).sum(axis=1).min() > 0.99999

    muls = [f"{name}/smoothed_input" for name in down]
    after = activation_max(smoothed, muls, encoder.model.tokenizer, encoder.max_tokens)
    for name, mul in zip(down, muls):
        spread_before = before[inputs[name]].max() / np.median(before[inputs[name]])
        spread_after = after[mul].max() / np.median(after[mul])
        assert spread_before > 4 and spread_after < spread_before**0.6, (name, spread_before, spread_after)


def test_int8_export_smooths_and_quantises_all_but_the_first_down_projections(encoder, int8_encoder, onnx_cache):
    """The cached int8 graph is the documented recipe: the first FP32_DOWN_PROJECTIONS down-projections
    still fp32 MatMuls (int8 costs the most accuracy there), every other one smoothed and quantised."""
    import onnx

    from ingest.onnx_export import FP32_DOWN_PROJECTIONS, down_projections

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(onnx_cache))
        graph = onnx.load(str(onnx_path(encoder.model_path, encoder.model_id, "int8"))).graph
    layers = encoder.model[0].auto_model.config.num_hidden_layers
    fp32_down = down_projections(graph)  # quantised ones are MatMulInteger now, so only the fp32 ones
    assert len(fp32_down) == FP32_DOWN_PROJECTIONS
    assert all(f"layer.{i}/" in name for i, name in enumerate(fp32_down)), fp32_down
    assert sum(n.op_type == "Mul" and n.name.endswith("/smooth") for n in graph.node) == layers - FP32_DOWN_PROJECTIONS
