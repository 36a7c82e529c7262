"""Along the ladder: semantic entropy and visual-attention share for every stage of a run.

``python -m spatialladder.analysis ladder WORK_DIR`` takes the base model (``WORK_DIR/tiny-qwen25vl``
or ``--base``) and each stage's final model (``stage1_grounding``, ``stage2_spatial``, ``coldstart``,
``stage3_grpo``, then any other model folder), and for each: the semantic entropy of K sampled answers
on a subset of spatial questions (:mod:`.entropy`) and the answer tokens' attention share on visual
tokens and inside the target box on grounding samples (:mod:`.attention`). Writes
``OUT/ladder.{json,md}`` and ``OUT/ladder.png`` (the paper's figure for the user's run), with every
stage's own ``entropy.json`` / ``attention.json`` / overlays under ``OUT/<stage>/``.
Single process; entropy generation resumes from its prediction files after an interruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spatialladder.analysis.common import BASE_DIRS, is_model_dir, ordered_stage_dirs, pyplot, write_json

# Prompt each stage was trained with ("auto"): base and the SFT stages before cold start answer directly.
TRAINED_PROMPT = {"stage1_grounding": "direct", "stage2_spatial": "direct", "coldstart": "thinking",
                  "stage3_grpo": "thinking"}  # fmt: skip


def ladder_models(work_dir: Path, base: str | None = None) -> list[tuple[str, Path]]:
    """``(name, path)`` of the base model (when present) and each stage's final model, in ladder order."""
    work_dir = Path(work_dir)
    models = []
    if base:
        models.append(("base", Path(base)))
    else:
        models += [("base", work_dir / b) for b in BASE_DIRS if is_model_dir(work_dir / b)][:1]
    models += [(p.name, p) for p in ordered_stage_dirs(work_dir, require="model")]
    if not models:
        raise SystemExit(f"ladder: no base model or stage with a final model in {work_dir}")
    return models


def table_markdown(rows: list[dict[str, Any]], k: int) -> str:
    def f(v: Any, fmt: str = "{:.3f}") -> str:
        return "–" if v is None else fmt.format(v)

    lines = [f"| stage | semantic entropy (K={k}) | unparsable | visual share | in-box share | in-box chance |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['stage']} | {f(r['semantic_entropy'])} | {f(r['unparsable_share'], '{:.0%}')} | "
                     f"{f(r['visual_share'])} | {f(r['box_share'])} | {f(r['box_chance'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, k: int) -> Path:
    plt = pyplot()
    names = [r["stage"] for r in rows]
    x = list(range(len(rows)))
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8.0, 1.9 * len(rows) + 3), 3.6))
    a.plot(x, [r["semantic_entropy"] for r in rows], marker="o", color="tab:purple")
    a.set(title=f"semantic entropy (K={k}, nats)", ylabel="nats")
    b.plot(x, [r["visual_share"] for r in rows], marker="o", label="visual share of answer attention")
    if any(r["box_share"] is not None for r in rows):
        b.plot(x, [r["box_share"] for r in rows], marker="s", label="in-box share of visual attention")
        b.plot(x, [r["box_chance"] for r in rows], linestyle=":", color="gray", label="in-box chance")
    b.set(title="attention", ylim=(0, 1))
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args: Any) -> int:
    from spatialladder.analysis.attention import MERGED_CELL, attention_analysis, grounding_samples
    from spatialladder.analysis.entropy import semantic_entropy
    from spatialladder.analysis.questions import SpatialJsonl
    from spatialladder.geometry import ResizeRule

    work_dir = Path(args.work_dir)
    if not work_dir.is_dir():
        raise SystemExit(f"ladder: {work_dir}: no such directory (the WORK_DIR of run_scripts/run_all.sh)")
    out = Path(args.out) if args.out else work_dir / "analysis" / "ladder"
    questions = Path(args.questions or work_dir / "synthetic" / "spld_spatial_data.jsonl")
    grounding = Path(args.grounding or work_dir / "synthetic" / "spld_grounding_data.jsonl")
    for path, flag in ((questions, "--questions"), (grounding, "--grounding")):
        if not path.is_file():
            raise SystemExit(f"ladder: {path} not found (give {flag})")
    models = ladder_models(work_dir, args.base)
    opts = dict(args.eval_options)
    prompt_kind = opts.pop("prompt_kind")
    # Everything is checked and loaded before the first model runs.
    bench = SpatialJsonl(questions, args.media_root)
    docs = bench.load_docs(limit=args.limit, seed=args.seed)
    rule = ResizeRule(factor=MERGED_CELL, min_pixels=opts["min_pixels"], max_pixels=opts["max_pixels"])
    samples = grounding_samples(grounding, args.media_root, rule, args.attention_limit, args.seed)
    rows = []
    for name, path in models:
        kind = TRAINED_PROMPT.get(name, "direct") if prompt_kind == "auto" else prompt_kind
        print(f"== {name} ({path}): prompt {kind}", flush=True)
        ent = semantic_entropy(str(path), bench, docs, out / name / "entropy", model_name=name,
                               num_samples=args.num_samples, temperature=args.temperature, seed=args.seed,
                               prompt_kind=kind, **opts)  # fmt: skip
        att = attention_analysis(str(path), samples, out / name / "attention", model_name=name,
                                 overlays=args.overlays, answer_source=args.answer_source, **opts)  # fmt: skip
        assert ent is not None  # single process: rank 0
        rows.append({
            "stage": name, "model_path": str(path), "prompt_kind": kind,
            "semantic_entropy": ent["overall"]["mean_entropy"], "unparsable_share": ent["overall"]["unparsable_share"],
            "entropy_by_type": {t: s["mean_entropy"] for t, s in ent["by_type"].items()},
            "visual_share": att["visual_share"], "visual_share_per_layer": att["visual_share_per_layer"],
            "box_share": att.get("box_share"), "box_chance": att.get("box_chance"),
        })  # fmt: skip
    result = {"work_dir": str(work_dir), "questions": str(questions), "n_questions": len(docs),
              "grounding": str(grounding), "n_attention_samples": len(samples), "num_samples": args.num_samples,
              "temperature": args.temperature, "rows": rows}  # fmt: skip
    write_json(out / "ladder.json", result)
    md = table_markdown(rows, args.num_samples)
    (out / "ladder.md").write_text(md, encoding="utf-8")
    plot(rows, out / "ladder.png", args.num_samples)
    print(md, end="")
    print(f"wrote {out / 'ladder.md'}, {out / 'ladder.json'} and {out / 'ladder.png'}")
    return 0
