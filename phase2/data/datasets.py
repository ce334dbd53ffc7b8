"""Retrieval test collections in BEIR layout, found on a search path and validated.

A collection is a directory ``<name>/`` holding ``corpus.jsonl``, ``queries.jsonl``
and ``qrels/test.tsv``. It is looked for, in order, in

1. each directory of ``$PHASE2_DATA_DIR`` (``os.pathsep``-separated),
2. ``data/`` in the project,
3. ``../shared/datasets`` beside the project,
4. the Hugging Face hub (``datasets.load_dataset``) for the collections with a
   known hub id, when not offline; the download is written once to ``data/<name>``
   in BEIR layout and then read like any local collection.

Every problem is reported as a :class:`DatasetError` naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from phase2 import PROJECT_ROOT
from phase2.errors import DatasetError
from phase2.storage import files_digest

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_FILE = Path("qrels") / "test.tsv"
QRELS_HEADER = ("query-id", "corpus-id", "score")

#: Collections the shared folder holds; the ``default`` profile uses all five.
KNOWN_DATASETS = ("cranfield", "scifact", "nfcorpus", "squad-dev", "npl")

#: BEIR-format hub repositories (corpus/queries configs, and a ``-qrels`` twin).
HUB_IDS = {"scifact": "BeIR/scifact", "nfcorpus": "BeIR/nfcorpus"}

#: What kind of retrieval each shared collection is (its README has the provenance).
KINDS = {
    "cranfield": "aeronautics abstracts, expert queries (classic IR)",
    "scifact": "scientific claims against abstracts",
    "nfcorpus": "lay health questions against medical articles",
    "squad-dev": "questions against Wikipedia paragraphs",
    "npl": "physics abstracts, expert queries (classic IR)",
}


@dataclass(frozen=True)
class Collection:
    """One loaded collection: texts in file order and graded judgements.

    ``query_ids`` holds only judged queries (those in ``qrels/test.tsv``), in the
    order of ``queries.jsonl``. Document text is ``(title + " " + text).strip()``.
    """

    name: str
    path: Path
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    fingerprint: str
    empty_doc_ids: list[str] = field(default_factory=list)

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @property
    def n_judgements(self) -> int:
        return sum(len(docs) for docs in self.qrels.values())


def search_path() -> list[Path]:
    """Directories searched for collections, in order."""
    env = os.environ.get("PHASE2_DATA_DIR", "")
    dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    dirs += [PROJECT_ROOT / "data", PROJECT_ROOT.parent / "shared" / "datasets"]
    return dirs


def find_dataset(name: str) -> Path:
    """The first directory on the search path that holds collection ``name``."""
    if not name or "/" in name or name.startswith("."):
        raise DatasetError(f"invalid dataset name {name!r}: expected a plain name such as 'scifact'")
    tried = []
    for root in search_path():
        candidate = root / name
        if (candidate / CORPUS_FILE).is_file():
            return candidate
        tried.append(str(candidate))
    hub_error = _fetch_from_hub(name)
    if hub_error is None:
        return PROJECT_ROOT / "data" / name
    raise DatasetError(
        f"dataset {name!r} not found. Looked for {name}/{CORPUS_FILE} in: "
        + ", ".join(tried)
        + f"; Hugging Face hub: {hub_error}. Set PHASE2_DATA_DIR to a directory holding "
        f"{name}/ in BEIR layout. Collections shipped beside the project: {', '.join(KNOWN_DATASETS)}."
    )


def load_dataset(name: str) -> Collection:
    """Find and load collection ``name``, validating every file."""
    return load_beir_dir(find_dataset(name), name=name)


def load_beir_dir(path: Path, name: str | None = None) -> Collection:
    """Load and validate a BEIR-layout directory."""
    path = Path(path)
    name = name or path.name
    corpus_file, queries_file, qrels_file = path / CORPUS_FILE, path / QUERIES_FILE, path / QRELS_FILE
    for f in (corpus_file, queries_file, qrels_file):
        if not f.is_file():
            raise DatasetError(
                f"{f}: file missing (a BEIR collection needs {CORPUS_FILE}, {QUERIES_FILE}, {QRELS_FILE})")

    doc_ids, doc_texts, empty_doc_ids = [], [], []
    for lineno, record in _read_jsonl(corpus_file):
        text = _text_field(record, "text", corpus_file, lineno)
        title = _text_field(record, "title", corpus_file, lineno, required=False)
        full = f"{title} {text}".strip()
        doc_ids.append(record["_id"])
        doc_texts.append(full)
        if not full:
            empty_doc_ids.append(record["_id"])
    if not doc_ids:
        raise DatasetError(f"{corpus_file}: the corpus is empty")

    query_text, query_line = {}, {}
    for lineno, record in _read_jsonl(queries_file):
        query_text[record["_id"]] = _text_field(record, "text", queries_file, lineno)
        query_line[record["_id"]] = lineno

    qrels = _read_qrels(qrels_file, set(doc_ids), set(query_text))
    if not qrels:
        raise DatasetError(f"{qrels_file}: no judged queries")
    for qid in qrels:
        if not query_text[qid].strip():
            raise DatasetError(f"{queries_file}:{query_line[qid]}: judged query {qid!r} has empty text")
    query_ids = [qid for qid in query_text if qid in qrels]
    return Collection(
        name=name,
        path=path,
        doc_ids=doc_ids,
        doc_texts=doc_texts,
        query_ids=query_ids,
        query_texts=[query_text[q] for q in query_ids],
        qrels=qrels,
        fingerprint=_fingerprint([corpus_file, queries_file, qrels_file]),
        empty_doc_ids=empty_doc_ids,
    )


def _read_jsonl(path: Path):
    """Yield (line number, record) with a unique string ``_id``; blank lines are skipped."""
    seen: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            rid = record.get("_id")
            if isinstance(rid, int) and not isinstance(rid, bool):
                rid = record["_id"] = str(rid)
            if not isinstance(rid, str) or not rid:
                raise DatasetError(f"{path}:{lineno}: missing or empty '_id'")
            if rid in seen:
                raise DatasetError(f"{path}:{lineno}: duplicate _id {rid!r} (first at line {seen[rid]})")
            seen[rid] = lineno
            yield lineno, record


def _text_field(record: dict, key: str, path: Path, lineno: int, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise DatasetError(f"{path}:{lineno}: field {key!r} is {what}")
    return value


def _read_qrels(path: Path, doc_ids: set[str], query_ids: set[str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason})") from None
            if not line.strip():
                continue
            cols = line.split("\t")
            if lineno == 1:
                if tuple(cols) != QRELS_HEADER:
                    raise DatasetError(
                        f"{path}:1: expected header {' / '.join(QRELS_HEADER)} (tab-separated), got {line!r}")
                continue
            if len(cols) != 3:
                raise DatasetError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(cols)}: {line!r}")
            qid, did, score = cols
            try:
                grade = int(score)
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: score {score!r} is not an integer") from None
            if qid not in query_ids:
                raise DatasetError(f"{path}:{lineno}: query id {qid!r} is not in {QUERIES_FILE}")
            if did not in doc_ids:
                raise DatasetError(f"{path}:{lineno}: corpus id {did!r} is not in {CORPUS_FILE}")
            judged = qrels.setdefault(qid, {})
            if did in judged:
                raise DatasetError(f"{path}:{lineno}: pair ({qid!r}, {did!r}) judged twice")
            judged[did] = grade
    return qrels


def _fingerprint(files: list[Path]) -> str:
    return files_digest(files)[:16]


def _fetch_from_hub(name: str) -> str | None:
    """Materialize a hub collection into ``data/<name>``; return why not, or None on success."""
    if name not in HUB_IDS:
        return f"no hub id known for {name!r} (known: {', '.join(sorted(HUB_IDS))})"
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return "offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set)"
    repo = HUB_IDS[name]
    try:
        import datasets as hf

        corpus = hf.load_dataset(repo, "corpus", split="corpus")
        queries = hf.load_dataset(repo, "queries", split="queries")
        qrels = hf.load_dataset(f"{repo}-qrels", split="test")
    except Exception as exc:  # network, auth or format errors all mean: not available
        return f"{repo} could not be loaded ({type(exc).__name__}: {exc})"
    target = PROJECT_ROOT / "data" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        (tmp / "qrels").mkdir()
        with open(tmp / CORPUS_FILE, "w", encoding="utf-8") as fh:
            for row in corpus:
                fh.write(json.dumps({"_id": row["_id"], "title": row.get("title", ""), "text": row["text"]}) + "\n")
        with open(tmp / QUERIES_FILE, "w", encoding="utf-8") as fh:
            for row in queries:
                fh.write(json.dumps({"_id": row["_id"], "text": row["text"]}) + "\n")
        with open(tmp / QRELS_FILE, "w", encoding="utf-8") as fh:
            fh.write("\t".join(QRELS_HEADER) + "\n")
            for row in qrels:
                fh.write(f"{row['query-id']}\t{row['corpus-id']}\t{int(row['score'])}\n")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


def available_datasets() -> list[str]:
    """Collection names found on the search path, plus those the hub can provide."""
    names = {p.parent.name for root in search_path() if root.is_dir() for p in root.glob(f"*/{CORPUS_FILE}")}
    return sorted(names | set(HUB_IDS))
