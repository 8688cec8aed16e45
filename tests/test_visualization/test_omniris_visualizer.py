"""OmniRISVisualizer: the reference with its prompt beside the target with its predicted masks, or NO TARGET."""

import mmcv
import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData, PixelData

from omniris_mm.visualization.omniris_visualizer import PROMPT_COLOR, TARGET_COLORS, PictureMarks, prediction_title


def sample(no_target=False):
    s = DetDataSample(metainfo=dict(text='the red square', prompt_types=['text', 'box']))
    ref = torch.full((3, 100, 200), 40, dtype=torch.uint8)
    prompt = torch.zeros(1, 100, 200, dtype=torch.uint8)
    prompt[:, 20:60, 30:90] = 1
    s.ref_imgs, s.prompt_maps = [ref], [prompt]
    masks = torch.zeros(2, 120, 160, dtype=torch.bool)
    masks[0, 10:50, 10:50] = True
    masks[1, 70:110, 100:150] = True
    keep = slice(0, 0) if no_target else slice(0, 2)
    s.pred_instances = InstanceData(masks=masks[keep], scores=torch.tensor([0.9, 0.8])[keep])
    s.pred_sem_seg = PixelData(sem_seg=masks[keep].any(0, keepdim=True).to(torch.uint8))
    s.pred_no_target = no_target
    gt = torch.zeros(1, 120, 160, dtype=torch.uint8)
    gt[:, 10:50, 10:50] = 1
    s.gt_sem_seg = PixelData(sem_seg=gt)
    return s


def tinted_towards(pixels, color, base):
    """Mean colour moved from ``base`` towards ``color`` in every channel where they differ."""
    mean = pixels.reshape(-1, 3).mean(0)
    return all((m - b) * (c - b) > 0 for m, b, c in zip(mean, base, color) if c != b)


def test_reference_prompt_and_instances_are_drawn(tmp_path):
    vis = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t1', panel_height=120))
    image = np.full((120, 160, 3), 100, np.uint8)
    picture = vis.draw_sample(image, sample())
    # caption strip (28) + panels at 120 px: the reference (200 x 100 -> 240 x 120) and the target (160 x 120)
    assert picture.shape == (28 + 120, 240 + 160, 3)
    ref_panel, target = picture[28:, :240], picture[28:, 240:]
    assert tinted_towards(ref_panel[30:70, 40:100], PROMPT_COLOR, (40, 40, 40))  # box prompt at x 30-90 (x1.2)
    assert np.abs(ref_panel[80:110, 150:230].astype(int) - 40).max() <= 1  # outside the prompt: untouched
    assert tinted_towards(target[20:45, 15:45], TARGET_COLORS[0], (100, 100, 100))
    assert tinted_towards(target[80:105, 110:145], TARGET_COLORS[1], (100, 100, 100))
    assert np.abs(target[60:68, 60:90].astype(int) - 100).max() <= 1  # background untouched
    # each predicted mask outlined in black (visible on an object of the mask's own colour):
    # instance 0 covers rows and columns 10-49, on its border and not inside
    assert (target[30, 10] == 0).all() and (target[49, 30] == 0).all() and (target[30, 49] == 0).all()
    assert (target[30, 30] != 0).any() and (target[30, 9] == 100).all()

    with_gt = vis.draw_sample(image, sample(), draw_gt=True)
    assert with_gt.shape[1] == 240 + 2 * 160
    out = tmp_path / 'pic.png'
    vis.add_datasample('s', image, sample(), draw_gt=False, out_file=str(out))
    assert mmcv.imread(str(out)).shape == picture.shape


def test_no_target_is_marked():
    vis = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t2', panel_height=120))
    image = np.full((120, 160, 3), 100, np.uint8)
    target = vis.draw_sample(image, sample(no_target=True))[28:, 240:]
    red = (target[..., 0] > 180) & (target[..., 1] < 60) & (target[..., 2] < 60)
    assert red.sum() > 100  # the red cross and label
    for color in TARGET_COLORS[:2]:
        assert not (np.abs(target.astype(int) - color).sum(-1) < 30).any()


def test_prompts_on_the_target_share_one_panel_with_green_and_red_clicks():
    from omniris_mm.visualization.omniris_visualizer import CLICK_COLORS

    s = sample()
    s.set_metainfo(dict(prompt_types=['text', 'box', 'click', 'neg_click', 'target_box']))
    target_img = torch.full((3, 120, 160), 100, dtype=torch.uint8)
    pos, neg, box = (torch.zeros(1, 120, 160, dtype=torch.uint8) for _ in range(3))
    pos[:, 29:32, 39:42] = 1  # a click at (40, 30)
    pos[:, 89:92, 119:122] = 1  # and one at (120, 90)
    neg[:, 59:62, 79:82] = 1  # a negative click at (80, 60)
    box[:, 35:55, 100:150] = 1
    s.ref_imgs += [target_img] * 3
    s.prompt_maps += [pos, neg, box]
    image = np.full((120, 160, 3), 100, np.uint8)
    picture = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t3', panel_height=120)).draw_sample(image, s)
    # the reference (240) + one panel for the three prompts on the target (160) + the prediction (160)
    assert picture.shape == (28 + 120, 240 + 160 + 160, 3)
    panel = picture[28:, 240:400].astype(int)
    for (x, y), kind in (((40, 30), 'click'), ((120, 90), 'click'), ((80, 60), 'neg_click')):
        assert np.abs(panel[y - 1 : y + 2, x - 1 : x + 2] - CLICK_COLORS[kind]).max() <= 2, kind
    assert tinted_towards(panel[38:52, 105:145].astype(np.uint8), PROMPT_COLOR, (100, 100, 100))
    assert np.abs(panel[100:115, 10:30] - 100).max() <= 1  # elsewhere: untouched


def test_a_negative_exemplar_is_framed_and_drawn_in_red():
    from omniris_mm.visualization.omniris_visualizer import NEGATIVE_COLOR

    s = sample()
    s.set_metainfo(dict(prompt_types=['text', 'box', 'neg_mask']))
    s.ref_imgs += [torch.full((3, 100, 200), 40, dtype=torch.uint8)]
    neg = torch.zeros(1, 100, 200, dtype=torch.uint8)
    neg[:, 50:90, 120:180] = 1
    s.prompt_maps += [neg]
    image = np.full((120, 160, 3), 100, np.uint8)
    picture = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t4', panel_height=120)).draw_sample(image, s)
    assert picture.shape == (28 + 120, 240 + 240 + 160, 3)
    positive, negative = picture[28:, :240].astype(int), picture[28:, 240:480].astype(int)
    for edge in (negative[:3, 100:200], negative[-3:, 100:200], negative[40:110, :3], negative[40:110, -3:]):
        assert (edge == NEGATIVE_COLOR).all()
    assert not (positive[-3:] == NEGATIVE_COLOR).all(-1).any()  # the positive reference: no frame
    assert tinted_towards(negative[65:100, 150:210].astype(np.uint8), NEGATIVE_COLOR, (40, 40, 40))  # x1.2
    assert tinted_towards(positive[30:70, 40:100].astype(np.uint8), PROMPT_COLOR, (40, 40, 40))


def test_a_part_level_answer_is_named_in_its_title():
    vis = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t_parts', panel_height=120))
    image = np.full((120, 160, 3), 100, np.uint8)
    plain, part = sample(), sample()
    part.set_metainfo(dict(granularity='part'))
    assert prediction_title(plain) == 'prediction' and prediction_title(part) == 'part-level prediction'
    a, b = vis.draw_sample(image, plain)[28:, 240:], vis.draw_sample(image, part)[28:, 240:]
    # Only the title (the top rows of the panel) differs.
    assert (a[:20] != b[:20]).any()
    np.testing.assert_array_equal(a[60:], b[60:])


def test_masks_blended_on_the_array_equal_mmengines_draw_binary_masks():
    """The panels blend their masks and outlines into the array before matplotlib sees it (one canvas
    render per panel, not one per mask): the pixels are those of mmengine's ``draw_binary_masks`` drawing
    the same masks one after another."""
    from mmengine.visualization import Visualizer

    from omniris_mm.visualization.omniris_visualizer import EDGE_COLOR, _blend

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    layers = [(rng.random((40, 56)) > 0.6, (220, 20, 60), 0.5), (rng.random((40, 56)) > 0.8, EDGE_COLOR, 1.0),
              (rng.random((40, 56)) > 0.7, (0, 130, 200), 0.3)]  # fmt: skip
    reference = Visualizer(name='blend_reference', image=image.copy())
    ours = image
    for mask, color, alpha in layers:
        reference.draw_binary_masks(mask[None], colors=[color], alphas=alpha)
        ours = _blend(ours, mask, color, alpha)
    want = reference.get_image()
    assert want.shape == ours.shape and not np.array_equal(ours, image)
    assert np.array_equal(ours, want)


def test_a_picture_needs_no_canvas_render(monkeypatch):
    """The titles and marks are drawn with Pillow on the assembled panels and the canvas is not set:
    no matplotlib render (get_image, 30-100 ms a picture) nor set_image (7-18 ms) while drawing. The
    visualizer still behaves as one holding the picture: get_image returns it, and an mmengine drawing
    call draws on it."""
    from mmengine.visualization import Visualizer

    vis = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t_renders', panel_height=120))
    calls = {'set_image': 0, 'get_image': 0}
    for name in calls:
        original = getattr(Visualizer, name)

        def counted(self, *args, _name=name, _original=original):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(Visualizer, name, counted)
    image = np.full((120, 160, 3), 100, np.uint8)
    s = sample(no_target=True)  # a reference, the ground truth and the NO TARGET panel, a caption
    picture = vis.draw_sample(image, s, draw_gt=True)
    assert picture.shape == (28 + 120, 240 + 2 * 160, 3)
    assert calls == {'set_image': 0, 'get_image': 0}
    np.testing.assert_array_equal(vis.get_image(), picture)
    assert calls == {'set_image': 0, 'get_image': 0}
    # a box drawn afterwards lands on the picture: the canvas takes it first
    vis.draw_bboxes(np.array([[300, 60, 380, 120]]), edge_colors=[(0, 255, 255)], line_widths=4, alpha=1.0)
    drawn = vis.get_image()
    assert calls == {'set_image': 1, 'get_image': 1}
    assert drawn.shape == picture.shape
    assert ((drawn[90, 298:303] == (0, 255, 255)).all(-1)).any()  # the box's left edge, opaque
    np.testing.assert_array_equal(drawn[:, :240], picture[:, :240])  # the rest as drawn
    # a new picture replaces it
    again = vis.draw_sample(image, sample())
    np.testing.assert_array_equal(vis.get_image(), again)


def test_titles_caption_and_cross_are_drawn_in_mmengines_style():
    """A title: white DejaVu Sans at 11 points (15 px at the canvas' 100 dpi) on a black box of
    opacity 0.6 and 4 points' padding; the caption: white text on the black strip; NO TARGET: a red
    cross from corner to corner (3 points, 4 px wide) under a red label on a white box."""
    vis = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t_marks', panel_height=120))
    image = np.full((120, 160, 3), 100, np.uint8)
    picture = vis.draw_sample(image, sample()).astype(int)
    target = picture[28:, 240:]
    # the box spans the title's glyphs + 5.6 px: 100 * (1 - 153 / 255) = 40 where no glyph is
    assert (target[1, 1] == 40).all() and (target[1, 40] == 40).all()
    glyphs = (target[:30] > 200).all(-1)
    rows = np.nonzero(glyphs.any(1))[0]
    assert glyphs.sum() > 40 and rows.min() >= 4 and rows.max() < 4 + 15 + 2  # one 15-px line under y = 4
    assert (target[40:] != 0).any() and not (target[30:] > 200).all(-1).any()  # no white below the box
    caption = picture[:28]
    assert (caption > 200).all(-1).sum() > 40 and (caption[:, 300:] == 0).all()  # short text, left
    # NO TARGET: both diagonals of the 160 x 120 panel red, away from the label; the label's box
    # white at opacity 0.8 over 100: 100 + 155 * 204 / 255 = 224 between the red letters
    cross = vis.draw_sample(image, sample(no_target=True)).astype(int)[28:, 240:]
    for x in (10, 30, 130, 150):
        y = round(x * 119 / 159)
        assert (cross[y, x] == (255, 0, 0)).all() and (cross[y, 159 - x] == (255, 0, 0)).all(), (x, y)
    label = cross[48:72, 30:130]
    assert ((label[..., 0] > 200) & (label[..., 1] < 100)).sum() > 50  # red letters
    assert (label == 224).all(-1).sum() > 200


def test_an_answer_with_no_instance_above_the_threshold_is_drawn(monkeypatch):
    # A click answered by one instance that scores 0.2 (one_object_select='prompts' picks it by the
    # prompts, not by its score): below pred_score_thr, the answer (its union mask) is drawn all the same.
    s = sample()
    s.pred_instances = s.pred_instances[:1]
    s.pred_instances.scores = torch.tensor([0.2])
    s.pred_sem_seg = PixelData(sem_seg=s.pred_instances.masks.to(torch.uint8))
    vis = VISUALIZERS.build(dict(type='OmniRISVisualizer', name='t_low', panel_height=120))
    texts = []
    draw = PictureMarks.text
    monkeypatch.setattr(
        PictureMarks, 'text', lambda self, text, *a, **k: texts.append(text) or draw(self, text, *a, **k)
    )
    target = vis.draw_sample(np.full((120, 160, 3), 100, np.uint8), s)[28:, 240:]
    assert tinted_towards(target[20:45, 15:45], TARGET_COLORS[0], (100, 100, 100))
    assert np.abs(target[80:105, 110:145].astype(int) - 100).max() <= 1  # the other mask is not the answer
    assert 'prediction: the answer (every object scored < 0.30)' in texts
