"""MMSI-Bench (Yang et al., arXiv 2505.23764): 1,000 multiple-choice questions over several real images.

Files: ``MMSI_Bench.parquet`` (``RunsenXu/MMSI-Bench``): ``id``, ``images`` (a list of encoded JPEGs,
sent in list order before the text), ``question_type``, ``question`` (options inside it, as
``<question>\\nOptions: A: …, B: …, C: …, D: …``), ``answer`` (a letter), ``thought`` (unused).

Scoring, as the authors publish it (README "Answer Extraction", their lmms-eval task): the text becomes
the first content of ````x````, then of ```x```, then of ``{x}`` when present; the answer is the first
upper-case ``A``-``D`` standing as a word and not followed by whitespace + a letter; correct when it
equals the lower-cased ``answer``. Accuracy per ``question_type``; overall = correct / total over all
questions (micro, not the mean of the types). docs/benchmarks.md gives the sources and worked cases.

``--scorer spatialladder``: the release's answer-tag policy (the first complete ``<answer>``), then
the authors' rule above. The SpatialLadder release never evaluated MMSI-Bench, so there is no release
rule to reproduce; refusing instead would fail every ``--benchmarks all --scorer spatialladder`` run
(the paper-comparison setting) after its generation, and a report re-scored with ``spatialladder``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spatialladder.evaluation.benchmarks import base
from spatialladder.evaluation.benchmarks.scoring_rules import ScoringInputError, str_field

FILE = "MMSI_Bench.parquet"
COLUMNS: tuple[str, ...] = ("id", "images", "question_type", "question", "answer")
QUESTION_TYPES: tuple[str, ...] = (
    "Positional Relationship (Cam.\u2013Cam.)",
    "Positional Relationship (Obj.\u2013Obj.)",
    "Positional Relationship (Reg.\u2013Reg.)",
    "Positional Relationship (Cam.\u2013Obj.)",
    "Positional Relationship (Obj.\u2013Reg.)",
    "Positional Relationship (Cam.\u2013Reg.)",
    "Attribute (Meas.)",
    "Attribute (Appr.)",
    "Motion (Cam.)",
    "Motion (Obj.)",
    "MSR",
)
# lmms-eval msr_bench.yaml post_prompt / the README: after the stripped question, on a new line.
POST_PROMPT = "Answer with the option's letter from the given choices directly. Enclose the option's letter within ``."

# Each wrapper found replaces the text by its FIRST content, in this order (README / the authors'
# lmms-eval task; the repo's VLMEvalKit copy lacks the braces step: docs/benchmarks.md).
_WRAPPERS = (re.compile(r"``([^`]*)``"), re.compile(r"`([^`]*)`"), re.compile(r"\{([^}]*)\}"))
# Upper-case A-D as a word, not followed by whitespace + a letter ("A chair", "B is" are skipped).
_LETTER = re.compile(r"\b[A-D]\b(?!\s[a-zA-Z])")
# "Options: A: sofa, B: lamp, ...": an option starts at "<letter>: " at the start or after ", ".
_OPTIONS_RE = re.compile(r"\n?\s*Options:\s*(.*)\Z", re.DOTALL)
_OPTION_START = re.compile(r"(?:^|,\s*)([A-D]):\s*")


def extract(reply: str) -> str | None:
    """``extract_single_choice_with_word_boundary``: the letter A-D, or None (scored 0).

    ``"``C``"`` -> C, ``"\\boxed{C}"`` -> C, ``"The answer is (B)."`` -> B, ``"b"`` -> None,
    ``"A chair"`` -> None, ``"`code` then C"`` -> None (the backtick content replaces the reply).
    """
    text = reply
    for wrapper in _WRAPPERS:
        match = wrapper.search(text)
        if match:
            text = match.group(1)
    match = _LETTER.search(text)
    return match.group() if match else None


def split_options(question: str) -> tuple[str, list[str]] | None:
    """(stem, ``["A. sofa", ...]``) from ``<stem>\\nOptions: A: sofa, B: lamp, ...``, or None unless
    the options are A, B, ... in order. For the project's thinking / direct prompts only."""
    match = _OPTIONS_RE.search(question)
    if not match:
        return None
    tail = match.group(1).strip()
    starts = list(_OPTION_START.finditer(tail))
    letters = [m.group(1) for m in starts]
    if len(letters) < 2 or letters != list("ABCD"[: len(letters)]):
        return None
    ends = [m.start() for m in starts[1:]] + [len(tail)]
    options = [f"{m.group(1)}. {tail[m.end():end].strip()}" for m, end in zip(starts, ends, strict=True)]
    return question[: match.start()].strip(), options


class MMSIBench(base.Benchmark):
    NAME = "MMSI-Bench"
    FOLDER_NAMES = ("MMSI-Bench",)
    ALIASES = ("mmsi",)
    QUESTION_TYPES = QUESTION_TYPES
    REQUIRED_FIELDS = ("question_type", "answer")
    RECORD_DROP = ("images",)
    REFERENCE_SCORES = (
        base.ReferenceScore("Qwen2.5-VL-3B-Instruct", 26.5, "InternRobotics/MMSI-Bench README leaderboard"),
        base.ReferenceScore("Qwen2.5-VL-7B-Instruct", 25.9, "InternRobotics/MMSI-Bench README leaderboard"),
        base.ReferenceScore("Random guessing", 25.0, "InternRobotics/MMSI-Bench README leaderboard"),
    )

    def canonical_type(self, value: str) -> str:
        # The authors' metric names use an en dash ("Cam.–Obj."); their lmms-eval task maps the
        # hyphen spelling onto it the same way. The file's own spelling is not confirmed: accept both.
        return value.replace(".-", ".\u2013")

    def load_docs(self, data_root: str | Path, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Every question (or a seeded ``limit`` subset), its embedded images as the doc's media."""
        root = base.find_benchmark_dir(data_root, self.FOLDER_NAMES, lambda d: (d / FILE).is_file(), self.NAME)
        path = root / FILE
        base.require_columns(base.parquet_columns([path]), COLUMNS, self.NAME, path.name)
        docs = base.read_parquet_rows([path])
        for doc in docs:
            try:
                self.target(doc)  # type and answer letter, before any generation
            except ScoringInputError as err:
                raise base.BenchmarkDataError(f"{self.NAME} {FILE} row id={doc.get('id')}: {err}") from None
            images = [base.image_bytes_of(cell) for cell in doc["images"] or []]
            if not images:
                raise base.BenchmarkDataError(f"{self.NAME} {FILE} row id={doc.get('id')}: empty `images`")
            doc["benchmark"] = self.NAME
            doc["_media"] = [base.MediaItem("image", data=data) for data in images]
        base.assign_doc_ids(docs, [d["id"] for d in docs])
        return base.seeded_subset(docs, limit, seed)

    def prompt_text(self, doc: Mapping[str, Any], prompt_kind: str) -> str:
        base.check_prompt_kind(prompt_kind)
        question = str(doc["question"])
        if prompt_kind == "official":
            return f"{question.strip()}\n{POST_PROMPT}"
        split = split_options(question)
        if split is None:  # options we cannot split stay in the question; the MCQ instruction follows
            return base.shared_prompt(question.strip(), None, prompt_kind, answer_format="mcq")
        return base.shared_prompt(split[0], split[1], prompt_kind, answer_format="mcq")

    def target(self, record: Mapping[str, Any]) -> str:
        """The lower-cased answer letter (the authors' ``answer.lower().replace("\\n", " ").strip()``)."""
        self.question_type(record)
        answer = str_field(record, "answer")
        gt = answer.lower().replace("\n", " ").strip()
        if gt not in ("a", "b", "c", "d"):
            raise ScoringInputError("answer", f"expected an option letter A-D, got {answer!r}")
        return gt

    def score_official(self, text: str, target: str) -> float:
        letter = extract(text)
        return 1.0 if letter is not None and letter.lower() == target else 0.0
