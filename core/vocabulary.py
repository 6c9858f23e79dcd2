"""The words of a judgment, defined once: strengths, choices, chat roles and safety bins.

The Django models build their `TextChoices` from these, the reward-model data builder, the
exporters and the dashboard read them, so a bin or a strength has one name everywhere.
"""

# The paper's four rating levels, strongest first (Llama 2, sec. 3.2.1; Table 8's columns).
SIGNIFICANTLY_BETTER = "significantly_better"
BETTER = "better"
SLIGHTLY_BETTER = "slightly_better"
NEGLIGIBLY_BETTER = "negligibly_better"
STRENGTHS = (SIGNIFICANTLY_BETTER, BETTER, SLIGHTLY_BETTER, NEGLIGIBLY_BETTER)
STRENGTH_LABELS = {
    SIGNIFICANTLY_BETTER: "Significantly better",
    BETTER: "Better",
    SLIGHTLY_BETTER: "Slightly better",
    NEGLIGIBLY_BETTER: "Negligibly better / unsure",
}
UNGRADED = ""  # imported labels without a strength (HH-RLHF, PandaLM, Auto-J)

# Llama 2 Table 27: margin per rating level, by the project's margin scheme.
MARGINS = {
    "none": dict.fromkeys(STRENGTHS, 0.0),
    "small": dict(zip(STRENGTHS, (1.0, 2 / 3, 1 / 3, 0.0))),
    "large": dict(zip(STRENGTHS, (3.0, 2.0, 1.0, 0.0))),
}

# Which response a judgment prefers. Ties come from imported labels (PandaLM, Auto-J) and from
# annotators of projects with allow_tie (off by default: Llama 2's annotators always pick a side).
CHOICE_A = "a"
CHOICE_B = "b"
CHOICE_TIE = "tie"
CHOICE_LABELS = {CHOICE_A: "Response A", CHOICE_B: "Response B", CHOICE_TIE: "Tie"}

# Chat roles of a dialogue turn (the chat-template names transformers and OpenAI use).
SYSTEM = "system"
USER = "user"
ASSISTANT = "assistant"
ROLES = (SYSTEM, USER, ASSISTANT)

# Safety bins of a pair (Llama 2 sec. 3.2.1): the chosen response's label, then the other's.
CHOSEN_SAFE_OTHER_UNSAFE = "chosen_safe_other_unsafe"
BOTH_SAFE = "both_safe"
BOTH_UNSAFE = "both_unsafe"
CHOSEN_UNSAFE_OTHER_SAFE = "chosen_unsafe_other_safe"  # dropped for the safety RM
UNLABELLED = ""  # a side without a safe / unsafe label, or a tie
SAFETY_BINS = (CHOSEN_SAFE_OTHER_UNSAFE, BOTH_SAFE, BOTH_UNSAFE)  # the bins the safety RM keeps
SAFETY_BIN_LABELS = {
    CHOSEN_SAFE_OTHER_UNSAFE: "Chosen safe, other unsafe",
    BOTH_SAFE: "Both safe",
    BOTH_UNSAFE: "Both unsafe",
    CHOSEN_UNSAFE_OTHER_SAFE: "Chosen unsafe, other safe",
    UNLABELLED: "Not labelled",
}
_BIN_OF_LABELS = {
    (True, True): BOTH_SAFE,
    (True, False): CHOSEN_SAFE_OTHER_UNSAFE,
    (False, False): BOTH_UNSAFE,
    (False, True): CHOSEN_UNSAFE_OTHER_SAFE,
}
SAFETY_LABELS_OF_BIN = {bin_: labels for labels, bin_ in _BIN_OF_LABELS.items()}


def check_messages(messages) -> None:
    """A dialogue to score: a non-empty list of {role, content} ending with the assistant's
    response. ValueError says which message is wrong."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"message {number}: role must be one of {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"message {number}: content must be a string")
    if messages[-1]["role"] != ASSISTANT:
        raise ValueError("the last message must be the assistant response to score")


def safety_bin(chosen_safe: bool | None, rejected_safe: bool | None) -> str:
    """The bin of a pair from its chosen and rejected responses' labels; UNLABELLED if one is missing."""
    if chosen_safe is None or rejected_safe is None:
        return UNLABELLED
    return _BIN_OF_LABELS[(bool(chosen_safe), bool(rejected_safe))]


def safety_bin_of_judgment(choice: str, a_safe: bool | None, b_safe: bool | None) -> str:
    """The bin of one judgment, whose labels are by side (A / B) rather than chosen / rejected."""
    if choice == CHOICE_A:
        return safety_bin(a_safe, b_safe)
    if choice == CHOICE_B:
        return safety_bin(b_safe, a_safe)
    return UNLABELLED
