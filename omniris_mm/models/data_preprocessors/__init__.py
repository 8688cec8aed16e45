from .omni_data_preprocessor import OmniDataPreprocessor

__all__ = ['OmniDataPreprocessor']
