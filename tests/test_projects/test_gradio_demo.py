"""The web demo (projects/gradio_demo): what the browser sends, parsed; the page driven in headless Chromium.

The browser test starts the server on 127.0.0.1 with the tiny config and a checkpoint of its own,
uploads an OmniShapes target and reference, drags a box on the reference with the mouse, runs, and
checks the page's picture and mask files against ``OmniRISInferencer`` given the same prompts. It
needs Debian's chromium and the Python package playwright (.dev_scripts/setup_env.sh --tests installs
both); where they are missing it is skipped, except under CI, where it fails.
"""

import glob
import io
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import mmcv
import numpy as np
import pytest
import torch
from conftest import REPO

from omniris_mm.apis import OmniRISInferencer

sys.path.insert(0, osp.join(REPO, 'projects', 'gradio_demo'))
from gradio_demo.webui import (  # noqa: E402
    PromptError,
    WebDemo,
    add_click,
    editor_strokes,
    parse_clicks,
    reference_prompt,
)

CONFIG = osp.join('configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')
CONFIG_PATH = osp.join(REPO, CONFIG)
CHROMIUM = '/usr/bin/chromium'
BRUSH_RADIUS = 6  # build_app's brush (gr.Brush default_size): drawn strokes are this much wider on each side


def editor_value(image_rgb, drawn=None, canvas=None):
    """What Gradio's ImageEditor sends (type numpy, RGBA): background, one layer, composite."""
    h, w = image_rgb.shape[:2]
    ch, cw = canvas or (h, w)
    background = np.zeros((ch, cw, 4), np.uint8)
    background[:h, :w, :3] = image_rgb
    background[:h, :w, 3] = 255
    layer = np.zeros((ch, cw, 4), np.uint8)
    if drawn is not None:
        layer[drawn] = (255, 48, 48, 255)
    return dict(background=background[:h, :w] if canvas is None else background, layers=[layer], composite=None)


@pytest.fixture(scope='module')
def target_and_reference(omnishapes):
    # A target with red circles (a test image) and a reference with a red circle where the test draws its box.
    paths = sorted(glob.glob(osp.join(omnishapes, 'images', '*.png')))
    return paths[25], paths[4]


def test_what_is_drawn_becomes_a_box_a_scribble_or_a_filled_mask():
    rgb = np.full((40, 50, 3), 128, np.uint8)
    ring = np.zeros((40, 50), bool)
    ring[10:30, 12:40] = True
    ring[14:26, 16:36] = False  # an outline: the mask fills it
    box = reference_prompt(editor_value(rgb, ring), 'box', False, 0)
    assert box['box'] == (12, 10, 40, 30) and box['negative'] is False
    assert np.array_equal(box['image'], rgb[..., ::-1])  # BGR, as the inferencer reads images
    scribble = reference_prompt(editor_value(rgb, ring), 'scribble', True, 0)
    assert np.array_equal(scribble['scribble'], ring) and scribble['negative'] is True
    mask = reference_prompt(editor_value(rgb, ring), 'mask', False, 0)
    filled = np.zeros_like(ring)
    filled[10:30, 12:40] = True
    assert np.array_equal(mask['mask'], filled)
    assert reference_prompt(None, 'box', False, 1) is None  # an empty slot
    with pytest.raises(PromptError, match='reference 2: draw a box'):
        reference_prompt(editor_value(rgb), 'box', False, 1)


def test_strokes_outside_the_image_are_cut_or_named():
    rgb = np.full((30, 30, 3), 90, np.uint8)
    drawn = np.zeros((60, 60), bool)
    drawn[20:40, 20:40] = True  # half inside the 30 x 30 image on a 60 x 60 canvas
    inside = editor_strokes(editor_value(rgb, drawn, canvas=(60, 60)), (30, 30), 'reference 1')
    assert inside.shape == (30, 30) and inside.sum() == 100 and inside[20:30, 20:30].all()
    drawn[:] = False
    drawn[40:50, 40:50] = True
    with pytest.raises(PromptError, match='reference 1: the strokes lie outside the 30x30 image'):
        editor_strokes(editor_value(rgb, drawn, canvas=(60, 60)), (30, 30), 'reference 1')


def test_clicks_are_parsed_and_bad_ones_named():
    assert parse_clicks('', (10, 20)) is None
    assert parse_clicks('3,4,1; 5.4,6,0', (10, 20)) == [(3, 4, 1), (5, 6, 0)]
    assert add_click('3,4,1', 7, 8, False) == '3,4,1; 7,8,0' and add_click('', 7, 8, True) == '7,8,1'
    with pytest.raises(PromptError, match=r'click 2 \(25, 1\) lies outside the 20x10 target'):
        parse_clicks('3,4,1; 25,1,1', (10, 20))
    with pytest.raises(PromptError, match='click 1 .*x,y,1'):
        parse_clicks('3;4', (10, 20))
    with pytest.raises(PromptError, match='at least one positive'):
        parse_clicks('3,4,0', (10, 20))


def test_bad_requests_answer_a_message_not_a_trace(target_and_reference):
    demo = WebDemo([CONFIG_PATH])
    target = mmcv.imread(target_and_reference[0], channel_order='rgb')
    slots = [None, 'box', False] * 3
    cases = [
        (dict(target=None), 'upload a target image'),
        (dict(target=editor_value(target)), 'give a prompt'),
        (dict(target=editor_value(target), clicks='999,1,1'), 'lies outside'),
        (dict(target=editor_value(target), text='x', config='configs/../secret.py'), 'not one the page offers'),
        (dict(target=dict(background=np.zeros((4, 4, 3), np.float32), layers=[]), text='x'), 'expected 8-bit'),
    ]
    for given, message in cases:
        args = dict(config=CONFIG_PATH, checkpoint=None, target=None, text='', clicks='', target_kind='none') | given
        picture, union, text, files = demo.answer(*args.values(), *slots)
        assert picture is None and union is None and files == []
        assert text.startswith('**Cannot answer:**') and message in text and 'Traceback' not in text


def test_an_answer_is_the_inferencers_with_its_masks_written(target_and_reference, tmp_path):
    target_path, ref_path = target_and_reference
    demo = WebDemo([CONFIG_PATH], out_dir=str(tmp_path))
    torch.manual_seed(0)
    target = mmcv.imread(target_path, channel_order='rgb')
    reference = mmcv.imread(ref_path, channel_order='rgb')
    drawn = np.zeros(reference.shape[:2], bool)
    drawn[20:50, 30:70] = True
    slots = [editor_value(reference, drawn), 'box', False] + [None, 'box', False] * 2
    picture, union, message, files = demo.answer(
        CONFIG_PATH, None, editor_value(target), 'red shapes', '40,40,1', 'none', *slots
    )
    expected = demo.inferencer(CONFIG_PATH, None)(
        target_path,
        text='red shapes',
        visual_prompts=[dict(image=ref_path, box=(30, 20, 70, 50))],
        points=[(40, 40, 1)],
    )['predictions'][0]
    assert osp.basename(files[0]) == 'union.png' and len(files) == 1 + len(expected['masks'])
    assert np.array_equal(mmcv.imread(files[0], flag='grayscale') > 127, expected['union_mask'])
    for k, mask in enumerate(expected['masks']):
        assert np.array_equal(mmcv.imread(files[1 + k], flag='grayscale') > 127, mask)
    assert picture.shape[2] == 3 and union.shape == target.shape
    assert 'reference 1: box (30, 20, 70, 50)' in message and 'clicks 40,40,1' in message


# -- in the browser ---------------------------------------------------------------------
def browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [what for what, ok in (('playwright', sync_playwright), ('chromium', osp.exists(CHROMIUM))) if not ok]
    try:
        import gradio  # noqa: F401
    except ImportError:
        missing.append('gradio')
    if missing:
        if os.environ.get('CI'):
            pytest.fail(f'the browser test needs {missing} (.dev_scripts/setup_env.sh --tests installs them)')
        pytest.skip(f'needs {missing}')
    return sync_playwright


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """projects/gradio_demo/launch.py on 127.0.0.1 with the tiny config and a saved random-weight checkpoint,
    started from another folder; stopped after.
    OMNIRIS_WEBUI_CONFIG and OMNIRIS_WEBUI_CHECKPOINT pick others (the README's screenshot: the quickstart's)."""
    config = os.environ.get('OMNIRIS_WEBUI_CONFIG', CONFIG)
    ckpt = os.environ.get('OMNIRIS_WEBUI_CHECKPOINT')
    if not ckpt:
        torch.manual_seed(0)
        ckpt = str(tmp_path / 'tiny.pth')
        model = OmniRISInferencer(osp.join(REPO, config), device='cpu').model
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    ckpt = osp.abspath(ckpt)
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS='1', GRADIO_ANALYTICS_ENABLED='False')
    log = open(tmp_path / 'server.log', 'w')
    launch = osp.join(REPO, 'projects', 'gradio_demo', 'launch.py')
    cmd = [sys.executable, launch, '--config', osp.join(REPO, config), '--checkpoint', ckpt,
           '--port', str(port), '--device', 'cpu', '--out-dir', str(tmp_path / 'answers')]  # fmt: skip
    # Started from another folder: the demo finds its configs through the package.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log_text = (tmp_path / 'server.log').read_text()[-3000:]
                    raise RuntimeError(f'the web demo did not start: {log_text}') from None
                time.sleep(1)
        yield dict(url=url, config=config, checkpoint=ckpt)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def png(data, flag='color'):
    return mmcv.imfrombytes(io.BytesIO(data).getvalue(), flag=flag)


def test_the_page_in_a_browser_answers_as_the_inferencer(server, target_and_reference, tmp_path):
    sync_playwright = browser_or_skip()
    target_path, ref_path = target_and_reference
    ref_h, ref_w = mmcv.imread(ref_path).shape[:2]
    args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync']  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport=dict(width=1400, height=1300))
            page.goto(server['url'])
            page.wait_for_selector('#run')

            # Bad input first: no target image. A message in the page, no trace.
            page.click('#run')
            page.wait_for_function("document.querySelector('#message').innerText.includes('Cannot answer')")
            assert 'upload a target image' in page.inner_text('#message')

            page.locator('#target input[type=file]').set_input_files(target_path)
            page.locator('#reference_1 input[type=file]').set_input_files(ref_path)
            page.wait_for_selector('#click_view img')  # the target arrived (its click view is drawn)
            zoom_text = page.locator('#reference_1').get_by_text(re.compile(r'^\d+%$')).first
            page.wait_for_function('el => el.innerText !== "100%"', arg=zoom_text.element_handle(), timeout=10000)
            zoom = float(zoom_text.inner_text().rstrip('%')) / 100
            canvas = page.locator('#reference_1 canvas').first.bounding_box()
            cx, cy = canvas['x'] + canvas['width'] / 2, canvas['y'] + canvas['height'] / 2
            # Drag a diagonal 100 x 60 page pixels, centred 15 pixels left of and 10 above the canvas's centre.
            x0, y0, x1, y1 = cx - 65, cy - 40, cx + 35, cy + 20
            page.mouse.move(x0, y0)
            page.mouse.down()
            for k in range(1, 21):
                page.mouse.move(x0 + (x1 - x0) * k / 20, y0 + (y1 - y0) * k / 20)
            page.mouse.up()
            page.click('#run')
            answered = (
                "(t => t.includes('instance') || t.includes('No target'))(document.querySelector('#message').innerText)"
            )
            page.wait_for_function(answered)
            page.wait_for_selector('#picture img')
            page.wait_for_selector('#masks a')
            message = page.inner_text('#message')
            picture_src = page.get_attribute('#picture img', 'src')
            links = [a.get_attribute('href') for a in page.locator('#masks a').all()]
            page.screenshot(path=str(tmp_path / 'webui.png'), full_page=True)
        finally:
            browser.close()
    shot = os.environ.get('OMNIRIS_WEBUI_SCREENSHOT')
    if shot:  # the README's picture (any format mmcv writes)
        mmcv.imwrite(mmcv.imread(str(tmp_path / 'webui.png')), shot, params=[cv2.IMWRITE_JPEG_QUALITY, 80])

    # The box the page took from the drag: the image is drawn centred on the canvas at `zoom`,
    # the strokes are BRUSH_RADIUS wider on each side.
    found = re.search(r'reference 1: box \((\d+), (\d+), (\d+), (\d+)\)', message)
    assert found, message
    box = tuple(int(v) for v in found.groups())
    centre = (ref_w / 2 + ((x0 + x1) / 2 - cx) / zoom, ref_h / 2 + ((y0 + y1) / 2 - cy) / zoom)
    size = ((x1 - x0) / zoom + 2 * BRUSH_RADIUS, (y1 - y0) / zoom + 2 * BRUSH_RADIUS)
    assert abs((box[0] + box[2]) / 2 - centre[0]) <= 2 and abs((box[1] + box[3]) / 2 - centre[1]) <= 2, (box, centre)
    assert abs(box[2] - box[0] - size[0]) <= 3 and abs(box[3] - box[1] - size[1]) <= 3, (box, size)

    # The page's answer is the inferencer's for the same prompts (same weights, one thread both).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inferencer = OmniRISInferencer(osp.join(REPO, server['config']), server['checkpoint'], device='cpu')
        result = inferencer(target_path, visual_prompts=[dict(image=ref_path, box=box)], return_vis=True)
        expected, picture = result['predictions'][0], result['visualization'][0]
    finally:
        torch.set_num_threads(threads)
    names = [osp.basename(link.split('file=')[-1]) for link in links]
    assert names == ['union.png'] + [f'instance_{k + 1}.png' for k in range(len(expected['masks']))]
    assert np.array_equal(png(fetch(links[0]), 'grayscale') > 127, expected['union_mask'])
    for k, mask in enumerate(expected['masks']):
        assert np.array_equal(png(fetch(links[1 + k]), 'grayscale') > 127, mask)
    shown = png(fetch(picture_src if picture_src.startswith('http') else server['url'] + picture_src.lstrip('/')))
    assert np.array_equal(shown, picture[..., ::-1])  # the page's PNG (read BGR) is the inferencer's picture
    assert ('No target' in message) == expected['no_target']
    assert f'{len(expected["scores"])} instance(s)' in message or expected['no_target']
