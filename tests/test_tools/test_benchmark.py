import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_models'))


def test_profiled_modules_label_every_part_of_the_tiny_model():
    from benchmark import profiled_modules
    from model_utils import build_model

    model = build_model(seed=0)
    pairs = profiled_modules(model)
    labels = [label for label, _ in pairs]
    blocks = sum(len(stage.blocks) for stage in model.backbone.stages)
    assert labels.count('backbone.window_attn') == blocks and labels.count('backbone.ffn') == blocks
    assert labels.count('backbone.fusion') == len(model.backbone.fusions)
    # Deformable attention: the pixel decoder's encoder layers and the prompt generator's layers.
    assert labels.count('deform_attn') == len(model.head.pixel_decoder.encoder.layers) + len(
        model.prompt_encoder.layers
    )
    assert labels.count('head.decoder_layers') == len(model.head.layers)
    assert {'text_encoder', 'prompt_encoder', 'head', 'head.pixel_decoder'} <= set(labels)


def test_fast_option_sets_every_fast_form():
    from benchmark import FAST
    from model_utils import build_model

    from omniris_mm.models.layers.fast_attention import GatherMSDeformAttn, SDPAShiftWindowMSA, SDPAWindowMSA

    options = {f'model.{part}.{k}': v for part, opts in FAST.items() for k, v in opts.items()}
    model = build_model(seed=0, options=options)
    kinds = {type(m) for m in model.modules()}
    assert {GatherMSDeformAttn, SDPAShiftWindowMSA, SDPAWindowMSA} <= kinds


def test_train_step_cases_come_once_per_batch_size():
    from benchmark import expand_cases, train_batch_size

    cases = expand_cases(['m2f', 'text-fast', 'train-step', 'train-step-fast'], [1, 4])
    assert cases == ['m2f', 'text-fast', 'train-step@b1', 'train-step@b4', 'train-step-fast@b1', 'train-step-fast@b4']
    assert [train_batch_size(c) for c in cases[2:]] == [1, 4, 1, 4]
    # The anchors (stock Mask2Former's step, the release's) come per batch size too.
    assert expand_cases(['m2f-train-step', 'release-train-step', 'visual'], [2]) == [
        'm2f-train-step@b2',
        'release-train-step@b2',
        'visual',
    ]


def test_case_names_split_into_case_and_variant():
    from benchmark import CASES, split_variant, with_variant

    assert split_variant('text-fast') == ('text', '-fast')
    assert split_variant('visual-cached-compiled') == ('visual-cached', '-compiled')
    assert split_variant('train-step-bf16@b4') == ('train-step@b4', '-bf16')
    assert split_variant('text+visual') == ('text+visual', '')
    assert with_variant('train-step@b4', '-bf16') == 'train-step-bf16@b4'
    assert with_variant('visual-cached', '-compiled') == 'visual-cached-compiled'
    assert 'train-step-compiled' not in CASES and 'text+visual-compiled' in CASES
    assert split_variant('train-step-cp@b2') == ('train-step@b2', '-cp')
    assert 'train-step-cp' in CASES and 'text-cp' not in CASES
    assert split_variant('m2f-train-step@b2') == ('m2f-train-step@b2', '')


def test_train_steps_are_timed_one_model_per_process_beside_the_release():
    from benchmark import model_key, train_groups

    assert [model_key(c) for c in ('m2f', 'm2f-train-step@b2', 'release-train-step@b1', 'text', 'train-step@b2')] == [
        'm2f',
        'm2f',
        'release',
        'omni',
        'omni',
    ]
    assert model_key('train-step-cp@b2') == model_key('train-step-bf16@b2') == model_key('visual-fast') == 'omni-fast'
    cases = ['m2f-train-step@b2', 'release-train-step@b2', 'train-step-fast@b2', 'train-step-cp@b2', 'train-step@b4']
    assert train_groups(cases) == [
        ['release-train-step@b2', 'm2f-train-step@b2'],
        ['release-train-step@b2', 'train-step-fast@b2', 'train-step-cp@b2'],
        ['train-step@b4'],
    ]
    # From batch 4 on (two models' steps do not fit in 24 GB together) every model alone.
    assert train_groups(
        ['release-train-step@b4', 'train-step-fast@b4', 'release-train-step@b2', 'train-step@b2'], 4
    ) == [
        ['release-train-step@b4'],
        ['train-step-fast@b4'],
        ['release-train-step@b2', 'train-step@b2'],
    ]
    assert train_groups(['release-train-step@b1', 'train-step-fast@b2']) == [
        ['release-train-step@b1'],
        ['train-step-fast@b2'],
    ]


def test_the_cp_variant_restores_the_configured_checkpointing_after_its_step():
    """The ``-cp`` case switches its stages on for its step only and gives the model back with the
    stages its config checkpoints (our Swin-B configs: 0-1), so that ``-fast`` in the same process
    keeps training as configured."""
    from benchmark import checkpointed_stages, make_case
    from model_utils import build_model

    model = build_model(seed=0, options={'model.backbone.checkpoint_stages': [1]})
    assert checkpointed_stages(model.backbone) == (1,)
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, a: seen.append(checkpointed_stages(m)))
    step = make_case('train-step-cp@b1', 64, {'omni-fast': model}, cp_stages=[0, 3])
    step()
    # The reference pass and the target pass of the step both ran with the asked stages.
    assert seen == [(0, 3), (0, 3)]
    assert checkpointed_stages(model.backbone) == (1,)
    step = make_case('train-step-cp@b1', 64, {'omni-fast': model}, cp_stages=[])
    step()
    assert seen[2:] == [(), ()] and checkpointed_stages(model.backbone) == (1,)


def test_our_swinb_config_checkpoints_stages_0_and_1():
    from benchmark import build_omnisegnet, checkpointed_stages
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    ours = build_omnisegnet()
    assert checkpointed_stages(ours.backbone) == (0, 1)
    assert [b.with_cp for b in ours.backbone.stages[2].blocks] == [False] * 18


def test_the_onnx_variant_answers_as_pytorch_from_one_export():
    """``CASE-onnx`` runs the same weights in ONNX Runtime: its outputs are the PyTorch case's (to
    the export's float rounding) on every inference case, from one export shared by the cases."""
    import pytest

    pytest.importorskip('onnxruntime')
    from benchmark import INFERENCE_CASES, answer_change, make_case
    from model_utils import build_model

    from omniris_mm.apis.onnx_runtime import ONNXRuntimeModel

    model = build_model(seed=0).eval()
    models = {'omni': model, 'omni-fast': model}
    runtimes = set()
    for case in INFERENCE_CASES:
        pytorch, onnx = make_case(case, 128, models), make_case(f'{case}-onnx', 128, models)
        onnx()  # the runner's whole call: rows, graphs, post-processing
        change = answer_change(pytorch.outputs(), onnx.outputs())
        assert change['max_rel_l2'] <= 1e-4, (case, change)
        assert change['mask_agreement'] >= 0.999, (case, change)
        assert onnx.prepare_s > 0
        runtimes.add(id(models['omni-onnx']))
    assert len(runtimes) == 1 and isinstance(models['omni-onnx'], ONNXRuntimeModel)


def test_the_channels_last_variant_answers_as_the_fast_forms():
    """``CASE-cl`` is the fast model's weights with the convolutions and the images in the
    channels-last memory format: the same answers (to float rounding) on every inference case, the
    fast model itself left as it was."""
    import torch
    from benchmark import FAST, INFERENCE_CASES, answer_change, make_case
    from model_utils import build_model

    options = {f'model.{part}.{k}': v for part, opts in FAST.items() for k, v in opts.items()}
    fast = build_model(seed=0, options=options).eval()
    models = {'omni-fast': fast}

    def convs(m):  # those whose weights' layout the memory format changes: not 1 x 1 kernels or 1 input channel
        return [x for x in m.modules() if isinstance(x, torch.nn.Conv2d) and min(x.weight[0].shape) > 1]

    for case in INFERENCE_CASES:
        plain, cl = make_case(f'{case}-fast', 128, models), make_case(f'{case}-cl', 128, models)
        cl()
        change = answer_change(plain.outputs(), cl.outputs())
        assert change['max_rel_l2'] <= 1e-5, (case, change)
        assert change['mask_agreement'] == 1.0, (case, change)
    assert models['omni-cl'] is not fast
    assert len(convs(fast)) >= 2  # the patch embedding's and the pixel decoder's 3 x 3
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs(models['omni-cl']))
    assert not any(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs(fast))
    # The images go in channels-last too, the same values.
    from benchmark import channels_last, inference_data

    data = inference_data(fast, 'visual', 128, fast.encode_references)
    moved = channels_last(data)
    for a, b in (
        (data['inputs'], moved['inputs']),
        (data['data_samples'][0].ref_inputs, moved['data_samples'][0].ref_inputs),
    ):
        assert b.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous(
            memory_format=torch.channels_last
        )
        assert torch.equal(a, b)
    # The channels-last model was built with the fast forms, from the fast model's weights.
    cl_state, fast_state = models['omni-cl'].state_dict(), fast.state_dict()
    assert all(torch.equal(cl_state[k], fast_state[k]) for k in fast_state)
