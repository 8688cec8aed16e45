from typing import Iterator, List, Sized, Union

import numpy as np
from mmdet.datasets.samplers import MultiSourceSampler
from mmdet.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class RatioMultiSourceSampler(MultiSourceSampler):
    """mmdet's ``MultiSourceSampler`` (infinite, per-rank index streams of a
    ``ConcatDataset``) with the ratio kept across batches rather than inside each.

    mmdet's sampler puts ``int(batch_size * ratio)`` samples of each source in every
    batch, so a ratio the batch size cannot express is distorted for the whole run
    (text:visual 7:2 with 8 images per GPU becomes 7:1, 87.5 % text instead of
    77.8 %). Here every batch draws its per-source counts from the running credit
    ``batch_index * batch_size * ratio`` (largest remainders first), so after any
    number of batches each source is within one sample of its exact share.

    Args:
        dataset (Sized): A ``ConcatDataset``.
        batch_size (int): Images per batch (per GPU); the same as the dataloader's.
        source_ratio (list[int | float]): Sampling weight of each source.
        shuffle (bool): Shuffle each source's indices. Defaults to True.
        seed (int, optional): Shared random seed (synchronised across ranks when None).
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        source_ratio: List[Union[int, float]],
        shuffle: bool = True,
        seed=None,
    ) -> None:
        if any(r < 0 for r in source_ratio) or sum(source_ratio) <= 0:
            raise ValueError(f'source_ratio must be non-negative with a positive sum, got {source_ratio}')
        super().__init__(dataset, batch_size, list(source_ratio), shuffle=shuffle, seed=seed)
        empty = [i for i, ds in enumerate(dataset.datasets) if len(ds) == 0 and source_ratio[i] > 0]
        if empty:
            raise ValueError(f'sources {empty} are empty but have a positive source_ratio')
        self.share = np.asarray(source_ratio, dtype=np.float64) / float(sum(source_ratio))

    def batch_counts(self) -> Iterator[np.ndarray]:
        """Per-source counts of each successive batch."""
        credit = np.zeros_like(self.share)
        while True:
            credit += self.batch_size * self.share
            counts = np.floor(credit).astype(np.int64)
            short = self.batch_size - int(counts.sum())
            if short:
                counts[np.argsort(counts - credit, kind='stable')[:short]] += 1
            credit -= counts
            yield counts

    def __iter__(self) -> Iterator[int]:
        for counts in self.batch_counts():
            for source, num in enumerate(counts):
                offset = self.cumulative_sizes[source]
                for _ in range(num):
                    yield offset + next(self.source2inds[source])
