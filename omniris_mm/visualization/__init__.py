from .omniris_visualizer import OmniRISVisualizer

__all__ = ['OmniRISVisualizer']
