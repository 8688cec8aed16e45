from .instance_criterion import InstanceCriterion
from .referring_criterion import ReferringCriterion

__all__ = ['InstanceCriterion', 'ReferringCriterion']
