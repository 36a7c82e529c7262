"""Build a tiny, randomly initialised Qwen2.5-VL checkpoint for tests and smoke runs.

The checkpoint is a *real* ``Qwen2_5_VLForConditionalGeneration`` + ``Qwen2_5_VLProcessor`` (image
processor, video processor, Qwen2 byte-level BPE tokenizer, chat template), just with toy
dimensions and a ~1.5k-token vocabulary trained offline on an embedded corpus. Everything that
touches the checkpoint (data collators, SFT/GRPO trainers, evaluation) can therefore run end to
end on CPU in seconds with no network access.

    python -m spatialladder.demo.tiny_model OUTPUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_SYSTEM_MESSAGE",
    "MARKER_FILE",
    "SPECIAL_TOKENS",
    "PRESETS",
    "build_tiny_qwen25vl",
    "main",
]

MARKER_FILE = ".tiny_qwen25vl_complete.json"
DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."

# Qwen2.5-VL's added tokens, in the official order (real ids: 151643 ... 151656). They are appended
# after the BPE vocabulary exactly like in the real tokenizer, so ids are contiguous at the end.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2.5-VL-Instruct's chat template (verbatim logic and whitespace), plus `{% generation %}` markers
# around each assistant turn's content and its <|im_end|> so `return_assistant_tokens_mask=True` yields
# correct masks. The content is rendered once into `rendered` (block set) so the generation block stays
# at the loop's top level: the AssistantTracker measures character offsets of top-level output chunks.
# No `{%-` whitespace control: transformers renders with trim_blocks/lstrip_blocks, so a newline is
# only ever written before a block tag, or as `{{ '\n' }}` right after one (trim_blocks eats it).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM_MESSAGE + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% set rendered %}"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% endset %}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ rendered }}<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{{ rendered }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# ---------------------------------------------------------------------------------------------
# Tokenizer corpus: deterministic, embedded, covers what the project's prompts/answers contain
# (spatial vocabulary, numbers with units, JSON punctuation, <think>/<answer> tags).
# ---------------------------------------------------------------------------------------------
_OBJECTS = (
    "chair", "table", "sofa", "bed", "lamp", "door", "window", "cabinet", "shelf", "desk", "tv",
    "monitor", "sink", "toilet", "bathtub", "refrigerator", "stove", "oven", "microwave", "plant",
    "picture", "pillow", "curtain", "mirror", "towel", "box", "bag", "bottle", "cup", "book",
    "keyboard", "laptop", "stool", "counter", "trash can", "washing machine", "radiator", "piano",
    "backpack", "clock", "fan", "heater", "rug", "nightstand", "dresser", "wardrobe", "bench",
)  # fmt: skip
_RELATIONS = (
    "left", "right", "front", "back", "behind", "above", "below", "under", "over", "near", "far",
    "closest", "farthest", "nearest", "between", "next to", "on top of", "in front of",
    "to the left of", "to the right of", "front-left", "front-right", "back-left", "back-right",
)  # fmt: skip
_UNITS = ("meters", "meter", "centimeters", "cm", "m", "feet", "inches", "square meters", "degrees")
_SENTENCES = (
    "What is the distance between the {a} and the {b} in meters?",
    "How many {a}s are in this room?",
    "What is the length of the longest dimension of the {a}?",
    "What is the size of this room in square meters?",
    "Measuring from the closest point of each object, which of these objects is the closest to the {a}?",
    "If I am standing by the {a} and facing the {b}, is the {c} to my left, right, or back?",
    "Which object appears first in the video: the {a}, the {b}, or the {c}?",
    "Is the {a} {r} the {b}? Answer yes or no.",
    "Estimate the height of the {a} in centimeters.",
    "Output the bounding box of the {a} in JSON format.",
    "Where is the {a} relative to the {b}? Options: A. left B. right C. front D. back",
    "Please think step by step and put the final answer in <answer> </answer> tags.",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "<think>The {a} is {r} the {b}, about {n} {u} away, so the answer is {o}.</think><answer>{o}</answer>",
    '[{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "{a}"}}, {{"bbox_2d": [{y1}, {x1}, {y2}, {x2}], '
    '"label": "{b}"}}]',
    '{{"answer": "{o}", "distance": {n}.{d}, "unit": "{u}", "count": {k}, "valid": true, "note": null}}',
    "The {a} is {n}.{d} {u} from the {b}. Answer: {o}",
    "A. {a}\nB. {b}\nC. {c}\nD. {r}\n",
    "You are a helpful assistant. The user asks a question about the image and the video frames.",
    "Answer with a single number. Answer with the option's letter from the given choices directly.",
)
_EXTRA_TEXT = (
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! 0123456789 +-*/=<>()[]{}"
    " ,.;:'\"?!_@#$%^&|~`\\ \t\n yes no true false null None A B C D E first second third it is"
    " this that these those there here what which where when why how many much the a an of in on"
    " to from by with and or not I you we they he she scene image video frame frames camera room"
    " object objects point cloud depth 3D 2D x y z width height length size area volume number count"
)


# General English so ordinary words get their own merges too (~1.5k BPE vocab in total).
_COMMON_WORDS = """
about above across act action add after again against age ago agree air all allow almost alone along
already also although always among amount analysis angle animal another answer any anyone anything
appear apply approach area argue arm around arrive art article ask assume attention available away
baby bad ball bank base beautiful because become before begin behavior believe benefit best better
big bit black blue board body both bottom boy break bring brother build building business but buy call
can car card care carry case catch cause center central century certain chance change character check
child choice choose church city class clear close cold collect color come common compare complete
computer condition consider contain continue control correct cost could country couple course cover
create cross current cut dark data day dead deal decide decision deep describe design detail determine
develop difference different difficult dinner direction discover discuss distance do doctor dog down
draw dream drive drop during each early east easy eat edge effect effort eight either else end enough
enter entire environment equal especially even evening event ever every evidence exactly example
exist expect experience explain eye face fact fall family fast father feel few field fight figure fill
final find fine finger finish fire five floor fly follow food foot force forget form forward four free
friend full fun future game garden general get girl give glass go good great green ground group grow
guess hair half hand happen happy hard have head hear heart heavy help high himself history hit hold
home hope horizontal hot hour house however huge human hundred idea identify imagine important include
increase indicate information inside instead interest into item itself job join just keep key kind
kitchen know land language large last late later laugh law lay lead learn least leave leg less let
letter level lie life light like likely line list listen little live living local long look lose lot
love low machine main maintain major make man manage many map mark market matter may maybe mean measure
medium meet member memory method middle might mind minute miss model moment money month more morning
most mother mountain mouth move movement much music must myself name narrow natural nature necessary
need never new news next nice night nine none north note nothing notice now office often old once one
only open opposite order other our out outside own page pair paper part particular pass past path pay
people per perhaps period person perspective phone physical pick piece place plan play player please
plus position possible power present pretty prevent previous price probably problem process produce
program provide public pull purpose push put quality question quickly quite radius raise range rather
reach read ready real reason receive recent recognize record red reduce reference region relative
remain remember remove report represent require rest result return reveal rich ride rise road rock
role roof rotate round rule run safe same save say school science sea season seat section see seem
sell send sense separate series serve set seven several shape share short should show side sign
similar simple since single sister sit situation six skill small smile so social some someone
something sometimes son soon sort sound source south space speak special stage stand star start state
station stay step still stop store story straight street strong student study style subject success
such suggest summer support sure surface system take talk tall task teach team tell ten term test than
thank then theory thing think though thought thousand three through throw thus time today together
top total toward town tree trip trouble truth try turn two type understand unit until up upon use
usually value various vertical very view visible visual voice wait walk wall want watch water way wear
week weight well west white whole whose wide wife will win wind wish within without woman wonder wood
word work world would write wrong year yellow yet young your zero
"""


def _tokenizer_corpus() -> list[str]:
    """Deterministically expand the templates into a few thousand lines of training text."""
    words = _COMMON_WORDS.split()
    lines: list[str] = [_EXTRA_TEXT, *_OBJECTS, *_RELATIONS, *_UNITS]
    # chat-role words appear in every rendered prompt: make them whole tokens, as in Qwen's vocab
    lines += ["system\nYou are a helpful assistant.\nuser\nHello.\nassistant\nHi.\n"] * 4
    # each word a few times, in different contexts/cases, so it clears min_frequency
    lines += [" ".join(words[i : i + 12]) for i in range(0, len(words), 5)]
    lines += [w.capitalize() + " " + w + "s, " + w + "." for w in words]
    objs, rels, units, opts = _OBJECTS, _RELATIONS, _UNITS, ("A", "B", "C", "D", "yes", "no")
    for i, sentence in enumerate(itertools.islice(itertools.cycle(_SENTENCES), 3000)):
        n = (i * 37) % 1000
        lines.append(
            sentence.format(
                a=objs[i % len(objs)],
                b=objs[(i * 7 + 3) % len(objs)],
                c=objs[(i * 13 + 5) % len(objs)],
                r=rels[i % len(rels)],
                u=units[i % len(units)],
                o=opts[i % len(opts)],
                n=n % 20,
                d=(i * 3) % 10,
                k=i % 12,
                x1=n,
                y1=(n * 3) % 1000,
                x2=n + 17,
                y2=(n * 3) % 1000 + 29,
            )
        )
    return lines


def _train_tokenizer(vocab_size: int) -> Any:
    """Train a byte-level BPE with exactly Qwen2's normalizer / pre-tokenizer and wrap it in
    ``Qwen2Tokenizer`` (what ``AutoTokenizer`` resolves to for ``model_type=qwen2_5_vl``)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    # Same pipeline Qwen2Tokenizer rebuilds around vocab/merges, so the learned merges apply as trained.
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no <unk> ever
        special_tokens=[],
    )
    bpe.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]

    # Special tokens go right after the BPE vocab, in Qwen's order, like the real checkpoint. Putting
    # them in the vocab pins their ids (Qwen2Tokenizer would otherwise add eos/pad first).
    vocab = {**vocab, **{tok: len(vocab) + i for i, tok in enumerate(SPECIAL_TOKENS)}}
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=32768,
        extra_special_tokens=list(SPECIAL_TOKENS),
    )
    return tokenizer


def _make_config(
    tokenizer: Any,
    *,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    intermediate_size: int,
    vision_hidden_size: int,
    vision_depth: int,
    vision_num_heads: int,
    vocab_multiple: int,
) -> Any:
    from transformers import Qwen2_5_VLConfig

    head_dim = hidden_size // num_attention_heads
    if head_dim * num_attention_heads != hidden_size or head_dim % 2:
        raise ValueError(
            f"hidden_size={hidden_size} must split into an even head_dim over {num_attention_heads} heads"
        )
    # M-RoPE splits head_dim/2 rotary frequencies into (temporal, height, width) sections;
    # real Qwen2.5-VL: head_dim 128 -> [16, 24, 24]. Keep the same 2:3:3 proportions.
    half = head_dim // 2
    t_sec = max(1, half // 4)
    h_sec = (half - t_sec) // 2
    mrope_section = [t_sec, h_sec, half - t_sec - h_sec]
    vision_head_dim = vision_hidden_size // vision_num_heads
    if vision_head_dim * vision_num_heads != vision_hidden_size or vision_head_dim % 4:
        # axial 2D rope: head_dim/4 frequencies per spatial axis
        raise ValueError(f"vision head dim {vision_hidden_size}/{vision_num_heads} must be a multiple of 4")

    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    # Real checkpoints pad the embedding matrix past len(tokenizer) (151936 vs 151665); mirror that so
    # code that confuses the two is caught by tests.
    vocab_size = -(-len(tokenizer) // vocab_multiple) * vocab_multiple
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "max_window_layers": num_hidden_layers,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope_section},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {
        "depth": vision_depth,
        "hidden_size": vision_hidden_size,
        "intermediate_size": 2 * vision_hidden_size,
        "num_heads": vision_num_heads,
        "hidden_act": "silu",
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,  # Qwen2.5-VL-3B/7B value
        "window_size": 112,
        "out_hidden_size": hidden_size,  # merger projects straight into the LLM embedding space
        # real model: full attention on every 8th block, windowed elsewhere; keep both kinds
        "fullatt_block_indexes": [vision_depth - 1],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


# Size presets of build_tiny_qwen25vl. "default" is what the tests use (seconds per run); "learner"
# doubles the widths (~4x the parameters, still CPU-cheap), which the demo needs: the default model
# learns the pixel-grounded tasks of spatialladder.demo.learnable too slowly and unreliably.
PRESETS: dict[str, dict[str, int]] = {
    "default": {},
    "learner": {"hidden_size": 128, "intermediate_size": 256, "vision_hidden_size": 64},
}


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def build_tiny_qwen25vl(
    output_dir: str | Path,
    *,
    seed: int = 0,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 64 * 28 * 28,
    overwrite: bool = False,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 128,
    vision_hidden_size: int = 32,
    vision_depth: int = 2,
    vision_num_heads: int = 2,
    tokenizer_vocab_size: int = 1536,
    vocab_multiple: int = 64,
) -> Path:
    """Write a tiny random Qwen2.5-VL checkpoint (model, processor, generation config) to ``output_dir``.

    Idempotent: if ``output_dir`` already holds a complete checkpoint built with the same arguments
    (marker file, written last), it is returned untouched. The build happens in a sibling temporary
    directory that is renamed into place, so a crashed or concurrent build never leaves a half-written
    checkpoint at ``output_dir``. A non-empty ``output_dir`` that was not built here (or was built with
    other arguments) is only replaced when ``overwrite=True``.
    """
    output_dir = Path(output_dir).expanduser().resolve()
    params: dict[str, Any] = {
        "seed": seed,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "intermediate_size": intermediate_size,
        "vision_hidden_size": vision_hidden_size,
        "vision_depth": vision_depth,
        "vision_num_heads": vision_num_heads,
        "tokenizer_vocab_size": tokenizer_vocab_size,
        "vocab_multiple": vocab_multiple,
    }
    if not overwrite and output_dir.exists():
        marker = _read_marker(output_dir)
        if marker is not None and marker.get("params") == params:
            return output_dir
        if marker is not None or any(output_dir.iterdir()):
            raise FileExistsError(
                f"{output_dir} exists and is not a tiny Qwen2.5-VL checkpoint built with these arguments; "
                "pass overwrite=True to replace it"
            )

    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _train_tokenizer(tokenizer_vocab_size)
    config = _make_config(
        tokenizer,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        intermediate_size=intermediate_size,
        vision_hidden_size=vision_hidden_size,
        vision_depth=vision_depth,
        vision_num_heads=vision_num_heads,
        vocab_multiple=vocab_multiple,
    )
    # Both processors must agree with the vision tower's patch/merge geometry (defaults 14/2/2).
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        # qwen-vl-utils' per-frame pixel budget; unset, 5.23 logs a "default will change" warning per run
        cap_pixels_per_frame=True,
    )
    tokenizer.chat_template = CHAT_TEMPLATE  # AutoTokenizer users get the same template
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )

    # Seed a private generator state only: don't disturb the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp_dir.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the checkpoint should look like a normal dir
    try:
        model.save_pretrained(tmp_dir, safe_serialization=True)
        processor.save_pretrained(tmp_dir)
        (tmp_dir / MARKER_FILE).write_text(json.dumps({"params": params}, indent=2, sort_keys=True) + "\n")
        if output_dir.exists() and (overwrite or _read_marker(output_dir) is None):
            shutil.rmtree(output_dir)  # overwrite requested, or the empty dir checked above
        try:
            os.replace(tmp_dir, output_dir)
        except OSError:
            # A concurrent builder (e.g. another pytest-xdist worker) got there first.
            if (_read_marker(output_dir) or {}).get("params") != params:
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return output_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="model size preset")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if a checkpoint is there")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep stdout/stderr to the printed path
    print(build_tiny_qwen25vl(args.output_dir, seed=args.seed, overwrite=args.overwrite, **PRESETS[args.preset]))


if __name__ == "__main__":
    main()
