from .inferencer import OmniRISInferencer

__all__ = ['OmniRISInferencer']
