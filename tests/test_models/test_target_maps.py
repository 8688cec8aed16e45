"""target_maps: the prompts on the target also enter as maps added to the target's features."""

import copy

import torch
from mmengine.dataset import pseudo_collate
from model_utils import build_model
from test_target_prompts_model import _dataset


def _outputs(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**model.data_preprocessor(copy.deepcopy(batch), False), mode='tensor')['target_mask']


def test_zero_at_first_then_where_the_click_is_matters():
    batch = pseudo_collate([_dataset()[0]])
    plain, mapped = build_model(seed=3, target_maps=False), build_model(seed=3, target_maps=True)
    assert plain.target_map_embed is None and len(mapped.target_map_embed) == 4
    # built aside, at zero: the other weights and the answer are those of the model without them
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in mapped.state_dict().items() if k in plain.state_dict())
    assert torch.equal(_outputs(plain, batch), _outputs(mapped, batch))
    for conv in mapped.target_map_embed:
        torch.nn.init.normal_(conv.weight, std=1.0)
    here = _outputs(mapped, batch)
    assert not torch.allclose(here, _outputs(plain, batch))
    # the maps at another place (the tokens, from the reference's own maps, stay): the answer moves
    moved = copy.deepcopy(batch)
    sample = moved['data_samples'][0]
    sample.prompt_maps = [torch.roll(m, shifts=(20, 30), dims=(1, 2)) for m in sample.prompt_maps]
    assert not torch.allclose(here, _outputs(mapped, moved))


def test_a_sample_without_prompts_on_the_target_is_untouched(omnishapes):
    from conftest import PIPELINE

    from omniris_mm.datasets import OmniRefDataset

    ds = OmniRefDataset(
        data_root=omnishapes, ann_file='OmniRef.json', split='visual-test', data_prefix=dict(img_path='images/'),
        pipeline=PIPELINE, test_mode=True,
    )  # fmt: skip
    batch = pseudo_collate([ds[0]])
    plain, mapped = build_model(seed=3, target_maps=False), build_model(seed=3, target_maps=True)
    for conv in mapped.target_map_embed:
        torch.nn.init.normal_(conv.weight, std=1.0)
    assert torch.equal(_outputs(plain, batch), _outputs(mapped, batch))


def test_a_checkpoint_without_the_maps_loads_them_as_zeros():
    old = build_model(seed=1, target_maps=False).state_dict()
    model = build_model(seed=2, target_maps=True)
    for conv in model.target_map_embed:
        torch.nn.init.normal_(conv.weight)
    result = model.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(not p.any() for p in model.target_map_embed.parameters())


def test_predict_hands_the_head_the_maps_of_the_prompts_on_the_target():
    # With or without target_maps: the head's one_object_select='prompts' answers with them.
    batch = pseudo_collate([_dataset()[0]])
    sample = batch['data_samples'][0]
    types = [t for t in sample.prompt_types if t != 'text']
    expected = torch.zeros(2, *sample.prompt_maps[0].shape[-2:])
    for t, m in zip(types, sample.prompt_maps):
        expected[int(t == 'neg_click')] = torch.maximum(expected[int(t == 'neg_click')], (m[0] > 0).float())
    assert expected[0].any()
    for model in (build_model(seed=3, target_maps=False), build_model(seed=3, target_maps=True)):
        model.eval()
        seen = []
        postprocess = model.head.postprocess

        def spy(outputs, metas, rescale=True, target_maps=None, postprocess=postprocess, seen=seen):
            seen.append(target_maps)
            return postprocess(outputs, metas, rescale, target_maps)

        model.head.postprocess = spy
        with torch.no_grad():
            model.test_step(copy.deepcopy(batch))
        (maps,) = seen
        h, w = expected.shape[-2:]
        assert torch.equal(maps[0, :, :h, :w], expected) and not maps[0, :, h:].any() and not maps[0, :, :, w:].any()
