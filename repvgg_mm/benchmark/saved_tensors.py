"""What autograd keeps for backward: bytes of the tensors a forward pass saves."""
from typing import Dict, Iterable, Tuple

import torch
from torch import Tensor, nn


def storage_key(tensor: Tensor) -> Tuple[int, int]:
    """``(data_ptr, nbytes)`` of the storage behind ``tensor``."""
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


class SavedTensors:
    """Bytes of the tensors autograd saves for backward while active: each storage counted once
    (by its address), storages of ``persistent`` tensors (parameters, buffers, inputs) left out.

        with SavedTensors(persistent_tensors(model, x)) as saved:
            out = model(x)
        saved.nbytes
    """

    def __init__(self, persistent: Iterable[Tensor] = ()):
        self.persistent = {storage_key(t)[0] for t in persistent}
        self.storages: Dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, tensor: Tensor) -> Tensor:
        if tensor.layout == torch.strided and tensor.device.type != 'meta':
            ptr, nbytes = storage_key(tensor)
            if ptr and ptr not in self.persistent:
                self.storages[ptr] = max(self.storages.get(ptr, 0), nbytes)
        return tensor

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> 'SavedTensors':
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def persistent_tensors(model: nn.Module, *inputs: Tensor):
    """The tensors that outlive a step: ``model``'s parameters and buffers, and ``inputs``."""
    return [*model.parameters(), *model.buffers(), *inputs]
