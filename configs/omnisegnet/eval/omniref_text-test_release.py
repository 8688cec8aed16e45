# OmniRef text-test.
# The published model (a checkpoint converted from the release) under the published protocol
# (480 x 480, see configs/_base_/omniref_published_protocol.py); references are paired
# deterministically (the release draws them at random at test time).
#   tools/test.py CONFIG omnisegnet_release_converted.pth
_base_ = ['../../_base_/omniref_published_protocol.py']
test_dataloader = dict(dataset=dict(split='text-test'))
