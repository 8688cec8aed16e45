from .fewshot_metric import FewShotSegMetric
from .interactive_metric import InteractiveSegMetric, clicks_to_reach
from .omniris_metric import OmniRISMetric

__all__ = ['FewShotSegMetric', 'InteractiveSegMetric', 'OmniRISMetric', 'clicks_to_reach']
