from typing import List, Optional, Sequence

from mmdet.registry import DATASETS

from .base_omni import BaseOmniDataset
from .utils import TARGET_PROMPT_TYPES, CocoIndex, load_json, xywh_to_xyxy


@DATASETS.register_module()
class CocoTargetPromptDataset(BaseOmniDataset):
    """Prompts drawn on the target image itself, from any COCO-format instance file.

    For every non-crowd instance (of ``category_ids``, at least ``min_area`` pixels)
    one sample: the target is that instance alone, and its one visual prompt is on the
    same image (``on_target`` True): clicks, a box or a scribble, drawn by
    ``SynthesizePromptMaps`` (``target_prompt_probs``) unless ``prompt_type`` fixes it.
    Its meaning is the instance, not its category: other instances of the category in
    the image are not targets. ``prompt_modality`` is ``'target'``, the setting 1v1.
    Images without such an instance give no sample.

    Each prompt also carries its *distractors*, the image's other instances that a
    model reading the prompt as its category would add (``distractors``):
    ``LoadVisualPrompts`` decodes them into a label map and ``SynthesizePromptMaps``
    places the later training clicks on them as on the model's own errors.

    Args:
        ann_file (str): COCO-format ``instances.json``.
        data_prefix (dict): ``img_path``: the image folder.
        min_area (float): Smallest instance area (the annotation's ``area``) prompted.
        category_ids (Sequence[int], optional): Restrict to these categories.
        prompt_type (str, optional): ``'click'``, ``'target_box'`` or
            ``'target_scribble'`` for every sample (a test config); None draws one.
        distractors (str, optional): ``'category'`` (default): the other non-crowd
            instances of the prompt's category; ``'all'``: every other non-crowd
            instance; None: none (the later clicks fix a shifted copy of the
            instance only).
    """

    PROMPT_TYPE_CHOICES = tuple(t for t in TARGET_PROMPT_TYPES if t != 'neg_click')

    def __init__(
        self,
        ann_file: str,
        data_prefix: dict = dict(img_path=''),
        min_area: float = 0.0,
        category_ids: Optional[Sequence[int]] = None,
        distractors: Optional[str] = 'category',
        **kwargs,
    ):
        if distractors not in ('category', 'all', None):
            raise ValueError(f"distractors must be 'category', 'all' or None, got {distractors!r}")
        self.distractors = distractors
        self.min_area = float(min_area)
        self.category_ids = None if category_ids is None else {int(c) for c in category_ids}
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        coco = CocoIndex(load_json(self.ann_file), self.ann_file)
        images = [coco.images[i] for i in sorted(coco.images)]
        return self._parse_records(images, lambda img, where: self._image_samples(coco, img, where), self.ann_file)

    def _image_samples(self, coco: CocoIndex, img: dict, where: str) -> List[dict]:
        img_id = int(img['id'])
        samples = []
        anns = coco.anns_by_image.get(img_id, [])
        for ann in anns:
            cat = int(ann['category_id'])
            if ann.get('iscrowd', 0) or (self.category_ids is not None and cat not in self.category_ids):
                continue
            if float(ann.get('area', 0.0)) < self.min_area:
                continue
            ann_where = f'{where} image_id={img_id} ann_id={ann["id"]}'
            target = coco.target(ann['id'], img_id, ann_where)
            sample = self._sample(img, [target], None, [], 'target', ann_where, coco)
            sample['setting'] = '1v1'
            sample['target_prompt'] = dict(
                mask=target['segmentation'],
                bbox=xywh_to_xyxy(target['bbox']),
                ann_id=int(target['id']),
                category_id=cat,
                prompt_type=self.prompt_type,
                on_target=True,
            )
            if self.distractors is not None:
                sample['target_prompt']['distractors'] = [
                    other['segmentation']
                    for other in anns
                    if other['id'] != ann['id']
                    and not other.get('iscrowd', 0)
                    and (self.distractors == 'all' or int(other['category_id']) == cat)
                ]
            samples.append(sample)
        return samples

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if 'invalid' in info:
            return info
        prompt = info.pop('target_prompt')
        prompt.update(img_path=info['img_path'], img_id=info['img_id'], height=info['height'], width=info['width'])
        info['visual_prompts'] = [prompt]
        return info
