from margin.models import Job
from rlhf import jobs, work
from rlhf.config import PolicyEvaluationConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = "RM-judged win rate of a policy version against its parent on held-out prompts."
    config_class = PolicyEvaluationConfig
    kind = Job.Kind.EVALUATE_POLICY
    params = staticmethod(jobs.policy_evaluate_params)
    start = staticmethod(jobs.policy_evaluate_start)
    run = staticmethod(work.policy_evaluate_run)
