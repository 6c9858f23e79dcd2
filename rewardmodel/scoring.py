"""Score dialogues with a trained reward model: what rejection sampling, PPO and
`manage.py score_responses` call.

    scorer = load_scorer("helpful-v1")          # a registered name or a checkpoint path
    scorer.score([[{"role": "user", ...}, {"role": "assistant", ...}]])  # -> [1.73]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from core.jsonio import RecordError, jsonl_rows
from core.vocabulary import check_messages
from modelruntime.packing import fit
from modelruntime.readout import readout_features, readout_of
from rewardmodel.modeling import encode, load_for_scoring, prompt_length


class RewardScorer:
    def __init__(self, model, tokenizer, max_length: int = 1024, truncation_side: str = "left"):
        from modelruntime.prefixcache import PrefixCache

        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.truncation_side = truncation_side  # as the model was trained (modelruntime/packing.py's fit)
        # The model is frozen: a prompt read once (K responses to it, the next PPO pass) is not read again.
        self.prompts = PrefixCache()

    @property
    def device(self):
        return next(self.model.parameters()).device

    def score(self, conversations: list[list[dict]], batch_size: int = 8) -> list[float]:
        """Raw scalar scores (higher is better), in input order."""
        for number, messages in enumerate(conversations, start=1):
            try:
                check_messages(messages)
            except ValueError as bad:
                raise ValueError(f"conversation {number}: {bad}") from bad
        prompts, responses = [], []
        for messages in conversations:
            ids = encode(self.tokenizer, messages, 10**9)
            split = prompt_length(self.tokenizer, messages, ids)
            prompt, (response,) = fit(ids[:split], [ids[split:]], self.max_length, self.truncation_side)
            prompts.append(prompt)
            responses.append(response)
        # Similar lengths share a batch: less padding to compute.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))
        result = [0.0] * len(prompts)
        readout = readout_of(self.model)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                hidden, mask = self.prompts.run(self.model.base_model, [prompts[i] for i in rows],
                                                [responses[i] for i in rows], readout.layers)
                # Only the response's tokens were run: its last is the score's token, all are its span.
                features = readout_features(readout, hidden if readout.layers else [hidden],
                                            torch.arange(len(rows), device=mask.device), mask.sum(1) - 1, mask)
                for i, value in zip(rows, self.model.score(features).squeeze(-1).float().tolist()):
                    result[i] = value
        return result


def resolve_checkpoint(name_or_path: str) -> Path:
    """A checkpoint directory, or the one of the reward model registered under that name."""
    from modelruntime.modelstore import ModelStoreError, checkpoint_is_complete

    path = Path(name_or_path)
    if path.is_dir():
        if not checkpoint_is_complete(path):
            raise ModelStoreError(f"{path} is not a complete checkpoint (no margin.json)")
        return path
    from rewardmodel.models import RewardModel

    record = RewardModel.objects.filter(name=name_or_path).first()
    if record is None:
        raise ModelStoreError(
            f"no reward model named {name_or_path!r} and no checkpoint directory at that path"
        )
    if not checkpoint_is_complete(record.checkpoint_path):
        raise ModelStoreError(f"reward model {record.name!r} has no complete checkpoint yet")
    return Path(record.checkpoint_path)


def load_scorer(name_or_path: str, device=None, max_length: int | None = None) -> RewardScorer:
    from modelruntime.modelstore import pick_device, read_metadata

    path = resolve_checkpoint(str(name_or_path))
    model, tokenizer = load_for_scoring(path, device or pick_device())
    trained = read_metadata(path).get("config", {})
    return RewardScorer(model, tokenizer, max_length or trained.get("max_length", 1024),
                        trained.get("truncation_side", "left"))


def read_scoring_input(path: Path | str) -> list[dict]:
    """Every line of a `{"id", "messages"}` JSONL file, validated before anything is scored;
    RecordError names the bad line and field."""
    records = []
    for number, record in jsonl_rows(path):
        if not isinstance(record, dict):
            raise RecordError(number, "(line)", "expected a JSON object")
        if "id" not in record:
            raise RecordError(number, "id", "missing")
        try:
            check_messages(record.get("messages"))
        except ValueError as bad:
            raise RecordError(number, "messages", str(bad)) from bad
        records.append(record)
    if not records:
        raise RecordError(0, "(file)", "no records")
    return records


def score_file(scorer: RewardScorer, input_path, output_path, batch_size=8, on_progress=None) -> int:
    """Write each input record plus its `"score"`; the output appears whole or not at all."""
    records = read_scoring_input(input_path)
    values = []
    for start in range(0, len(records), batch_size * 8):
        chunk = records[start : start + batch_size * 8]
        values.extend(scorer.score([r["messages"] for r in chunk], batch_size=batch_size))
        if on_progress:
            on_progress(len(values), len(records))
    output_path = Path(output_path)
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for record, value in zip(records, values):
            out.write(json.dumps({**record, "score": value}, ensure_ascii=False) + "\n")
    os.replace(tmp, output_path)
    return len(records)
