"""Class-folder image datasets (ImageNet layout): ``data_root/<split>/<class>/<image>``."""
import os
from typing import List, Optional, Sequence

import torch
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from repvgg_mm.registry import DATASETS
from repvgg_mm.utils.errors import MissingInputError, UserError, first_line

from .transforms import build_transforms

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.webp', '.tif', '.tiff')


class DatasetNotFoundError(MissingInputError):
    """The configured folder holds no class-folder images (message: one line, with the fix)."""


def _not_found(folder: str, reason: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f'{reason}: {folder} (expected {folder}/<class>/<image>); put the dataset there or set its '
        'root, e.g. --cfg-options train_dataloader.dataset.data_root=DIR '
        'val_dataloader.dataset.data_root=DIR')


def find_classes(folder: str) -> List[str]:
    """Sorted names of the sub-folders of ``folder`` (torchvision ``ImageFolder`` order)."""
    if not os.path.isdir(folder):
        raise _not_found(folder, 'dataset folder not found')
    classes = sorted(entry.name for entry in os.scandir(folder)
                     if entry.is_dir() and not entry.name.startswith('.'))
    if not classes:
        raise _not_found(folder, 'no class folders in')
    return classes


def list_images(folder: str, extensions: Sequence[str] = IMG_EXTENSIONS) -> List[str]:
    """Sorted paths of the images directly inside ``folder``."""
    return sorted(e.path for e in os.scandir(folder)
                  if e.is_file() and e.name.lower().endswith(tuple(extensions)))


def to_uint8_chw(image) -> Tensor:
    """A PIL image (or a uint8 CHW tensor) as a uint8 CHW tensor."""
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, Tensor) and image.dtype == torch.uint8 and image.ndim == 3:
        return image
    raise TypeError('transforms must return a PIL image or a uint8 CHW tensor (normalisation is '
                    f'done by the data preprocessor), got {type(image).__name__}')


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Images in ``<data_root>/<data_prefix.img_path>/<class>/<image>`` with sorted class indices.

    Each item is ``dict(inputs=uint8 CHW tensor, data_samples=BaseDataElement(gt_label=...))``;
    batches come from mmengine's ``default_collate`` (or ``pseudo_collate``) and are normalised by
    the model's data preprocessor.

    Args:
        data_root: dataset root, e.g. ``data/imagenet``.
        data_prefix: ``dict(img_path='train')``: the split folder under ``data_root``.
        transforms: torchvision transform configs applied to the RGB PIL image, e.g.
            ``[dict(type='RandomResizedCrop', size=224), dict(type='RandomHorizontalFlip')]``.
        classes: class folder names in label order; default: all sub-folders, sorted.
        extensions: image file suffixes to collect (case-insensitive).
        indices / serialize_data / test_mode / lazy_init: as in mmengine's ``BaseDataset``.
    """

    def __init__(self, data_root: str = '', data_prefix: dict = dict(img_path=''),
                 transforms: Sequence = (), classes: Optional[Sequence[str]] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS, indices=None,
                 serialize_data: bool = True, test_mode: bool = False, lazy_init: bool = False):
        self.transform = build_transforms(transforms)
        self.extensions = tuple(ext.lower() for ext in extensions)
        metainfo = dict(classes=tuple(classes)) if classes else None
        super().__init__(ann_file='', metainfo=metainfo, data_root=data_root,
                         data_prefix=dict(data_prefix), indices=indices,
                         serialize_data=serialize_data, pipeline=[], test_mode=test_mode,
                         lazy_init=lazy_init)

    @property
    def img_folder(self) -> str:
        return self.data_prefix.get('img_path') or self.data_root

    def load_data_list(self) -> List[dict]:
        folder = self.img_folder
        classes = list(self._metainfo.get('classes') or find_classes(folder))
        data_list = []
        for label, name in enumerate(classes):
            class_dir = os.path.join(folder, name)
            if not os.path.isdir(class_dir):
                raise _not_found(folder, f'class folder {name!r} missing in')
            data_list += [dict(img_path=p, gt_label=label)
                          for p in list_images(class_dir, self.extensions)]
        if not data_list:
            raise _not_found(folder, f'no {"/".join(self.extensions)} images in')
        self._metainfo['classes'] = tuple(classes)
        return data_list

    def get_cat_ids(self, idx: int) -> List[int]:
        return [self.get_data_info(idx)['gt_label']]

    def prepare_data(self, idx: int) -> dict:
        info = self.get_data_info(idx)
        try:
            with Image.open(info['img_path']) as image:
                image = image.convert('RGB')
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for corrupt files
            raise UserError(f"cannot read image {info['img_path']}: {first_line(exc)}") from exc
        ori_shape = (image.height, image.width)
        inputs = to_uint8_chw(self.transform(image))
        sample = BaseDataElement(metainfo=dict(img_path=info['img_path'],
                                               sample_idx=info['sample_idx'], ori_shape=ori_shape,
                                               img_shape=tuple(inputs.shape[-2:])))
        sample.gt_label = torch.tensor(info['gt_label'])
        return dict(inputs=inputs, data_samples=sample)
