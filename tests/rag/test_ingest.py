"""Ingestion of user documents: every format, stable ids, the report, and every bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rag.corpus.chunking import chunk_corpus
from rag.corpus.formats import CorpusError, html_to_text
from rag.corpus.ingest import IngestReport, document_id, load_user_corpus

EXAMPLE = Path(__file__).parents[1] / "data" / "byoc" / "docs"
ID_PATTERN = re.compile(r"[a-z0-9-]+-[0-9a-f]{8}")


def make_pdf(path: Path, text: str | None = None, image: bool = False, password: str | None = None):
    """A one-page PDF with a text layer, an image only, or nothing; optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject

    def name(value: str) -> NameObject:
        return NameObject(value)

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    resources, operators = DictionaryObject(), b""
    if text is not None:
        font = DictionaryObject(
            {
                name("/Type"): name("/Font"),
                name("/Subtype"): name("/Type1"),
                name("/BaseFont"): name("/Helvetica"),
            }
        )
        resources[name("/Font")] = DictionaryObject({name("/F1"): writer._add_object(font)})
        operators += f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET\n".encode()
    if image:
        pixel = DecodedStreamObject()
        pixel.set_data(b"\x80")
        pixel.update(
            {
                name("/Type"): name("/XObject"),
                name("/Subtype"): name("/Image"),
                name("/Width"): NumberObject(1),
                name("/Height"): NumberObject(1),
                name("/ColorSpace"): name("/DeviceGray"),
                name("/BitsPerComponent"): NumberObject(8),
            }
        )
        resources[name("/XObject")] = DictionaryObject({name("/Im1"): writer._add_object(pixel)})
        operators += b"q 100 0 0 100 20 20 cm /Im1 Do Q\n"
    page[name("/Resources")] = resources
    contents = DecodedStreamObject()
    contents.set_data(operators)
    page[name("/Contents")] = writer._add_object(contents)
    if password is not None:
        writer.encrypt(user_password=password, algorithm="AES-128")
    with open(path, "wb") as handle:
        writer.write(handle)


@pytest.fixture()
def mixed(tmp_path) -> Path:
    """One file per supported format, in a nested folder."""
    root = tmp_path / "corpus"
    (root / "notes").mkdir(parents=True)
    (root / "readme.txt").write_text("Plain text about the Kessel harbour.\n", encoding="utf-8")
    (root / "notes" / "guide.md").write_text("# Guide\n\nThe guide text.\n", encoding="utf-8")
    (root / "page.html").write_text(
        "<html><head><title>The Page</title><style>p{}</style><script>var x = 1;</script>"
        "</head><body><p>Visible &amp; kept.</p><div hidden>secret</div>"
        "<noscript>enable js</noscript><p>Second paragraph.</p></body></html>",
        encoding="utf-8",
    )
    make_pdf(root / "report.pdf", text="The annual report of 1999")
    rows = [
        {"body": "Row one text.", "key": "a", "name": "First"},
        {"body": "Row two.", "key": "b", "name": "Second"},
    ]
    (root / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (root / "rows.json").write_text(json.dumps([{"body": "From a JSON array."}]), encoding="utf-8")
    (root / "table.csv").write_text("body,extra\nA CSV row.,1\n,2\n", encoding="utf-8")
    import pandas as pd

    pd.DataFrame({"body": ["A parquet row."]}).to_parquet(root / "table.parquet")
    return root


def by_format(documents, fmt):
    return [d for d in documents if d.metadata["format"] == fmt]


def test_every_format_is_read_with_metadata(mixed):
    documents, report = load_user_corpus(mixed, text_column="body", title_column=None)
    assert report.documents_by_format == {
        "csv": 1, "html": 1, "json": 1, "jsonl": 2, "md": 1, "parquet": 1, "pdf": 1, "txt": 1,
    }  # fmt: skip
    assert report.documents == len(documents) == 9
    assert report.empty_rows == 1  # the CSV row with an empty body
    (html,) = by_format(documents, "html")
    assert html.text == "Visible & kept.\n\nSecond paragraph."
    assert html.title == "The Page"
    (md,) = by_format(documents, "md")
    assert md.title == "Guide" and md.metadata["path"] == "notes/guide.md"
    (pdf,) = by_format(documents, "pdf")
    assert pdf.text == "The annual report of 1999" and pdf.metadata["pages"] == 1
    rows = by_format(documents, "jsonl")
    assert [d.text for d in rows] == ["Row one text.", "Row two."]
    assert [d.metadata["row"] for d in rows] == [0, 1]
    assert all(ID_PATTERN.fullmatch(d.doc_id) for d in documents)
    assert rows[0].doc_id.startswith("rows-jsonl-r0-") and rows[0].title == "rows.jsonl row 0"
    assert report.words == sum(len(d.text.split()) for d in documents)
    assert not report.skipped


def test_id_and_title_columns(mixed):
    documents, _ = load_user_corpus(
        mixed / "rows.jsonl", text_column="body", id_column="key", title_column="name"
    )
    assert [(d.doc_id, d.title) for d in documents] == [("a", "First"), ("b", "Second")]


def test_duplicate_ids_from_the_id_column_are_an_error(tmp_path):
    path = tmp_path / "dupes.jsonl"
    path.write_text('{"text": "one", "id": 7}\n{"text": "two", "id": 7}\n')
    with pytest.raises(CorpusError, match=r"duplicate document id '7'.*unique"):
        load_user_corpus(path, id_column="id")


def test_ids_are_stable_under_moving_and_change_with_content(mixed, tmp_path):
    first, _ = load_user_corpus(mixed, text_column="body")
    moved = shutil.copytree(mixed, tmp_path / "elsewhere" / "copy")
    second, _ = load_user_corpus(moved, text_column="body")
    assert [d.doc_id for d in first] == [d.doc_id for d in second]
    (moved / "readme.txt").write_text("Edited text.", encoding="utf-8")
    third, _ = load_user_corpus(moved, text_column="body")
    changed = {d.doc_id for d in first} ^ {d.doc_id for d in third}
    assert len(changed) == 2 and all(i.startswith("readme-txt-") for i in changed)
    assert document_id("a/b.md", "x") != document_id("a-b.md", "x")


def test_glob_list_and_overlapping_entries(mixed):
    documents, report = load_user_corpus(str(mixed / "**" / "*.md"))
    assert [d.metadata["path"] for d in documents] == ["notes/guide.md"]
    documents, report = load_user_corpus(
        [mixed / "readme.txt", mixed, str(mixed / "*.txt")], text_column="body"
    )
    assert sum(d.metadata["format"] == "txt" for d in documents) == 1  # one file, listed thrice
    assert report.sources[0].endswith("readme.txt")


def test_hidden_files_non_recursive_and_max_files(mixed):
    (mixed / ".hidden.txt").write_text("invisible")
    documents, report = load_user_corpus(mixed, text_column="body", recursive=False)
    assert "notes/guide.md" not in [d.metadata["path"] for d in documents]
    assert not any(".hidden" in d.metadata["path"] for d in documents)
    documents, report = load_user_corpus(mixed, text_column="body", max_files=2)
    assert report.files_found == 2 and report.files_beyond_max == 6


def test_missing_path_names_it_and_says_what_to_do(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CorpusError, match=rf"{re.escape(str(missing))}' does not exist.*glob"):
        load_user_corpus(missing)
    with pytest.raises(CorpusError, match="matched no files"):
        load_user_corpus(str(tmp_path / "*.md"))
    with pytest.raises(CorpusError, match="corpus.paths is empty"):
        load_user_corpus([])


def test_empty_folder_and_folder_without_supported_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match=rf"folder {re.escape(str(empty))} is empty"):
        load_user_corpus(empty)
    (empty / "a.docx").write_bytes(b"PK\x03\x04")
    (empty / "b.docx").write_bytes(b"PK\x03\x04")
    with pytest.raises(CorpusError, match=r"none of the 2 files.*'\.docx': 2.*pandoc"):
        load_user_corpus(empty)


def test_bad_files_are_skipped_with_reasons(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.txt").write_text("A good document.", encoding="utf-8")
    (root / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (root / "empty.md").write_bytes(b"")
    (root / "blank.md").write_text("   \n\n")
    (root / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "script.html").write_text("<script>only()</script>")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    make_pdf(root / "locked.pdf", text="secret", password="hunter2")
    make_pdf(root / "scan.pdf", image=True)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    documents, report = load_user_corpus(root)
    assert [d.text for d in documents] == ["A good document."]
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert reasons["binary.txt"].startswith("binary file")
    assert reasons["empty.md"] == "empty file" and reasons["blank.md"] == "empty file"
    assert "not valid UTF-8 (byte 0xe9 at offset 3)" in reasons["latin1.txt"]
    assert "corpus.encoding_fallback" in reasons["latin1.txt"]
    assert reasons["script.html"].startswith("no text")
    assert reasons["photo.jpg"] == "unsupported extension .jpg"
    assert reasons["locked.pdf"].startswith("encrypted PDF (a password is required)")
    assert reasons["scan.pdf"].startswith("PDF has no text layer (1 page(s), image-only")
    assert reasons["broken.pdf"].startswith("unreadable PDF")
    counts = report.to_dict()["skipped_by_reason"]
    assert counts["empty file"] == 2 and sum(counts.values()) == len(report.skipped) == 9


def test_encodings(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "bom.txt").write_bytes("\ufeffWith a BOM".encode())
    (tmp_path / "wide.txt").write_bytes("UTF-16 text".encode("utf-16"))
    documents, report = load_user_corpus(tmp_path, encoding_fallback="cp1252")
    assert sorted(d.text for d in documents) == ["Café crème", "UTF-16 text", "With a BOM"]
    assert not report.skipped


def test_pdf_with_only_an_owner_password_is_read(tmp_path):
    make_pdf(tmp_path / "owner.pdf", text="Readable text", password="")
    documents, _ = load_user_corpus(tmp_path)
    assert documents[0].text == "Readable text"


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("fine")
    (tmp_path / "b.txt").write_text("locked")
    original = Path.read_bytes

    def read_bytes(self):
        if self.name == "b.txt":
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    documents, report = load_user_corpus(tmp_path)
    assert [d.text for d in documents] == ["fine"]
    assert report.skipped[0].reason == "unreadable: Permission denied"


def test_all_files_skipped_is_an_error_listing_reasons(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\x00\x01")
    make_pdf(tmp_path / "scan.pdf", image=True)
    with pytest.raises(CorpusError, match=r"no document could be read; 2 skipped.*binary file"):
        load_user_corpus(tmp_path)


def test_missing_text_column_names_file_column_and_available_columns(mixed):
    with pytest.raises(CorpusError) as err:
        load_user_corpus(mixed / "rows.jsonl", text_column="content")
    message = str(err.value)
    assert "rows.jsonl" in message and "'content'" in message
    assert "available columns: body, key, name" in message and "corpus.text_column" in message
    with pytest.raises(CorpusError, match="'nokey' \\(corpus.id_column\\)"):
        load_user_corpus(mixed / "rows.jsonl", text_column="body", id_column="nokey")


def test_saved_dataset_folder_and_offline_hub_name(tmp_path):
    from datasets import Dataset, DatasetDict

    table = Dataset.from_dict({"text": ["First saved row.", "Second saved row."], "id": ["x", "y"]})
    table.save_to_disk(tmp_path / "saved")
    documents, report = load_user_corpus(tmp_path / "saved", id_column="id")
    assert [(d.doc_id, d.metadata["format"]) for d in documents] == [
        ("x", "dataset"),
        ("y", "dataset"),
    ]
    DatasetDict({"test": table}).save_to_disk(tmp_path / "dict")
    with pytest.raises(CorpusError, match="no split 'train'; available: test"):
        load_user_corpus(tmp_path / "dict")
    documents, _ = load_user_corpus(tmp_path / "dict", split="test")
    assert len(documents) == 2
    with pytest.raises(
        CorpusError, match="cannot load the dataset 'hf:nobody/no-such-set'.*network"
    ):
        load_user_corpus("hf:nobody/no-such-set")


def test_report_records_chunking_and_serialises(mixed):
    from rag.core.tiny import build_tiny_tokenizer

    documents, report = load_user_corpus(mixed, text_column="body")
    chunks = chunk_corpus(documents, "words", 4, 1)
    report.record_chunking(documents, chunks, "words", 4, 1, tokenizer=build_tiny_tokenizer())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["chunking"]["chunks"] == len(chunks) > len(documents)
    assert data["chunking"]["max_chunk_words"] == 4
    assert data["tokens"] > data["words"]  # the tiny tokenizer splits words into pieces
    assert data["documents"] == 9 and isinstance(IngestReport(sources=[]).to_dict(), dict)


def test_worked_example_folder():
    documents, report = load_user_corpus(EXAMPLE)
    assert sorted(d.metadata["path"] for d in documents) == [
        "faq.txt",
        "handbook/onboarding.md",
        "history.html",
    ]
    history = next(d for d in documents if d.metadata["format"] == "html")
    assert "tracking" not in history.text and "color" not in history.text
    assert history.text.startswith("Home | About\n\nOur history\n\nHarbourview Labs was founded")


def test_html_visible_text_edge_cases():
    text, title = html_to_text(
        "<title>T</title><body><p>a<br>b</p><template><p>no</p></template>"
        "<svg><text>no</text></svg><ul><li>one</li><li>two</li></ul><p>x&nbsp;&lt;y</p>"
    )
    assert title == "T"
    assert text == "a\nb\n\none\n\ntwo\n\nx <y"


def test_a_symlink_loop_is_skipped_with_a_reason(tmp_path):
    from rag.corpus.ingest import corpus_files, load_user_corpus

    (tmp_path / "good.txt").write_text("The Orbis lighthouse was built in 1871 on Tessel Point.")
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    documents, report = load_user_corpus([tmp_path])
    assert [d.metadata["path"] for d in documents] == ["good.txt"]
    assert sorted((Path(s.path).name, s.reason) for s in report.skipped) == [
        ("a.txt", "a symlink loop: it names no file"),
        ("b.txt", "a symlink loop: it names no file"),
    ]
    assert [f.name for f in corpus_files([tmp_path])] == ["good.txt"]


ROWS = [
    {"text": "The ferry to Kessel leaves at dawn."},
    {"text": "The harbour master is Ines Varga."},
    {"text": "Nets are mended on Thursdays."},
]


def test_a_malformed_jsonl_line_is_skipped_and_named(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(ROWS[0]), '{"text": "cut short', json.dumps(ROWS[1]), json.dumps(ROWS[2])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        documents, report = load_user_corpus(path)
    assert [d.text for d in documents] == [r["text"] for r in ROWS]
    assert [d.metadata["row"] for d in documents] == [0, 2, 3]  # rows of the whole file
    assert report.malformed_lines == 1
    assert report.malformed_line_numbers == {str(path): [2]}
    assert report.to_dict()["malformed_lines"] == 1 and not report.skipped
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # datasets' parse error
    assert str(path) in warning and "(line 2)" in warning and "kept its 3 valid rows" in warning
    # the valid rows keep the ids they have once the bad line is fixed
    lines[1] = json.dumps({"text": "Repaired row."})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fixed, fixed_report = load_user_corpus(path)
    assert fixed_report.malformed_lines == 0
    assert [d.doc_id for d in fixed if d.metadata["row"] != 1] == [d.doc_id for d in documents]


def test_blank_lines_and_non_objects_in_jsonl(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    # 1 row, 2 blank, 3 broken, 4 row, 5 a number, 6 a list, 7 row, 8 broken
    lines = [json.dumps(ROWS[0]), "", '{"text": }', json.dumps(ROWS[1]), "42", '["a"]']
    lines += [json.dumps(ROWS[2]), "{"]
    path.write_text("\n".join(lines), encoding="utf-8")
    with caplog.at_level("WARNING"):
        documents, report = load_user_corpus(path)
    assert [d.text for d in documents] == [r["text"] for r in ROWS]
    assert [d.metadata["row"] for d in documents] == [0, 2, 5]  # blank lines are no rows
    assert report.malformed_lines == 4
    assert report.malformed_line_numbers == {str(path): [3, 5, 6, 8]}
    assert any("(lines 3, 5, 6, 8)" in r.getMessage() for r in caplog.records)


def test_many_malformed_lines_are_listed_first_few_and_counted(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + "oops\n" * 12, encoding="utf-8")
    with caplog.at_level("WARNING"):
        documents, report = load_user_corpus(path)
    assert len(documents) == 1 and report.malformed_lines == 12
    assert report.malformed_line_numbers[str(path)] == list(range(2, 12))  # the first ten
    assert any("(lines 2, 3, 4, 5, 6, ... (12 in all))" in r.getMessage() for r in caplog.records)


def test_a_jsonl_file_without_a_valid_line_is_skipped_and_alone_an_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": \nnot json\n[1]\n', encoding="utf-8")
    (tmp_path / "good.txt").write_text("A good document.", encoding="utf-8")
    documents, report = load_user_corpus(tmp_path)
    assert [d.text for d in documents] == ["A good document."]
    (skipped,) = report.skipped
    assert skipped.reason.startswith("no line is a JSON object (3 malformed: lines 1, 2, 3)")
    with pytest.raises(CorpusError) as err:
        load_user_corpus(tmp_path / "bad.jsonl")
    message = str(err.value)
    assert "\n" not in message and "bad.jsonl" in message and "lines 1, 2, 3" in message


def test_identical_documents_are_dropped_counted_and_still_resolvable(tmp_path, caplog):
    from rag.qa.sets import load_qa_file

    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("Alpha is the first letter.", encoding="utf-8")
    (root / "b.txt").write_text("Alpha is the first letter.", encoding="utf-8")  # = a.txt
    (root / "c.md").write_text("Gamma comes third.", encoding="utf-8")
    rows = ["Alpha is the first letter.", "Delta is fourth.", "Delta is fourth."]  # 2 repeats
    (root / "d.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in rows))
    with caplog.at_level("WARNING"):
        documents, report = load_user_corpus(root)
    assert [(d.metadata["path"], d.metadata["row"]) for d in documents] == [
        ("a.txt", None),
        ("c.md", None),
        ("d.jsonl", 1),
    ]
    assert report.duplicate_documents == 3 and report.documents == 3
    assert report.documents_by_format == {"txt": 1, "md": 1, "jsonl": 1}
    assert any("dropped 3 duplicate document(s)" in r.getMessage() for r in caplog.records)
    kept_a = documents[0]
    dropped_b = document_id("b.txt", "Alpha is the first letter.")
    assert [d["doc_id"] for d in kept_a.metadata["duplicates"]] == [
        dropped_b,
        document_id("d.jsonl", "Alpha is the first letter.", 0),
    ]
    questions = tmp_path / "q.jsonl"
    refs = ["b.txt", "b", dropped_b, "a"]  # path, stem and id of the dropped copy; the kept one
    rows = [
        {"question": f"Which is first ({n})?", "answer": "Alpha", "doc_id": r}
        for n, r in enumerate(refs)
    ]
    questions.write_text("\n".join(json.dumps(row) for row in rows))
    pairs, qa_report = load_qa_file(questions, documents)
    assert qa_report.unknown_doc_ids == 0
    assert [p.supporting_doc_ids for p in pairs] == [[kept_a.doc_id]] * 4
