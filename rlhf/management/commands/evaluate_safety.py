from margin.models import Job
from rlhf import jobs, safety_eval
from rlhf.config import SafetyEvaluationConfig
from rlhf.management.commands._policy_job import PolicyJobCommand


class Command(PolicyJobCommand):
    help = ("Safety evaluation (Llama 2 sec. 4.4): sample the adversarial prompts from a policy version, judge each "
            "response with the safety RM at its gate, report the violation rate per risk category with 95 %% "
            "Wilson intervals; --human-sample N --project X sends N responses to annotators.")
    config_class = SafetyEvaluationConfig
    kind = Job.Kind.EVALUATE_SAFETY
    params = staticmethod(jobs.safety_evaluate_params)
    start = staticmethod(jobs.safety_evaluate_start)
    run = staticmethod(safety_eval.safety_evaluate_run)
