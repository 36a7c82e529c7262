"""Stage-3 GRPO trainer: TRL 1.16's ``GRPOTrainer`` with images, multi-view and video inputs.

What TRL 1.16 does with vision inputs (``trl/trainer/grpo_trainer.py``):

* Images only come from an ``image``/``images`` dataset column. ``_generate_and_score_completions``
  puts them into the prompt messages, ``_tokenize_prompts`` renders + processes the messages with
  ``processor.apply_chat_template`` (whatever it returns goes to ``generate``; a frame-list video
  part is loaded there at the processor's default 24 fps), and the log-prob forwards get
  ``pixel_values``/``image_grid_thw`` from a *second* ``processor(images=..., text=...)`` call that
  is only made when that image column exists (videos are never passed to it).
* ``_get_per_token_logps_and_entropies`` slices ``pixel_values`` per chunk of ``batch_size`` rows by
  ``image_grid_thw.prod(-1)``; it knows nothing about ``pixel_values_videos``/``video_grid_thw``/
  ``second_per_grid_ts``, and ``_compute_loss`` forwards only image keys.
* ``_prepare_inputs`` shuffles the generation batch and splits it into ``steps_per_generation``
  micro-batches; only image tensors are split per sample first (``split_pixel_values_by_grid``).

So a prompt with a ``video`` part is at best rendered with ``<|video_pad|>`` tokens whose features
never reach the old-policy, reference and policy forwards (the model silently embeds the pad
tokens as text), and a datasets-Arrow prompt column adds ``"video": None`` keys to every content
part, which the Qwen chat template renders as extra video placeholders. Qwen2.5-VL also needs
``mm_token_type_ids`` to build its 3D (M-RoPE) positions; without it the log-prob forwards would use
different positions than generation.

What this trainer changes (each override below says why):

* Dataset rows keep the prompt as *text-only* messages plus media columns :data:`IMAGES_COLUMN`
  (list of image paths: 1 for single images, 8 for multi-view) and :data:`VIDEO_COLUMN` (list of
  frame paths, as in SpatialLadder-26k). TRL's image machinery stays off (no ``image(s)`` column).
* Each sample's media is processed once (the ``num_generations`` copies of a prompt share it) into
  ``input_ids`` + per-sample vision tensors, by :func:`spatialladder.media_inputs.encode_messages`
  (the path of the SFT collator and of evaluation). Generation gets them batched through
  ``_tokenize_prompts``; every log-prob forward (old policy, reference, policy) gets them sliced per
  chunk of samples, with ``mm_token_type_ids`` rebuilt from the placeholder tokens.
* The per-sample tensors travel in the batch as a plain list (``inputs["media"]``), which TRL's
  shuffle/split already handle correctly for lists, so batches may mix single images, 8-view
  samples, videos and text-only samples in any order and any chunking.
* ``video_pad`` joins ``image_pad`` in ``suppress_tokens`` (a sampled pad token would break the
  placeholder/feature count in the log-prob forward).
* Optional ZeRO-3 safety: :func:`spatialladder.training.zero3.install_uniform_vision_forward`.
* Researcher-facing logging: within-group reward std and per-data-type reward means (TRL logs
  per-reward mean/std, ``reward``/``reward_std`` over the whole batch, ``frac_reward_zero_std``,
  completion lengths, ``clipped_ratio``, ``kl``, ``entropy``, ``clip_ratio/*``), and a JSONL of
  sampled prompts/completions/rewards every ``sample_log_every`` steps.

Log-probs: TRL 1.16 already computes them without full logits (``add_fused_lm_head``: the backbone
runs, then only the label positions are projected through the LM head in [4096 x 32768] tiles with
an online log-sum-exp; on CUDA only the completion positions are scored). This trainer keeps that
path (``fused_lm_head=True``); ``bench/logprob_memory.py`` measures it against full logits.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler, nanstd

from spatialladder.media_inputs import MEDIA_KEYS, MediaConfig, collate_media, encode_messages
from spatialladder.positions import install_original_positions
from spatialladder.training.modeling import CheckpointConversionResumeMixin
from spatialladder.training.zero3 import (
    check_generation_gather,
    install_uniform_vision_forward,
    is_zero3,
    resolve_vision_dummy,
)

IMAGES_COLUMN = "media_images"
VIDEO_COLUMN = "media_video"
SAMPLES_FILE = "samples.jsonl"


@dataclass
class SampleMedia:
    """One sample's processed prompt: token ids and its vision tensors (None when absent)."""

    prompt_ids: list[int]
    tensors: dict[str, torch.Tensor | None] = field(default_factory=dict)


def _first_user_index(messages: Sequence[dict[str, Any]]) -> int:
    for i, message in enumerate(messages):
        if message.get("role") == "user":
            return i
    raise ValueError("a prompt needs a user message")


def multimodal_messages(
    prompt: Sequence[dict[str, Any]], images: Sequence[Any] = (), video: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    """The prompt with image parts (one per view), then one video part, before the first user text.

    Content parts are rebuilt with only the keys they need (no ``None`` keys from Arrow).
    """
    messages = []
    for message in prompt:
        content = message.get("content")
        if isinstance(content, list):
            parts = [
                {"type": "text", "text": p.get("text") or ""} for p in content if p.get("type") == "text"
            ]
        else:
            parts = [{"type": "text", "text": content or ""}]
        messages.append({"role": message["role"], "content": parts})
    user = messages[_first_user_index(messages)]
    media_parts = [{"type": "image", "image": img} for img in images]
    if video:
        media_parts.append({"type": "video", "video": list(video)})
    user["content"] = media_parts + user["content"]
    return messages


def process_sample(
    processor: Any,
    prompt: Sequence[dict[str, Any]],
    images: Sequence[Any] = (),
    video: Sequence[Any] | None = None,
    media: MediaConfig | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> SampleMedia:
    """Render and process one sample exactly as the model will see it in generation and training
    (``media.video_fps`` for a frame list; pixel bounds from the processor)."""
    encoded = encode_messages(
        processor,
        multimodal_messages(prompt, images, video),
        config=media,
        add_generation_prompt=True,
        chat_template_kwargs=chat_template_kwargs,
    )
    return SampleMedia(
        prompt_ids=encoded["input_ids"].tolist(), tensors={key: encoded.get(key) for key in MEDIA_KEYS}
    )


class EpochSeededRepeatSampler(RepeatSampler):
    """TRL's ``RepeatSampler`` whose shuffle depends only on (seed, epoch).

    TRL's draws each epoch's permutation from one generator that only advances, so a run resumed
    in epoch >= 1 starts the generator afresh and replays epoch 0's order. Reseeding with
    ``seed + epoch`` at every epoch (epoch 0 = TRL's order) makes a resumed run see exactly the
    prompts of the uninterrupted one.
    """

    @classmethod
    def from_sampler(cls, sampler: RepeatSampler) -> EpochSeededRepeatSampler:
        new = cls.__new__(cls)
        new.__dict__.update(sampler.__dict__)  # same data, repeats, batch size, shuffle and seed
        return new

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(int(self.seed) + int(epoch))


class SpatialGRPOTrainer(CheckpointConversionResumeMixin, GRPOTrainer):
    """``GRPOTrainer`` that feeds images, multi-view images and videos to every forward.

    Extra arguments: ``media_config`` (:class:`MediaConfig`), ``vision_dummy`` (True/False/"auto":
    ZeRO-3 safety, see :mod:`spatialladder.training.zero3`) and ``sample_log_every`` (write
    ``samples.jsonl`` every N optimizer steps; 0 disables).

    Resuming restores weights (the mixin; transformers' own loader restores 1 of Qwen2.5-VL's
    tensors), optimizer, schedule, RNG and data position (:class:`EpochSeededRepeatSampler`), so a
    resumed run is bit-identical to an uninterrupted one when its checkpoint falls on a generation
    boundary: TRL generates one batch for ``steps_per_generation x num_iterations`` micro-steps
    and does not save it (:class:`spatialladder.training.grpo.GRPOConfig` refuses ``save_steps``
    that would put a checkpoint inside a generation batch).
    """

    def __init__(
        self,
        *args: Any,
        media_config: MediaConfig | None = None,
        vision_dummy: bool | str | None = "auto",
        sample_log_every: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        columns = set(getattr(self.train_dataset, "column_names", None) or [])
        if self.use_vllm and columns & {IMAGES_COLUMN, VIDEO_COLUMN}:
            # TRL hands vLLM only `images` from _tokenize_prompts; the media processed here would
            # not reach it (videos in particular), so refuse rather than train blind.
            raise ValueError("use_vllm is not supported with media columns: generate with transformers")
        has_media = bool(columns & {IMAGES_COLUMN, VIDEO_COLUMN})
        check_generation_gather(is_zero3(self.accelerator), self.args.ds3_gather_for_generation, has_media)
        self.media_config = media_config or MediaConfig()
        self.sample_log_every = int(sample_log_every or 0)
        self._active_media: list[dict[str, torch.Tensor | None]] | None = None
        self._pending_prompts: tuple[list[list[int]], dict[str, Any]] | None = None
        self._last_sample_log_step = -1
        self._scored: tuple[torch.Tensor, list[Any], list[Any]] | None = None
        self._epoch_sampler: EpochSeededRepeatSampler | None = None

        # Why: TRL suppresses only the image pad token during sampling. A sampled <|video_pad|> in a
        # completion would make the placeholder count disagree with the video features in the
        # log-prob forward (or silently misalign them), so suppress it as well.
        if hasattr(self, "generation_config") and self._video_pad_token_id is not None:
            suppress = list(self.generation_config.suppress_tokens or [])
            if self._video_pad_token_id not in suppress:
                suppress.append(self._video_pad_token_id)
            self.generation_config.suppress_tokens = suppress
            self.generation_kwargs["suppress_tokens"] = suppress

        # TRL loads the reference model (and a policy given by name) itself: same positions as load_model's.
        for m in (self.model, self.ref_model) if self.ref_model is not None else (self.model,):
            install_original_positions(m)
        # Why: TRL builds the reference model like the policy, i.e. with its float32 master weights.
        # It only runs forwards (no optimizer state), so a bf16/fp16 run holds it in the compute
        # dtype, as evaluation does and as DeepSpeed does with its own copy: half the memory.
        half = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
        if (
            self.ref_model is not None
            and half is not None
            and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)
            and not getattr(self.args, "cast_lm_head_to_fp32", False)
        ):
            self.ref_model.to(half)

        self.vision_dummy = resolve_vision_dummy(vision_dummy, self.accelerator)
        if self.vision_dummy:
            install_uniform_vision_forward(self.model)
            if self.ref_model is not None:
                install_uniform_vision_forward(self.ref_model)

    # ------------------------------------------------------------------------------------------
    # resume: data order
    # ------------------------------------------------------------------------------------------

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is RepeatSampler:
            sampler = self._epoch_sampler = EpochSeededRepeatSampler.from_sampler(sampler)
        return sampler

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        # Why: accelerate forwards set_epoch to the sampler, but not through the wrappers of a
        # resumed multi-process run (skip-batches around the per-process shard); set it for all.
        if self._epoch_sampler is not None and "epoch" in kwargs:
            self._epoch_sampler.set_epoch(kwargs["epoch"])
        return super()._run_epoch(*args, **kwargs)

    # ------------------------------------------------------------------------------------------
    # media plumbing
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _has_media_columns(inputs: Sequence[dict[str, Any]]) -> bool:
        return bool(inputs) and (IMAGES_COLUMN in inputs[0] or VIDEO_COLUMN in inputs[0])

    @contextlib.contextmanager
    def _media_scope(self, media: list[dict[str, torch.Tensor | None]] | None) -> Iterator[None]:
        """Make ``media`` (one dict per row of the forwards about to run) visible to
        :meth:`_get_per_token_logps_and_entropies`, whose TRL callers cannot pass it."""
        previous, self._active_media = self._active_media, media
        try:
            yield
        finally:
            self._active_media = previous

    def _process_batch(self, inputs: Sequence[dict[str, Any]]) -> list[SampleMedia]:
        """Process each distinct (prompt, media) once; the G copies of a prompt share the result."""
        cache: dict[str, SampleMedia] = {}
        out = []
        device = self.accelerator.device
        for x in inputs:
            images = list(x.get(IMAGES_COLUMN) or [])
            video = list(x.get(VIDEO_COLUMN) or []) or None
            key = json.dumps([x["prompt"], images, video], default=str, sort_keys=True)
            if key not in cache:
                sample = process_sample(
                    self.processing_class,
                    x["prompt"],
                    images,
                    video,
                    self.media_config,
                    self.chat_template_kwargs,
                )
                sample.tensors = {
                    k: (v.to(device) if v is not None else None) for k, v in sample.tensors.items()
                }
                cache[key] = sample
            out.append(cache[key])
        return out

    def _mm_token_type_ids(self, input_ids: torch.Tensor, prompt_width: int) -> torch.Tensor:
        """1 on image placeholders, 2 on video placeholders, within the prompt part only (what the
        processor returns; Qwen2.5-VL builds its 3D positions from it)."""
        types = torch.zeros_like(input_ids)
        prompt = input_ids[:, :prompt_width]
        if self._image_pad_token_id is not None:
            types[:, :prompt_width][prompt == self._image_pad_token_id] = 1
        if self._video_pad_token_id is not None:
            types[:, :prompt_width][prompt == self._video_pad_token_id] = 2
        return types

    # ------------------------------------------------------------------------------------------
    # overrides
    # ------------------------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        # Why: TRL builds vision inputs only from an image column and only image tensors reach its
        # log-prob forwards. Process each sample's images/frames here, hand the prompt tensors to
        # generation (via _tokenize_prompts) and the per-sample tensors to the old-policy and
        # reference forwards inside the base method (via _media_scope), then keep them in the batch
        # for the policy forward in _compute_loss.
        if not self._has_media_columns(inputs):
            output = super()._generate_and_score_completions(inputs)
            self._after_scoring(inputs, output)
            return output
        samples = self._process_batch(inputs)
        media = [s.tensors for s in samples]
        generation_fields: dict[str, Any] = collate_media(media)
        self._pending_prompts = ([list(s.prompt_ids) for s in samples], generation_fields)
        try:
            with self._media_scope(media):
                output = super()._generate_and_score_completions(inputs)
        finally:
            self._pending_prompts = None
        # A list (one entry per sample) is shuffled and split by TRL's _prepare_inputs correctly.
        output["media"] = media
        self._after_scoring(inputs, output)
        return output

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], Any, dict[str, Any]]:
        # Why: the base method renders the prompt column itself (text-only here, so no media) and,
        # given video parts, would load frame lists at the processor's default 24 fps. Hand it the
        # ids and tensors processed for this batch instead, so that generation sees exactly what
        # the log-prob forwards see (same placeholders, features and second_per_grid_ts).
        if self._pending_prompts is None:
            return super()._tokenize_prompts(prompts)
        prompt_ids, fields = self._pending_prompts
        if len(prompt_ids) != len(prompts):
            raise RuntimeError(f"processed {len(prompt_ids)} prompts but TRL generates for {len(prompts)}")
        fields = dict(fields)
        # Per-token field: TRL left-pads lists of lists like the prompt ids.
        fields["mm_token_type_ids"] = [
            [1 if t == self._image_pad_token_id else 2 if t == self._video_pad_token_id else 0 for t in ids]
            for ids in prompt_ids
        ]
        return prompt_ids, None, fields

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        # Why: the base method calls _get_per_token_logps_and_entropies with image keys only.
        with self._media_scope(inputs.get("media")):
            return super()._compute_loss(model, inputs)

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        # Why: the base method slices image tensors only. Same computation (TRL's fused LM head:
        # only the completion positions are scored, no full logits), but each chunk of rows gets
        # its samples' images AND videos, their grids, second_per_grid_ts and mm_token_type_ids.
        media = self._active_media
        if media is None:
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **kwargs,
            )
        if len(media) != input_ids.size(0):
            raise RuntimeError(f"{len(media)} media entries for {input_ids.size(0)} sequences")
        batch_size = batch_size or input_ids.size(0)
        prompt_width = input_ids.size(1) - logits_to_keep
        all_logps, all_entropies, all_aux = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            ids, mask = input_ids[start:end], attention_mask[start:end]
            model_inputs: dict[str, Any] = {
                "input_ids": ids,
                "attention_mask": mask,
                "mm_token_type_ids": self._mm_token_type_ids(ids, prompt_width),
                **collate_media(media[start:end]),
            }
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux = torch.stack(all_aux).mean() if compute_aux_loss else None
        return logps, entropies, aux

    # ------------------------------------------------------------------------------------------
    # what a researcher watches
    # ------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        # Why: keep this batch's rewards, prompts and completions for _after_scoring (TRL only
        # keeps them in fixed-size display buffers).
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._scored = (rewards_per_func.detach().float().cpu(), list(prompts), list(completions))
        return rewards_per_func

    def _after_scoring(self, inputs: list[dict[str, Any]], output: dict[str, Any]) -> None:
        """Metrics TRL lacks, and the sample JSONL."""
        scored, self._scored = self._scored, None
        if scored is None:
            return
        per_func, prompts, completions = scored  # per_func is gathered over processes: (N_global, F)
        mode = "train" if self.model.training else "eval"
        names = list(self.reward_func_names)
        total = (per_func * self.reward_weights.to(per_func.dtype)).nansum(dim=1)
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        if num_generations > 1 and total.numel() % num_generations == 0:
            # TRL's reward_std is the std over the whole batch; GRPO's signal is the spread inside a group.
            self._metrics[mode]["reward_std_within_group"].append(
                nanstd(total.view(-1, num_generations), dim=1).nanmean().item()
            )
            for i, name in enumerate(names):
                func_groups = per_func[:, i].reshape(-1, num_generations)
                self._metrics[mode][f"rewards/{name}/std_within_group"].append(
                    nanstd(func_groups, dim=1).nanmean().item()
                )
        data_types = gather_object([x.get("data_type") for x in inputs])
        if len(data_types) == total.numel() and any(dt is not None for dt in data_types):
            for dt in sorted({str(d) for d in data_types if d is not None}):
                sel = torch.tensor([str(d) == dt for d in data_types])
                self._metrics[mode][f"reward_by_data_type/{dt}"].append(total[sel].nanmean().item())

        step = int(self.state.global_step)
        if (
            mode == "train"
            and self.sample_log_every > 0
            and step % self.sample_log_every == 0
            and step != self._last_sample_log_step
        ):
            self._last_sample_log_step = step
            self._write_samples(inputs, prompts, completions, output, per_func, total, step)

    def _write_samples(
        self,
        inputs: list[dict[str, Any]],
        prompts: list[Any],
        completions: list[Any],
        output: dict[str, Any],
        per_func: torch.Tensor,
        total: torch.Tensor,
        step: int,
    ) -> None:
        keep = ("question_id", "answer", "question_type", "data_type", IMAGES_COLUMN, VIDEO_COLUMN)
        local = [
            {
                "prompt": _message_text(p),
                "completion": _message_text(c),
                "advantage": float(a),
                **{k: x.get(k) for k in keep if k in x},
            }
            for p, c, a, x in zip(prompts, completions, output["advantages"].tolist(), inputs)
        ]
        rows = gather_object(local)
        if not self.accelerator.is_main_process:
            return
        path = Path(self.args.output_dir) / SAMPLES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                rewards = {
                    name: _finite(per_func[i, j].item()) for j, name in enumerate(self.reward_func_names)
                }
                record = {"step": step, **row, "rewards": rewards, "reward": _finite(total[i].item())}
                f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def _finite(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None


def _message_text(messages: Any) -> str:
    """Plain text of a prompt/completion (string or chat messages), media parts as markers."""
    if isinstance(messages, str):
        return messages
    lines = []
    for message in messages or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text") or f"<{p.get('type')}>" for p in content)
        lines.append(f"{message.get('role')}: {content}")
    return "\n".join(lines)


__all__ = [
    "IMAGES_COLUMN",
    "SAMPLES_FILE",
    "VIDEO_COLUMN",
    "MediaConfig",
    "SampleMedia",
    "SpatialGRPOTrainer",
    "multimodal_messages",
    "process_sample",
]
