import os.path as osp
from functools import cache
from typing import List, Optional, Tuple

import cv2
import mmcv
import numpy as np
import torch
from matplotlib import font_manager
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only
from PIL import Image, ImageDraw, ImageFont

from ..structures import NEGATIVE_EXEMPLAR_TYPES, TARGET_PROMPT_TYPES

PROMPT_COLOR = (255, 160, 0)  # references: the prompt region
CLICK_COLORS = {'click': (0, 200, 0), 'neg_click': (230, 0, 0)}  # clicks on the target: positive, negative
NEGATIVE_COLOR = CLICK_COLORS['neg_click']  # a negative exemplar: its prompt and its panel's frame
TARGET_COLORS = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (145, 30, 180), (245, 130, 48), (70, 240, 240)]
GT_COLOR = (255, 255, 255)
EDGE_COLOR = (0, 0, 0)  # the outline of each predicted mask: visible whatever the object's own colour
CAPTION_HEIGHT = 28  # the strip above the panels that holds a text prompt
# The marks, in matplotlib's units as mmengine's draw_texts / draw_circles / draw_lines take them
# (points at the canvas' 100 dpi): font sizes, line widths, the text box's padding (4 points).
TITLE = dict(color=(255, 255, 255), points=11, box=((0, 0, 0), 0.6))
CAPTION = dict(color=(255, 255, 255), points=13)
NO_TARGET = dict(color=(255, 0, 0), points=28, box=((255, 255, 255), 0.8), anchor='mm')
CLICK_RADIUS, CLICK_EDGE, CROSS_WIDTH, BOX_PAD = 6, 1.5, 3, 4
PIXELS_PER_POINT = 100 / 72


def _rgb(img: torch.Tensor) -> np.ndarray:
    """A packed (3, H, W) BGR uint8 tensor -> (H, W, 3) RGB array."""
    return np.ascontiguousarray(img.permute(1, 2, 0).cpu().numpy()[..., ::-1])


@VISUALIZERS.register_module()
class OmniRISVisualizer(DetLocalVisualizer):
    """Pictures of omni-referring samples: every reference image with its prompt
    (mask filled, box outlined, scribble drawn as it was given), the prompts drawn on
    the target itself on one panel of it (clicks as dots, green positive and red
    negative; box and scribble as on a reference), then the target image
    with the predicted instance masks (one colour each, outlined in black, with scores) or, when there
    are none, the predicted union mask, the prompt text as a caption and a clear
    ``NO TARGET`` mark when the model says nothing is referred. With ``draw_gt`` the
    ground-truth union is drawn as a white outline on a second copy of the target.

    A drop-in for ``DetLocalVisualizer`` in a config's ``visualizer`` (so that
    ``tools/test.py --show-dir`` and the inferencer use it).

    Args:
        panel_height (int): Height every panel is resized to. Defaults to 360.
        alpha (float): Mask opacity. Defaults to 0.5.
    """

    def __init__(self, name: str = 'visualizer', panel_height: int = 360, alpha: float = 0.5, **kwargs):
        self._held = None
        super().__init__(name=name, alpha=alpha, **kwargs)
        self.panel_height = panel_height

    # The canvas (mmengine's matplotlib figure) takes a picture of draw_sample only when something asks
    # for it: its set_image costs 7-18 ms a picture (an axes reset and an imshow), and tools/test.py
    # --show-dir only writes files. get_image returns the held picture (what a canvas render of it
    # returns); a drawing call or show() sets the canvas to it first.
    def _sync_canvas(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            super().set_image(held)

    def set_image(self, image: np.ndarray) -> None:
        self._held = None
        super().set_image(image)

    def get_image(self) -> np.ndarray:
        if self._held is not None:
            return self._held.copy()
        return super().get_image()

    def _panel(
        self,
        image: np.ndarray,
        masks: List[Tuple[np.ndarray, tuple]],
        title: str,
        outline=None,
        points=(),
        mask_edges: bool = False,
    ) -> Tuple[np.ndarray, List[tuple]]:
        """A panel as an array with its masks and outlines blended in, and its marks (title,
        click dots) still to be drawn: ``(PictureMarks method, *args)``, each drawn at the panel's offset
        ``(x, y)`` in the picture.
        ``points``: ``(x, y, color)`` dots in ``image``'s pixels (clicks); ``mask_edges``: each
        mask also outlined in ``EDGE_COLOR``."""
        scale = self.panel_height / image.shape[0]
        size = (max(1, round(image.shape[1] * scale)), self.panel_height)
        # The masks and outlines are blended into the array, not drawn through mmengine's
        # draw_binary_masks, which renders the whole canvas once per mask.
        panel = mmcv.imresize(image, size)
        for mask, color in masks:
            mask = mmcv.imresize(mask.astype(np.uint8), size, interpolation='nearest').astype(bool)
            if mask.any():
                panel = _blend(panel, mask, color, self.alpha)
                if mask_edges:
                    panel = _blend(panel, mask & ~_eroded(mask), EDGE_COLOR, 1.0)
        if outline is not None:  # (on a panel without points: the ground truth's)
            edge = mmcv.imresize(outline.astype(np.uint8), size, interpolation='nearest')
            edge = edge.astype(bool) & ~_eroded(edge.astype(bool))
            if edge.any():
                panel = _blend(panel, edge, GT_COLOR, 1.0)
        sx, sy = size[0] / image.shape[1], size[1] / image.shape[0]
        marks = [('click', ((x + 0.5) * sx, (y + 0.5) * sy), color) for x, y, color in points]
        marks.append(('text', title, (4, 4), TITLE))
        return panel, marks

    def draw_sample(self, image: np.ndarray, data_sample, draw_gt: bool = False, pred_score_thr: float = 0.3):
        """The picture as an (H, W, 3) RGB array; ``image`` is the target image, RGB. ``get_image``
        then returns it, and mmengine's drawing calls draw on it (the canvas takes it when one is made).

        The panels are put together first and their titles, clicks and marks drawn on the whole
        picture with Pillow (:class:`PictureMarks`), not through mmengine's matplotlib canvas: a
        canvas render (``get_image``) of a quickstart picture costs 30-100 ms, most of
        ``tools/test.py --show-dir``'s time.
        """
        panels = []  # (array, marks, framed)
        types = [t for t in data_sample.metainfo.get('prompt_types', []) if t != 'text']
        metas = data_sample.metainfo.get('ref_metas') or []
        on_target = None  # (image, masks, points, kinds) of the prompts drawn on the target itself
        for i, (ref, prompt) in enumerate(zip(data_sample.get('ref_imgs', []), data_sample.get('prompt_maps', []))):
            kind = types[i] if i < len(types) else 'visual'
            prompt = prompt[0].cpu().numpy() > 0
            if kind in NEGATIVE_EXEMPLAR_TYPES:  # "not like this": red prompt, red frame
                panels.append(
                    (*self._panel(_rgb(ref), [(prompt, NEGATIVE_COLOR)], f'reference {i + 1}: NOT {kind[4:]}'), True)
                )
                continue
            if not (kind in TARGET_PROMPT_TYPES or (i < len(metas) and metas[i].get('on_target'))):
                panels.append((*self._panel(_rgb(ref), [(prompt, PROMPT_COLOR)], f'reference {i + 1}: {kind}'), False))
                continue
            if on_target is None:
                on_target = (_rgb(ref), [], [], [])
            on_target[3].append(kind)
            if kind in CLICK_COLORS:
                on_target[2].extend((x, y, CLICK_COLORS[kind]) for x, y in _click_centres(prompt))
            else:
                on_target[1].append((prompt, PROMPT_COLOR))
        if on_target is not None:
            image_t, masks_t, points_t, kinds = on_target
            title = 'on the target: ' + ', '.join(dict.fromkeys(kinds))
            panels.append((*self._panel(image_t, masks_t, title, points=points_t), False))
        masks, title = [], prediction_title(data_sample)
        inst = data_sample.get('pred_instances')
        keep = inst.scores >= pred_score_thr if inst is not None and len(inst) else None
        if keep is not None and keep.any():
            for k, mask in enumerate(inst.masks[keep]):
                masks.append((mask.cpu().numpy().astype(bool), TARGET_COLORS[k % len(TARGET_COLORS)]))
            title += f': {int(keep.sum())} object(s), scores ' + ', '.join(f'{s:.2f}' for s in inst.scores[keep])
        elif 'pred_sem_seg' in data_sample:
            # No instance (or none scored pred_score_thr, as the one instance a click is answered with
            # may be): the answer itself, the union mask.
            masks.append((data_sample.pred_sem_seg.sem_seg[0].cpu().numpy() > 0, TARGET_COLORS[0]))
            if keep is not None:
                title += f': the answer (every object scored < {pred_score_thr:.2f})'
        no_target = bool(data_sample.get('pred_no_target', False))
        panel, marks = self._panel(image, masks, 'NO TARGET' if no_target else title, mask_edges=True)
        if no_target:
            h, w = panel.shape[:2]
            marks += [('cross', w, h), ('text', 'NO TARGET', (w // 2, h // 2), NO_TARGET)]
        panels.append((panel, marks, False))
        if draw_gt and 'gt_sem_seg' in data_sample:
            gt = data_sample.gt_sem_seg.sem_seg[0].cpu().numpy()
            gt = mmcv.imresize(gt.astype(np.uint8), image.shape[1::-1], interpolation='nearest') == 1
            panels.insert(-1, (*self._panel(image, [], 'ground truth', outline=gt), False))
        text = data_sample.metainfo.get('text')
        top = CAPTION_HEIGHT if text else 0
        picture = np.concatenate([p for p, _, _ in panels], axis=1)
        if text:
            picture = np.concatenate([np.zeros((top,) + picture.shape[1:], np.uint8), picture], 0)
        canvas = PictureMarks(picture)
        left, frames = 0, []
        for p, marks, framed in panels:
            for name, *args in marks:
                getattr(canvas, name)(*args, x=left, y=top)
            if framed:
                frames.append((left, p.shape[1]))
            left += p.shape[1]
        if text:
            canvas.text(f'"{text}"', (6, 6), CAPTION)
        picture = canvas.array()
        for x, w in frames:  # painted over the marks, so that no title covers them
            for edge in (picture[top : top + 3, x : x + w], picture[-3:, x : x + w], picture[top:, x : x + 3],
                         picture[top:, x + w - 3 : x + w]):  # fmt: skip
                edge[...] = NEGATIVE_COLOR
        self._held = picture
        return picture

    @master_only
    def add_datasample(
        self,
        name: str,
        image: np.ndarray,
        data_sample=None,
        draw_gt: bool = True,
        draw_pred: bool = True,
        show: bool = False,
        wait_time: float = 0,
        out_file: Optional[str] = None,
        pred_score_thr: float = 0.3,
        step: int = 0,
    ) -> None:
        # draw_sample leaves the picture on the canvas (get_image returns it, as after mmdet's add_datasample).
        picture = self.draw_sample(image, data_sample, draw_gt=draw_gt, pred_score_thr=pred_score_thr)
        if show:
            self.show(picture, win_name=name, wait_time=wait_time)
        if out_file is not None:
            # Several samples share a target image (one per prompt): keep one picture each.
            meta = data_sample.metainfo if data_sample is not None else {}
            if 'sample_idx' in meta:
                folder, base = osp.split(out_file)
                out_file = osp.join(folder, f'{meta.get("prompt_modality", "sample")}_{meta["sample_idx"]:06d}_{base}')
            mmcv.imwrite(picture[..., ::-1], out_file)
        else:
            self.add_image(name, picture, step)


class PictureMarks:
    """The marks of a picture (titles and caption, click dots, the NO TARGET cross) drawn with Pillow on
    the assembled panels, in mmengine's style: DejaVu Sans (matplotlib's default font) at the sizes
    ``draw_texts`` takes in points, a text box of 4 points' padding and a 1-point edge blended at its
    opacity, white-edged dots. Written by hand because mmengine's ``Visualizer`` draws only through a
    matplotlib canvas, one render of which costs more than the rest of a picture.
    """

    def __init__(self, picture: np.ndarray):
        self.image = Image.fromarray(picture).convert('RGBA')
        self.draw = ImageDraw.Draw(self.image)

    def array(self) -> np.ndarray:
        return np.array(self.image.convert('RGB'))

    def text(self, text: str, xy, style: dict, x: int = 0, y: int = 0) -> None:
        """``text`` with its top left (anchor ``'la'``) or centre (``'mm'``) at ``xy`` + ``(x, y)``."""
        font = _font(style['points'])
        xy, anchor = (xy[0] + x, xy[1] + y), style.get('anchor', 'la')
        if style.get('box'):
            color, alpha = style['box']
            pad = BOX_PAD * PIXELS_PER_POINT
            left, top, right, bottom = self.draw.textbbox(xy, text, font=font, anchor=anchor)
            box = [round(left - pad), round(top - pad), round(right + pad), round(bottom + pad)]
            box = [max(0, box[0]), max(0, box[1]), min(self.image.width, box[2]), min(self.image.height, box[3])]
            if box[2] > box[0] and box[3] > box[1]:
                # matplotlib's text box: the face and a 1-point black edge, both at the box's opacity
                layer = Image.new('RGBA', (box[2] - box[0], box[3] - box[1]), (0, 0, 0, 0))
                ImageDraw.Draw(layer).rectangle(
                    (0, 0, layer.width - 1, layer.height - 1),
                    fill=(*color, round(255 * alpha)),
                    outline=(0, 0, 0, round(255 * alpha)),
                    width=round(PIXELS_PER_POINT),
                )
                self.image.alpha_composite(layer, dest=(box[0], box[1]))
        self.draw.text(xy, text, fill=style['color'], font=font, anchor=anchor)

    def click(self, xy, color, x: int = 0, y: int = 0) -> None:
        width = max(1, round(CLICK_EDGE * PIXELS_PER_POINT))
        # matplotlib centres the edge on the circle; Pillow draws it inside the bounding box
        cx, cy, r = xy[0] + x, xy[1] + y, CLICK_RADIUS + width / 2
        self.draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(color), outline=(255, 255, 255), width=width)

    def cross(self, w: int, h: int, x: int = 0, y: int = 0) -> None:
        """The red cross of a NO TARGET panel of size ``w`` x ``h`` at ``(x, y)``."""
        width = round(CROSS_WIDTH * PIXELS_PER_POINT)
        for line in (((x, y), (x + w - 1, y + h - 1)), ((x + w - 1, y), (x, y + h - 1))):
            self.draw.line(line, fill=(255, 0, 0), width=width)


@cache
def _font(points: float) -> ImageFont.FreeTypeFont:
    path = font_manager.findfont(font_manager.FontProperties(family=['sans-serif']))
    return ImageFont.truetype(path, round(points * PIXELS_PER_POINT))


def _on_canvas(name: str):
    """mmengine's ``Visualizer.<name>``, with the canvas first set to a held picture."""

    def method(self, *args, **kwargs):
        self._sync_canvas()
        return getattr(super(OmniRISVisualizer, self), name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f'``Visualizer.{name}`` on the picture last drawn (see ``OmniRISVisualizer.get_image``).'
    return method


for _name in ('draw_points', 'draw_texts', 'draw_lines', 'draw_circles', 'draw_bboxes', 'draw_polygons',
              'draw_binary_masks', 'show'):  # fmt: skip
    setattr(OmniRISVisualizer, _name, _on_canvas(_name))


def prediction_title(data_sample) -> str:
    """The prediction panel's title: ``'prediction'``, or ``'part-level prediction'`` /
    ``'object-level prediction'`` for a sample that carries a ``granularity`` (RefCOCOm, part sources)."""
    granularity = data_sample.metainfo.get('granularity')
    return f'{granularity}-level prediction' if granularity else 'prediction'


def _click_centres(prompt_map: np.ndarray) -> List[Tuple[float, float]]:
    """The centre of each disk of a click map (its connected components)."""
    _, _, _, centroids = cv2.connectedComponentsWithStats(prompt_map.astype(np.uint8), connectivity=8)
    return [(float(x), float(y)) for x, y in centroids[1:]]


def _blend(image: np.ndarray, mask: np.ndarray, color: tuple, alpha: float) -> np.ndarray:
    """``color`` over the ``mask`` pixels of ``image`` (H, W, 3) with opacity ``alpha``: the arithmetic of
    mmengine's ``Visualizer.draw_binary_masks`` (``cv2.addWeighted`` of the image and its coloured copy),
    on the array."""
    colored = image.copy()
    colored[mask] = color
    return cv2.addWeighted(image, 1 - alpha, colored, alpha, 0)


def _eroded(mask: np.ndarray) -> np.ndarray:
    """The mask shrunk by one pixel (for a one-pixel outline)."""
    m = np.pad(mask, 1)
    return m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
