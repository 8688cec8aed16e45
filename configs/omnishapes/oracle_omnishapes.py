# The OmniShapes test splits (text, visual, omni) for tools/analysis_tools/eval_oracle.py.
_base_ = ['../_base_/datasets/omnishapes.py', '../_base_/default_runtime.py']
