"""BM25, reciprocal rank fusion, retriever modes, re-ranking and per-stage timings."""

from __future__ import annotations

import pytest

from rag.core.models import ModelNotAvailableError
from rag.core.types import Document
from rag.corpus.chunking import chunk_documents
from rag.retrieval.bm25 import BM25Index
from rag.retrieval.embedder import HashingEmbedder
from rag.retrieval.fusion import reciprocal_rank_fusion
from rag.retrieval.index import build_or_load_index, search
from rag.retrieval.retriever import Retrieval, Retriever, build_retriever
from rag.retrieval.settings import RerankerSettings, RetrievalSettings

DOCS = [
    Document("bio-1", "Velmora Quist", "Velmora Quist was born in Tarrowby in 1957."),
    Document("bio-2", "Orlen Vask", "Orlen Vask was born in Munderby in 1961."),
    Document("bio-3", "Ansel Brook", "Ansel Brook repairs clocks in Munderby."),
    Document("org-1", "Pelt Instruments", "Pelt Instruments makes barometers in Skelwick."),
    Document("news-1", "Gazette", "The harbour of Skelwick reopened after the spring storms."),
    Document("news-2", "Gazette", "A clock fair opened in Tarrowby; Velmora attended."),
]
CHUNKS = chunk_documents(DOCS)
EMBEDDER = HashingEmbedder(dimension=128)


def test_bm25_scores_rare_terms_and_ignores_stop_words():
    bm25 = BM25Index(CHUNKS)
    hits = bm25.search("barometers", 3)
    assert [CHUNKS[i].doc_id for i, _ in hits] == ["org-1"]  # only chunks with a positive score
    ranked = [CHUNKS[i].doc_id for i, _ in bm25.search("Orlen born Munderby", 3)]
    assert ranked[0] == "bio-2" and set(ranked[1:]) == {"bio-1", "bio-3"}
    assert bm25.search("the of and was", 3) == []  # stop words only
    assert bm25.search("zzzunknown", 3) == []
    tied = bm25.search("Tarrowby", 6)  # two documents mention it once
    assert [CHUNKS[i].doc_id for i, _ in tied] == ["bio-1", "news-2"]
    assert tied[0][1] > tied[1][1]  # the shorter document scores higher (length norm b)


def test_reciprocal_rank_fusion_by_hand():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62) and fused["d"] == pytest.approx(1 / 63)
    order = [item for item, _ in reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])]
    assert order == ["a", "c", "b", "d"]
    weighted = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], weights=[1, 2])
    assert [item for item, _ in weighted][:2] == ["c", "a"]  # 1/63 + 2/61 > 1/61 + 2/62
    assert [i for i, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]  # tie: ranking 1
    assert dict(reciprocal_rank_fusion([["a", "a", "b"]]))["b"] == pytest.approx(1 / 62)
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([["a"]], weights=[1, 1])


def build(cache, **settings):
    return build_retriever(CHUNKS, EMBEDDER, cache, RetrievalSettings(**settings))


def test_modes_fuse_their_parts_and_time_each_stage(tmp_path):
    question = "Which town holds the clock fair Velmora attended?"
    built = {
        mode: build(tmp_path, mode=mode, top_k=3, candidates=5)
        for mode in ("dense", "bm25", "hybrid")
    }
    results = {mode: r.retrieve(question) for mode, r in built.items()}
    hybrid = built["hybrid"]
    dense_rank = [i for i, _ in search(hybrid.chunk_index, EMBEDDER.embed([question]), 5)[0]]
    lexical_rank = [i for i, _ in hybrid.bm25.search(question, 5)]
    expected = reciprocal_rank_fusion([dense_rank, lexical_rank], k=60)[:3]
    assert results["hybrid"].chunk_ids == [CHUNKS[i].chunk_id for i, _ in expected]
    assert results["hybrid"].scores == pytest.approx([s for _, s in expected])
    assert results["dense"].chunk_ids == [CHUNKS[i].chunk_id for i in dense_rank[:3]]
    assert results["bm25"].chunk_ids == [CHUNKS[i].chunk_id for i in lexical_rank[:3]]
    dense, lexical, fused = results["dense"], results["bm25"], results["hybrid"]
    assert dense.embed_s > 0 and dense.dense_search_s > 0 and dense.bm25_search_s == 0
    assert lexical.embed_s == 0 and lexical.bm25_search_s > 0 and lexical.dense_search_s == 0
    assert min(fused.embed_s, fused.dense_search_s, fused.bm25_search_s, fused.fusion_s) > 0
    for result in results.values():
        parts = result.dense_search_s + result.bm25_search_s + result.fusion_s
        assert result.search_s == pytest.approx(parts)
        assert result.total_s == pytest.approx(result.embed_s + result.search_s)
        assert result.timings()["total_s"] == pytest.approx(result.total_s)
    info = hybrid.stage_info()
    assert info["mode"] == "hybrid" and info["factory"] == "Flat" and info["rrf_k"] == 60
    assert info["build_s"] == pytest.approx(hybrid.chunk_index.build_s + info["bm25_build_s"])
    lexical_info = built["bm25"].stage_info()
    assert "path" not in lexical_info and lexical_info["reused"] is False  # no FAISS index
    assert lexical_info["build_s"] == lexical_info["bm25_build_s"] > 0


class ReverseReranker:
    """Prefers the candidate ranked last: makes re-ranking visible, and records its input."""

    identity = "reverse"

    def __init__(self):
        self.seen: list[str] = []

    def score(self, question, texts):
        self.seen = list(texts)
        return [float(i) for i in range(len(texts))]


def test_reranker_reorders_the_candidates_and_is_timed(tmp_path):
    base = build(tmp_path, mode="bm25", top_k=2, candidates=4)
    question = "Munderby Skelwick Tarrowby Velmora"
    first_stage = [CHUNKS[i].text for i, _ in base.bm25.search(question, 4)]
    base.reranker = reranker = ReverseReranker()
    result = base.retrieve(question)
    assert reranker.seen == first_stage  # it saw `candidates` chunks, not top_k
    assert [c.text for c in result.chunks] == first_stage[::-1][:2]
    assert result.scores == [3.0, 2.0] and result.rerank_s > 0
    assert result.total_s == pytest.approx(result.embed_s + result.search_s + result.rerank_s)


def test_cross_encoder_reranker_loads_a_local_model_and_fails_clearly(tmp_path):
    import os

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from rag.retrieval.rerank import CrossEncoderReranker

    folder = tmp_path / "tiny-cross-encoder"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += sorted({w.lower().strip(".;") for d in DOCS for w in d.text.split()})
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    reranker = CrossEncoderReranker(str(folder))
    retriever = build(
        tmp_path,
        mode="bm25",
        top_k=3,
        candidates=6,
        reranker=RerankerSettings(model=str(folder)),
    )
    question = "Orlen Munderby Tarrowby clock"
    result = retriever.retrieve(question)
    candidates = [CHUNKS[i].text for i, _ in retriever.bm25.search(question, 6)]
    scores = reranker.score(question, candidates)
    assert len(candidates) > 3  # enough to re-rank (only positive BM25 scores are kept)
    ranked = sorted(zip(scores, range(len(candidates)), strict=True), key=lambda p: (-p[0], p[1]))
    expected = ranked[:3]
    assert [c.text for c in result.chunks] == [candidates[j] for _, j in expected]
    assert result.scores == pytest.approx([float(s) for s, _ in expected], abs=1e-6)
    assert retriever.stage_info()["reranker"].startswith("cross-encoder:sha256:")
    with pytest.raises(ModelNotAvailableError, match="no such cross-encoder folder"):
        CrossEncoderReranker(str(tmp_path / "missing"))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # the hub id below must not be fetched
    with pytest.raises(ModelNotAvailableError, match=r"retriever.reranker.model='nobody/none'"):
        CrossEncoderReranker("nobody/none")


def test_dense_retriever_keeps_its_interface(tmp_path):
    index = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, progress=False)
    old = Retriever(mode="dense", embedder=EMBEDDER, chunk_index=index, top_k=2).retrieve(
        "Where was Orlen Vask born?"
    )
    new = build(tmp_path, top_k=2).retrieve("Where was Orlen Vask born?")
    assert isinstance(old, Retrieval) and old.chunk_ids == new.chunk_ids
    assert old.doc_ids[0] == "bio-2" and old.total_s == old.embed_s + old.search_s
    legacy = Retrieval(old.chunks, old.scores, 0.1, 0.2)  # positional construction still works
    assert legacy.total_s == pytest.approx(0.3)


def test_bad_settings_fail_with_the_key_name(tmp_path):
    with pytest.raises(ValueError, match="retriever.mode='sparse'"):
        build(tmp_path, mode="sparse")
    with pytest.raises(ValueError, match="retriever.top_k must be >= 1"):
        build(tmp_path, mode="bm25", top_k=0)
    with pytest.raises(ValueError, match="retriever.rrf_k must be >= 0"):
        reciprocal_rank_fusion([["a"]], k=-1)
