"""``OmniRISInferencer``: segment what a text and/or visual prompts refer to, from Python."""

import copy
import hashlib
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmcv.transforms import Compose
from mmdet.registry import MODELS, VISUALIZERS
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.fileio import list_dir_or_file
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from rich.progress import track

from ..datasets.transforms import OmniInferencerLoader, OmniResize
from ..datasets.utils import PromptError
from ..utils import BytesLRUCache

ImageType = Union[str, np.ndarray]
InputsType = Union[ImageType, dict, Sequence[Union[ImageType, dict]]]
PROMPT_ARGS = ('text', 'visual_prompts', 'points', 'target_box', 'target_scribble')
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
# The steps of a test pipeline that read annotations: an inference request has none.
ANNOTATION_STEPS = ('LoadOmniAnnotations', 'LoadAnnotations', 'LoadFewShotSegMap')
TARGET_LOADERS = ('LoadImageFromFile', 'CachedLoadImageFromFile')
# Swin-B's visual tokens of a reference are 20 x 768 float32 (60 KiB): this keeps about a thousand.
DEFAULT_TOKEN_CACHE_BYTES = 64 * 2**20


def _type_name(step: dict) -> str:
    kind = step.get('type')
    return (kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))).split('.')[-1]


def list_images(folder: str) -> List[str]:
    """The images of ``folder`` (by extension, sorted by name)."""
    files = sorted(f for f in list_dir_or_file(folder, list_dir=False) if f.lower().endswith(IMG_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f'{folder}: the folder has no image ({", ".join(IMG_EXTENSIONS)})')
    return [osp.join(folder, f) for f in files]


def config_test_pipeline(cfg: Config) -> list:
    """The test pipeline of ``cfg``: its ``test_pipeline``, else the test dataset's (the first
    dataset's, for a ``ConcatDataset``)."""
    if cfg.get('test_pipeline'):
        return cfg.test_pipeline
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while dataset and 'pipeline' not in dataset and dataset.get('datasets'):
        dataset = dataset['datasets'][0]
    if not dataset or not dataset.get('pipeline'):
        raise ValueError('the config has neither test_pipeline nor test_dataloader.dataset.pipeline')
    return dataset['pipeline']


def _digest(*arrays: torch.Tensor) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = a.contiguous().cpu()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        h.update(a.numpy().tobytes())
    return h.hexdigest()


def encode_rle(mask: np.ndarray) -> dict:
    """A bool (H, W) mask as COCO RLE with a str ``counts`` (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


class OmniRISInferencer(BaseInferencer):
    """Omni-referring segmentation on mmengine's ``BaseInferencer``, in the manner of mmdet's
    ``DetInferencer``.

    ``inputs`` is a target image (a path or an (H, W, 3) BGR array as mmcv reads it), a folder of
    target images, a request dict (``image`` and the prompt arguments below), or a list of any of
    these. The prompt arguments given to the call apply to every input; a request dict's own keys
    take their place. The prompts are:

    - ``text``: a referring expression;
    - ``visual_prompts``: dicts of ``image`` (the reference, a path or BGR array) and exactly one of
      ``mask`` (an (H, W) array of the reference's size), ``box`` (``x1, y1, x2, y2`` in its pixels)
      or ``scribble`` (an (H, W) array of the strokes); ``negative=True`` makes it a negative
      exemplar ("not like this": the answer leaves out objects of its kind);
    - on the target itself, meaning that one object: ``points`` (clicks ``(x, y, 1)`` positive or
      ``(x, y, 0)`` negative, in the target's pixels), ``target_box`` (``x1, y1, x2, y2``) and
      ``target_scribble`` (an (H, W) array of the target's size).

    A request runs through the config's own test pipeline: its file loaders are replaced by
    ``OmniInferencerLoader`` (arrays or paths, with the loader's settings) and
    ``LoadRequestPrompts`` (which checks every prompt and names what is wrong), its annotation
    loaders are dropped, and everything else (resizing, ``SynthesizePromptMaps``, packing) runs as
    in testing. The call returns ``dict(predictions=..., visualization=...)``; each prediction is a
    dict: ``union_mask`` (H, W) bool at the target's size, ``masks`` (k, H, W) bool and ``scores``
    (k,) of the instances (none when no target), ``no_target`` and ``no_target_score``, ``notes``
    (what was changed in the prompts: a box clipped to its image) and ``inputs`` (the request it
    answers, for :meth:`refine`); with ``return_datasamples`` the model's ``DetDataSample`` instead.

    The visual tokens of each reference (image and prompt map as the model sees them) are kept in a
    least-recently-used cache bounded in bytes: a reference that serves many targets, as in
    few-shot use, costs one backbone and prompt-encoder pass (``num_reference_passes`` counts them).

    Args:
        model (str | Config, optional): A config file or object, or a model name of
            ``model-index.yml`` (its config, and its weights when the metafile gives them).
        weights (str, optional): Checkpoint; wins over the metafile's.
        device (str, optional): Defaults to the available accelerator, else the CPU.
        scope (str): The registry scope of the configs. Defaults to ``'mmdet'``.
        show_progress (bool): A progress bar while more than one batch runs. Defaults to True.
        cache_references (bool): Keep reference tokens between calls. Defaults to True.
        token_cache_bytes (int): The reference-token cache's budget. Defaults to 64 MiB.
        init_weights (bool): Without weights, initialise the model (its pretrained parts from
            their sources). Defaults to True.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'show', 'wait_time', 'pred_score_thr', 'img_out_dir', 'no_save_vis'}
    postprocess_kwargs: set = {'print_result', 'pred_out_dir', 'return_datasamples', 'no_save_pred'}

    def __init__(
        self,
        model: Union[str, Config, None] = None,
        weights: Optional[str] = None,
        device: Optional[str] = None,
        scope: Optional[str] = 'mmdet',
        show_progress: bool = True,
        cache_references: bool = True,
        token_cache_bytes: int = DEFAULT_TOKEN_CACHE_BYTES,
        init_weights: bool = True,
    ):
        import omniris_mm  # noqa: F401  (registers the modules)

        init_default_scope(scope)
        self._init_weights = init_weights
        super().__init__(model, weights, device, scope, show_progress)
        self.cache_references = cache_references
        self.token_cache = BytesLRUCache(token_cache_bytes if cache_references else 0)
        self.num_reference_passes = 0
        self._num_arrays = 0

    # -- building ---------------------------------------------------------------------
    def _load_model_from_metafile(self, model: str) -> Tuple[Config, Optional[str]]:
        root = self._get_repo_or_mim_dir('omniris_mm')
        names = []
        for entry in self._get_models_from_metafile(root):
            aliases = entry.get('Alias', [])
            aliases = [aliases] if isinstance(aliases, str) else list(aliases)
            names.append(entry['Name'])
            if model.lower() in [entry['Name'].lower()] + [a.lower() for a in aliases]:
                weights = entry.get('Weights')
                weights = weights[0] if isinstance(weights, list) else weights
                return Config.fromfile(osp.join(root, entry['Config'])), weights
        raise ValueError(
            f'{model!r} is neither a config file nor a model name of {osp.join(root, "model-index.yml")} '
            f'(its models: {", ".join(names)})'
        )

    def _init_model(self, cfg: ConfigDict, weights: Optional[str], device: str = 'cpu') -> torch.nn.Module:
        model = MODELS.build(cfg.model)
        if weights:
            load_checkpoint(model, weights, map_location='cpu')
        elif self._init_weights:  # off: the model only serves its pre- and post-processing (ONNX Runtime)
            model.init_weights()
        model.cfg = cfg
        return model.to(device).eval()

    def _init_pipeline(self, cfg: ConfigDict) -> Compose:
        steps, loader, prompts, synth, pack = [], None, None, None, None
        for step in copy.deepcopy(config_test_pipeline(cfg)):
            name = _type_name(step)
            if name in ANNOTATION_STEPS:
                continue
            if name in TARGET_LOADERS and loader is None:
                step = loader = dict(type='OmniInferencerLoader', loader=step)
            elif name == 'LoadVisualPrompts':
                step = prompts = dict(step, type='LoadRequestPrompts')
            elif name == 'SynthesizePromptMaps':
                synth = step
            elif name == 'PackOmniInputs':
                pack = step
                if step.get('meta_keys') is not None:
                    extra = [k for k in ('record_id', 'prompt_notes') if k not in step['meta_keys']]
                    step['meta_keys'] = tuple(step['meta_keys']) + tuple(extra)
            steps.append(step)
        if loader is None or pack is None:
            raise ValueError(
                f'the test pipeline needs an image loader ({" or ".join(TARGET_LOADERS)}) and PackOmniInputs; '
                f'it has {[_type_name(s) for s in steps]}'
            )
        # A text-only test pipeline: the prompts of a request are read and drawn as in the others.
        if prompts is None:
            steps.insert(steps.index(loader) + 1, dict(type='LoadRequestPrompts'))
        if synth is None:
            steps.insert(steps.index(pack), dict(type='SynthesizePromptMaps'))
        return Compose(steps)

    def _init_collate(self, cfg: ConfigDict):
        return pseudo_collate  # a request is never skipped: the test loader's omni_collate is not needed

    def _init_visualizer(self, cfg: ConfigDict):
        vis_cfg = dict(cfg.get('visualizer', None) or {})
        vis_cfg.update(type='OmniRISVisualizer', name=f'omniris_inferencer_{id(self)}', vis_backends=None)
        return VISUALIZERS.build(vis_cfg)

    @property
    def input_size(self) -> Optional[Tuple[int, int]]:
        """(h, w) every image is resized to by the test pipeline; None when it keeps the aspect ratio."""
        resize = [t for t in self.pipeline.transforms if isinstance(t, OmniResize)]
        if not resize:
            raise ValueError('the test pipeline has no OmniResize: the input size is unknown')
        if resize[0].keep_ratio or resize[0].scale is None:
            return None
        w, h = resize[0].scale
        return int(h), int(w)

    # -- inputs -----------------------------------------------------------------------
    def _inputs_to_list(self, inputs: InputsType, **prompts) -> List[dict]:
        """One request dict per target: a folder is its images (sorted), and the call's prompt
        arguments fill what a request does not give itself."""
        if isinstance(inputs, str) and osp.isdir(inputs):
            inputs = list_images(inputs)
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            raise PromptError('no input: give a target image, a folder, a request dict or a list of them')
        defaults = {k: v for k, v in prompts.items() if v is not None}
        requests = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                unknown = sorted(set(item) - {'image', *PROMPT_ARGS})
                if unknown or item.get('image') is None:
                    raise PromptError(
                        f'input {i}: a request is a dict of image= (the target) and {", ".join(PROMPT_ARGS)}; '
                        f'got {sorted(item)}'
                    )
                request = {**defaults, **{k: v for k, v in item.items() if v is not None}}
            elif isinstance(item, (str, np.ndarray)):
                request = dict(defaults, image=item)
            else:
                raise PromptError(
                    f'input {i}: expected an image path, an (H, W, 3) BGR array or a request dict, '
                    f'got {type(item).__name__}'
                )
            requests.append(request)
        return requests

    def pack(self, request: dict, index: int = 0) -> dict:
        """One request through the test pipeline: ``inputs`` and ``data_samples`` as a dataset gives them."""
        image = request['image']
        results = dict(record_id=f'input {index}', text=request.get('text'))
        results['request'] = {k: request[k] for k in PROMPT_ARGS[1:] if request.get(k) is not None}
        if isinstance(image, str):
            results['img_path'] = image
        else:
            results['img'] = image
        return self.pipeline(results)

    def preprocess(self, inputs: List[dict], batch_size: int = 1, **kwargs):
        """Yields each batch of requests with its collated data."""
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            yield chunk, self.collate_fn([self.pack(r, start + i) for i, r in enumerate(chunk)])

    # -- running ----------------------------------------------------------------------
    def __call__(
        self,
        inputs: InputsType,
        batch_size: int = 1,
        return_vis: bool = False,
        show: bool = False,
        wait_time: float = 0,
        no_save_vis: bool = False,
        pred_score_thr: float = 0.3,
        return_datasamples: bool = False,
        print_result: bool = False,
        no_save_pred: bool = True,
        out_dir: str = '',
        text: Optional[str] = None,
        visual_prompts: Optional[Sequence[dict]] = None,
        points: Optional[Sequence[Sequence[float]]] = None,
        target_box: Optional[Sequence[float]] = None,
        target_scribble: Optional[np.ndarray] = None,
        **kwargs,
    ) -> dict:
        """Answer ``inputs`` (see the class docstring).

        Args:
            inputs: Target image(s), a folder or request dict(s).
            batch_size (int): Targets per forward pass. Defaults to 1.
            return_vis (bool): Return the pictures (RGB arrays). Defaults to False.
            show (bool): Show each picture in a window. Defaults to False.
            wait_time (float): Seconds a shown picture stays. Defaults to 0.
            no_save_vis (bool): Write no picture to ``out_dir/vis``. Defaults to False.
            pred_score_thr (float): Instances drawn from this score up. Defaults to 0.3.
            return_datasamples (bool): Predictions as ``DetDataSample``. Defaults to False.
            print_result (bool): Print a line per answer. Defaults to False.
            no_save_pred (bool): Write no JSON to ``out_dir/preds``. Defaults to True.
            out_dir (str): Where pictures (``vis/``) and predictions (``preds/``) go. Defaults to ''
                (nowhere).
            text, visual_prompts, points, target_box, target_scribble: The prompts of every input
                (see the class docstring).
        """
        (_, forward_kwargs, visualize_kwargs, postprocess_kwargs) = self._dispatch_kwargs(**kwargs)
        requests = self._inputs_to_list(
            inputs, text=text, visual_prompts=visual_prompts, points=points, target_box=target_box,
            target_scribble=target_scribble,
        )  # fmt: skip
        batches = self.preprocess(requests, batch_size=batch_size)
        num_batches = math.ceil(len(requests) / batch_size)
        if self.show_progress and num_batches > 1:
            batches = track(batches, description='Inference', total=num_batches)
        preds = []
        for _, data in batches:
            preds.extend(self.forward(data, **forward_kwargs))
        visualization = self.visualize(
            requests, preds, return_vis=return_vis, show=show, wait_time=wait_time,
            img_out_dir=out_dir, no_save_vis=no_save_vis, pred_score_thr=pred_score_thr, **visualize_kwargs,
        )  # fmt: skip
        results = self.postprocess(
            preds, visualization, return_datasamples=return_datasamples, print_result=print_result,
            no_save_pred=no_save_pred, pred_out_dir=out_dir, **postprocess_kwargs,
        )  # fmt: skip
        if not return_datasamples:
            for request, answer in zip(requests, results['predictions']):
                answer['inputs'] = request
        return results

    def refine(self, answer: dict, click: Sequence[float], **kwargs) -> dict:
        """The interactive loop: the prompts of ``answer`` plus one more click ``(x, y, 1 or 0)`` on
        the target (positive or negative), answered again; the new answer (a prediction dict).
        ``kwargs`` go to the call (``out_dir``, ``return_vis``, ...)."""
        request = dict(answer['inputs'])
        request['points'] = [tuple(p) for p in request.get('points') or []] + [tuple(click)]
        return self(request, **kwargs)['predictions'][0]

    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> list:
        """The model's predictions (data samples) for a collated batch, reference tokens from the cache."""
        keys = [[_digest(img, m) for img, m in zip(s.ref_imgs, s.prompt_maps)] for s in data['data_samples']]
        data = self.model.data_preprocessor(data, False)
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
        tokens = self.token_cache.get(key)
        if tokens is None:
            self.num_reference_passes += 1
            tokens = self._encode_reference(ref_input, prompt_map)
            self.token_cache.put(key, tokens)
        return tokens

    def clear_cache(self) -> None:
        """Forget every reference's tokens."""
        self.token_cache.clear()

    # -- outputs ----------------------------------------------------------------------
    @staticmethod
    def _names(preds: list, suffix: str) -> List[str]:
        """A file name per prediction: the target's name, or its input index for an array; a name
        met twice in a call gets the input index too."""
        names, seen = [], set()
        for pred in preds:
            path, record = pred.metainfo.get('img_path'), pred.metainfo.get('record_id', 'input')
            index = record.split()[-1]
            stem = osp.splitext(osp.basename(path))[0] if path else f'{int(index):08d}' if index.isdigit() else index
            name = f'{stem}_{index}' if stem in seen else stem
            seen.add(stem)
            names.append(name + suffix)
        return names

    def _target_rgb(self, request: dict) -> np.ndarray:
        """The target as the pipeline's loader reads it (RGB), at its own size."""
        loader = next(t for t in self.pipeline.transforms if isinstance(t, OmniInferencerLoader))
        image = request['image']
        loaded = loader(dict(img_path=image) if isinstance(image, str) else dict(img=image))
        return np.ascontiguousarray(loaded['img'][..., ::-1])

    def visualize(
        self,
        inputs: List[dict],
        preds: list,
        return_vis: bool = False,
        show: bool = False,
        wait_time: float = 0,
        img_out_dir: str = '',
        no_save_vis: bool = False,
        pred_score_thr: float = 0.3,
        **kwargs,
    ) -> Optional[List[np.ndarray]]:
        """One picture per answer (``OmniRISVisualizer``: references with their prompts, the target
        with its masks), RGB; written to ``img_out_dir/vis/NAME.png``, shown, and/or returned."""
        img_out_dir = '' if no_save_vis else img_out_dir
        if not (return_vis or show or img_out_dir):
            return None
        pictures = []
        for request, pred, name in zip(inputs, preds, self._names(preds, '.png')):
            picture = self.visualizer.draw_sample(self._target_rgb(request), pred, pred_score_thr=pred_score_thr)
            if show:
                self.visualizer.show(picture, win_name=name, wait_time=wait_time)
            if img_out_dir:
                mmcv.imwrite(picture[..., ::-1], osp.join(img_out_dir, 'vis', name))
            if return_vis:  # kept only when asked for: a folder's pictures can be many
                pictures.append(picture)
        return pictures if return_vis else None

    @staticmethod
    def pred2answer(pred) -> dict:
        """A predicted data sample as a prediction dict of NumPy arrays (see the class docstring)."""
        inst = pred.pred_instances
        return dict(
            union_mask=pred.pred_sem_seg.sem_seg[0].cpu().numpy() > 0,
            masks=inst.masks.cpu().numpy().astype(bool),
            scores=inst.scores.cpu().numpy(),
            no_target=bool(pred.pred_no_target),
            no_target_score=float(pred.get('pred_no_target_score', np.nan)),
            notes=list(pred.metainfo.get('prompt_notes') or []),
        )

    @staticmethod
    def answer2json(answer: dict, pred) -> dict:
        """A prediction dict as JSON: masks as COCO RLE (``size``, ``counts``)."""
        meta = pred.metainfo
        return dict(
            image=meta.get('img_path'),
            text=meta.get('text'),
            prompt_types=list(meta.get('prompt_types', [])),
            no_target=answer['no_target'],
            no_target_score=answer['no_target_score'],
            union_mask=encode_rle(answer['union_mask']),
            masks=[encode_rle(m) for m in answer['masks']],
            scores=[float(s) for s in answer['scores']],
            notes=answer['notes'],
        )

    def postprocess(
        self,
        preds: list,
        visualization: Optional[List[np.ndarray]] = None,
        return_datasamples: bool = False,
        print_result: bool = False,
        no_save_pred: bool = False,
        pred_out_dir: str = '',
        **kwargs,
    ) -> Dict:
        """``dict(predictions=..., visualization=...)``; with ``pred_out_dir`` (and not
        ``no_save_pred``) one JSON per answer in ``pred_out_dir/preds/NAME.json``."""
        answers = [self.pred2answer(p) for p in preds]
        if pred_out_dir and not no_save_pred:
            os.makedirs(osp.join(pred_out_dir, 'preds'), exist_ok=True)
            for answer, pred, name in zip(answers, preds, self._names(preds, '.json')):
                with open(osp.join(pred_out_dir, 'preds', name), 'w') as f:
                    json.dump(self.answer2json(answer, pred), f)
        if print_result:
            for answer, pred in zip(answers, preds):
                print_log(f'{pred.metainfo.get("img_path") or pred.metainfo.get("record_id")}: {describe(answer)}',
                          logger='current')  # fmt: skip
        return dict(
            predictions=[p.cpu() for p in preds] if return_datasamples else answers, visualization=visualization
        )


def describe(answer: dict) -> str:
    """An answer in one line: no target, or its instances' scores and the union's pixels."""
    if answer['no_target']:
        return f'no target (score {answer["no_target_score"]:.2f})'
    scores = ', '.join(f'{s:.2f}' for s in answer['scores'])
    return f'{len(answer["scores"])} instance(s) [{scores}], union {int(answer["union_mask"].sum())} px'
