"""Plain data types shared by every stage: documents, chunks, questions, retrieval hits.

They carry no behaviour beyond (de)serialisation so that ``finetune`` and ``evaluate`` can use
them without pulling in models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    """One source document of the domain corpus."""

    doc_id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Chunk:
    """A contiguous piece of one document, the unit that is embedded and retrieved."""

    chunk_id: str
    doc_id: str
    text: str
    char_start: int
    char_end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QAPair:
    """A question with its gold answers (first is canonical, the rest are accepted aliases).

    ``fact_id`` groups the phrasings of one fact, ``phrasing`` numbers them, and ``split`` says
    whether the pair may be used for training (``train``) or is held out (``eval``).
    """

    qa_id: str
    question: str
    answers: list[str]
    supporting_doc_ids: list[str]
    fact_id: str = ""
    phrasing: int = 0
    split: str = "eval"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Corpus:
    """The documents of a domain and the question/answer pairs about them."""

    name: str
    documents: list[Document]
    qa_pairs: list[QAPair]

    def split(self, name: str) -> list[QAPair]:
        return [qa for qa in self.qa_pairs if qa.split == name]
