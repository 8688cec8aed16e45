# mmdet's stock RefCOCO (unc) val set and pipeline, scored with the OmniRIS metrics instead of RefSegMetric.
# Data and evaluator only: how to score a model with it is in ../README.md.
_base_ = ['mmdet::_base_/datasets/refcoco.py']

custom_imports = dict(
    imports=['omniris_mm', 'projects.refcoco_omniris_metric.refcoco_omniris_metric'], allow_failed_imports=False
)

# Masks are scored at the original image size; eval_size=(480, 480) reproduces the published protocol.
val_evaluator = dict(_delete_=True, type='RefSegOmniRISMetric')
test_evaluator = val_evaluator
