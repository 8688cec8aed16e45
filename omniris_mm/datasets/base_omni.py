"""The sample layout shared by every OmniRIS dataset, and the logic that builds it."""

from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from .reference_db import ReferenceDatabase
from .utils import (
    SKIPPED_KEY,
    VISUAL_PROMPT_TYPES,
    CocoIndex,
    OmniDataError,
    coco_file_name,
    join_img_path,
    require,
    setting_of,
    target_ann_ids,
    xywh_to_xyxy,
)


class OmniDatasetMixin:
    """Builds OmniRIS samples; mixed into :class:`mmengine.dataset.BaseDataset` or
    a subclass of it (e.g. mmdet's ``RefCocoDataset``).

    Every sample (``get_data_info``) holds:

    - ``img_path``, ``img_id``, ``height``, ``width``: the target image.
    - ``instances``: the referred instances in mmdet's layout (``mask``, ``bbox``
      xyxy, ``bbox_label`` 0, ``ignore_flag`` 0) plus ``ann_id`` and ``category_id``;
      empty for a no-target sample. Their union is the ground truth. With
      ``crowd='ignore'``, crowd annotations (``iscrowd=1``) of a referred category in
      the target image follow as ``ignore_flag`` 1, ``crowd`` True: the union marks
      them void (255) and they are never matching targets.
    - ``gt_no_target``: True when nothing is referred.
    - ``text``: the expression, or None.
    - ``visual_prompts``: one dict per visual prompt: the reference image
      (``img_path``, ``img_id``, ``height``, ``width``), the reference instance
      (``mask``, ``bbox``, ``ann_id``, ``category_id``) and ``prompt_type``
      (``'mask'``, ``'box'``, ``'scribble'`` or None to let the pipeline draw one);
      ``negative`` True for a negative exemplar ("not like this").
    - ``prompt_modality`` (text / visual / omni), ``setting`` (1v1, 1vN, Nv1,
      NvN, no-target), ``record_id`` (file, split and record, for messages) and
      ``prompt_seed`` (seeds the prompt synthesis: fixed per sample in test mode).

    References are drawn when a sample is fetched: at random while training, and
    from a generator seeded by ``(pairing_seed, index)`` in test mode, so test
    pairing is the same on every run and for any number of workers.

    Args:
        on_invalid (str): ``'error'`` (default) raises :class:`OmniDataError` on an
            invalid record or a sample that fails to load; ``'skip'`` logs it,
            counts it in ``skipped`` and goes on. While training, mmengine then
            draws another sample. In test mode the sample keeps its place and is
            fetched as ``{SKIPPED_KEY: message}``: ``omni_collate`` (the test
            dataloaders' ``collate_fn``) passes the message on in the batch and the
            metrics print and store how many samples were not scored, so a
            partial score is never read as a full one.
        pairing_seed (int): Seed of the deterministic test-mode pairing.
        prompt_type (str, optional): Fix the visual prompt type of every sample
            (e.g. one test config per type). None lets the pipeline choose.
        num_shots (int or tuple): Exemplars per visual prompt (k-shot): each visual
            prompt of a sample becomes ``k`` references of the same concept (the
            category of its first reference), distinct instances, from as many
            images as the database has, given together in the sample's prompt
            sequence. An int fixes ``k``; ``(low, high)`` draws ``k`` in that range for
            every sample while training. The first reference and the prompt seed are
            those of the 1-shot sample, so the 1- and k-shot samples of a test set are
            the same episodes. In test mode a prompt with fewer than ``k`` references
            available is an invalid sample; while training it gets what there is.
        drop_negatives (bool): Leave the negative exemplars out of every sample (drawn,
            then discarded, so the other prompts are those of the full sample): the
            same samples with the positive prompts alone, for comparison.
        crowd (str): ``'ignore'`` (default): a crowd annotation (``iscrowd=1``) of a
            referred category in the target image, referred or not, is a void region
            of the ground truth (255: no loss, not scored) and not an instance to
            match; a record that refers to crowd annotations only keeps them as
            targets (nothing else would be left to find), counted in
            ``crowd_only``. ``'target'``: crowd annotations are treated like any other
            annotation, as the published evaluation does (its referred crowds are
            targets; the others play no part).
    """

    METAINFO = dict(classes=('object',))
    # The values ``prompt_type`` may fix (a dataset of prompts on the target has its own).
    PROMPT_TYPE_CHOICES = VISUAL_PROMPT_TYPES

    def __init__(
        self,
        *args,
        on_invalid: str = 'error',
        pairing_seed: int = 0,
        prompt_type: Optional[str] = None,
        crowd: str = 'ignore',
        num_shots: Union[int, Sequence[int]] = 1,
        drop_negatives: bool = False,
        **kwargs,
    ):
        self.drop_negatives = drop_negatives
        self.num_shots = self._check_shots(num_shots, kwargs.get('test_mode', False))
        if on_invalid not in ('error', 'skip'):
            raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
        if crowd not in ('ignore', 'target'):
            raise ValueError(f"crowd must be 'ignore' or 'target', got {crowd!r}")
        self.crowd = crowd
        self.crowd_only: List[str] = []
        if prompt_type is not None and prompt_type not in self.PROMPT_TYPE_CHOICES:
            raise ValueError(f'prompt_type must be one of {self.PROMPT_TYPE_CHOICES} or None, got {prompt_type!r}')
        self.on_invalid = on_invalid
        self.pairing_seed = pairing_seed
        self.prompt_type = prompt_type
        self.skipped: List[str] = []
        # Reference databases by name, tried in order; a value may be a function that
        # builds the database on first use.
        self.ref_dbs: Dict[str, Union[ReferenceDatabase, Callable[[], ReferenceDatabase]]] = {}
        # Outside a Runner (a script, a notebook) no registry scope is set: build the
        # pipeline from mmdet's registries, where omniris_mm registers its transforms.
        scope = None if DefaultScope.get_current_instance() is not None else 'mmdet'
        with DefaultScope.overwrite_default_scope(scope):
            super().__init__(*args, **kwargs)

    @staticmethod
    def _check_shots(num_shots, test_mode: bool) -> tuple:
        shots = (num_shots, num_shots) if isinstance(num_shots, int) else tuple(num_shots)
        if len(shots) != 2 or not all(isinstance(k, int) for k in shots) or not 1 <= shots[0] <= shots[1]:
            raise ValueError(f'num_shots must be an int >= 1 or (low, high) with 1 <= low <= high, got {num_shots!r}')
        if test_mode and shots[0] != shots[1]:
            raise ValueError(
                f'num_shots must be one number in test mode (the same episodes every run), got {num_shots!r}'
            )
        return shots

    # -- invalid input -------------------------------------------------------------
    def _skip_or_raise(self, err: OmniDataError) -> None:
        if self.on_invalid == 'error':
            raise err
        self.skipped.append(str(err))
        print_log(f'{type(self).__name__}: skipped ({len(self.skipped)} so far): {err}', logger='current', level=30)

    @property
    def _ref_skip(self):
        """The reference databases' error handler: None (raise) unless ``on_invalid='skip'``."""
        return self._skip_or_raise if self.on_invalid == 'skip' else None

    def _parse_records(self, records: Sequence, parse, where: str) -> List[dict]:
        """Apply ``parse(record, record_where)`` to each record, skipping or raising on bad ones.
        In test mode a skipped record keeps a placeholder (see ``on_invalid``)."""
        data_list = []
        for i, record in enumerate(records):
            try:
                data_list.extend(parse(record, f'{where} record {i}'))
                continue
            except OmniDataError as err:
                error = err
            except (KeyError, TypeError, ValueError) as err:
                error = OmniDataError(f'{where} record {i}: malformed record ({err!r})')
            self._skip_or_raise(error)
            if self.test_mode:
                data_list.append(dict(record_id=f'{where} record {i}', invalid=str(error)))
        if self.skipped:
            print_log(
                f'{type(self).__name__}: {len(self.skipped)} invalid record(s) skipped in {where}',
                logger='current',
                level=30,
            )
        if self.crowd_only:
            print_log(
                f'{type(self).__name__}: {len(self.crowd_only)} sample(s) in {where} refer to crowd annotations '
                f'only; those stay targets (first: {self.crowd_only[0]})',
                logger='current',
                level=30,
            )
        if not any('invalid' not in d for d in data_list):
            raise OmniDataError(f'{where}: no valid sample')
        return data_list

    # -- building samples ----------------------------------------------------------
    def _image_of(self, record: dict, coco: CocoIndex, where: str) -> dict:
        img = coco.images.get(int(record['image_id']))
        if img is None:
            if not all(k in record for k in ('file_name', 'height', 'width')):
                raise OmniDataError(
                    f'{where}: image_id {record["image_id"]} is not in {coco.source} '
                    'and the record has no file_name/height/width'
                )
            img = dict(
                id=record['image_id'], file_name=record['file_name'], height=record['height'], width=record['width']
            )
        return img

    def _targets(self, record: dict, coco: CocoIndex, where: str) -> List[dict]:
        require(record, ('image_id', 'ann_id'), where)
        try:
            ids = target_ann_ids(record['ann_id'])
        except TypeError as err:
            raise OmniDataError(f'{where}: {err}') from None
        return [coco.target(a, record['image_id'], where) for a in ids]

    def _sentences(self, record: dict, where: str) -> List[tuple]:
        require(record, ('sentences',), where)
        sentences = []
        if not isinstance(record['sentences'], list):
            raise OmniDataError(f'{where}: sentences must be a list, got {type(record["sentences"]).__name__}')
        for i, sent in enumerate(record['sentences']):
            # A dict (``sent`` or ``raw``, maybe ``sent_id``), or a plain string as some preprocessed copies hold.
            if isinstance(sent, dict):
                text = sent.get('sent') or sent.get('raw')
            else:
                text = sent if isinstance(sent, str) else None
            if not isinstance(text, str) or not text.strip():
                raise OmniDataError(f'{where}: empty or malformed sentence {sent!r}')
            sentences.append((sent.get('sent_id', i) if isinstance(sent, dict) else i, text.strip()))
        if not sentences:
            raise OmniDataError(f'{where}: the record has no sentence')
        return sentences

    def text_samples(self, ref: dict, coco: CocoIndex, where: str) -> List[dict]:
        """One sample per sentence of a text ref (gRefCOCO / RefCOCO layout)."""
        require(ref, ('image_id', 'ann_id', 'sentences'), where)
        where = f'{where} ref_id={ref.get("ref_id")}'
        img = self._image_of(ref, coco, where)
        targets = self._targets(ref, coco, where)
        return [
            self._sample(img, targets, text, [], 'text', f'{where} sent_id={sid}', coco)
            for sid, text in self._sentences(ref, where)
        ]

    def _crowd_regions(self, targets: List[dict], coco: Optional[CocoIndex], img_id: int, where: str):
        """``targets`` without crowd annotations, and the crowd annotations of the
        targets' categories in the image (see ``crowd``)."""
        if self.crowd == 'target' or not targets:
            return targets, []
        kept = [a for a in targets if not a.get('iscrowd', 0)]
        if not kept:
            self.crowd_only.append(where)
            return targets, []
        categories = {int(a['category_id']) for a in targets}
        crowds = {int(a['id']): a for a in targets if a.get('iscrowd', 0)}
        for ann in coco.anns_by_image.get(img_id, []) if coco is not None else []:
            if ann.get('iscrowd', 0) and int(ann['category_id']) in categories and int(ann['id']) not in crowds:
                crowds[int(ann['id'])] = coco.target(ann['id'], img_id, where)
        return kept, [crowds[k] for k in sorted(crowds)]

    def _sample(
        self,
        img: dict,
        targets: List[dict],
        text: Optional[str],
        queries: List[dict],
        modality: str,
        where: str,
        coco: Optional[CocoIndex] = None,
    ) -> dict:
        """One sample in the shared layout (see the class docstring); ``coco``: the
        instance index of the target image (for its crowd annotations)."""
        img_prefix = self.data_prefix.get('img_path', '')
        img_id = int(img['id'])
        targets, crowds = self._crowd_regions(targets, coco, img_id, where)
        num_prompts = int(text is not None) + len(queries)
        return dict(
            img_path=join_img_path(img_prefix, img.get('file_name') or coco_file_name(img_id)),
            img_id=img_id,
            height=int(img['height']),
            width=int(img['width']),
            instances=[
                dict(
                    mask=ann['segmentation'],
                    bbox=xywh_to_xyxy(ann['bbox']),
                    bbox_label=0,
                    ignore_flag=0,
                    ann_id=int(ann['id']),
                    category_id=int(ann['category_id']),
                )
                for ann in targets
            ]
            + [
                dict(
                    mask=ann['segmentation'],
                    bbox=xywh_to_xyxy(ann['bbox']),
                    bbox_label=0,
                    ignore_flag=1,
                    crowd=True,
                    ann_id=int(ann['id']),
                    category_id=int(ann['category_id']),
                )
                for ann in crowds
            ],
            gt_no_target=not targets,
            text=text,
            visual_queries=queries,
            prompt_modality=modality,
            setting=setting_of(num_prompts, len(targets)),
            record_id=where,
        )

    def ref_db(self, name: str) -> ReferenceDatabase:
        db = self.ref_dbs[name]
        if not isinstance(db, ReferenceDatabase):
            db = self.ref_dbs[name] = db()
        return db

    def _query(
        self,
        category_ids,
        where: str,
        exclude_image_id=None,
        image_id=None,
        sources: Optional[Sequence[str]] = None,
        negative: bool = False,
    ) -> dict:
        """A visual prompt to be paired at fetch time, from the first reference database
        in ``sources`` (default: all, in order) that can serve it. Fails now if none can.
        ``negative``: a negative exemplar (the answer leaves out objects of its kind)."""
        query = dict(
            category_ids=[int(c) for c in category_ids],
            exclude_image_id=exclude_image_id,
            image_id=image_id,
            prompt_type=self.prompt_type,
        )
        if negative:
            query['negative'] = True
        sources = list(sources or self.ref_dbs)
        for name in sources:
            if self.ref_db(name).has_reference(query):
                return dict(query, source=name)
        place = f'in image {image_id}' if image_id is not None else f'in any image other than {exclude_image_id}'
        searched = ', '.join(self.ref_db(n).source for n in sources) or 'no reference database'
        raise OmniDataError(
            f'{where}: no reference instance of category {query["category_ids"]} {place} (searched {searched})'
        )

    def _union_ids(self, *target_lists: List[dict]) -> List[dict]:
        seen, union = set(), []
        for targets in target_lists:
            for ann in targets:
                if ann['id'] not in seen:
                    seen.add(ann['id'])
                    union.append(ann)
        return union

    # -- fetching ------------------------------------------------------------------
    def _sample_rng(self, idx: int) -> np.random.Generator:
        if self.test_mode:
            return np.random.default_rng([self.pairing_seed, idx])
        # Training: follow the global numpy state that mmengine seeds per rank and worker.
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if 'invalid' in info:  # a skipped record's placeholder (test mode)
            return info
        rng = self._sample_rng(info['sample_idx'])
        drawn = []
        for query in info.pop('visual_queries', []):
            db = self.ref_db(query['source'])
            idx = db.draw_index(query, rng)
            if idx is None:
                raise OmniDataError(f'{info["record_id"]}: no reference for {query}')
            drawn.append((db, idx, query))
        info['prompt_seed'] = int(rng.integers(0, 2**31 - 1))
        # The further shots are drawn after everything the 1-shot sample draws.
        low, high = self.num_shots
        k = low if low == high else int(rng.integers(low, high + 1))
        prompts = []
        for db, idx, query in drawn:
            if query.get('negative') and self.drop_negatives:
                continue
            refs = [db[idx]]
            if k > 1:
                refs += db.draw_more(idx, query, rng, k - 1)
                if len(refs) < k and self.test_mode:
                    raise OmniDataError(
                        f'{info["record_id"]}: {k}-shot needs {k} references of category '
                        f'{refs[0]["category_id"]}, {db.source or "the reference database"} has {len(refs)}'
                    )
            for shot, ref in enumerate(refs):
                ref.update(prompt_type=query.get('prompt_type'), shot=shot)
                if query.get('negative'):
                    ref['negative'] = True
            prompts += refs
        info['visual_prompts'] = prompts
        return info

    def prepare_data(self, idx: int):
        info = None
        try:
            info = self.get_data_info(idx)
            if 'invalid' in info:  # a record skipped at load time (test mode)
                raise OmniDataError(info['invalid'])
            return self.pipeline(info)
        except (OmniDataError, OSError, AssertionError) as err:
            # mmcv's LoadImageFromFile asserts on bytes that do not decode (a corrupt file);
            # any other assertion is a bug, not bad data, and is not caught.
            if isinstance(err, AssertionError) and 'failed to load image' not in str(err):
                raise
            if not isinstance(err, OmniDataError):
                err = OmniDataError(f'{info["record_id"] if info else f"sample {idx}"}: {err}')
            if self.on_invalid == 'error':
                raise err from None
            if self.test_mode:
                if 'invalid' not in info:  # placeholders were counted at load time
                    self._skip_or_raise(err)
                return {SKIPPED_KEY: str(err)}
            self._skip_or_raise(err)
            return None


class BaseOmniDataset(OmniDatasetMixin, BaseDataset):
    """Base of the OmniRIS datasets that read their own files."""
