"""``omni_collate``: mmengine's ``pseudo_collate`` that lets skipped test samples through as counts."""

from typing import Sequence

from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS

from .utils import SKIPPED_KEY


@FUNCTIONS.register_module()
def omni_collate(data_batch: Sequence) -> dict:
    """Collate as ``pseudo_collate`` does, leaving out the samples fetched as
    ``{SKIPPED_KEY: message}`` (test mode, ``on_invalid='skip'``) and listing their
    messages under ``SKIPPED_KEY``, where ``OmniRISMetric`` and ``FewShotSegMetric``
    count them. A batch of skipped samples only has empty ``inputs`` and
    ``data_samples`` (the model predicts nothing for it)."""
    skipped = [d[SKIPPED_KEY] for d in data_batch if isinstance(d, dict) and SKIPPED_KEY in d]
    kept = [d for d in data_batch if not (isinstance(d, dict) and SKIPPED_KEY in d)]
    batch = pseudo_collate(kept) if kept else dict(inputs=[], data_samples=[])
    if skipped:
        batch[SKIPPED_KEY] = skipped
    return batch
