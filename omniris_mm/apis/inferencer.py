"""``OmniRISInferencer``: segment what a text and/or visual prompts refer to, from Python."""

import hashlib
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.registry import MODELS, VISUALIZERS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from ..datasets.transforms.prompts import box_prompt, click_prompts

ImageType = Union[str, np.ndarray]
PROMPT_KINDS = ('mask', 'box', 'scribble')


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else str(part).encode())
        if isinstance(part, np.ndarray):
            h.update(str(part.shape).encode())
    return h.hexdigest()


class OmniRISInferencer:
    """Omni-referring segmentation in the manner of mmdet's ``DetInferencer``.

    One call takes a target image (a path, or an (H, W, 3) BGR array as mmcv reads
    it) with a ``text`` and/or ``visual_prompts``; each visual prompt is a dict with
    ``image`` (the reference, path or BGR array) and exactly one of ``mask`` (an (H, W)
    array of the reference's size), ``box`` (``x1, y1, x2, y2`` in its pixels) or
    ``scribble`` (an (H, W) array of the strokes); ``negative=True`` makes it a negative
    exemplar ("not like this": the answer leaves out objects of its kind). A list of such dicts (keys
    ``image``, ``text``, ``visual_prompts`` and those below) is a batch.

    Prompts on the target image itself mean that one object: ``points`` (clicks
    ``(x, y, 1)`` positive or ``(x, y, 0)`` negative, in the target's pixels; the
    negative ones form a ``neg_click`` prompt of their own), ``target_box``
    (``x1, y1, x2, y2``) and ``target_scribble`` (an (H, W) array of the target's
    size). They combine with a text and references in one pass. :meth:`refine`
    adds a click to a previous answer's prompts (the interactive loop).

    The visual tokens of each reference (image + prompt) are computed once and kept
    (``cache_references``): a reference that serves many targets, as in few-shot use,
    costs its backbone and prompt-encoder pass once (``num_reference_passes`` counts).

    Each answer is a dict: ``union_mask`` (H, W) bool at the target's size,
    ``masks`` (k, H, W) bool and ``scores`` (k,) of the instances (none when no
    target), ``no_target`` and ``no_target_score``, and ``inputs``: the prompts it
    answers (for :meth:`refine`).

    Args:
        model (str | Config): Config file or object (``model`` and a test pipeline
            with ``OmniResize``).
        weights (str, optional): Checkpoint.
        device (str, optional): Defaults to CUDA when available.
        cache_references (bool): Keep reference tokens between calls. Defaults to True.
        init_weights (bool): Without ``weights``, initialise the model (pretrained parts from
            their sources). Defaults to True.
    """

    def __init__(
        self,
        model: Union[str, Config],
        weights: Optional[str] = None,
        device: Optional[str] = None,
        cache_references: bool = True,
        init_weights: bool = True,
    ):
        import omniris_mm  # noqa: F401  (registers the modules)

        self.cfg = model if isinstance(model, Config) else Config.fromfile(model)
        init_default_scope(self.cfg.get('default_scope', 'mmdet'))
        self.model = MODELS.build(self.cfg.model)
        if weights:
            load_checkpoint(self.model, weights, map_location='cpu')
        elif init_weights:  # off: the model only serves its pre- and post-processing (ONNX Runtime runner)
            self.model.init_weights()
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.model.to(self.device).eval()
        synth = self._find_step(self.cfg, 'SynthesizePromptMaps') or {}
        # Clicks are drawn as in training: disks of click_radius at base_size, scaled with the image.
        self.click_radius = float(synth.get('click_radius', 5.0))
        self.base_size = int(synth.get('base_size', 480))
        self.pipeline = Compose(
            [
                dict(self._test_resize(self.cfg)),
                dict(
                    type='PackOmniInputs',
                    meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text', 'prompt_types'),
                ),
            ]
        )
        self.cache_references = cache_references
        self._ref_tokens: Dict[str, torch.Tensor] = {}
        self.num_reference_passes = 0
        self._visualizer = None

    @property
    def input_size(self) -> Optional[tuple]:
        """(h, w) every image is resized to by the test pipeline; None when it keeps the aspect ratio."""
        step = self._test_resize(self.cfg)
        if step.get('keep_ratio', False) or step.get('scale') is None:  # mmdet's Resize: keep_ratio=False
            return None
        w, h = step['scale'] if isinstance(step['scale'], (tuple, list)) else (step['scale'], step['scale'])
        return int(h), int(w)

    @staticmethod
    def _find_step(cfg: Config, kind: str) -> Optional[dict]:
        pipelines = [cfg.get('test_pipeline')] + [cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')]
        for pipeline in pipelines:
            for step in pipeline or []:
                if step.get('type') == kind:
                    return step
        return None

    @classmethod
    def _test_resize(cls, cfg: Config) -> dict:
        step = cls._find_step(cfg, 'OmniResize')
        if step is None:
            raise ValueError('the config has no OmniResize in its test pipeline: the input size is unknown')
        return step

    # -- inputs ---------------------------------------------------------------------
    @staticmethod
    def _read(image: ImageType, what: str) -> np.ndarray:
        if isinstance(image, str):
            try:
                img = mmcv.imread(image)
            except (FileNotFoundError, OSError) as err:
                raise FileNotFoundError(f'{what}: cannot read {image} ({err})') from None
            if img is None:
                raise FileNotFoundError(f'{what}: {image} is not a decodable image')
            return img
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'{what}: expected an (H, W, 3) uint8 BGR array, got {image.shape} {image.dtype}')
        return image

    def _prompt(self, spec: dict, where: str) -> dict:
        kinds = [k for k in PROMPT_KINDS if spec.get(k) is not None]
        if len(kinds) != 1 or 'image' not in spec:
            raise ValueError(f'{where}: give image= and exactly one of {PROMPT_KINDS}, got {sorted(spec)}')
        kind = kinds[0]
        img = self._read(spec['image'], where)
        h, w = img.shape[:2]
        if kind == 'box':
            x1, y1, x2, y2 = [float(v) for v in spec['box']]
            region = np.zeros((h, w), np.uint8)
            region[max(0, int(y1)) : min(h, int(np.ceil(y2))), max(0, int(x1)) : min(w, int(np.ceil(x2)))] = 1
            prompt_map = box_prompt(region)
        else:
            region = np.asarray(spec[kind]) > 0
            if region.shape != (h, w):
                raise ValueError(f'{where}: {kind} is {region.shape[:2]} but the reference image is {(h, w)}')
            prompt_map = region.astype(np.uint8)
        if not prompt_map.any():
            raise ValueError(f'{where}: the {kind} prompt selects no pixel of the reference image')
        source = spec['image'] if isinstance(spec['image'], str) else img
        key = _digest(source, kind, prompt_map)
        out = dict(img=img, img_shape=(h, w), ori_shape=(h, w), ref_mask=prompt_map.copy(), prompt_map=prompt_map,
                   prompt_type=kind, cache_key=key)  # fmt: skip
        if spec.get('negative'):  # the tokens are the same; the type embedding says "not like this"
            out['negative'] = True
        return out

    def _target_prompts(self, item: dict, img: np.ndarray, where: str) -> List[dict]:
        """The prompts drawn on the target itself (see the class docstring), as references that
        are the target image."""
        h, w = img.shape[:2]
        maps = []
        if item.get('points') is not None:
            radius = self.click_radius * np.sqrt(h * w) / self.base_size
            try:
                maps += [(kind, m) for kind, m, _ in click_prompts(item['points'], (h, w), radius)]
            except ValueError as err:
                raise ValueError(f'{where}: points: {err}') from None
        for kind, key in (('box', 'target_box'), ('scribble', 'target_scribble')):
            if item.get(key) is not None:
                prompt = self._prompt(dict(image=img, **{kind: item[key]}), f'{where} {key}')
                maps.append((key, prompt['prompt_map']))
        prompts = []
        for kind, prompt_map in maps:
            prompts.append(
                dict(
                    img=img,
                    img_shape=(h, w),
                    ori_shape=(h, w),
                    ref_mask=prompt_map.copy(),
                    prompt_map=prompt_map,
                    prompt_type=kind,
                    on_target=True,
                    cache_key=_digest(img, kind, prompt_map),
                )  # fmt: skip
            )
        return prompts

    def _sample(self, item: dict, index: int) -> dict:
        where = f'input {index}'
        img = self._read(item['image'], where)
        prompts = [
            self._prompt(p, f'{where} visual prompt {j}') for j, p in enumerate(item.get('visual_prompts') or [])
        ]
        prompts += self._target_prompts(item, img, where)
        text = item.get('text') or None
        if text is None and not prompts:
            raise ValueError(f'{where}: give a text, visual prompts and/or prompts on the target')
        h, w = img.shape[:2]
        results = dict(
            img=img,
            img_shape=(h, w),
            ori_shape=(h, w),
            img_path=item['image'] if isinstance(item['image'], str) else None,
            text=text,
            visual_prompts=prompts,
        )
        return self.pipeline(results), [p['cache_key'] for p in prompts]

    # -- running --------------------------------------------------------------------
    def __call__(
        self,
        image: Union[ImageType, Sequence[dict]],
        text: Optional[str] = None,
        visual_prompts: Sequence[dict] = (),
        batch_size: int = 1,
        out_dir: Optional[str] = None,
        points: Optional[Sequence[Sequence[float]]] = None,
        target_box: Optional[Sequence[float]] = None,
        target_scribble: Optional[np.ndarray] = None,
    ) -> Union[dict, List[dict]]:
        single = not isinstance(image, (list, tuple))
        on_target = dict(points=points, target_box=target_box, target_scribble=target_scribble)
        items = [dict(image=image, text=text, visual_prompts=visual_prompts, **on_target)] if single else list(image)
        answers = []
        for start in range(0, len(items), batch_size):
            batch = [self._sample(item, start + i) for i, item in enumerate(items[start : start + batch_size])]
            answers += self._run([b[0] for b in batch], [b[1] for b in batch])
        for item, answer in zip(items, answers):
            answer['inputs'] = dict(item)
        if out_dir:
            self.save_pictures(items, answers, out_dir)
        return answers[0] if single else answers

    def refine(self, answer: dict, click: Sequence[float], out_dir: Optional[str] = None) -> dict:
        """The interactive loop: the prompts of ``answer`` plus one more click ``(x, y, 1 or 0)``
        on the target (positive or negative), answered again."""
        item = dict(answer['inputs'])
        item['points'] = [tuple(p) for p in item.get('points') or []] + [tuple(click)]
        return self(**item, out_dir=out_dir)

    @torch.no_grad()
    def _run(self, packed: List[dict], keys: List[List[str]]) -> List[dict]:
        data = self.model.data_preprocessor(pseudo_collate(packed), False)
        answers = []
        for pred in self._predict(data, keys):
            inst = pred.pred_instances
            answers.append(
                dict(
                    union_mask=pred.pred_sem_seg.sem_seg[0].cpu().numpy() > 0,
                    masks=inst.masks.cpu().numpy().astype(bool),
                    scores=inst.scores.cpu().numpy(),
                    no_target=bool(pred.pred_no_target),
                    no_target_score=float(pred.get('pred_no_target_score', np.nan)),
                    data_sample=pred.cpu(),
                )
            )
        return answers

    def _predict(self, data: dict, keys: List[List[str]]) -> list:
        """The model's predictions (data samples) for a preprocessed batch, references from the cache."""
        for sample, sample_keys in zip(data['data_samples'], keys):
            if sample_keys:
                sample.visual_tokens = torch.stack(
                    [
                        self._tokens(k, sample.ref_inputs[j : j + 1], sample.ref_prompt_maps[j : j + 1])
                        for j, k in enumerate(sample_keys)
                    ]  # fmt: skip
                )
        return self._answer(data)

    def _answer(self, data: dict) -> list:
        """The model's answer to a preprocessed batch whose references are tokens already."""
        return self.model.predict(data['inputs'], data['data_samples'])

    def _encode_reference(self, ref_input: torch.Tensor, prompt_map: torch.Tensor) -> torch.Tensor:
        return self.model.encode_references(ref_input, prompt_map)[0]

    def _tokens(self, key: str, ref_input: torch.Tensor, prompt_map: torch.Tensor) -> torch.Tensor:
        if key not in self._ref_tokens:
            self.num_reference_passes += 1
            tokens = self._encode_reference(ref_input, prompt_map)
            if not self.cache_references:
                return tokens
            self._ref_tokens[key] = tokens
        return self._ref_tokens[key]

    def clear_cache(self) -> None:
        self._ref_tokens.clear()

    # -- pictures -------------------------------------------------------------------
    def save_pictures(self, items: List[dict], answers: List[dict], out_dir: str) -> List[str]:
        """One picture per answer (``OmniRISVisualizer``): references with their prompts, the target with its masks."""
        if self._visualizer is None:
            vis_cfg = dict(self.cfg.get('visualizer', dict(type='OmniRISVisualizer')))
            vis_cfg.update(type='OmniRISVisualizer', name=f'omniris_inferencer_{id(self)}', vis_backends=None)
            self._visualizer = VISUALIZERS.build(vis_cfg)
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for i, (item, answer) in enumerate(zip(items, answers)):
            image = self._read(item['image'], f'input {i}')[..., ::-1]
            stem = osp.splitext(osp.basename(item['image']))[0] if isinstance(item['image'], str) else 'image'
            path = osp.join(out_dir, f'{i:04d}_{stem}.png')
            picture = self._visualizer.draw_sample(np.ascontiguousarray(image), answer['data_sample'])
            mmcv.imwrite(picture[..., ::-1], path)
            paths.append(path)
        return paths
