"""Which rows make up each optimizer step: the epoch order, the slicing, the augmentation seed.

The data order of epoch ``e`` is a pure function of ``(seed, e)``
(:func:`epoch_permutation`), and an augmentation's randomness a pure function of
``(seed, step)`` (:func:`augmentation_generator`), so resuming needs no RNG state
for either. A transform that depends on the sample itself (the alternating flip: row i mirrored
in epoch e iff ``bit(seed, i) XOR (e odd)``) asks for :class:`~trainlab.data.dataset.BatchRows`
(``takes_rows = True``) and gets the batch's row indices, epoch, seed and split size, again
nothing to save. :class:`BatchPlan` cuts an epoch into optimizer steps of ``accum``
micro-batches of ``batch_size`` rows; :class:`TensorBatches` turns an index
tensor into an ``(x, y)`` batch on the run's device. The Trainer and the LR
finder both batch through this module.

Where other sources plug in: a data-parallel source would take ``(rank, world)``
and keep ``order[rank::world]`` of :meth:`BatchPlan.order`; a streaming
(memory-mapped) source implements :meth:`TensorBatches.fetch` over its storage.
Neither changes the plan or the Trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from trainlab.data.dataset import BatchRows, Split
from trainlab.runtime import to_device_async

BatchTransform = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


def generator_seed(mixed: int) -> int:
    """``mixed`` (a run's seed, >= 0, mixed with an epoch or a step) as ``manual_seed`` takes it: reduced modulo
    2**64 (torch: "Overflow when unpacking long long" beyond), which leaves every seed below 2**64, and so its
    draws, as it was (runs resume in them), and lets a seed up to 2**63 work too."""
    return mixed % (1 << 64)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of ``epoch``: ``randperm(n)`` from a generator seeded with ``seed * 1_000_003 + epoch``
    (:func:`generator_seed`: a seed of 2e13 and up is reduced modulo 2**64)."""
    generator = torch.Generator().manual_seed(generator_seed(seed * 1_000_003 + epoch))
    return torch.randperm(n, generator=generator)


def mega_batch_rows(n: int, batch_size: int) -> int:
    """Rows of one length-grouping mega-batch: ``batch_size * min(max(n // (4 * batch_size), 1), 50)``."""
    return batch_size * min(max(n // (4 * batch_size), 1), 50)


def length_grouped_order(order: torch.Tensor, lengths: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``order`` cut into mega-batches, each sorted by length, longest first (the HF Trainer's group_by_length).

    A mega-batch is :func:`mega_batch_rows` consecutive rows of ``order``; sorting inside it (stable, by ``lengths[row]`` descending) makes consecutive batches
    hold texts of similar length, so a model that pads each batch to its longest text pads little,
    while the mega-batches keep the epoch's randomness. Every row still comes once per epoch.
    """
    n = len(order)
    size = mega_batch_rows(n, batch_size)
    pieces = []
    for start in range(0, n, size):
        chunk = order[start:start + size]
        ranks = torch.sort(lengths[chunk], descending=True, stable=True).indices
        pieces.append(chunk[ranks])
    return torch.cat(pieces) if pieces else order


def is_ids_and_mask(x: torch.Tensor) -> bool:
    """Rows of ``tokenizer: hf`` text: (N, 2, L), ``x[:, 0]`` the input ids and ``x[:, 1]`` the attention mask
    (``tokenizer: word`` gives (N, L) ids alone)."""
    return x.ndim == 3 and x.shape[1] == 2


def holds_token_ids(x: torch.Tensor) -> bool:
    """Whether ``x`` could be token ids: integers (not floats, complex numbers or booleans, which cast to ids would
    index arbitrary embedding rows)."""
    return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)


def token_lengths(x: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Per-row text lengths of token inputs, as the text sources give them: for (N, 2, L) ``[ids, mask]``
    rows (``tokenizer: hf``) the attention mask's sum; for (N, L) token ids (``tokenizer: word``, padded
    with ``pad_id`` 0) the count of ids that are not ``pad_id``. Other inputs (floats, images) have no
    lengths: a ValueError."""
    if holds_token_ids(x):
        if is_ids_and_mask(x):
            return x[:, 1].sum(dim=1)
        if x.ndim == 2:
            return (x != pad_id).sum(dim=1)
    raise ValueError(f"token inputs are (N, L) integer ids or (N, 2, L) ids and attention mask; got "
                     f"{str(x.dtype).removeprefix('torch.')} inputs shaped {tuple(x.shape)}")


def augmentation_seed(seed: int, step: int) -> int:
    """The seed of step ``step``'s augmentation: ``seed * 7_919 + step`` (nothing to save for resume), as
    ``manual_seed`` takes it (:func:`generator_seed`)."""
    return generator_seed(seed * 7_919 + step)


@dataclass(frozen=True)
class BatchPlan:
    """An epoch of ``n`` rows as optimizer steps of ``accum`` micro-batches of ``batch_size`` rows.

    The last micro-batch of an epoch may be short, and so may the last step (fewer micro-batches).
    With ``lengths`` (one per row) each epoch's order is grouped by length (:func:`length_grouped_order`).
    """

    n: int
    batch_size: int
    seed: int
    accum: int = 1
    lengths: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @property
    def micro_batches(self) -> int:
        """ceil(n / batch_size) micro-batches per epoch."""
        return -(-self.n // self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """ceil(micro_batches / accum) optimizer steps per epoch."""
        return -(-self.micro_batches // self.accum)

    def order(self, epoch: int) -> torch.Tensor:
        order = epoch_permutation(self.n, self.seed, epoch)
        if self.lengths is not None:
            order = length_grouped_order(order, self.lengths, self.batch_size)
        return order

    def steps(self, epoch: int, start: int = 0, skipped: frozenset[int] = frozenset(),
              device: torch.device | None = None) -> Iterator[tuple[int, list[torch.Tensor]]]:
        """Yield ``(next_micro_batch, [index tensors])`` for each step of ``epoch`` from micro-batch ``start``.

        Micro-batches listed in ``skipped`` (divergence rollbacks) are left out; a step whose
        micro-batches are all skipped yields an empty list, and still advances the position.
        """
        order = self.order(epoch)
        if device is not None:
            order = to_device_async(order, device)
        size, accum, count = self.batch_size, self.accum, self.micro_batches
        micro = start
        while micro < count:
            end = min(micro + accum, count)
            if accum == 1 and not skipped:  # the common case, kept lean: one slice, no filtering
                indices = [order[micro * size:(micro + 1) * size]]
            else:
                indices = [order[b * size:(b + 1) * size] for b in range(micro, end) if b not in skipped]
            micro = end
            yield micro, indices


class TensorBatches:
    """Batches of an in-memory split on one device, with the training transform seeded by step."""

    def __init__(self, split: Split, transform: BatchTransform | None, seed: int, device: torch.device):
        self.x, self.y = split.x.to(device), split.y.to(device)
        self.transform, self.seed, self.device = transform, seed, device
        self._takes_rows = bool(getattr(transform, "takes_rows", False))
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def fetch(self, index: torch.Tensor, step: int, epoch: int | None = None, micro: int = 0) -> Batch:
        """Rows ``index`` of step ``step`` (in epoch ``epoch``), the training transform applied.

        ``micro``: the micro-batch's place among the step's, fetched in order: the first draws from the
        step's seed (:meth:`augmentation_generator`), each later one goes on drawing from where the one before
        stopped, so a step's micro-batches draw independent augmentations as one batch's rows do (reseeded
        each, row j of every micro-batch got the same crop and flip).
        A transform with ``takes_rows`` also gets :class:`BatchRows` (it refuses ``epoch=None``).
        The rows are gathered with ``index_select`` (the same values as ``x[index]``): on a CPU,
        advanced indexing of 64 rows of 784 floats costs ~45 us, ``index_select`` ~10 us.
        """
        x, y = self.x.index_select(0, index), self.y.index_select(0, index)
        if self.transform is not None:
            generator = self.augmentation_generator(step) if micro == 0 or self._generator is None else \
                self._generator
            if self._takes_rows:
                rows = BatchRows(index, epoch, self.seed, len(self)) if epoch is not None else None
                x = self.transform(x, generator, rows)
            else:
                x = self.transform(x, generator)
        return x, y

    def augmentation_generator(self, step: int) -> torch.Generator:
        """A CPU generator seeded for ``step``: the transforms draw on the CPU and move the draws to the
        batch's device, so a step's augmentation is the same on every device."""
        if self._generator is None:
            self._generator = torch.Generator()
        return self._generator.manual_seed(augmentation_seed(self.seed, step))

    def _planned_forever(self, plan: BatchPlan) -> Iterator[tuple[int, int, list[torch.Tensor]]]:
        """``(step, epoch, [index tensors])`` of every optimizer step in the engine's order, epoch after epoch."""
        step, epoch = 0, 0
        while True:
            for _, indices in plan.steps(epoch, device=self.device):
                yield step, epoch, indices
                step += 1
            epoch += 1

    def forever(self, plan: BatchPlan) -> Iterator[Batch]:
        """Every step's batch (its micro-batches as one) in the engine's order, epoch after epoch (the LR
        finder's sweep)."""
        for step, epoch, indices in self._planned_forever(plan):
            yield self.fetch(torch.cat(indices) if len(indices) > 1 else indices[0], step, epoch)

    def steps_forever(self, plan: BatchPlan) -> Iterator[list[Batch]]:
        """Every step's micro-batches, as ``Step.train_step`` takes them, in the engine's order, epoch after
        epoch (a time budget's calibration)."""
        for step, epoch, indices in self._planned_forever(plan):
            yield [self.fetch(index, step, epoch, micro) for micro, index in enumerate(indices)]
