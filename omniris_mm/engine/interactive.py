"""The interactive-segmentation protocol (NoC): clicks on the target, one at a time.

For every sample whose prompts include clicks on the target (``CocoTargetPromptDataset``
with ``prompt_type='click'``), the loop throws away the dataset's clicks and places its own:
the first at the centre of the object (the largest error region of an empty answer), each
next one at the centre of the largest error region of the model's last answer
(:func:`~omniris_mm.datasets.transforms.largest_error_click`, positive in a missed region,
negative in a false one), up to ``max_clicks`` or until the IoU reaches ``stop_iou``. The
IoU after each click goes to the evaluator as ``click_ious`` on the prediction
(``InteractiveSegMetric``: mIoU after one click, NoC@85, NoC@90).

mmengine's ``TestLoop`` runs the model once per batch; this protocol needs the model's answer
before it can place the next click, so it is a loop of its own.
"""

from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.registry import LOOPS
from mmengine.runner.amp import autocast

from ..datasets.transforms import SynthesizePromptMaps, click_prompts, largest_error_click
from ..datasets.utils import IGNORE_INDEX
from .loops import OmniTestLoop


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    valid = gt != IGNORE_INDEX
    truth = (gt == 1) & valid
    pred = pred & valid
    union = (pred | truth).sum()
    return float((pred & truth).sum() / union) if union else 1.0


def _resized(mask: np.ndarray, shape) -> np.ndarray:
    if mask.shape == tuple(shape):
        return mask
    t = torch.from_numpy(mask.astype(np.uint8))[None, None].float()
    return F.interpolate(t, size=tuple(shape), mode='nearest')[0, 0].numpy() > 0


@LOOPS.register_module()
class InteractiveTestLoop(OmniTestLoop):
    """NoC evaluation of clicks on the target (see the module).

    Args:
        runner, dataloader, evaluator, fp16: As mmengine's ``TestLoop``.
        max_clicks (int): Most clicks per object (the literature: 20).
        stop_iou (float, optional): Stop clicking an object at this IoU (0.9: NoC@90 and
            NoC@85 are then known); None clicks ``max_clicks`` times.
        click_radius (float, optional), base_size (int, optional): Disk radius of a click at
            ``base_size`` (scaled with the image); None reads them from the dataset's
            ``SynthesizePromptMaps``, so clicks are drawn as in training.
    """

    def __init__(
        self,
        runner,
        dataloader,
        evaluator,
        max_clicks: int = 20,
        stop_iou=0.9,
        click_radius=None,
        base_size=None,
        fp16: bool = False,
    ):
        super().__init__(runner, dataloader, evaluator, fp16)
        if max_clicks < 1:
            raise ValueError(f'max_clicks must be >= 1, got {max_clicks}')
        self.max_clicks = int(max_clicks)
        self.stop_iou = stop_iou
        synth = next(
            (
                t
                for t in getattr(self.dataloader.dataset.pipeline, 'transforms', [])
                if isinstance(t, SynthesizePromptMaps)
            ),
            None,
        )
        self.click_radius = click_radius if click_radius is not None else getattr(synth, 'click_radius', 5.0)
        self.base_size = base_size if base_size is not None else getattr(synth, 'base_size', 480)

    @staticmethod
    def _click_index(sample) -> int:
        types = [t for t in sample.metainfo.get('prompt_types', []) if t != 'text']
        if 'click' not in types:
            raise ValueError(
                f'InteractiveTestLoop: sample {sample.metainfo.get("record_id", sample.metainfo.get("img_path"))} '
                f'has no clicks on the target (prompt types {types}); use a dataset of clicks '
                "(CocoTargetPromptDataset(prompt_type='click'))"
            )
        return types.index('click')

    def _set_clicks(self, sample, base: dict, clicks: List[tuple]) -> None:
        """Replace the sample's click prompts by maps of ``clicks``, in the reference's pixels."""
        ref_img, ref_mask = base['ref_img'], base['ref_mask']
        h, w = ref_mask.shape
        radius = self.click_radius * np.sqrt(h * w) / self.base_size
        new = click_prompts(clicks, (h, w), radius)
        keep = base['keep']
        sample.ref_imgs = [base['ref_imgs'][i] for i in keep] + [ref_img] * len(new)
        sample.prompt_maps = [base['prompt_maps'][i] for i in keep] + [
            torch.from_numpy(m[None]).to(torch.uint8) for _, m, _ in new
        ]
        sample.ref_masks = [base['ref_masks'][i] for i in keep] + [
            torch.from_numpy(ref_mask[None].astype(np.uint8))
        ] * len(new)
        metas = base['ref_metas']
        click_meta = dict(metas[base['index']], on_target=True)
        visual = [base['types'][i] for i in keep] + [t for t, _, _ in new]
        sample.set_metainfo(
            dict(
                prompt_types=(['text'] if base['text'] else []) + visual,
                ref_metas=[metas[i] for i in keep] + [dict(click_meta, prompt_type=t, clicks=c) for t, _, c in new],
            )
        )

    @torch.no_grad()
    def run_iter(self, idx, data_batch) -> None:
        if isinstance(data_batch, dict) and not len(data_batch.get('inputs', ())):
            return super().run_iter(idx, data_batch)  # all skipped: counted by the metric
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        samples = data_batch['data_samples']
        bases, clicks, ious, done = [], [], [], []
        for sample in samples:
            i = self._click_index(sample)
            types = [t for t in sample.metainfo.get('prompt_types', []) if t != 'text']
            ref_mask = sample.ref_masks[i][0].numpy() > 0
            bases.append(
                dict(
                    index=i,
                    types=types,
                    text=bool(sample.metainfo.get('text')),
                    keep=[j for j, t in enumerate(types) if t not in ('click', 'neg_click')],
                    ref_img=sample.ref_imgs[i],
                    ref_mask=ref_mask,
                    ref_imgs=list(sample.ref_imgs),
                    prompt_maps=list(sample.prompt_maps),
                    ref_masks=list(sample.ref_masks),
                    ref_metas=list(sample.metainfo.get('ref_metas') or [{}] * len(types)),
                )
            )
            clicks.append([largest_error_click(ref_mask, np.zeros_like(ref_mask))])
            ious.append([])
            done.append(False)
        final = [None] * len(samples)
        for _ in range(self.max_clicks):
            active = [k for k in range(len(samples)) if not done[k]]
            if not active:
                break
            for k in active:
                self._set_clicks(samples[k], bases[k], clicks[k])
            batch = dict(
                data_batch, inputs=[data_batch['inputs'][k] for k in active], data_samples=[samples[k] for k in active]
            )
            with autocast(enabled=self.fp16):
                preds = self.runner.model.test_step(batch)
            for k, pred in zip(active, preds):
                final[k] = pred
                answer = pred.pred_sem_seg.sem_seg[0].cpu().numpy() > 0
                gt = pred.gt_sem_seg.sem_seg[0].cpu().numpy()
                ious[k].append(_iou(_resized(answer, gt.shape), gt))
                if len(ious[k]) >= self.max_clicks or (self.stop_iou is not None and ious[k][-1] >= self.stop_iou):
                    done[k] = True
                    continue
                nxt = largest_error_click(bases[k]['ref_mask'], _resized(answer, bases[k]['ref_mask'].shape))
                if nxt is None:
                    done[k] = True
                else:
                    clicks[k].append(nxt)
        for pred, pred_ious in zip(final, ious):
            pred.click_ious = pred_ious
            pred.set_metainfo(dict(max_clicks=self.max_clicks))
        outputs = final
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)
