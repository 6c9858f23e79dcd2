"""The words of a judgment mean the same in the database, the export and the dashboard."""

from annotation.models import Judgment, Strength, Turn
from core import vocabulary as words


def test_the_models_choices_are_the_shared_vocabulary():
    assert tuple(Strength.values) == words.STRENGTHS
    assert dict(Strength.choices) == words.STRENGTH_LABELS
    assert set(Judgment.Choice.values) == {words.CHOICE_A, words.CHOICE_B, words.CHOICE_TIE}
    assert tuple(Turn.Role.values) == words.ROLES


def test_a_judgments_bin_is_the_bin_of_its_chosen_and_rejected_labels():
    # Labels are by side in a judgment (A, B), by role in a pair (chosen, rejected).
    assert words.safety_bin_of_judgment("a", True, False) == words.CHOSEN_SAFE_OTHER_UNSAFE
    assert words.safety_bin_of_judgment("b", True, False) == words.CHOSEN_UNSAFE_OTHER_SAFE
    assert words.safety_bin_of_judgment("b", False, False) == words.BOTH_UNSAFE
    assert words.safety_bin_of_judgment("tie", True, True) == words.UNLABELLED
    assert words.safety_bin(True, None) == words.UNLABELLED
    for bin_, labels in words.SAFETY_LABELS_OF_BIN.items():
        assert words.safety_bin(*labels) == bin_
