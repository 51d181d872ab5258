"""The corpus stage: documents, the question set, its split, paraphrases and the leakage check.

Built-in corpus: documents and questions come from rag/corpus/synthetic.py (facts with train and
held-out phrasings). Own corpus: documents are ingested from files, questions are read from a
file or synthesised from the documents, then split so that no fact straddles train and eval.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from typing import Any

from evaluate.config.schema import Config
from evaluate.pipeline.stages import CorpusStage
from rag.core.cache import content_key
from rag.core.types import Corpus, Document, QAPair
from rag.qa.leakage import check_leakage, enforce_no_leakage, split_questions, training_texts

logger = logging.getLogger(__name__)


def _builtin(config: Config):
    from rag.corpus.synthetic import generate_corpus

    c = config.corpus
    return generate_corpus(
        seed=c.seed,
        num_people=c.num_people,
        num_organisations=c.num_organisations,
        num_towns=c.num_towns,
        num_distractors=c.num_distractors,
        train_phrasings=c.train_phrasings,
        attributes_per_entity=c.attributes_per_entity,
        news_per_entity=c.news_per_entity,
        noise_sentences=c.noise_sentences,
    )


def _own_documents(config: Config) -> tuple[list[Document], dict[str, Any]]:
    from rag.corpus.ingest import load_user_corpus

    c = config.corpus
    sources = list(c.paths) if c.source == "files" else [f"hf:{c.dataset}"]
    documents, report = load_user_corpus(
        sources,
        text_column=c.text_column,
        id_column=c.id_column,
        title_column=c.title_column,
        encoding_fallback=c.encoding_fallback,
        recursive=c.recursive,
        max_files=c.max_files,
        split=c.split,
        dataset_config=c.dataset_config,
        progress=config.eval.progress,
    )
    return documents, report.to_dict()


def _own_questions(config: Config, documents: list[Document], generate) -> tuple[list, dict]:
    q = config.qa
    if q.source == "file":
        from rag.qa.sets import load_qa_file

        pairs, report = load_qa_file(q.path, documents, q.on_error)
        details = {"qa_file": report.to_dict()}
    else:
        from rag.corpus.chunking import chunk_corpus
        from rag.qa.synthesis import synthesize_qa

        chunks = chunk_corpus(documents, "sentences", q.chunk_words, 0)
        pairs, stats = synthesize_qa(
            chunks,
            q.source,
            max_per_chunk=q.max_per_chunk,
            seed=q.split_seed,
            generate=generate,
            max_chunks=q.max_chunks,
        )
        details = {"synthesis": stats}
    unassigned = sum(not qa.split for qa in pairs)
    split = split_questions(pairs, q.eval_fraction, q.split_seed)
    if unassigned:  # say where the user's questions went, and how to change it
        to_eval = sum(
            qa.split == "eval" for qa, old in zip(split, pairs, strict=True) if not old.split
        )
        logger.info(
            "%d of %d questions had no split: %d go to evaluation and %d to training "
            '(qa.eval_fraction=%g; 1.0 evaluates all of them, or give rows a "split" field)',
            unassigned,
            len(pairs),
            to_eval,
            unassigned - to_eval,
            q.eval_fraction,
        )
    return split, details


def select_eval_questions(corpus: Corpus, max_questions: int, seed: int) -> list[QAPair]:
    """Built-in held-out questions, balanced over fact types (round robin), deterministic."""
    from rag.qa.sets import interleave

    by_kind: dict[str, list[QAPair]] = defaultdict(list)
    for qa in sorted(corpus.split("eval"), key=lambda q: q.qa_id):
        by_kind[qa.fact_id.rsplit("/", 1)[-1]].append(qa)
    rng = random.Random(seed)
    queues = []
    for kind in sorted(by_kind):
        rng.shuffle(by_kind[kind])
        queues.append(by_kind[kind])
    ordered = interleave(queues)
    if not ordered:
        raise ValueError(f"corpus '{corpus.name}' has no held-out (split=eval) questions")
    return ordered if max_questions == -1 else ordered[:max_questions]


def load_corpus_stage(config: Config, generate=None) -> CorpusStage:
    """Documents, training questions and held-out questions, leakage-checked.

    ``generate(prompt) -> (text, input_tokens, output_tokens)`` serves qa.source=lm and
    finetune.paraphrase_method=lm.
    """
    from rag.qa.sets import sample_questions

    started = time.perf_counter()
    q, f = config.qa, config.finetune
    details: dict[str, Any] = {}
    if config.corpus.source == "synthetic":
        corpus = _builtin(config)
        name, documents = corpus.name, corpus.documents
    else:
        documents, details["ingest"] = _own_documents(config)
        name = f"{config.corpus.source}:{','.join(config.corpus.paths) or config.corpus.dataset}"
    if q.source == "builtin":
        pairs = corpus.qa_pairs
    else:  # a question file, or questions generated from the documents (any corpus)
        pairs, more = _own_questions(config, documents, generate)
        details.update(more)
    train = [p for p in pairs if p.split == "train"]
    if q.source == "builtin":
        questions = select_eval_questions(corpus, q.max_eval_questions, q.sample_seed)
    else:
        held_out = [p for p in pairs if p.split == "eval"]
        questions = sample_questions(held_out, q.max_eval_questions, q.sample_seed)
    if f.paraphrases:
        train += _paraphrases(config, corpus if q.source == "builtin" else None, train, generate)
        details["paraphrases"] = f.paraphrases
    if not questions:
        from rag.qa.sets import QAFileError  # a user error: the CLI prints it on one line

        raise QAFileError(
            f"the corpus {name!r} yielded no held-out question: check qa.source, "
            "qa.eval_fraction and the question file"
        )
    leakage = check_leakage(
        training_texts(train), [p.question for p in questions], q.leakage_threshold
    )
    details["leakage"] = leakage.to_dict()
    enforce_no_leakage(leakage, allow=q.allow_leakage)
    fingerprint = content_key(
        [d.to_dict() for d in documents], [qa.to_dict() for qa in train + questions]
    )
    seconds = time.perf_counter() - started
    return CorpusStage(name, documents, train, questions, fingerprint, seconds, details)


def _paraphrases(config: Config, corpus, train: list[QAPair], generate) -> list[QAPair]:
    from rag.qa.paraphrase import builtin_extra_phrasings, paraphrase_questions

    f = config.finetune
    if f.paraphrase_method == "builtin":
        return builtin_extra_phrasings(corpus, f.paraphrases)
    extra, stats = paraphrase_questions(
        train, f.paraphrase_method, f.paraphrases, generate=generate
    )
    logger.info("paraphrase augmentation: %s", stats)
    return extra
