"""Every name the README's registry table lists is registered by importing omniris_mm, in the
registry the table names (mmdet's, or mmengine's root FUNCTIONS)."""

import os.path as osp
import re

import mmdet.registry as mmdet_registry
import mmengine.registry as mmengine_registry
from conftest import REPO

import omniris_mm  # noqa: F401


def readme_table():
    with open(osp.join(REPO, 'README.md')) as f:
        text = f.read()
    table = text[text.index('| registry | names |') :].split('\n\n')[0]
    rows = {}
    for line in table.splitlines()[2:]:
        registry, names = re.match(r'\| `(\w+)` \| (.*) \|$', line).groups()
        rows[registry] = re.findall(r'`(\w+)`', re.sub(r'\([^)]*\)', '', names))  # not the notes
    return rows


def test_every_name_in_the_readme_table_is_registered():
    rows = readme_table()
    assert {'DATASETS', 'TRANSFORMS', 'MODELS', 'METRICS', 'LOOPS', 'FUNCTIONS'} <= set(rows)
    assert sum(len(v) for v in rows.values()) == 33  # the table's names, all parsed
    for registry_name, names in rows.items():
        registry = getattr(mmdet_registry, registry_name, None) or getattr(mmengine_registry, registry_name)
        for name in names:
            module = registry.get(name)
            assert module is not None, f'{name} is not in {registry_name}'
            assert module.__module__.startswith('omniris_mm.'), f'{registry_name}.{name} is not ours'
