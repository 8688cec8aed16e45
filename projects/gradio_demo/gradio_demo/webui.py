"""The web demo behind ``projects/gradio_demo/launch.py``: Gradio blocks over :class:`OmniRISInferencer`.

The page takes a target image, a text, up to :data:`MAX_REFERENCES` reference images with a
box, scribble or brushed mask drawn on each (optionally negative exemplars), and clicks, a box
or a scribble on the target itself. It answers with the inferencer's picture (references with
their prompts beside the target with its instance masks and scores, or ``NO TARGET``), the
union mask, a line per instance and the masks as PNG files to download.

Everything but :func:`build_app` is plain Python (no Gradio import), so the parsing of what the
browser sends is tested without a browser; ``tests/test_projects/test_gradio_demo.py`` drives the page in
headless Chromium. Bad input (no prompt, an unreadable image, strokes or clicks outside the
image) is answered in the page by :class:`PromptError`'s message, never a stack trace.
"""

import glob
import logging
import os
import os.path as osp
import tempfile
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmengine.infer import BaseInferencer
from scipy import ndimage

from omniris_mm.datasets.utils import PromptError

MAX_REFERENCES = 3
REFERENCE_KINDS = ('box', 'scribble', 'mask')
TARGET_KINDS = ('none', 'box', 'scribble')
RANDOM_WEIGHTS = '(random weights)'
# Relative to the package's root (the repository, or the .mim folder of an installed package).
DEFAULT_CONFIG = 'configs/omnishapes/omnisegnet_tiny_2k_omnishapes_all.py'
DEFAULT_CHECKPOINT = 'work_dirs/quickstart/iter_2000.pth'


def package_root() -> str:
    """Where omniris_mm's configs are: the repository of an editable install, else the package's
    ``.mim`` folder (as mmengine finds a codebase's configs)."""
    return BaseInferencer._get_repo_or_mim_dir('omniris_mm')


logger = logging.getLogger('omniris_mm.webui')


# -- what the browser sends -----------------------------------------------------------
def editor_image(value, what: str) -> Optional[np.ndarray]:
    """The uploaded image of an image-editor value (a dict with ``background``, ``layers``,
    ``composite``; RGB or RGBA arrays) as an (H, W, 3) uint8 BGR array, None when empty."""
    if value is None:
        return None
    image = value.get('background') if isinstance(value, dict) else value
    if image is None:
        return None
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.size == 0:
        raise PromptError(f'{what}: not a readable image (array of shape {image.shape})')
    if image.dtype != np.uint8:
        raise PromptError(f'{what}: expected 8-bit pixels, got {image.dtype}')
    return np.ascontiguousarray(image[..., 2::-1])


def editor_strokes(value, shape: Tuple[int, int], what: str) -> np.ndarray:
    """The pixels drawn on the image (any layer, alpha > 0) as an (H, W) bool array at ``shape``.

    A canvas larger than the image (a fixed canvas) is cut to the image; strokes that lie
    only outside it raise :class:`PromptError`."""
    layers = [np.asarray(layer) for layer in (value or {}).get('layers') or [] if layer is not None]
    h, w = shape
    drawn = np.zeros((h, w), bool)
    outside = False
    for layer in layers:
        if layer.ndim != 3 or layer.shape[2] != 4:
            raise PromptError(f'{what}: the drawing layer is not an RGBA image ({layer.shape})')
        alpha = layer[..., 3] > 0
        outside |= bool(alpha[h:].any() or alpha[:, w:].any())
        alpha = alpha[:h, :w]
        drawn[: alpha.shape[0], : alpha.shape[1]] |= alpha
    if not drawn.any() and outside:
        raise PromptError(f'{what}: the strokes lie outside the {w}x{h} image')
    return drawn


def box_of(drawn: np.ndarray) -> Tuple[int, int, int, int]:
    """``x1, y1, x2, y2`` of the box around the drawn pixels."""
    ys, xs = np.nonzero(drawn)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def reference_prompt(value, kind: str, negative: bool, index: int) -> Optional[dict]:
    """One reference slot as an inferencer visual prompt (None when no image was given).

    ``box``: the bounding box of what was drawn; ``scribble``: the strokes; ``mask``: the
    brushed region with its holes filled (an outline drawn around an object becomes the object)."""
    what = f'reference {index + 1}'
    image = editor_image(value, what)
    if image is None:
        return None
    if kind not in REFERENCE_KINDS:
        raise PromptError(f'{what}: the prompt kind must be one of {REFERENCE_KINDS}, got {kind!r}')
    drawn = editor_strokes(value, image.shape[:2], what)
    if not drawn.any():
        raise PromptError(f'{what}: draw a {kind} on the reference image (nothing is drawn on it)')
    prompt = dict(image=image, negative=bool(negative))
    if kind == 'box':
        prompt['box'] = box_of(drawn)
    elif kind == 'mask':
        prompt['mask'] = ndimage.binary_fill_holes(drawn)
    else:
        prompt['scribble'] = drawn
    return prompt


def parse_clicks(text: Optional[str], shape: Tuple[int, int]) -> Optional[List[Tuple[int, int, int]]]:
    """``"x,y,1; x,y,0"`` (positive / negative clicks in the target's pixels) as a list, None when empty."""
    items = [t.strip() for t in (text or '').replace('\n', ';').split(';') if t.strip()]
    if not items:
        return None
    h, w = shape
    clicks = []
    for i, item in enumerate(items):
        try:
            x, y, label = (float(v) for v in item.split(','))
        except ValueError:
            raise PromptError(f'click {i + 1} {item!r}: write x,y,1 (positive) or x,y,0 (negative)') from None
        if label not in (0, 1):
            raise PromptError(f'click {i + 1} {item!r}: the third number is 1 (positive) or 0 (negative)')
        if not (0 <= x < w and 0 <= y < h):
            raise PromptError(f'click {i + 1} ({x:g}, {y:g}) lies outside the {w}x{h} target image')
        clicks.append((int(round(x)), int(round(y)), int(label)))
    if not any(c[2] for c in clicks):
        raise PromptError('clicks on the target need at least one positive click (x,y,1)')
    return clicks


def target_prompts(value, kind: str, clicks: Optional[str], shape: Tuple[int, int]) -> dict:
    """The prompts on the target: ``points`` from the clicks' text, ``target_box`` or
    ``target_scribble`` from what was drawn on the target (``kind`` says which; ``'none'``
    ignores the drawing)."""
    out = dict(points=parse_clicks(clicks, shape))
    if kind not in TARGET_KINDS:
        raise PromptError(f'target prompt: the kind must be one of {TARGET_KINDS}, got {kind!r}')
    if kind != 'none':
        drawn = editor_strokes(value, shape, f'the {kind} on the target')
        if not drawn.any():
            raise PromptError(f'draw a {kind} on the target image, or set its prompt to none')
        if kind == 'box':
            out['target_box'] = box_of(drawn)
        else:
            out['target_scribble'] = drawn
    return out


def draw_clicks(image_bgr: np.ndarray, clicks: Optional[Sequence[Tuple[int, int, int]]]) -> np.ndarray:
    """The target (RGB) with the clicks as dots: green positive, red negative (as the visualizer draws them)."""
    out = np.ascontiguousarray(image_bgr[..., ::-1]).copy()
    radius = max(3, int(round(min(out.shape[:2]) / 60)))
    for x, y, label in clicks or []:
        color = (0, 200, 0) if label else (220, 0, 0)
        cv2.circle(out, (int(x), int(y)), radius, color, -1)
        cv2.circle(out, (int(x), int(y)), radius, (255, 255, 255), 1)
    return out


def add_click(clicks: Optional[str], x: int, y: int, positive: bool) -> str:
    """The clicks' text with one more click."""
    item = f'{int(x)},{int(y)},{1 if positive else 0}'
    return f'{clicks.strip()}; {item}' if clicks and clicks.strip() else item


# -- the demo --------------------------------------------------------------------------
def list_configs(root: str = '.') -> List[str]:
    """Config files a user may pick (the repository's ``configs/``, not ``_base_``): only these
    are ever executed, never a path typed into the page."""
    paths = glob.glob(osp.join(root, 'configs', '**', '*.py'), recursive=True)
    return sorted(osp.relpath(p, root) for p in paths if '_base_' not in p.split(os.sep))


def list_checkpoints(root: str = '.') -> List[str]:
    return sorted(osp.relpath(p, root) for p in glob.glob(osp.join(root, 'work_dirs', '**', '*.pth'), recursive=True))


class WebDemo:
    """What the page calls: builds (and keeps) an inferencer per config and checkpoint, answers
    one request, writes the masks for download.

    Args:
        configs (list[str]): The configs the page offers.
        checkpoints (list[str]): The checkpoints it offers (besides random weights).
        device (str, optional): Passed to the inferencer.
        out_dir (str, optional): Where the masks of each answer are written (a new folder per
            answer under it). Defaults to a temporary folder.
    """

    def __init__(
        self,
        configs: Sequence[str],
        checkpoints: Sequence[str] = (),
        device: Optional[str] = None,
        out_dir: Optional[str] = None,
    ):
        self.configs = list(configs)
        self.checkpoints = list(checkpoints)
        self.device = device
        self.out_dir = out_dir or tempfile.mkdtemp(prefix='omniris_webui_')
        self._inferencers: Dict[Tuple[str, str], object] = {}
        self._lock = threading.Lock()
        self._count = 0

    def inferencer(self, config: str, checkpoint: Optional[str]):
        if config not in self.configs:
            raise PromptError(f'config {config!r} is not one the page offers')
        checkpoint = None if checkpoint in (None, '', RANDOM_WEIGHTS) else checkpoint
        if checkpoint is not None and checkpoint not in self.checkpoints:
            raise PromptError(f'checkpoint {checkpoint!r} is not one the page offers')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise PromptError(f'checkpoint {checkpoint} does not exist (any more)')
        key = (config, checkpoint or '')
        if key not in self._inferencers:
            from omniris_mm.apis import OmniRISInferencer

            logger.info('building %s with %s', config, checkpoint or 'random weights')
            self._inferencers[key] = OmniRISInferencer(config, checkpoint, device=self.device)
        return self._inferencers[key]

    def request(self, target, text, clicks, target_kind, references) -> dict:
        """The inferencer's inputs for one request. ``references``: (editor value, kind, negative) per slot."""
        image = editor_image(target, 'the target')
        if image is None:
            raise PromptError('upload a target image')
        visual = []
        for i, (value, kind, negative) in enumerate(references):
            prompt = reference_prompt(value, kind, negative, i)
            if prompt is not None:
                visual.append(prompt)
        on_target = target_prompts(target, target_kind, clicks, image.shape[:2])
        text = (text or '').strip() or None
        if text is None and not visual and all(v is None for v in on_target.values()):
            raise PromptError(
                'give a prompt: a text, a reference with a box, scribble or mask, or a click, box or '
                'scribble on the target'
            )
        return dict(image=image, text=text, visual_prompts=visual, **on_target)

    def answer(self, config, checkpoint, target, text, clicks, target_kind, *reference_fields):
        """One request from the page: (picture, union, message, files). ``reference_fields`` are
        editor value, kind and negative flag of each reference slot, flat."""
        try:
            references = [reference_fields[i : i + 3] for i in range(0, len(reference_fields), 3)]
            item = self.request(target, text, clicks, target_kind, references)
            with self._lock:
                inferencer = self.inferencer(config, checkpoint)
                passes = inferencer.num_reference_passes
                result = inferencer(item, return_vis=True)
                out, picture = result['predictions'][0], result['visualization'][0]
                new_passes = inferencer.num_reference_passes - passes
        except (PromptError, ValueError, FileNotFoundError) as err:
            return None, None, f'**Cannot answer:** {err}', []
        except Exception as err:  # noqa: BLE001  (the page shows a line; the log keeps the trace)
            logger.exception('the request failed')
            return None, None, f'**Error:** {type(err).__name__}: {err} (the server log has the details)', []
        folder = self._next_dir()
        mmcv.imwrite(picture[..., ::-1], osp.join(folder, 'picture.png'))
        files = self.write_masks(out, folder)
        union = draw_union(item['image'], out['union_mask'])
        message = describe(out, item, checkpoint, new_passes)
        return picture, union, message, files

    def _next_dir(self) -> str:
        self._count += 1
        path = osp.join(self.out_dir, f'answer_{self._count:04d}')
        os.makedirs(path, exist_ok=True)
        return path

    @staticmethod
    def write_masks(out: dict, folder: str) -> List[str]:
        """``union.png`` and ``instance_K.png`` (0 / 255, the target's size) in ``folder``."""
        paths = [osp.join(folder, 'union.png')]
        mmcv.imwrite(out['union_mask'].astype(np.uint8) * 255, paths[0])
        for k, mask in enumerate(out['masks']):
            paths.append(osp.join(folder, f'instance_{k + 1}.png'))
            mmcv.imwrite(mask.astype(np.uint8) * 255, paths[-1])
        return paths


def draw_union(image_bgr: np.ndarray, union: np.ndarray) -> np.ndarray:
    """The target (RGB) with the union answer tinted and everything else dimmed."""
    rgb = image_bgr[..., ::-1].astype(np.float32)
    out = rgb * 0.35
    out[union] = rgb[union] * 0.5 + np.array([255, 140, 0], np.float32) * 0.5
    return out.round().astype(np.uint8)


def describe(out: dict, item: dict, checkpoint: Optional[str], passes: int) -> str:
    """The answer in words: no target, or a line per instance, and what the prompts were."""
    lines = []
    if out['no_target']:
        lines.append(f'**No target** in this image (no-target score {out["no_target_score"]:.2f}).')
    else:
        lines.append(
            f'**{len(out["scores"])} instance(s)**, union {int(out["union_mask"].sum())} px '
            f'(no-target score {out["no_target_score"]:.2f}).'
        )
        for k, score in enumerate(out['scores']):
            lines.append(f'- instance {k + 1}: score {score:.2f}, {int(out["masks"][k].sum())} px')
    prompts = []
    if item.get('text'):
        prompts.append(f'text "{item["text"]}"')
    for i, p in enumerate(item['visual_prompts']):
        kind = next(k for k in REFERENCE_KINDS if k in p)
        detail = f' {tuple(p["box"])}' if kind == 'box' else ''
        prompts.append(f'reference {i + 1}: {kind}{detail}' + (' (negative)' if p.get('negative') else ''))
    if item.get('points'):
        prompts.append('clicks ' + '; '.join(f'{x},{y},{label}' for x, y, label in item['points']))
    if item.get('target_box') is not None:
        prompts.append(f'box on the target {tuple(item["target_box"])}')
    if item.get('target_scribble') is not None:
        prompts.append('scribble on the target')
    lines.append('\nPrompts: ' + ', '.join(prompts) + f'; {passes} reference pass(es) (the rest from the cache).')
    if not checkpoint or checkpoint == RANDOM_WEIGHTS:
        lines.append('*Random weights: pick a checkpoint for real answers.*')
    return '\n'.join(lines)


# -- the page ---------------------------------------------------------------------------
def build_app(demo: WebDemo, config: Optional[str] = None, checkpoint: Optional[str] = None):
    """The Gradio blocks of the page (ids ``target``, ``reference_K``, ``run``, ``message``,
    ``picture``, ``union``, ``masks`` for tests)."""
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(f'the web demo needs Gradio: pip install -r requirements/webui.txt ({err})') from None

    brush = gr.Brush(default_size=6, colors=['#ff3030'], color_mode='fixed')
    editor = dict(type='numpy', image_mode='RGBA', brush=brush, layers=False, transforms=(), format='png')
    checkpoints = [RANDOM_WEIGHTS] + demo.checkpoints
    with gr.Blocks(title='OmniRIS web demo') as app:
        gr.Markdown(
            '# OmniRIS: segment what a text, references or clicks point at\n'
            'Upload a target; give a text and/or references with a box, scribble or mask drawn on '
            'each (the brush tool), and/or clicks, a box or a scribble on the target. Then **Run**.'
        )
        with gr.Row():
            config_box = gr.Dropdown(demo.configs, value=config or demo.configs[0], label='config', elem_id='config')
            ckpt_box = gr.Dropdown(checkpoints, value=checkpoint or RANDOM_WEIGHTS, label='checkpoint', elem_id='ckpt')
        with gr.Row():
            with gr.Column():
                target = gr.ImageEditor(
                    label='target (draw a box or scribble on it if below says so)', elem_id='target', **editor
                )
                text = gr.Textbox(label='text', placeholder='e.g. all red shapes', elem_id='text')
                with gr.Row():
                    target_kind = gr.Radio(
                        list(TARGET_KINDS), value='none', label='drawing on the target means', elem_id='target_kind'
                    )
                    click_positive = gr.Checkbox(value=True, label='clicks are positive', elem_id='click_positive')
                click_view = gr.Image(
                    label='click here to add clicks on the target',
                    interactive=False,
                    elem_id='click_view',
                    format='png',
                )
                clicks = gr.Textbox(label='clicks x,y,1|0 (; between clicks)', elem_id='clicks')
            with gr.Column():
                slots = []
                with gr.Tabs():
                    for i in range(MAX_REFERENCES):
                        with gr.Tab(f'reference {i + 1}'):
                            ref = gr.ImageEditor(label=f'reference {i + 1}', elem_id=f'reference_{i + 1}', **editor)
                            kind = gr.Radio(
                                list(REFERENCE_KINDS), value='box', label='what is drawn', elem_id=f'kind_{i + 1}'
                            )
                            negative = gr.Checkbox(
                                value=False, label='negative exemplar (not like this)', elem_id=f'negative_{i + 1}'
                            )
                            slots += [ref, kind, negative]
        run = gr.Button('Run', variant='primary', elem_id='run')
        message = gr.Markdown(elem_id='message')
        with gr.Row():
            picture = gr.Image(label='answer', format='png', elem_id='picture')
            union = gr.Image(label='union mask', format='png', elem_id='union')
        masks = gr.File(label='masks (PNG)', file_count='multiple', elem_id='masks')

        def show_target(value, text_clicks):
            image = editor_image(value, 'the target') if value is not None else None
            if image is None:
                return None
            try:
                points = parse_clicks(text_clicks, image.shape[:2])
            except PromptError:
                points = None
            return draw_clicks(image, points)

        def on_click(value, text_clicks, positive, evt: gr.SelectData):
            image = editor_image(value, 'the target')
            if image is None:
                return text_clicks, None
            text_clicks = add_click(text_clicks, evt.index[0], evt.index[1], positive)
            return text_clicks, show_target(value, text_clicks)

        target.upload(show_target, [target, clicks], click_view)
        clicks.submit(show_target, [target, clicks], click_view)
        click_view.select(on_click, [target, clicks, click_positive], [clicks, click_view])
        run.click(
            demo.answer,
            [config_box, ckpt_box, target, text, clicks, target_kind, *slots],
            [picture, union, message, masks],
        )
    return app
