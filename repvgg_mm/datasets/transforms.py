"""torchvision transforms built from config dicts (``dict(type='RandomResizedCrop', size=224)``)."""
from typing import Callable, Sequence, Union

import torchvision.transforms as T
from torchvision.transforms import AutoAugmentPolicy, InterpolationMode

# Config-friendly strings for the enum arguments of torchvision transforms.
_ENUM_ARGS = {'interpolation': InterpolationMode, 'policy': AutoAugmentPolicy}


def _enum_args(kwargs: dict) -> dict:
    for key, enum in _ENUM_ARGS.items():
        if isinstance(kwargs.get(key), str):
            try:
                kwargs[key] = enum(kwargs[key].lower())
            except ValueError:
                choices = ', '.join(e.value for e in enum)
                raise ValueError(f'{key}={kwargs[key]!r} is not one of: {choices}') from None
    return kwargs


def build_transform(cfg: Union[dict, Callable]) -> Callable:
    """One torchvision transform from ``dict(type=<name in torchvision.transforms>, **kwargs)``."""
    if callable(cfg):
        return cfg
    kwargs = dict(cfg)
    name = kwargs.pop('type', None)
    transform_cls = getattr(T, name, None) if isinstance(name, str) else None
    if not isinstance(transform_cls, type):
        raise ValueError(f'unknown torchvision transform {name!r} in {dict(cfg)}')
    return transform_cls(**_enum_args(kwargs))


def build_transforms(cfgs: Sequence[Union[dict, Callable]]) -> T.Compose:
    """A ``torchvision.transforms.Compose`` of :func:`build_transform` of each config."""
    return T.Compose([build_transform(cfg) for cfg in cfgs or ()])
