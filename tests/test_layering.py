"""The package's rooms import downwards only: every module's imports read from its source."""

import ast
import os
import os.path as osp

from conftest import REPO

PACKAGE = osp.join(REPO, 'omniris_mm')
BOTTOM = {'structures', 'utils', 'version'}
# What each room may import of the package besides itself.
ALLOWED = {
    'structures': set(),
    'utils': set(),
    'version': set(),
    'compat': BOTTOM,
    'datasets': BOTTOM,
    'models': BOTTOM,
    'evaluation': BOTTOM,
    'visualization': BOTTOM,
    'engine': BOTTOM | {'compat', 'datasets', 'models', 'evaluation', 'visualization'},
    'apis': BOTTOM | {'compat', 'datasets', 'models', 'evaluation', 'visualization', 'engine'},
    'deploy': BOTTOM | {'compat', 'datasets', 'models', 'evaluation', 'visualization', 'engine', 'apis'},
    '__init__': None,  # the package's entry point registers everything
}
OUTSIDE = ('tools', 'demo', 'projects', 'tests', 'conftest')


def modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(root, name)
                rel = osp.relpath(path, PACKAGE)
                yield rel, path


def room_of(rel: str) -> str:
    first = rel.split(os.sep)[0]
    return osp.splitext(first)[0]


def imported_rooms(rel: str, path: str):
    """(room, line) of every package import of the module, and the outside names it imports."""
    tree = ast.parse(open(path).read(), path)
    package_parts = ['omniris_mm'] + rel.split(os.sep)[:-1]
    rooms, outside = [], []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f'{target}.{a.name}' for a in node.names]
            else:
                names = [node.module]
        for name in names:
            parts = name.split('.')
            if parts[0] == 'omniris_mm' and len(parts) > 1:
                rooms.append((parts[1], node.lineno))
            elif parts[0] in OUTSIDE:
                outside.append((name, node.lineno))
    return rooms, outside


def test_every_module_imports_only_the_rooms_below_it():
    bad = []
    for rel, path in modules():
        room = room_of(rel)
        assert room in ALLOWED, f'{rel}: room {room!r} has no place in the layering (add it to ALLOWED)'
        rooms, outside = imported_rooms(rel, path)
        bad += [f'{rel}:{line} imports {name}' for name, line in outside]
        if ALLOWED[room] is None:
            continue
        bad += [f'{rel}:{line} ({room}) imports {other}' for other, line in rooms
                if other != room and other not in ALLOWED[room]]  # fmt: skip
    assert not bad, '\n'.join(bad)


def test_the_rooms_form_no_cycle():
    edges = {}
    for rel, path in modules():
        room = room_of(rel)
        if room == '__init__':
            continue
        for other, _ in imported_rooms(rel, path)[0]:
            if other != room:
                edges.setdefault(room, set()).add(other)

    def visit(node, stack):
        if node in stack:
            raise AssertionError(f'import cycle: {" -> ".join(stack[stack.index(node) :] + [node])}')
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, stack + [node])

    for room in sorted(edges):
        visit(room, [])


def test_the_checker_sees_a_violation(tmp_path):
    """The reader finds relative and absolute imports (a broken rule would not pass unseen)."""
    path = tmp_path / 'bad.py'
    path.write_text('from ...datasets.utils import X\nimport omniris_mm.engine\nfrom tools import runner_args\n')
    rooms, outside = imported_rooms(osp.join('models', 'heads', 'bad.py'), str(path))
    assert rooms == [('datasets', 1), ('engine', 2)] and outside == [('tools', 3)]
