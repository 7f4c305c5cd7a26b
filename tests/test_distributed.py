"""Data-parallel training on CPU with gloo and 2 processes: the memory and weights stay identical on every
rank, the memory equals a single-process update on the concatenated batch, and a 2-process checkpoint
resumes in 1 process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from most_net.memory import MemoryDictionary

WORLD = 2


def _init(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=WORLD)


def _memory_worker(rank: int, store: str, out: str) -> None:
    from most_net.distributed import synchronise_memories
    _init(rank, store)
    try:
        torch.manual_seed(0)
        memory = MemoryDictionary(num_slots=16, dim=8, momentum=0.9, temperature=0.1)
        synchronise_memories(memory)
        generator = torch.Generator().manual_seed(1)
        photo, sketch = torch.randn(40, 8, generator=generator), torch.randn(40, 8, generator=generator)
        share = slice(rank * 20, (rank + 1) * 20)
        for _ in range(3): memory.update(photo[share], sketch[share])
        torch.save(memory.state_dict(), Path(out) / f'memory{rank}.pt')
    finally:
        dist.destroy_process_group()


def _trainer_worker(rank: int, store: str, out: str) -> None:
    from most_net.config import make_config
    from most_net.train import Trainer
    _init(rank, store)
    try:
        config = make_config('tiny', name='ddp', max_steps=3, data_root='synthetic:8', checkpoint_every=3, sample_every=100)
        trainer = Trainer(config, Path(out) / 'run', device='cpu', rank=rank, world_size=WORLD)
        trainer.fit(progress=False)
        torch.save({'generator': trainer.generator.state_dict(), 'discriminator': trainer.discriminator.state_dict()},
                   Path(out) / f'weights{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_memory_update_equals_single_process_on_concatenated_batch(tmp_path):
    mp.spawn(_memory_worker, args=(str(tmp_path / 'store'), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f'memory{r}.pt', weights_only=True) for r in range(WORLD)]
    torch.manual_seed(0)
    single = MemoryDictionary(num_slots=16, dim=8, momentum=0.9, temperature=0.1)
    generator = torch.Generator().manual_seed(1)
    photo, sketch = torch.randn(40, 8, generator=generator), torch.randn(40, 8, generator=generator)
    for _ in range(3): single.update(photo, sketch)
    for key, value in single.state_dict().items():
        assert torch.equal(ranks[0][key], ranks[1][key]), f'{key} differs between ranks'
        torch.testing.assert_close(ranks[0][key].float(), value.float(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(single.state_dict()['keys'], MemoryDictionary(16, 8).state_dict()['keys'])


def test_trainer_keeps_ranks_identical(tmp_path):
    mp.spawn(_trainer_worker, args=(str(tmp_path / 'store'), str(tmp_path)), nprocs=WORLD, join=True)
    rank0, rank1 = (torch.load(tmp_path / f'weights{r}.pt', weights_only=True) for r in range(WORLD))
    for network in ('generator', 'discriminator'):
        for key in rank0[network]:
            if 'running_' in key or 'num_batches_tracked' in key:
                continue  # batch-norm statistics are rank-local on CPU (SyncBatchNorm needs GPUs); not used in training
            assert torch.equal(rank0[network][key], rank1[network][key]), f'{network}.{key} differs between ranks'
    assert any(key.startswith('memory.') for key in rank0['generator'])
    assert (tmp_path / 'run' / 'checkpoints' / 'last.pt').is_file()


def test_torchrun_checkpoint_resumes_in_one_process(tmp_path, repo):
    run_dir = tmp_path / 'run'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(WORLD), '--master_port', '29517',
               '-m', 'most_net.train_cli', '--preset', 'tiny', '--name', 'ddp', '--data-root', 'synthetic:8',
               '--max-steps', '2', '--checkpoint-every', '2', '--run-dir', str(run_dir), '--no-evaluate', '--device', 'cpu']
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=repo, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from most_net.config import make_config
    from most_net.generator_files import load_checkpoint
    from most_net.train import train
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == 2
    resumed = train(make_config('tiny', name='ddp', data_root='synthetic:8', max_steps=4), run_dir=run_dir,
                    resume=True, evaluate=False, progress=False, device='cpu')
    assert resumed.steps == 4
