from .plain_backbone_omnisegnet import PlainBackboneOmniSegNet

__all__ = ['PlainBackboneOmniSegNet']
