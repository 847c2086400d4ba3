"""The package's import graph: layers that only point down, no cycle, no lazy import of our own
code."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'repvgg_mm'
# The layers of README "Architecture": a module may import from its own package, from a package
# of a lower layer, or (in layer 0, the core: registry, version, arch_settings, utils) from the
# core.
LAYERS = {'registry': 0, 'version': 0, 'arch_settings': 0, 'utils': 0, '__init__': 0,
          'checkpoint': 1, 'models': 2, 'datasets': 2, 'evaluation': 2, 'engine': 3,
          'conversion': 3, 'deploy': 3, 'visualization': 3, 'apis': 4, 'testing': 4,
          'benchmark': 5}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: Path):
    """``(imported repvgg_mm module, line, inside a function)`` of one file (relative imports
    resolved)."""
    package = (module_name(path) if path.name == '__init__.py'
               else module_name(path).rsplit('.', 1)[0])
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(s) for f in functions for s in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            names = [name]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name == 'repvgg_mm' or name.startswith('repvgg_mm.'):
                yield name, node.lineno, id(node) in nested


def package_of(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


GRAPH = {module_name(p): list(imports_of(p)) for p in PACKAGE.rglob('*.py')}


def test_every_package_has_a_layer():
    assert {package_of(m) for m in GRAPH} <= set(LAYERS)


@pytest.mark.parametrize('module', sorted(GRAPH))
def test_imports_point_down_and_are_not_lazy(module):
    for imported, line, lazy in GRAPH[module]:
        assert not lazy, f'{module}:{line} imports {imported} inside a function'
        source, target = package_of(module), package_of(imported)
        if source == target:
            continue
        assert LAYERS[target] < LAYERS[source] or LAYERS[target] == LAYERS[source] == 0, (
            f'{module}:{line} imports {imported}: layer {LAYERS[target]} ({target}) from layer '
            f'{LAYERS[source]} ({source})')


def test_no_import_cycle():
    def targets(module):
        for imported, _, _ in GRAPH[module]:
            while imported and imported not in GRAPH:  # `from a.b import name` of a module a.b
                imported = imported.rpartition('.')[0]
            if imported and imported != module:
                yield imported

    state = {}

    def visit(module, stack):
        state[module] = 'active'
        for target in targets(module):
            if state.get(target) == 'active':
                raise AssertionError('import cycle: ' + ' -> '.join(stack + [module, target]))
            if target not in state:
                visit(target, stack + [module])
        state[module] = 'done'

    for module in GRAPH:
        if module not in state:
            visit(module, [])


def test_models_import_no_reader_converter_or_deploy():
    code = ('import sys, repvgg_mm.models; print("\\n".join(m for m in sys.modules '
            'if m.startswith("repvgg_mm")))')
    loaded = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert 'repvgg_mm.models.backbones.repvgg' in loaded
    assert not [m for m in loaded if m.split('.')[1:2] in (['checkpoint'], ['conversion'],
                                                           ['deploy'], ['engine'], ['apis'])]
