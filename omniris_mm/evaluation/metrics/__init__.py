from .fewshot_metric import FewShotSegMetric
from .omniris_metric import OmniRISMetric

__all__ = ['FewShotSegMetric', 'OmniRISMetric']
