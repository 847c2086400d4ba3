"""Registries of repvgg_mm: children of mmengine's root registries under the scope ``repvgg_mm``.

Configs of other codebases (mmseg, mmdet) reach our modules with
``custom_imports=dict(imports=['repvgg_mm.models'])`` and ``type='repvgg_mm.RepVGG'``. Each
registry names the package whose modules register into it (its location); mmengine imports that
package the first time the registry is searched, and :func:`register_all_modules` imports them all.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'repvgg_mm'


def _child(name, parent, *locations):
    return Registry(name, parent=parent, scope=SCOPE,
                    locations=[f'{SCOPE}.{location}' for location in locations])


# deploy: the ONNX Runtime wrapper (repvgg_mm.ONNXRuntimeModel) that tools/test.py builds
MODELS = _child('model', MMENGINE_MODELS, 'models', 'deploy')
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, 'models')
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, 'checkpoint')
DATASETS = _child('dataset', MMENGINE_DATASETS, 'datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'datasets')
METRICS = _child('metric', MMENGINE_METRICS, 'evaluation')
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, 'evaluation')
HOOKS = _child('hook', MMENGINE_HOOKS, 'engine')
LOOPS = _child('loop', MMENGINE_LOOPS, 'engine')
RUNNERS = _child('runner', MMENGINE_RUNNERS, 'engine')
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, 'engine')
OPTIM_WRAPPERS = _child('optim wrapper', MMENGINE_OPTIM_WRAPPERS, 'engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, 'engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, 'engine')
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, 'visualization')
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, 'visualization')

ALL_REGISTRIES = (MODELS, MODEL_WRAPPERS, WEIGHT_INITIALIZERS, DATASETS, DATA_SAMPLERS, TRANSFORMS,
                  METRICS, EVALUATOR, HOOKS, LOOPS, RUNNERS, OPTIMIZERS, OPTIM_WRAPPERS,
                  OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS, VISUALIZERS, VISBACKENDS)


def register_all_modules() -> None:
    """Import every package that registers modules of repvgg_mm (idempotent)."""
    for registry in ALL_REGISTRIES:
        registry.import_from_location()
