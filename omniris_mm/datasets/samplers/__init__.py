from .ratio_sampler import RatioMultiSourceSampler

__all__ = ['RatioMultiSourceSampler']
