from .refseg_omniris_metric import RefSegOmniRISMetric

__all__ = ['RefSegOmniRISMetric']
