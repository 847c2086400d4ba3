"""Small classification data and a training loop for quantization experiments without downloads.

Three sources: the embedded toy dataset rendered in memory (:func:`toy_classification`),
Fashion-MNIST (:func:`fashion_mnist_classification`) and any class-folder image tree, such as the
one ``tools/dataset_converters/make_toy_classification.py`` writes (:func:`folder_classification`).
"""
from typing import Callable, Optional

import numpy as np
import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from repvgg_mm.datasets.fashion_mnist import load_fashion_mnist, to_rgb_batch
from repvgg_mm.datasets.toy_classification import SPLITS, TOY_CLASSES, render_toy_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def toy_classification(split: str = 'train', images_per_class: int = 40, size: int = 64,
                       seed: int = 0) -> TensorDataset:
    """The embedded toy classification data (shapes and stripes), rendered in memory.

    The same images ``tools/make_toy_classification.py`` writes as PNGs for the same ``seed`` and
    ``size`` (one generator per image, keyed by split, class and index), normalised with the
    ImageNet mean/std; labels index :data:`repvgg_mm.datasets.TOY_CLASSES`.
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    split_id = SPLITS.index(split)
    mean = torch.tensor(IMAGENET_MEAN).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(3, 1, 1)
    images, labels = [], []
    for class_id, name in enumerate(TOY_CLASSES):
        for index in range(images_per_class):
            rng = np.random.default_rng([seed, split_id, class_id, index])
            pixels = np.asarray(render_toy_image(name, rng, size), dtype=np.float32) / 255.0
            images.append((torch.from_numpy(pixels).permute(2, 0, 1) - mean) / std)
            labels.append(class_id)
    return TensorDataset(torch.stack(images), torch.tensor(labels))


def fashion_mnist_classification(root: str, split: str = 'train', size: int = 32,
                                 limit: Optional[int] = None) -> TensorDataset:
    """Fashion-MNIST (:mod:`repvgg_mm.datasets.fashion_mnist`), the first ``limit`` images of
    ``split``, 3-channel at ``size`` and normalised like the toy data."""
    images, labels = load_fashion_mnist(root, split)
    images, labels = images[:limit], labels[:limit]
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    pixels = to_rgb_batch(images, size).float() / 255.0
    return TensorDataset((pixels - mean) / std, torch.from_numpy(labels))


def folder_classification(root: str, size: int = 64) -> Dataset:
    """A class-folder image tree (``root/<class>/*.png``) resized to ``size`` and normalised."""
    from torchvision import datasets, transforms
    transform = transforms.Compose([
        transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return datasets.ImageFolder(root, transform=transform)


def make_loader(dataset: Dataset, batch_size: int = 32, shuffle: bool = False,
                seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


@torch.no_grad()
def evaluate_accuracy(model: Callable[[Tensor], Tensor], loader: DataLoader) -> float:
    """Top-1 accuracy (percent) of ``model`` over ``loader`` (``model`` put in eval mode if it
    has one)."""
    if isinstance(model, nn.Module):
        model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += (model(images).argmax(1) == labels).sum().item()
        total += labels.numel()
    return 100.0 * correct / total


def train_classifier(model: nn.Module, loader: DataLoader, epochs: int = 3, lr: float = 0.05,
                     momentum: float = 0.9, weight_decay: float = 1e-4,
                     logger: Optional[MMLogger] = None) -> nn.Module:
    """Plain SGD + cross entropy with a cosine schedule; logs the mean loss of each epoch."""
    logger = logger or MMLogger.get_current_instance()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs * len(loader), 1))
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        losses = []
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        logger.info(f'epoch {epoch + 1}/{epochs}: loss {sum(losses) / len(losses):.4f}')
    return model
