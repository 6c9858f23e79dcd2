import pytest


@pytest.fixture
def judged_world(tiny_policy, tiny_reward_model_path, settings, tmp_path):
    """The tiny policy, the tiny RM registered twice (the optimised one and a held-out judge) and
    a project of four prompts: what a policy job with alarms needs."""
    from rewardmodel.models import RewardModel
    from tests.factories import DialogueFactory, ProjectFactory

    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    for name in ("tiny-helpful", "tiny-judge"):
        RewardModel.objects.create(name=name, objective="helpfulness", base_model="tiny",
                                   checkpoint_path=str(tiny_reward_model_path))
    project = ProjectFactory(name="helpful")
    for _ in range(4):
        DialogueFactory(project=project)
    return tiny_policy
