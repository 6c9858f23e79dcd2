"""Ghost Attention (Llama 2 sec. 3.3): make a chat model keep a system-like instruction over
many turns. No Django here.

The recipe, top to bottom:
1. an instruction per synthetic dialogue, from the paper's three kinds: a hobby ("You enjoy
   tennis"), a language ("Always answer in French"), a public figure ("Act as Napoleon");
2. the instruction concatenated to *every* user turn, and each assistant turn sampled from the
   latest policy with it in view (`dialogues_sample`);
3. for training the instruction is kept in the first user turn only, and each assistant turn
   becomes one example whose loss is zero on every token before it: previous turns, assistant
   answers included (`training_examples`; rlhf/sft.py's `sft_example` labels only the answer);
4. evaluation: with the instruction in the first turn only, for how many turns in a row does
   the policy keep it (`turns_kept`), judged by a check where one exists (the language: a
   stop-word detector, `language_kept`) and by a reward model otherwise (`judge_kept`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable

HOBBY, LANGUAGE, PUBLIC_FIGURE = "hobby", "language", "public_figure"
TEMPLATES = {
    HOBBY: "You enjoy {}. Bring it into every answer.",
    LANGUAGE: "Always answer in {}.",
    PUBLIC_FIGURE: "Act as {}.",
}


@dataclass(frozen=True)
class Instruction:
    kind: str
    value: str

    @property
    def text(self) -> str:
        return TEMPLATES[self.kind].format(self.value)


@dataclass
class GAttDialogue:
    instruction: Instruction
    users: list[str]  # the user turns, without the instruction
    answers: list[str] = field(default_factory=list)  # sampled assistant turns, one per user turn


def instructions_from(*, hobbies, languages, public_figures) -> list[Instruction]:
    return ([Instruction(HOBBY, v) for v in hobbies] + [Instruction(LANGUAGE, v) for v in languages]
            + [Instruction(PUBLIC_FIGURE, v) for v in public_figures])


def with_instruction(instruction: Instruction, user_text: str) -> str:
    return f"{instruction.text}\n\n{user_text}"


def dialogues_build(prompts: list[str], instructions: list[Instruction], *, count: int, turns: int,
                    seed: int) -> list[GAttDialogue]:
    """`count` dialogues of `turns` distinct prompts each, instruction kinds taken in turn so each
    kind is represented; the same seed gives the same dialogues (a retried job re-samples them)."""
    if len(prompts) < turns:
        raise ValueError(f"a {turns}-turn dialogue needs {turns} distinct prompts; {len(prompts)} given")
    rng = random.Random(seed)
    by_kind = [[i for i in instructions if i.kind == kind] for kind in TEMPLATES]
    by_kind = [group for group in by_kind if group]
    return [GAttDialogue(rng.choice(by_kind[n % len(by_kind)]), rng.sample(prompts, turns)) for n in range(count)]


def conversation(dialogue: GAttDialogue, upto: int, *, instruction_everywhere: bool) -> list[dict]:
    """Messages up to and including user turn `upto` (0-based): the instruction on every user
    turn (sampling) or on the first only (training, evaluation)."""
    messages = []
    for t in range(upto + 1):
        show = instruction_everywhere or t == 0
        messages.append({"role": "user", "content": with_instruction(dialogue.instruction, dialogue.users[t])
                         if show else dialogue.users[t]})
        if t < upto:
            messages.append({"role": "assistant", "content": dialogue.answers[t]})
    return messages


def dialogues_sample(generate: Callable[[list[list[dict]]], list[str]], dialogues: list[GAttDialogue], *,
                     instruction_everywhere: bool, on_turn: Callable[[int], None] | None = None):
    """Fill each dialogue's answers turn by turn; `generate(conversations) -> texts` (a batch of
    every dialogue's next turn at once)."""
    for dialogue in dialogues:
        dialogue.answers = []
    for t in range(len(dialogues[0].users) if dialogues else 0):
        texts = generate([conversation(d, t, instruction_everywhere=instruction_everywhere) for d in dialogues])
        for dialogue, text in zip(dialogues, texts):
            dialogue.answers.append(text)
        if on_turn:
            on_turn(t + 1)
    return dialogues


def training_examples(dialogue: GAttDialogue) -> list[tuple[list[dict], str]]:
    """(context, answer) per assistant turn, the instruction in the first user turn only; the
    answer is the only labelled part of each example, so earlier turns carry no loss."""
    return [(conversation(dialogue, t, instruction_everywhere=False), dialogue.answers[t])
            for t in range(len(dialogue.answers))]


# --- evaluation: how many turns is the instruction kept ----------------------------------------

# The most frequent function words of each language (short lists are enough to tell languages
# apart on a sentence; a response in another language scores near zero on them).
STOP_WORDS = {
    "English": "the and is are to of a in that it you for with this be not on have as i",
    "French": "le la les et est des un une de du que qui pas pour en je vous il nous ce dans sur avec",
    "Spanish": "el la los las y es de que un una en por para con no se lo su al como",
    "German": "der die das und ist nicht ein eine zu den von mit sie ich es auf für im dem sich",
    "Italian": "il lo la le e è di che un una per non con sono del della gli si mi ti",
}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def language_share(text: str, language: str) -> float:
    words = WORD.findall(text.lower())
    if not words:
        return 0.0
    stop = set(STOP_WORDS[language].split())
    return sum(word in stop for word in words) / len(words)


def language_kept(text: str, language: str) -> bool | None:
    """Whether `text` is in `language` by stop-word share: above 10 % and above every other
    listed language's. None when the language has no stop-word list (no check exists)."""
    if language not in STOP_WORDS:
        return None
    shares = {name: language_share(text, name) for name in STOP_WORDS}
    return shares[language] >= 0.1 and all(shares[language] > s for name, s in shares.items() if name != language)


def judge_kept(score: Callable[[list[list[dict]]], list[float]], dialogue: GAttDialogue, t: int) -> bool:
    """A reward model as judge: the answer fits the instruction when the RM scores it higher as
    a reply to the instructed question than to the bare one."""
    asked = [{"role": "user", "content": with_instruction(dialogue.instruction, dialogue.users[t])},
             {"role": "assistant", "content": dialogue.answers[t]}]
    bare = [{"role": "user", "content": dialogue.users[t]}, {"role": "assistant", "content": dialogue.answers[t]}]
    with_it, without = score([asked, bare])
    return with_it > without


def turns_kept(checks: list[bool]) -> int:
    """Turns in a row, from the first, whose answer kept the instruction."""
    count = 0
    for kept in checks:
        if not kept:
            break
        count += 1
    return count


def instruction_evaluation(dialogues: list[GAttDialogue], score=None) -> dict:
    """Mean turns kept in a row and the share kept per turn, overall and per kind, over the
    dialogues that can be judged: language always (the detector), the others with `score`."""
    judged = []
    for dialogue in dialogues:
        if dialogue.instruction.kind == LANGUAGE and dialogue.instruction.value in STOP_WORDS:
            checks = [language_kept(a, dialogue.instruction.value) for a in dialogue.answers]
        elif score is not None:
            checks = [judge_kept(score, dialogue, t) for t in range(len(dialogue.answers))]
        else:
            continue
        judged.append((dialogue.instruction.kind, checks))
    if not judged:
        return {"gatt/turns_kept": None, "dialogues": 0}

    def summary(rows):
        turns = len(rows[0][1])
        return {"gatt/turns_kept": sum(turns_kept(c) for _, c in rows) / len(rows),
                "gatt/kept_by_turn": [sum(c[t] for _, c in rows) / len(rows) for t in range(turns)],
                "dialogues": len(rows)}

    kinds = sorted({kind for kind, _ in judged})
    return {**summary(judged), "by_kind": {k: summary([r for r in judged if r[0] == k]) for k in kinds},
            "judge": {LANGUAGE: "stop-word detector", "other": "reward model" if score else "not judged"}}
