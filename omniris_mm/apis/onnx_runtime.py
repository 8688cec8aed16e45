"""OmniSegNet's inference path as ONNX graphs, and a runner on ONNX Runtime with the inferencer's inputs.

Three graphs (``export_onnx``), each a part of :meth:`OmniSegNet.predict` that holds weights:

- ``reference_encoder.onnx``: reference images (N, 3, H, W), normalised and padded as the data
  preprocessor leaves them, and their prompt maps (N, 1, H, W) -> visual tokens (N, Nq, D);
- ``text_encoder.onnx`` (models with a text encoder): token ids and attention mask (B, L) -> text
  tokens (B, L, D), after ``text_norm``;
- ``target.onnx``: target images (R, 3, H, W), one per prompt row, the prompt tokens (R, L, D) before
  the prompt-type embeddings, their type ids (R, L; indices into ``PROMPT_TYPES``), their valid mask
  (R, L) and the maps of the prompts on the target (R, 2, H, W; zeros when none) -> the head's
  ``target_mask``, ``nt_logits``, ``mask_features`` and, with an instance branch, ``objectness`` and
  ``instance_embed``.

What holds no weights stays in Python and is shared with the PyTorch path, so both answer alike:
the test pipeline, the data preprocessor, the tokenizer, the prompt rows and the head's
post-processing (:class:`ONNXRuntimeInferencer`, a :class:`OmniRISInferencer` whose model parts run
in ONNX Runtime). Batch, reference and prompt counts, the text length and the image size are dynamic:
any size that is a multiple of the largest feature stride (32; the data preprocessor pads to it), so
one export serves configs that resize keeping the aspect ratio, and any test size.
"""

import copy
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Union

import numpy as np
import torch
import torch.nn as nn
from mmdet.models.backbones.swin import ShiftWindowMSA
from mmengine.config import Config

from ..models.detectors.omnisegnet import PROMPT_TYPES
from ..models.layers.fast_attention import swap_modules
from .inferencer import OmniRISInferencer

TARGET_OUTPUTS = ('target_mask', 'nt_logits', 'mask_features', 'objectness', 'instance_embed')
META_FILE = 'omniris_onnx.json'


class ReferenceGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ref_inputs, ref_prompt_maps):
        return self.model.encode_references(ref_inputs, ref_prompt_maps)


class TextGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        hidden = self.model.text_encoder.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.model.text_norm(hidden)


class TargetGraph(nn.Module):
    """The target's pass from the prompt rows on: type embeddings, fused backbone, maps of the prompts
    on the target (added when any is drawn, as :meth:`OmniSegNet.apply_target_maps` does), head."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.outputs = TARGET_OUTPUTS if model.head.instance_criterion is not None else TARGET_OUTPUTS[:3]

    def forward(self, inputs, prompt_tokens, prompt_types, prompt_mask, target_maps):
        model = self.model
        if model.prompt_type_embed is not None:  # type -1: the padding of a row, left at zero as in PyTorch
            embed = model.prompt_type_embed.weight[prompt_types.clamp(min=0)]
            prompt_tokens = prompt_tokens + embed * (prompt_types >= 0).unsqueeze(-1).to(embed.dtype)
        feats = model.extract_feat(inputs, prompt_tokens, prompt_mask)
        if model.target_map_embed is not None:
            # The PyTorch path adds the maps only when some row has a prompt on the target (else
            # the convolutions' biases would shift the features); a multiplier keeps that in the graph.
            drawn = (target_maps.amax() > 0).to(feats[0].dtype)
            with_maps = model.apply_target_maps(feats, target_maps)
            feats = [f + drawn * (g - f) for f, g in zip(feats, with_maps)]
        out = model.head(feats, prompt_tokens, prompt_mask)
        return tuple(out[k] for k in self.outputs)


class _SDPAMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s inference (``batch_first``, packed in-projection, no ``bias_k`` or
    ``add_zero_attn``) through ``scaled_dot_product_attention``, for the export only: the exporter
    traces the original with the key length of the example baked in, this keeps it dynamic (the
    prompt length). Same arguments and result (the weights are not returned)."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not (mha.batch_first and mha._qkv_same_embed_dim and mha.bias_k is None and not mha.add_zero_attn):
            raise ValueError('only batch_first attention with a packed in-projection is exported this way')
        self.mha = mha

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None):
        m, b = self.mha, query.shape[0]
        heads = m.num_heads
        qkv = [
            nn.functional.linear(x, w, None if bias is None else bias)
            for x, w, bias in zip(
                (query, key, value),
                m.in_proj_weight.chunk(3),
                (None,) * 3 if m.in_proj_bias is None else m.in_proj_bias.chunk(3),
            )
        ]
        q, k, v = (x.reshape(b, x.shape[1], heads, -1).transpose(1, 2) for x in qkv)
        allowed = None
        if attn_mask is not None:  # (B * heads, Q, K), True = blocked
            allowed = ~attn_mask.reshape(b, heads, attn_mask.shape[-2], attn_mask.shape[-1])
        if key_padding_mask is not None:  # (B, K), True = padding
            keep = ~key_padding_mask[:, None, None, :]
            allowed = keep if allowed is None else allowed & keep
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return m.out_proj(out.transpose(1, 2).reshape(b, query.shape[1], -1)), None


class _ExportShiftWindowMSA(ShiftWindowMSA):
    """mmdet's ``ShiftWindowMSA`` for the export, with the same results: its ``window_reverse``
    leaves the batch to the reshape (mmdet's computes it as a Python int, which the exporter bakes
    in: a graph exported with 2 images then mixes the channels of 1), and the padding to whole
    windows and the crop after them are always in the graph (mmdet crops only when its Python
    test finds padding, so a graph exported at a size without padding never crops). mmdet's
    forward on the padded map is its forward on the map (the padding is zeros either way; the
    shift mask depends on the padded size only), then the crop."""

    def forward(self, query, hw_shape):
        b, _, c = query.shape
        h, w = hw_shape
        ws = self.window_size
        x = nn.functional.pad(query.view(b, h, w, c), (0, 0, 0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws))
        h_pad, w_pad = x.shape[1], x.shape[2]
        x = super().forward(x.reshape(b, h_pad * w_pad, c), (h_pad, w_pad))
        return x.view(b, h_pad, w_pad, c)[:, :h, :w].reshape(b, h * w, c)

    def window_reverse(self, windows, H, W):
        ws = self.window_size
        x = windows.view(-1, H // ws, W // ws, ws, ws, windows.shape[-1])
        return x.permute(0, 1, 3, 2, 4, 5).reshape(x.shape[0], H, W, windows.shape[-1])


def _for_export(model: nn.Module) -> nn.Module:
    """The original mmcv / mmdet attention forms (the fast ones are tested equal), with the two
    export-friendly forms above."""
    swap_modules(model, deform_attn='mmcv', window_attn='mmdet')
    for module in model.modules():
        if type(module) is ShiftWindowMSA:
            module.__class__ = _ExportShiftWindowMSA
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(parent, name, _SDPAMultiheadAttention(child))
    return model


def _example(inferencer: OmniRISInferencer):
    """A preprocessed batch of two targets (text + two references, and a reference only) at the
    config's test size (480 x 640 where it keeps the aspect ratio): the graphs' example inputs."""
    h, w = inferencer.input_size or (480, 640)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 1
    refs = [dict(image=img, mask=mask), dict(image=img[::-1].copy(), box=(w / 8, h / 8, w / 2, h / 2))]
    with_text = inferencer.model.text_encoder is not None
    items = [
        dict(image=img, text='the thing on the left' if with_text else None, visual_prompts=refs),
        dict(image=img[:, ::-1].copy(), visual_prompts=refs[:1]),
    ]
    samples = [inferencer.pack(item, i) for i, item in enumerate(items)]
    from mmengine.dataset import pseudo_collate

    return inferencer.model.data_preprocessor(pseudo_collate(samples), False)


def export_onnx(
    config: Union[str, Config], checkpoint: Optional[str], out_dir: str, opset: int = 17, verbose: bool = False
) -> Dict[str, float]:
    """Write the graphs of ``config`` with ``checkpoint`` (see the module docstring) and
    ``omniris_onnx.json`` to ``out_dir``; the export time of each graph in seconds."""
    inferencer = OmniRISInferencer(config, checkpoint, device='cpu')
    return export_model(inferencer.model, _example(inferencer), out_dir, inferencer.input_size, opset, verbose)


def export_model(model, data: dict, out_dir: str, input_size=None, opset: int = 17, verbose: bool = False):
    """:func:`export_onnx` for a built model and a preprocessed example batch ``data`` (two samples
    or more, with references; the graphs take other image sizes too; ``input_size``, the config's test
    size, is recorded). The model is copied: the
    attention modules of the copy take their original mmcv/mmdet forms (equal to the fast forms,
    tested) and the export-friendly forms above."""
    model = _for_export(copy.deepcopy(model).eval())
    os.makedirs(out_dir, exist_ok=True)
    samples = data['data_samples']
    ref_inputs = torch.cat([s.ref_inputs for s in samples])
    ref_maps = torch.cat([s.ref_prompt_maps for s in samples])
    with torch.no_grad():
        feed, _ = _target_inputs(model, data, model.encode_text, model.encode_references)
    target = TargetGraph(model)
    ref_image = {0: 'num_refs', 2: 'ref_height', 3: 'ref_width'}
    image, stride4 = {0: 'rows', 2: 'height', 3: 'width'}, {0: 'rows', 2: 'height_4', 3: 'width_4'}
    jobs = [
        ('reference_encoder', ReferenceGraph(model), (ref_inputs, ref_maps), ['ref_inputs', 'ref_prompt_maps'],
         ['tokens'], {'ref_inputs': ref_image, 'ref_prompt_maps': ref_image, 'tokens': {0: 'num_refs'}}),
        ('target', target, tuple(feed.values()), list(feed), list(target.outputs),
         dict({k: {0: 'rows', 1: 'length'} for k in ('prompt_tokens', 'prompt_types', 'prompt_mask')},
              inputs=image, target_maps=image, target_mask=stride4, mask_features=stride4,
              **{k: {0: 'rows'} for k in target.outputs if k not in ('target_mask', 'mask_features')})),
    ]  # fmt: skip
    if model.text_encoder is not None:
        ids, attention = model.text_encoder.tokenize(['a red circle on the left', 'all of them'])
        jobs.append(('text_encoder', TextGraph(model), (ids, attention), ['input_ids', 'attention_mask'], ['tokens'],
                     {k: {0: 'texts', 1: 'length'} for k in ('input_ids', 'attention_mask', 'tokens')}))  # fmt: skip
    seconds = {}
    for name, module, args, in_names, out_names, dynamic in jobs:
        start = time.perf_counter()
        # TorchScript-based export: torch.export cannot trace mmdet's pixel decoder (its level sizes
        # are tensors that its reshapes read) nor mmcv's deformable attention (a data-dependent assert).
        with torch.no_grad():
            torch.onnx.export(module, args, osp.join(out_dir, f'{name}.onnx'), dynamo=False, input_names=in_names,
                              output_names=out_names, dynamic_axes=dynamic, opset_version=opset,
                              verbose=verbose)  # fmt: skip
        seconds[name] = time.perf_counter() - start
    meta = dict(
        input_size=list(input_size) if input_size else None,
        example_shape=list(feed['inputs'].shape[-2:]),
        size_divisor=max(model.head.pixel_decoder.strides),
        prompt_types=list(PROMPT_TYPES),
        target_outputs=list(target.outputs),
        graphs=[job[0] for job in jobs],
        opset=opset,
    )
    with open(osp.join(out_dir, META_FILE), 'w') as f:
        json.dump(meta, f, indent=1)
    return seconds


def _target_inputs(model, data: dict, encode_text, encode_references):
    """The target graph's inputs for a preprocessed batch (a dict named as the graph's inputs) and the
    sample of each prompt row."""
    samples = data['data_samples']
    (tokens, types, mask), owners = _rows(model, samples, encode_text, encode_references)
    inputs = data['inputs'][owners]
    maps = model.target_prompt_maps(data['inputs'], samples, owners)
    if maps is None:
        maps = inputs.new_zeros((len(owners), 2) + inputs.shape[-2:])
    return dict(inputs=inputs, prompt_tokens=tokens, prompt_types=types, prompt_mask=mask, target_maps=maps), owners


def _rows(model, samples, encode_text, encode_references):
    """The prompt rows of ``samples``: ((tokens, type ids, valid), owners), before the type
    embeddings; type -1 marks a row's padding."""
    seqs = model.prompt_sequences(samples, encode_text=encode_text, encode_references=encode_references)
    prompts = [[(t, v, torch.full((len(t),), PROMPT_TYPES.index(k) + 1)) for t, v, k in seq] for seq in seqs]
    tokens, mask, types, owners = model._prompt_rows(prompts)  # padded with type 0, i.e. -1 below
    return (tokens, types - 1, mask), owners


class ONNXRuntimeModel:
    """The graphs in ONNX Runtime sessions, with ``model`` (built from the same config, weights
    unused) for the pre- and post-processing: :meth:`predict` answers a preprocessed batch as
    ``model.predict`` does.

    Args:
        model (OmniSegNet): The model built from the config the graphs were exported from.
        onnx_dir (str): The folder of the graphs.
        providers (list[str]): ONNX Runtime execution providers. Defaults to the CPU's.
        num_threads (int, optional): ONNX Runtime's intra-op threads (its default: all cores).
    """

    def __init__(self, model, onnx_dir: str, providers=('CPUExecutionProvider',), num_threads: Optional[int] = None):
        import onnxruntime as ort

        self.model = model
        meta_path = osp.join(onnx_dir, META_FILE)
        if not osp.isfile(meta_path):
            raise FileNotFoundError(
                f'{onnx_dir}: no {META_FILE}; write the graphs with tools/deployment/export_onnx.py'
            )
        with open(meta_path) as f:
            self.meta = json.load(f)
        if 'size_divisor' not in self.meta:
            raise ValueError(f'{onnx_dir}: graphs of an earlier export, for {self.meta.get("input_shape")} images '
                             'only: export again (the graphs now take any image size)')  # fmt: skip
        if self.meta['prompt_types'] != list(PROMPT_TYPES):
            raise ValueError(f'{onnx_dir}: exported with the prompt types {self.meta["prompt_types"]}, '
                             f'this code has {list(PROMPT_TYPES)}: export again')  # fmt: skip
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.sessions = {
            name: ort.InferenceSession(osp.join(onnx_dir, f'{name}.onnx'), options, providers=list(providers))
            for name in self.meta['graphs']
        }

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    def encode_text(self, texts: List[str]):
        if 'text_encoder' not in self.sessions:
            raise ValueError('these graphs have no text encoder (the model has none)')
        ids, attention = self.model.text_encoder.tokenize(texts)
        feed = dict(input_ids=self._np(ids), attention_mask=self._np(attention))
        return torch.from_numpy(self.sessions['text_encoder'].run(None, feed)[0]), attention.bool()

    def encode_references(self, ref_inputs: torch.Tensor, prompt_maps: torch.Tensor) -> torch.Tensor:
        feed = dict(ref_inputs=self._np(ref_inputs.float()), ref_prompt_maps=self._np(prompt_maps.float()))
        return torch.from_numpy(self.sessions['reference_encoder'].run(None, feed)[0])

    def outputs(self, data: dict):
        """The target graph's outputs (dict) for a preprocessed batch, with the prompt rows' owners."""
        return self._run(data)[:2]

    def _run(self, data: dict):
        """:meth:`outputs`, and the graph's ``target_maps`` input (the head's prompt agreement reads it)."""
        divisor, size = self.meta['size_divisor'], list(data['inputs'].shape[-2:])
        if size[0] % divisor or size[1] % divisor:
            raise ValueError(f'the graphs take images whose sides are multiples of {divisor} (the data preprocessor '
                             f"pads them so with pad_size_divisor={divisor}), got {size}")  # fmt: skip
        feed, owners = _target_inputs(self.model, data, self.encode_text, self.encode_references)
        outs = self.sessions['target'].run(None, {k: self._np(v) for k, v in feed.items()})
        return {k: torch.from_numpy(v) for k, v in zip(self.meta['target_outputs'], outs)}, owners, feed['target_maps']

    def predict(self, data: dict) -> list:
        outputs, owners, maps = self._run(data)
        samples = data['data_samples']
        metas = [samples[o].metainfo for o in owners]
        return self.model.collect(
            self.model.head.postprocess(outputs, metas, rescale=True, target_maps=maps), owners, samples
        )


class ONNXRuntimeInferencer(OmniRISInferencer):
    """:class:`OmniRISInferencer` with the model's weights in ONNX Runtime sessions
    (:class:`ONNXRuntimeModel`): the same call, inputs and answers, the same reference cache.

    Args:
        model (str | Config): The config the graphs were exported from.
        onnx_dir (str): The folder :func:`export_onnx` wrote.
        providers, num_threads: See :class:`ONNXRuntimeModel`.
    """

    def __init__(self, model, onnx_dir: str, providers=('CPUExecutionProvider',), num_threads: Optional[int] = None,
                 cache_references: bool = True):  # fmt: skip
        super().__init__(model, None, device='cpu', cache_references=cache_references, init_weights=False)
        self.runtime = ONNXRuntimeModel(self.model, onnx_dir, providers, num_threads)

    def _encode_reference(self, ref_input: torch.Tensor, prompt_map: torch.Tensor) -> torch.Tensor:
        return self.runtime.encode_references(ref_input, prompt_map)[0]

    def _answer(self, data: dict) -> list:
        return self.runtime.predict(data)


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def output_change(base: Dict[str, torch.Tensor], other: Dict[str, torch.Tensor]) -> dict:
    """How far ``other``'s head outputs are from ``base``'s (another runtime's, or another attention
    form's): ``rel``, the relative L2 of each non-empty output both have; its largest, ``max_rel_l2``, and
    which output, ``worst``; ``mask_agreement``, the share of union-mask pixels whose argmax (target or
    not) agrees, over ``mask_pixels`` pixels."""
    rel = {k: _rel_l2(other[k], v) for k, v in base.items() if v.numel() and k in other}
    same = other['target_mask'].argmax(1) == base['target_mask'].argmax(1)
    return dict(rel=rel, max_rel_l2=max(rel.values()), worst=max(rel, key=rel.get),
                mask_agreement=float(same.float().mean()), mask_pixels=same.numel())  # fmt: skip


def compare_with_pytorch(
    torch_inferencer: OmniRISInferencer, onnx_inferencer: ONNXRuntimeInferencer, requests: List[dict], repeats: int = 3
) -> Dict[str, float]:
    """ONNX Runtime against PyTorch on the same ``requests`` (inferencer calls: ``image`` and the
    prompts): the largest relative L2 difference of each graph output (and of the text and
    reference tokens), the share of stride-4 pixels whose union-mask argmax agrees, of answer
    pixels (union masks) that agree, and the median seconds of a call (references encoded in the
    call) with the ratio ONNX Runtime / PyTorch."""
    from mmengine.dataset import pseudo_collate

    figures: Dict[str, float] = {}

    def worst(key, value):
        figures[key] = max(figures.get(key, 0.0), value)

    agree = total = answer_agree = answer_total = 0
    model, runtime = torch_inferencer.model, onnx_inferencer.runtime
    for i, request in enumerate(requests):
        item = dict(request)
        packed = torch_inferencer.pack(item, i)
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate([packed]), False)
            feed, _ = _target_inputs(model, data, model.encode_text, model.encode_references)
            graph = TargetGraph(model)
            want = dict(zip(graph.outputs, graph(**feed)))
            got, _ = runtime.outputs(data)
            sample = data['data_samples'][0]
            if len(sample.ref_inputs):
                refs = (sample.ref_inputs, sample.ref_prompt_maps)
                worst('reference_tokens', _rel_l2(runtime.encode_references(*refs), model.encode_references(*refs)))
            if item.get('text'):
                worst(
                    'text_tokens', _rel_l2(runtime.encode_text([item['text']])[0], model.encode_text([item['text']])[0])
                )
        change = output_change(want, got)
        for key, value in change['rel'].items():
            worst(key, value)
        agree += change['mask_agreement'] * change['mask_pixels']
        total += change['mask_pixels']
        a, b = onnx_inferencer(item)['predictions'][0], torch_inferencer(item)['predictions'][0]
        answer_agree += int((a['union_mask'] == b['union_mask']).sum())
        answer_total += a['union_mask'].size
    figures['argmax_agreement'] = agree / total
    figures['answer_agreement'] = answer_agree / answer_total
    for name, inferencer in (('pytorch', torch_inferencer), ('onnxruntime', onnx_inferencer)):
        times = []
        for _ in range(repeats):
            for request in requests:
                inferencer.clear_cache()
                start = time.perf_counter()
                inferencer(request)
                times.append(time.perf_counter() - start)
        figures[f'{name}_s'] = float(np.median(times))
    figures['ratio'] = figures['onnxruntime_s'] / figures['pytorch_s']
    return figures


def example_requests(inferencer: OmniRISInferencer, image: np.ndarray, reference: np.ndarray) -> List[dict]:
    """Requests of every kind the model takes (text, reference box, both with two references,
    clicks on the target, a negative exemplar), for :func:`compare_with_pytorch`."""
    h, w = reference.shape[:2]
    box = dict(image=reference, box=(w / 4, h / 4, w * 3 / 4, h * 3 / 4))
    mask = np.zeros((h, w), np.uint8)
    mask[h // 3 : h * 2 // 3, w // 5 : w // 2] = 1
    with_text = inferencer.model.text_encoder is not None
    requests = [dict(image=image, visual_prompts=[box])]
    if with_text:
        both = dict(image=image, text='the circle', visual_prompts=[box, dict(image=reference, mask=mask)])
        requests += [dict(image=image, text='all red shapes'), both]
    if inferencer.model.target_map_embed is not None:
        th, tw = image.shape[:2]
        requests.append(dict(image=image, points=[(tw // 2, th // 2, 1), (tw // 5, th // 5, 0)]))
    if inferencer.model.prompt_type_embed is not None:
        requests.append(dict(image=image, visual_prompts=[box, dict(image=reference, mask=mask, negative=True)]))
    return requests
