"""binmark's CPU block allocator: blocks keep their values, freed memory is reused and merged,
threads and forked workers are safe, the profiler sees its blocks, and training gives the same
values with it as without (a fresh process: the allocator stays installed once enabled)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import torch

from binmark.allocator import block_allocator_enabled, block_allocator_stats, enable_block_allocator, release_free_memory
from binmark.memory import peak_live_bytes

KIB = 1024


def _enabled() -> None:
    assert enable_block_allocator() and block_allocator_enabled()


def test_blocks_keep_their_values_and_freed_memory_is_reused() -> None:
    _enabled()
    gen = torch.Generator().manual_seed(0)
    sizes = torch.randint(256 * KIB // 4, 6 * 2**20 // 4, (40,), generator=gen).tolist() + [10, 1000, 60_000]
    before = block_allocator_stats()
    tensors = {i: torch.full((n,), float(i)) for i, n in enumerate(sizes)}
    grown = block_allocator_stats()
    assert grown["live"] - before["live"] >= sum(n * 4 for n in sizes if n * 4 >= 256 * KIB)
    for i in list(tensors)[::2]:  # free every other block, then fill the holes again
        del tensors[i]
    for i in range(100, 120):
        tensors[i] = torch.full((sizes[i - 100],), float(i))
    assert all(bool((t == float(i)).all()) for i, t in tensors.items())
    tensors.clear()
    assert block_allocator_stats()["live"] == before["live"]
    mapped = []
    for _ in range(4):  # the same pattern again and again: no new memory after the first time
        again = [torch.empty(n) for n in sizes]
        del again
        mapped.append(block_allocator_stats()["mapped"])
    assert mapped[1:] == mapped[:1] * 3


def test_free_neighbours_merge_into_one_block() -> None:
    _enabled()
    parts = [torch.empty(2**20 // 4) for _ in range(8)]  # 1 MiB each, taken in a row
    del parts
    mapped = block_allocator_stats()["mapped"]
    whole = torch.empty(8 * 2**20 // 4)  # fits where the eight were, no new mapping
    assert block_allocator_stats()["mapped"] == mapped
    del whole


def test_release_gives_pages_back_and_keeps_live_values() -> None:
    _enabled()
    keep = torch.arange(2**20, dtype=torch.float32)
    scratch = torch.ones(4 * 2**20)
    del scratch
    assert release_free_memory() >= 4 * 2**20 * 4
    assert torch.equal(keep, torch.arange(2**20, dtype=torch.float32))
    assert float(torch.ones(4 * 2**20).sum()) == 4 * 2**20  # a released run is usable again


def test_threads_allocate_and_free_at_once() -> None:
    _enabled()
    errors: list[str] = []

    def work(seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for k in range(60):
            n = int(torch.randint(64 * KIB, 2**20, (1,), generator=gen))
            t = torch.full((n,), float(seed * 1000 + k))
            if not bool((t == float(seed * 1000 + k)).all()):
                errors.append(f"thread {seed}, block {k}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_profiler_sees_block_allocations() -> None:
    _enabled()

    def two_blocks_then_one() -> None:
        a = torch.empty(2**20)  # 4 MiB
        b = torch.empty(2**20)
        del a
        c = torch.empty(2**20)
        del b, c

    assert peak_live_bytes(two_blocks_then_one) == 2 * 4 * 2**20


def test_training_values_are_the_same_with_and_without_it() -> None:
    """A fresh process: gradients and BN buffers of CU-Net (W1A1, memory-efficient, packed saves)
    with PyTorch's allocator, then with the block allocator, compared with ``torch.equal``; then
    forked DataLoader workers hand over large tensors."""
    script = textwrap.dedent(
        """
        import torch
        from binmark import models
        from binmark.allocator import enable_block_allocator

        torch.manual_seed(0)
        x, target = torch.randn(4, 3, 128, 128), torch.rand(4, 16, 32, 32)

        def grads():
            torch.manual_seed(1)
            model = models.build("cunet", 16, num_unets=2, order=1, memory_efficient=True, quant="cunet_w1a1g8").train()
            sum(((o - target) ** 2).mean() for o in model(x)).backward()
            return [p.grad.clone() for p in model.parameters()] + [b.clone() for b in model.buffers()]

        default = grads()
        assert enable_block_allocator()
        block = grads()
        assert len(default) == len(block) and all(torch.equal(a, b) for a, b in zip(default, block))

        class Big(torch.utils.data.Dataset):
            def __len__(self):
                return 4
            def __getitem__(self, i):
                return torch.full((2**18,), float(i))  # 1 MiB, made by the block allocator in the worker

        loader = torch.utils.data.DataLoader(Big(), batch_size=1, num_workers=2, multiprocessing_context="fork")
        assert [float(b.mean()) for b in loader] == [0.0, 1.0, 2.0, 3.0]
        print("same")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("same")


def test_without_a_compiler_it_warns_and_pytorchs_allocator_stays(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import warnings
        import torch
        import binmark.allocator as A

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ok = A.enable_block_allocator()
        said = " ".join(str(w.message) for w in caught)
        x = torch.ones(2**20)  # PyTorch's allocator still serves
        print(ok, "did not build" in said and "Set CXX" in said, A.block_allocator_enabled(), float(x.sum()))
        """
    )
    env = {**os.environ, "CXX": "false", "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True", "False", "1048576.0"]
