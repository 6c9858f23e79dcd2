import factory
from django.contrib.auth import get_user_model

from annotation.models import (
    Batch,
    Comparison,
    Dialogue,
    Objective,
    Project,
    Response,
    Turn,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"annotator{n}")
    password = factory.django.Password("pw-for-tests-123")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True

    class Meta:
        skip_postgeneration_save = True  # the hook saves what it changes

    @factory.post_generation
    def roles(user, create, extracted, **kwargs):
        """Every staff role (margin/roles.py) unless the test names fewer: roles=["viewer"]."""
        if create:
            from margin.roles import ROLES, staff_roles_set

            staff_roles_set(user=user, roles=list(ROLES) if extracted is None else extracted)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    objective = Objective.HELPFULNESS
    guidelines = "Pick the more helpful response."


class SafetyProjectFactory(ProjectFactory):
    objective = Objective.SAFETY
    guidelines = "Label each response safe or unsafe."


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)


class DialogueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dialogue
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    turn = factory.RelatedFactory(
        "tests.factories.TurnFactory", factory_related_name="dialogue", index=0
    )


class TurnFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Turn

    dialogue = factory.SubFactory(DialogueFactory)
    index = 0
    role = Turn.Role.USER
    content = factory.Sequence(lambda n: f"Prompt number {n}?")


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    dialogue = factory.SubFactory(DialogueFactory)
    context_length = 1
    text = factory.Sequence(lambda n: f"Answer {n}.")
    model_name = "test-model"


class ComparisonFactory(factory.django.DjangoModelFactory):
    """A comparison in an open batch; the dialogue belongs to the batch's project."""

    class Meta:
        model = Comparison

    batch = factory.SubFactory(BatchFactory)
    dialogue = factory.SubFactory(DialogueFactory, project=factory.SelfAttribute("..batch.project"))
    context_length = 1
    response_a = factory.SubFactory(
        ResponseFactory, dialogue=factory.SelfAttribute("..dialogue"), text="Response A text"
    )
    response_b = factory.SubFactory(
        ResponseFactory, dialogue=factory.SelfAttribute("..dialogue"), text="Response B text"
    )


class JudgmentFactory(factory.django.DjangoModelFactory):
    """A judgment stored directly (no lease), for dashboards and statistics."""

    class Meta:
        model = "annotation.Judgment"

    comparison = factory.SubFactory(ComparisonFactory)
    annotator = factory.SubFactory(UserFactory)
    choice = "a"
    strength = "better"
    seconds_spent = 30.0
