from mmdet.registry import DATASETS, METRICS, MODELS, TRANSFORMS

import omniris_mm  # noqa: F401

NAMES = {
    DATASETS: ['OmniRefDataset', 'GRefCocoDataset', 'RefCocoOmniDataset', 'CocoVisualPromptDataset'],
    TRANSFORMS: [
        'LoadOmniAnnotations',
        'LoadVisualPrompts',
        'SynthesizePromptMaps',
        'OmniResize',
        'OmniRandomFlip',
        'PackOmniInputs',
    ],
    METRICS: ['OmniRISMetric', 'FewShotSegMetric'],
    MODELS: [
        'OmniSegNet',
        'OmniDataPreprocessor',
        'PromptFusedSwin',
        'HFTextEncoder',
        'OmniPromptEncoder',
        'AdaptiveMaskHead',
        'ReferringCriterion',
        'InstanceCriterion',
    ],
}


def test_import_registers_every_module_into_mmdet():
    for registry, names in NAMES.items():
        for name in names:
            assert registry.get(name) is not None, f'{name} not in mmdet {registry.name}'
            assert registry.get(name).__module__.startswith('omniris_mm.')
