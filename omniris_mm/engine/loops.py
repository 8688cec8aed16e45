"""Validation and test loops that go on past a batch whose samples were all skipped.

mmengine's ``ValLoop`` and ``TestLoop`` index the model's outputs (``outputs[-1]``) to look for
a loss, so a batch of samples skipped under ``on_invalid='skip'`` (``omni_collate`` gives it no
``inputs``) stops the run. These loops hand such a batch to the evaluator with no prediction
(the metrics count the skipped samples) and call the hooks as for any batch.
"""

from mmdet.registry import LOOPS
from mmengine.runner import TestLoop, ValLoop


class _SkippedBatches:
    stage = ''

    def run_iter(self, idx, data_batch):
        if isinstance(data_batch, dict) and not len(data_batch.get('inputs', ())):
            self.runner.call_hook(f'before_{self.stage}_iter', batch_idx=idx, data_batch=data_batch)
            self.evaluator.process(data_samples=[], data_batch=data_batch)
            self.runner.call_hook(f'after_{self.stage}_iter', batch_idx=idx, data_batch=data_batch, outputs=[])
            return
        return super().run_iter(idx, data_batch)


@LOOPS.register_module()
class OmniValLoop(_SkippedBatches, ValLoop):
    """mmengine's ``ValLoop`` that passes an all-skipped batch to the evaluator (see the module)."""

    stage = 'val'


@LOOPS.register_module()
class OmniTestLoop(_SkippedBatches, TestLoop):
    """mmengine's ``TestLoop`` that passes an all-skipped batch to the evaluator (see the module)."""

    stage = 'test'
