"""Hand-worked cases for the extended benchmarks' rules (VSI-Bench-Debiased, MMSI-Bench, MindCube-Tiny),
through their benchmark modules and the registry (score_sample / aggregate by name).

Every expected value is worked out by hand from docs/benchmarks.md and the authors' code it cites.
"""

from __future__ import annotations

from typing import Any

import pytest

from spatialladder.evaluation.benchmarks import BENCHMARKS, get_benchmark
from spatialladder.evaluation.benchmarks.mindcube import RAW_QA_INSTRUCTION as MINDCUBE_RAW_QA_INSTRUCTION
from spatialladder.evaluation.benchmarks.mindcube import clean as mindcube_clean
from spatialladder.evaluation.benchmarks.mindcube import extract as mindcube_extract
from spatialladder.evaluation.benchmarks.mindcube import official_prompt as mindcube_official_prompt
from spatialladder.evaluation.benchmarks.mindcube import setting as mindcube_setting
from spatialladder.evaluation.benchmarks.mindcube import split_inline_options
from spatialladder.evaluation.benchmarks.mmsibench import QUESTION_TYPES as MMSI_QUESTION_TYPES
from spatialladder.evaluation.benchmarks.mmsibench import extract as mmsi_extract
from spatialladder.evaluation.benchmarks.mmsibench import split_options
from spatialladder.evaluation.scoring import ScoringInputError, aggregate, score_sample

VSI_DEBIASED, MMSI, MINDCUBE = "VSI-Bench-Debiased", "MMSI-Bench", "MindCube-Tiny"

CAM_OBJ = "Positional Relationship (Cam.\u2013Obj.)"  # en dash, as the authors' metric names


def vsi_debiased_score(record: dict[str, Any], pred: str, scorer: str = "official") -> float:
    return score_sample(VSI_DEBIASED, record, pred, scorer)


def vsi_debiased_aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    return aggregate(VSI_DEBIASED, records)


def mmsi_score(record: dict[str, Any], pred: str, scorer: str = "official") -> float:
    return score_sample(MMSI, record, pred, scorer)


def mmsi_aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    return aggregate(MMSI, records)


def mmsi_question_type(record: dict[str, Any]) -> str:
    return BENCHMARKS[MMSI].question_type(record)


def mmsi_official_prompt(question: str) -> str:
    return BENCHMARKS[MMSI].prompt_text({"question": question}, "official")


def mindcube_score(record: dict[str, Any], pred: str, scorer: str = "official") -> float:
    return score_sample(MINDCUBE, record, pred, scorer)


def mindcube_aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    return aggregate(MINDCUBE, records)


def mmsi(pred: str, answer: str = "B", qtype: str = CAM_OBJ, scorer: str = "official") -> float:
    return mmsi_score({"id": 7, "question_type": qtype, "answer": answer}, pred, scorer)


def mc(pred: str, gt: str = "B", item_id: str = "among_group002_q0_1_1", scorer: str = "official") -> float:
    return mindcube_score({"id": item_id, "gt_answer": gt}, pred, scorer)


def test_registered_after_the_six_with_reference_scores() -> None:
    assert list(BENCHMARKS)[6:] == [VSI_DEBIASED, MMSI, MINDCUBE]
    assert get_benchmark("vsi-debiased").NAME == VSI_DEBIASED and get_benchmark("mmsi").NAME == MMSI
    assert get_benchmark("MindCube").NAME == MINDCUBE
    assert len(MMSI_QUESTION_TYPES) == 11
    refs = {(name, r.model): r.overall for name in (VSI_DEBIASED, MMSI, MINDCUBE)
            for r in BENCHMARKS[name].REFERENCE_SCORES}  # fmt: skip
    assert refs[(VSI_DEBIASED, "Qwen2.5-VL-3B-Instruct")] == 22.7
    assert refs[(VSI_DEBIASED, "Qwen2.5-VL-7B-Instruct")] == 29.6
    assert refs[(MMSI, "Qwen2.5-VL-3B-Instruct")] == 26.5
    assert refs[(MINDCUBE, "Qwen2.5-VL-3B-Instruct")] == 37.81
    assert all(r.source for name in (VSI_DEBIASED, MMSI, MINDCUBE) for r in BENCHMARKS[name].REFERENCE_SCORES)


# ------------------------------------------------------------------------------------------------
# VSI-Bench-Debiased: VSI-Bench's scorer, a pruned row refused
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qtype", "gt", "pred", "expected"),
    [
        ("route_planning", "B", "B. turn left", 1.0),  # first space piece "B." -> "B"
        ("obj_appearance_order", "B", "b", 1.0),  # case-insensitive
        ("obj_appearance_order", "B", "(B)", 0.0),
        ("object_counting", "10", "12", 0.6),  # MRA: 0.2 is not <= 1 - 0.8 in float64
        ("object_size_estimation", "120", "120cm", 0.0),  # float("120cm") fails
        ("room_size_estimation", "20", "<answer>25</answer>", 0.6),  # policy 1, then MRA
    ],
)
def test_vsi_debiased_scores_as_vsi_bench(qtype: str, gt: str, pred: str, expected: float) -> None:
    record = {"id": 3, "question_type": qtype, "ground_truth": gt, "options": [], "pruned": False}
    assert vsi_debiased_score(record, pred) == expected


def test_vsi_debiased_refuses_pruned_rows() -> None:
    record = {"question_type": "route_planning", "ground_truth": "B", "pruned": True}
    for scorer in ("official", "spatialladder"):
        with pytest.raises(ScoringInputError, match="pruned") as info:
            vsi_debiased_score(record, "B", scorer)
        assert info.value.field == "pruned"
    assert vsi_debiased_score({"question_type": "route_planning", "ground_truth": "B"}, "B") == 1.0


def test_vsi_debiased_spatialladder_scorer_is_the_release_vsi_rule() -> None:
    """The release's VSI-Bench rule on VSI rows: "a" reads as 1 there (official: float("a") fails)."""
    record = {"question_type": "object_counting", "ground_truth": "1", "pruned": False}
    assert vsi_debiased_score(record, "a chair", "spatialladder") == 1.0
    assert vsi_debiased_score(record, "a chair", "official") == 0.0
    assert score_sample("VSI-Bench", record, "a chair", "spatialladder") == 1.0


def test_vsi_debiased_aggregation() -> None:
    scores: dict[str, list[float]] = {
        "object_rel_direction_easy": [1.0, 0.0],  # 0.5
        "object_rel_direction_hard": [1.0],  # 1.0 -> object_rel_direction = 0.75 (medium absent)
        "route_planning": [0.0, 1.0, 1.0, 1.0],  # 0.75
        "object_counting": [0.6, 0.6],
    }
    records = [{"question_type": t, "score": s, "pruned": False} for t, v in scores.items() for s in v]
    out = vsi_debiased_aggregate(records)
    assert out["benchmark"] == VSI_DEBIASED and out["scorer"] == "official" and out["n"] == 9
    assert out["per_type"]["object_rel_direction"] == pytest.approx(75.0)
    assert out["groups"]["MCQ"] == pytest.approx(75.0)  # mean of 0.75 (rel_direction) and 0.75
    assert out["groups"]["NQ"] == pytest.approx(60.0)
    assert out["overall"] == pytest.approx(70.0)  # (0.75 + 0.75 + 0.6) / 3 tasks; the sample mean is 6.2 / 9


# ------------------------------------------------------------------------------------------------
# MMSI-Bench
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        ("``C``", "C"),
        ("`D`", "D"),
        ("The answer is `A`.", "A"),
        ("{B}", "B"),  # README / lmms-eval step (the repo's VLMEvalKit copy lacks it)
        ("\\boxed{C}", "C"),
        ("The answer is (B).", "B"),
        ("A. chair", "A"),
        ("D, because", "D"),
        ("Answer: C", "C"),  # the A of "Answer" is not a word
        ("A chair", None),  # letter + whitespace + letter is skipped
        ("B is correct", None),
        ("I pick A\nbecause", None),  # \s includes the newline
        ("b", None),  # upper case only
        ("AB", None),
        ("chair", None),
        ("`code` then C", None),  # the backtick content replaces the reply
        ("{x} so B", None),  # ... and so does the braces content
        ("`` B", None),  # "``" is an empty backtick pair: the text becomes ""
        ("", None),
    ],
)
def test_mmsi_extract(reply: str, expected: str | None) -> None:
    assert mmsi_extract(reply) == expected


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("`B`", "B", 1.0),
        ("B", "b", 1.0),  # the ground truth is lower-cased, the extraction is not
        ("b", "B", 0.0),
        ("<think>`A` looks wrong</think><answer>`B`</answer>", "B", 1.0),  # policy 1 first
        ("<answer>B", "B", 0.0),  # unclosed tag: unparsable
        ("`A`", "B", 0.0),
        ("B", " B\n", 1.0),  # answer.lower().replace("\n", " ").strip()
    ],
)
def test_mmsi_score(pred: str, answer: str, expected: float) -> None:
    assert mmsi(pred, answer) == expected


def test_mmsi_and_mindcube_spatialladder_scorer_is_the_authors_rule() -> None:
    """No release rule exists for them: `spatialladder` = the release's tag policy (FIRST complete
    <answer>) then the authors' extraction; the official policy takes the LAST tag."""
    two_tags = "<answer>`A`</answer> on reflection <answer>`B`</answer>"
    assert (mmsi(two_tags, "B"), mmsi(two_tags, "B", scorer="spatialladder")) == (1.0, 0.0)
    assert (mmsi(two_tags, "A"), mmsi(two_tags, "A", scorer="spatialladder")) == (0.0, 1.0)
    assert mmsi("The answer is (B).", scorer="spatialladder") == 1.0  # no tag: the authors' rule as is
    assert mmsi("b", scorer="spatialladder") == 0.0  # ... upper case only, not the release's letter rule
    mc_tags = "<answer>A. Left</answer><answer>C. Front</answer>"
    assert (mc(mc_tags, "C"), mc(mc_tags, "C", scorer="spatialladder")) == (1.0, 0.0)
    assert mc("So it is B\nC is wrong", "B", scorer="spatialladder") == 1.0  # cleaned, as official


def test_mmsi_validation_and_question_type_dash() -> None:
    hyphen = "Positional Relationship (Cam.-Obj.)"
    assert mmsi_question_type({"question_type": hyphen}) == CAM_OBJ
    assert mmsi("B", qtype=hyphen) == 1.0
    with pytest.raises(ScoringInputError, match="question_type"):
        mmsi("B", qtype="Positional Relationship")
    with pytest.raises(ScoringInputError, match="answer") as info:
        mmsi("B", answer="E")
    assert info.value.field == "answer"
    with pytest.raises(ScoringInputError, match="answer: missing field"):
        mmsi_score({"question_type": CAM_OBJ}, "B")
    with pytest.raises(ScoringInputError, match="prediction"):
        mmsi(None)  # type: ignore[arg-type]


def test_mmsi_prompt() -> None:
    question = "Which object is closer?\nOptions: A: sofa, B: lamp, C: desk, D: door\n"
    assert mmsi_official_prompt(question) == (
        "Which object is closer?\nOptions: A: sofa, B: lamp, C: desk, D: door\n"
        "Answer with the option's letter from the given choices directly. Enclose the option's letter within ``."
    )


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Where is it?\nOptions: A: left, B: right of the sofa, C: front, D: back",
         ("Where is it?", ["A. left", "B. right of the sofa", "C. front", "D. back"])),
        ("Q\nOptions: A: red, green, B: blue", ("Q", ["A. red, green", "B. blue"])),  # a comma inside
        ("Q\nOptions:A:1,B:2", ("Q", ["A. 1", "B. 2"])),
        ("Q\nOptions: B: x, C: y", None),  # not lettered from A
        ("Q\nOptions: A: x", None),  # one option
        ("Q with A: x, B: y", None),  # no "Options:"
    ],
)  # fmt: skip
def test_mmsi_split_options(question: str, expected: tuple[str, list[str]] | None) -> None:
    assert split_options(question) == expected


def test_mmsi_thinking_prompt_falls_back_to_options_in_the_question() -> None:
    doc = {"question": "Which is nearer? (left or right)"}
    assert BENCHMARKS[MMSI].prompt_text(doc, "direct") == (
        "Question: Which is nearer? (left or right)\nAnswer with the option's letter from the given choices directly."
    )


def test_mmsi_aggregation_is_micro() -> None:
    records: list[dict[str, Any]] = [
        *({"question_type": CAM_OBJ, "score": s} for s in (1.0, 1.0, 1.0, 0.0)),  # 3/4
        {"question_type": "Positional Relationship (Cam.-Obj.)", "score": 0.0},  # hyphen: same bucket
        {"question_type": "MSR", "score": 1.0},  # 1/1
    ]
    out = mmsi_aggregate(records)
    assert out["benchmark"] == MMSI and out["n"] == 6
    assert out["per_type"] == {CAM_OBJ: pytest.approx(60.0), "MSR": pytest.approx(100.0)}
    assert out["overall"] == pytest.approx(400 / 6)  # 4 of 6 correct; the type mean would be 80
    assert out["groups"] == {}
    assert mmsi_aggregate([])["overall"] is None


# ------------------------------------------------------------------------------------------------
# MindCube-Tiny
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C", "C"),
        ("I think the TABLE. So A", "E"),  # stage 1: "E." inside "TABLE."
        ("A. Left B. Right C. Front", "C"),  # stage 1 returns the LAST "X."
        ("A\n<Answer> B", "B"),  # stage 2: after <Answer>; stage 3 alone would read A
        ("<Answer> my answer is C", "C"),
        ("A chair is on the left", "A"),  # stage 3: a letter starting the reply
        ("Answer: B", "B"),
        ("*C*", "C"),
        ('"B"', "B"),
        ("My answer is C and the answer is D", "C"),  # "my answer is" comes before "answer is"
        ("So it is B\nC is wrong", "C"),  # stage 3: C starts a line
        ("The answer is (B).", "B"),  # stage 4: first standalone letter of the last line with one
        ("D) Front", "D"),
        ("Option B fits\nmaybe", "B"),  # the last line has no letter: the line above
        ("b", None),
        ("Behind", None),
        ("", None),
    ],
)
def test_mindcube_extract(text: str, expected: str | None) -> None:
    assert mindcube_extract(text) == expected


def test_mindcube_cleaning_changes_the_reading() -> None:
    reply = "So it is B\nC is wrong"
    assert mindcube_clean(reply) == "So it is B C is wrong"
    assert mindcube_extract(mindcube_clean(reply)) == "B"  # one line now: no line starts with C
    assert mc(reply, gt="B") == 1.0 and mc(reply, gt="C") == 0.0
    assert mindcube_clean("  A.\n\n\tLeft  ") == "A. Left"


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("<answer>A. Above</answer>", "A", 1.0),  # the authors' requested format
        ("<answer>A. Above", "A", 0.0),  # unclosed tag: unparsable (project policy 1)
        ("<Answer>C</Answer>", "C", 1.0),  # the tag match is case-insensitive
        ("B", "B", 1.0),
        ("b", "B", 0.0),
        ("The TABLE. B", "B", 0.0),  # reads E
    ],
)
def test_mindcube_score(pred: str, gt: str, expected: float) -> None:
    assert mc(pred, gt) == expected


def test_mindcube_validation() -> None:
    for bad in ("", "b", "AB", "F"):
        with pytest.raises(ScoringInputError, match="gt_answer"):
            mc("A", gt=bad)
    with pytest.raises(ScoringInputError, match="id: missing field"):
        mindcube_score({"gt_answer": "A"}, "A")


@pytest.mark.parametrize(
    ("item_id", "setting"),
    [
        ("among_group002_q0_1_1", "among"),
        ("around_group010_q1_2", "around"),
        ("aroundnew_test_q1_001", "around"),
        ("rotation_group000_q1_1", "rotation"),
        ("translation_group1_q0", "translation"),
        ("AMONG_x", "among"),  # lower-cased first
        ("among_rotation_x", "rotation"),  # rotation is tested before among
        ("x_around_rotation", "around"),  # around is tested first
        ("", "other"),
        ("scene12", "other"),
    ],
)
def test_mindcube_setting(item_id: str, setting: str) -> None:
    assert mindcube_setting(item_id) == setting


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Where is the sofa? A. Left B. Diagonally front-right C. Behind",
         ("Where is the sofa?", ["A. Left", "B. Diagonally front-right", "C. Behind"])),
        ("Plan A. Then turn. A. Yes B. No", ("Plan A. Then turn.", ["A. Yes", "B. No"])),  # the last A run
        ("Near the TABLE. A. Yes\nB. No", ("Near the TABLE.", ["A. Yes", "B. No"])),
        ("Q? A. Yes C. No", None),  # B missing: one option
        ("Q? Yes or no", None),
    ],
)  # fmt: skip
def test_mindcube_split_inline_options(question: str, expected: tuple[str, list[str]] | None) -> None:
    assert split_inline_options(question) == expected


def test_mindcube_prompt() -> None:
    prompt = mindcube_official_prompt("Q? A. Left B. Right")
    assert prompt == MINDCUBE_RAW_QA_INSTRUCTION + "\n[Question]\nQ? A. Left B. Right"
    assert prompt.startswith("[Task]\nYour task is to analyze the spatial arrangement")
    assert "your response should **only** be '<answer>A. Above</answer>'.\n\n[Question]\n" in prompt


def test_mindcube_aggregation_excludes_translation() -> None:
    scores = {
        "among_g1_q0": 1.0,
        "among_g2_q0": 0.0,
        "aroundnew_g1_q0": 1.0,
        "rotation_g1_q0": 0.0,
        "translation_g1_q0": 1.0,
        "translation_g2_q0": 1.0,
    }
    out = mindcube_aggregate([{"id": i, "score": s} for i, s in scores.items()])
    assert out["benchmark"] == MINDCUBE and out["n"] == 6
    assert out["overall"] == pytest.approx(50.0)  # 2 of the 4 non-translation rows; with it, 4/6
    assert out["per_type"] == {
        "around": pytest.approx(100.0),
        "rotation": pytest.approx(0.0),
        "translation": pytest.approx(100.0),
        "among": pytest.approx(50.0),
    }
    assert list(out["per_type"]) == ["around", "rotation", "translation", "among"]  # the authors' order
    assert mindcube_aggregate([{"id": "translation_x", "score": 1.0}])["overall"] is None
    with pytest.raises(ScoringInputError, match="score"):
        mindcube_aggregate([{"id": "among_x", "score": 2.0}])
