from .webui import PromptError, WebDemo, build_app, list_checkpoints, list_configs, package_root

__all__ = ['PromptError', 'WebDemo', 'build_app', 'list_checkpoints', 'list_configs', 'package_root']
