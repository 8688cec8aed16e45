# OmniRef text-test.
# Run: tools/test.py CONFIG CHECKPOINT (or tools/dist_test.sh CONFIG CHECKPOINT GPUS); prints the metric table.
# Published protocol (480 x 480):
#   --cfg-options model.head.test_cfg.pred_size=input test_evaluator.eval_size="(480,480)";
# the published model under it: ./omniref_text-test_release.py
_base_ = ['../../omnisegnet_swinb.py']
test_dataloader = dict(dataset=dict(split='text-test'))
