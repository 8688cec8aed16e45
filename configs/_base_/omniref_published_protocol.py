# The published OmniRef evaluation protocol with the published model (the release's evaluator,
# compared side by side): images resized to 480 x 480 with PIL's bilinear filter and reference
# masks with PIL's nearest neighbour (as the release's detectron2 Resize and torchvision
# transforms do), the model's masks scored as predicted at 480 x 480 (no round trip through the
# original size), the ground truth resized to 480 x 480 by nearest neighbour (torch's
# F.interpolate, as the release resizes each referred mask), referred crowd annotations scored as
# targets like any other (crowd='target'; ours makes crowds of a referred category void).
# One difference is kept on purpose: images are read as stored (EXIF orientation ignored, as in all
# our configs); the release applies a JPEG's orientation tag to the image but not to its masks.
# For our own model under this protocol: --cfg-options model.head.test_cfg.pred_size=input
#   test_evaluator.eval_size="(480,480)"
_base_ = ['../omnisegnet/omnisegnet_swinb_release.py']
model = dict(head=dict(test_cfg=dict(pred_size='input')))
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='LoadVisualPrompts'),
    dict(type='OmniResize', scale=(480, 480), keep_ratio=False, backend='pillow', mask_backend='pillow'),
    dict(type='LoadOmniAnnotations'),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline, crowd='target'))
test_evaluator = dict(eval_size=(480, 480))
