from margin.models import Job
from rlhf import services
from rlhf.config import PolicyEvaluationConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = "RM-judged win rate of a policy version against its parent on held-out prompts."
    config_class = PolicyEvaluationConfig
    kind = Job.Kind.EVALUATE_POLICY
    params = staticmethod(services.policy_evaluate_params)
    start = staticmethod(services.policy_evaluate_start)
    run = staticmethod(services.policy_evaluate_run)
