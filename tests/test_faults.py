"""Fault injection, as a user meets faults: `most-net train` stopped by SIGTERM and SIGINT (one process and two gloo
processes) checkpoints the current step and resumes to the weights of an uninterrupted run; SIGKILL at random moments,
inside checkpoint writes too, always leaves a loadable, resumable last.pt; ENOSPC, EACCES and EROFS injected into every
writer end in one line naming the file, with no temporary file left and the previous checkpoint intact; an out-of-memory
error names the batch and image size, and sketching falls back to smaller batches. The CLI's messages are checked as a
user sees them: stdout, stderr and the exit status."""
from __future__ import annotations

import errno
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from most_net.cli import main
from most_net.config import make_config
from most_net.generator_files import load_checkpoint
from most_net.train import Trainer, train

pytestmark = pytest.mark.skipif(sys.platform != 'linux', reason='signals, fork and /proc/self/fd as on Linux')

MAIN = 'import sys; from most_net.cli import main; sys.exit(main())'   # `most-net` without relying on the venv's bin/
STEPS = 20
# precision pinned: 'auto' times a probe convolution in each process, and near its threshold a run and its
# reference could pick bf16 and fp32 apart (seen once in session 28's clean-clone run), which no resume can match
OPTIONS = ['--preset', 'tiny', '--name', 'faults', '--max-steps', str(STEPS), '--log-every', '1', '--device', 'cpu',
           '--precision', 'fp32']


def _env() -> dict[str, str]:
    # one thread, as in this process (below): CPU kernels may sum in another order with another thread count
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    "Train here with the children's thread count, so that runs split between this process and a child compare bit for bit."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / 'checkpoints' / 'last.pt')
    return {**{f'g.{k}': v for k, v in state['generator'].items()}, **{f'd.{k}': v for k, v in state['discriminator'].items()}}


def _assert_same_weights(run_dir: Path, reference: Path) -> None:
    ours, theirs = _weights(run_dir), _weights(reference)
    assert ours.keys() == theirs.keys()
    different = [key for key in ours if not torch.equal(ours[key], theirs[key])]
    assert not different, f'{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}'


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob('*.tmp'))


def _error_line(stderr: str) -> str:
    "The last line of stderr (tqdm's bar shares the stream and redraws with carriage returns)."
    return stderr.replace('\r', '\n').strip().splitlines()[-1]


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory) -> Path:
    "The uninterrupted run every stopped-and-resumed run must equal."
    run_dir = tmp_path_factory.mktemp('reference') / 'run'
    assert main(['train', *OPTIONS, '--run-dir', str(run_dir), '--no-evaluate']) == 0
    return run_dir


def _resume_from_line(line: str) -> int:
    "Run the resume command a message printed, word for word (here, in this process: its first half was a real process)."
    command = shlex.split(line.split('resume with: ', 1)[1])
    assert command[:2] == ['most-net', 'train'] and command[-2:] == ['--resume', '--no-evaluate'], command
    return main(command[1:])


# -- stop signals ------------------------------------------------------------------------------------------------------

def test_sigterm_checkpoints_the_current_step_and_resumes_to_the_same_weights(tmp_path, reference_run):
    run_dir = tmp_path / 'run'
    child = subprocess.Popen([sys.executable, '-c', MAIN, 'train', *OPTIONS, '--run-dir', str(run_dir), '--no-evaluate'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not (run_dir / 'log.csv').exists():          # the first step is done: the loop is running
        assert child.poll() is None and time.monotonic() < deadline, 'training did not start'
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 143, stderr[-2000:]
    assert 'Traceback' not in stderr
    setting, line = stdout.strip().splitlines()
    assert setting.startswith('faults: training on cpu in ')                              # said when training starts
    match = re.fullmatch(rf'faults: SIGTERM stopped training at step (\d+) of {STEPS}; checkpoint (\S+); resume with: (.+)', line)
    assert match, line
    step = int(match[1])
    assert 1 <= step < STEPS and Path(match[2]) == run_dir / 'checkpoints' / 'last.pt'
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == step          # at the interrupted step
    assert _resume_from_line(line) == 0
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == STEPS
    _assert_same_weights(run_dir, reference_run)


def _signal_in_step(monkeypatch, step: int, *signals: int, pause: float = 0.0) -> None:
    "Send this process `signals` in the middle of training step `step + 1`, `pause` s apart, as a terminal or cluster would."
    real_step = Trainer.train_step
    def step_then_signal(self, *batch):
        if self.step == step:
            for index, signum in enumerate(signals):
                if index: time.sleep(pause)
                os.kill(os.getpid(), signum)
        return real_step(self, *batch)
    monkeypatch.setattr(Trainer, 'train_step', step_then_signal)


def test_sigint_as_ctrl_c_checkpoints_the_step_and_exits_130(tmp_path, monkeypatch, capsys, reference_run):
    run_dir = tmp_path / 'run'
    handler_before = signal.getsignal(signal.SIGINT)   # Python's default_int_handler, or SIG_IGN in a background job
    _signal_in_step(monkeypatch, 4, signal.SIGINT)
    assert main(['train', *OPTIONS, '--run-dir', str(run_dir), '--no-evaluate']) == 130
    monkeypatch.undo()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f'faults: SIGINT stopped training at step 5 of {STEPS}; checkpoint {run_dir}/checkpoints/last.pt; '
                           f'resume with: most-net train --preset tiny --name faults --max-steps {STEPS}'), line
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == 5
    assert signal.getsignal(signal.SIGINT) is handler_before      # the handlers are put back
    assert _resume_from_line(line) == 0
    _assert_same_weights(run_dir, reference_run)


def test_ctrl_c_pressed_again_stops_at_once_and_leaves_a_whole_checkpoint(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / 'run'
    handlers_before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _signal_in_step(monkeypatch, 4, signal.SIGINT, signal.SIGINT, pause=1.5)
    assert main(['train', *OPTIONS, '--checkpoint-every', '2', '--run-dir', str(run_dir), '--no-evaluate']) == 130
    assert _error_line(capsys.readouterr().err) == 'most-net train: interrupted'
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == 4 and not _temporaries(run_dir)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers_before


def test_a_signal_arriving_twice_at_once_is_one_request(tmp_path, monkeypatch, capsys):
    "A scheduler signalling the whole job reaches a torchrun worker directly and again through torchrun: still a checkpoint."
    run_dir = tmp_path / 'run'
    _signal_in_step(monkeypatch, 4, signal.SIGTERM, signal.SIGTERM, signal.SIGINT)
    assert main(['train', *OPTIONS, '--run-dir', str(run_dir), '--no-evaluate']) == 143
    assert capsys.readouterr().out.splitlines()[-1].startswith(f'faults: SIGTERM stopped training at step 5 of {STEPS}; '
                                                               'checkpoint ')
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == 5


def _distributed_worker(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2)
    real_step = Trainer.train_step
    def step_then_sigterm(self, *batch):
        if self.step == 1 and self.rank == 1 and not self.config.name.endswith('whole'):
            os.kill(os.getpid(), signal.SIGTERM)             # only rank 1 is told: the ranks must agree to stop together
        return real_step(self, *batch)
    Trainer.train_step = step_then_sigterm
    try:
        options = dict(max_steps=4, data_root='synthetic:8', checkpoint_every=100, sample_every=100, log_every=1)
        common = dict(evaluate=False, progress=False, device='cpu', rank=rank, world_size=2)
        stopped = train(make_config('tiny', name='ddp', **options), run_dir=Path(out) / 'ddp', **common)
        step_on_disk = load_checkpoint(Path(out) / 'ddp' / 'checkpoints' / 'last.pt')['step']
        resumed = train(make_config('tiny', name='ddp', **options), run_dir=Path(out) / 'ddp', resume=True, **common)
        train(make_config('tiny', name='ddp_whole', **options), run_dir=Path(out) / 'whole', **common)
        (Path(out) / f'rank{rank}.json').write_text(json.dumps(
            {'stopped_by': stopped.stopped_by, 'stopped_at': stopped.steps, 'on_disk': step_on_disk,
             'resumed_to': resumed.steps}))
    finally:
        dist.destroy_process_group()


def test_sigterm_to_one_of_two_gloo_processes_stops_both_at_one_step_and_resumes_exactly(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_distributed_worker, args=(str(tmp_path / 'store'), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f'rank{rank}.json').read_text()) for rank in range(2)]
    assert ranks[0] == ranks[1] == {'stopped_by': 'SIGTERM', 'stopped_at': 2, 'on_disk': 2, 'resumed_to': 4}, ranks
    _assert_same_weights(tmp_path / 'ddp', tmp_path / 'whole')


# -- SIGKILL -----------------------------------------------------------------------------------------------------------

KILL_HARNESS = '''
import os, random, shutil, signal, sys, time, json
from pathlib import Path
import torch
torch.set_num_threads(1)
from most_net.config import make_config
from most_net.generator_files import load_checkpoint
from most_net.train import train
run, whole, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
config = make_config('tiny', name='killed', max_steps=10, checkpoint_every=1, sample_every=5, log_every=1)
last = run / 'checkpoints' / 'last.pt'

def train_in_child(kill_inside_checkpoint_write: bool) -> int:
    pid = os.fork()                                  # the child skips the imports: many kills in a few seconds
    if pid: return pid
    try:
        if kill_inside_checkpoint_write:             # the temporary file is complete, not yet renamed onto last.pt
            real_fsync = os.fsync
            def fsync_then_die(fd):
                real_fsync(fd)
                if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.last.pt.'):
                    os.kill(os.getpid(), signal.SIGKILL)
            os.fsync = fsync_then_die
        if run.exists() and not last.is_file(): shutil.rmtree(run)   # killed before its first checkpoint: start again
        train(config, run_dir=run, resume=last.is_file(), evaluate=False, progress=False, device='cpu')
    finally:
        os._exit(0)

rng, seen = random.Random(seed), []
for trial in range(7):
    inside = trial in (2, 5)
    pid = train_in_child(inside)
    time.sleep(0 if inside else rng.uniform(0.3, 2.5))
    if not inside: os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if last.is_file(): seen.append(load_checkpoint(last)['step'])   # loadable after every kill, or this raises
    else: seen.append(None)
for extra in range(6):                               # a loaded CPU: every kill came before the first checkpoint; wait longer
    if any(step is not None for step in seen): break
    pid = train_in_child(False)
    time.sleep(rng.uniform(2.5, 6.0) * (extra + 1))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    seen.append(load_checkpoint(last)['step'] if last.is_file() else None)
stale = sorted(str(p) for p in run.rglob('*.tmp'))
result = train(config, run_dir=run, resume=last.is_file(), evaluate=False, progress=False, device='cpu')
train(config, run_dir=whole, evaluate=False, progress=False, device='cpu')
print(json.dumps({'seen': seen, 'stale_before_resume': stale, 'steps': result.steps,
                  'stale_after_resume': sorted(str(p) for p in run.rglob('*.tmp'))}))
'''


def test_sigkill_at_random_moments_always_leaves_a_loadable_resumable_checkpoint(tmp_path):
    seed = int(os.environ.get('MOST_NET_FAULT_SEED', time.time_ns() % 10_000))
    done = subprocess.run([sys.executable, '-c', KILL_HARNESS, str(tmp_path / 'run'), str(tmp_path / 'whole'), str(seed)],
                          capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=600)
    assert done.returncode == 0, f'seed {seed}: {done.stderr[-3000:]}'
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report['steps'] == 10 and report['stale_after_resume'] == [], (seed, report)
    assert any(step is not None for step in report['seen']), (seed, report)
    _assert_same_weights(tmp_path / 'run', tmp_path / 'whole')


# -- write faults ------------------------------------------------------------------------------------------------------

FAULTS = {errno.ENOSPC: 'no space left on the disk', errno.EACCES: 'permission denied', errno.EROFS: 'the disk is read-only'}


class WriteFaults:
    "Make writes of files whose temporary name matches `pattern` fail with `code`, from the `after`-th one on."
    def __init__(self, monkeypatch, pattern: str, code: int, after: int = 0):
        self.pattern, self.code, self.after, self.seen = re.compile(pattern), code, after, 0
        if code == errno.ENOSPC:           # the disk fills while the data goes out: the temporary file exists, then fails
            real_fsync = os.fsync
            def fsync(fd):
                if self._hit(os.readlink(f'/proc/self/fd/{fd}')): raise OSError(code, os.strerror(code))
                return real_fsync(fd)
            monkeypatch.setattr(os, 'fsync', fsync)
        else:                              # no permission, read-only: the temporary file cannot even be created
            real_mkstemp = tempfile.mkstemp
            def mkstemp(suffix=None, prefix=None, dir=None, text=False):
                if self._hit(os.path.join(str(dir), prefix or '')): raise OSError(code, os.strerror(code), str(dir))
                return real_mkstemp(suffix, prefix, dir, text)
            monkeypatch.setattr(tempfile, 'mkstemp', mkstemp)

    def _hit(self, path: str) -> bool:
        if not self.pattern.search(path): return False
        self.seen += 1
        return self.seen > self.after


WRITERS = {  # the file, its temporary file's pattern, how many writes of it succeed first
    'checkpoint': ('checkpoints/last.pt', r'/checkpoints/\.last\.pt\.', 1),
    'log': ('log.csv', r'/\.log\.csv\.', 1),
    'sample': ('samples/step_000004.png', r'/samples/\.step_000004\.png', 0),
    'config': ('config.json', r'/\.config\.json\.', 0),
    'run info': ('run_info.json', r'/\.run_info\.json\.', 1),
    'prediction': ('predictions/synthetic_test_0000.png', r'/predictions/\.synthetic_test_0000\.png', 0),
    'metrics': ('metrics.csv', r'/\.metrics\.csv\.', 0),
    'summary': ('summary.json', r'/\.summary\.json\.', 0),
}
CASES = [(writer, errno.ENOSPC) for writer in WRITERS] + [('checkpoint', errno.EACCES), ('prediction', errno.EROFS)]


@pytest.mark.parametrize('writer,code', CASES, ids=[f'{w}-{errno.errorcode[c]}' for w, c in CASES])
def test_a_write_fault_in_any_writer_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys, writer, code):
    name, pattern, after = WRITERS[writer]
    run_dir = tmp_path / 'run'
    faults = WriteFaults(monkeypatch, pattern, code, after)
    status = main(['train', '--preset', 'tiny', '--name', 'full', '--max-steps', '4', '--checkpoint-every', '2',
                   '--sample-every', '4',
                   '--metrics', 'ssim', '--device', 'cpu', '--run-dir', str(run_dir)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    line = _error_line(err)
    assert status == 1 and faults.seen > after, err[-2000:]
    assert line.startswith(f'most-net train: error: cannot write {run_dir / name}: {FAULTS[code]}'), line
    assert 'Traceback' not in err
    assert _temporaries(run_dir) == [], 'a temporary file was left behind'
    if writer == 'config':                 # written before the first step
        assert line.endswith('; no checkpoint had been written yet: start the run again once fixed'), line
    else:                                  # the loop writes the log, then the sample, then the checkpoint of a step
        step = load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step']            # the previous checkpoint is intact
        assert step == (2 if writer in ('checkpoint', 'log', 'sample') else 4)
        assert f'; the last good checkpoint {run_dir}/checkpoints/last.pt (step {step}) is intact; once fixed, resume with: ' \
               f'most-net train --preset tiny --name full --max-steps 4' in line, line


def test_a_full_disk_in_a_real_process_is_one_line_and_the_resume_command_works(tmp_path):
    "As a user sees it: the disk fills at the second checkpoint; stderr's last line says so; the printed command resumes."
    run_dir = tmp_path / 'run'
    fill = textwrap.dedent('''
        import errno, os
        real_fsync, writes = os.fsync, []
        def fsync(fd):
            if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.last.pt.'):
                writes.append(fd)
                if len(writes) == 2: raise OSError(errno.ENOSPC, 'No space left on device')
            return real_fsync(fd)
        os.fsync = fsync
    ''') + MAIN
    done = subprocess.run([sys.executable, '-c', fill, 'train', *OPTIONS, '--max-steps', '8', '--checkpoint-every', '3',
                           '--run-dir', str(run_dir), '--no-evaluate'], capture_output=True, text=True, env=_env(), cwd=tmp_path,
                           timeout=600)
    line = _error_line(done.stderr)
    assert done.returncode == 1 and 'Traceback' not in done.stderr, done.stderr[-3000:]
    assert re.fullmatch(rf'most-net train: error: cannot write {run_dir}/checkpoints/last.pt: no space left on the disk '
                        rf'\(.+ free in {run_dir}/checkpoints\); free space on that disk or write to a folder on another disk; '
                        rf'the last good checkpoint {run_dir}/checkpoints/last.pt \(step 3\) is intact; once fixed, resume with: '
                        r'most-net train .+ --resume --no-evaluate', line), line
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == 3 and not _temporaries(run_dir)
    assert _resume_from_line(line) == 0 and load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == 8


def test_preflight_names_the_folder_the_space_needed_and_free(tmp_path, monkeypatch, capsys):
    import shutil
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: shutil._ntuple_diskusage(10**9, 10**9 - 2_000_000, 2_000_000))
    status = main(['train', '--preset', 'tiny', '--max-steps', '2', '--device', 'cpu', '--run-dir', str(tmp_path / 'run')])
    line = _error_line(capsys.readouterr().err)
    assert status == 1
    assert re.fullmatch(rf'most-net train: error: {tmp_path}/run has 2\.0 MB free but two checkpoints \((\d+\.\d) MB each\), '
                        r'16 test predictions and a sample grid need (\d+\.\d) MB: free space on that disk or choose another '
                        r'--run-dir',
                        line), line
    assert not (tmp_path / 'run' / 'checkpoints').exists()     # nothing trained


def test_preflight_refuses_an_unwritable_run_folder(tmp_path, monkeypatch, capsys):
    def denied(*args, **kwargs): raise PermissionError(errno.EACCES, 'Permission denied')
    monkeypatch.setattr(tempfile, 'NamedTemporaryFile', denied)
    status = main(['train', '--preset', 'tiny', '--max-steps', '2', '--device', 'cpu', '--run-dir', str(tmp_path / 'run')])
    assert status == 1
    assert _error_line(capsys.readouterr().err) == (f'most-net train: error: cannot write {tmp_path}/run: permission denied; '
                                                    'make the folder writable (chmod u+w) or write to another folder')


# -- out of memory -----------------------------------------------------------------------------------------------------

def _out_of_memory(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)')


def test_out_of_memory_in_training_names_the_batch_and_image_size(tmp_path, monkeypatch, capsys):
    real_step = Trainer.train_step
    monkeypatch.setattr(Trainer, 'train_step',
                        lambda self, *batch: _out_of_memory() if self.step == 2 else real_step(self, *batch))
    status = main(['train', '--preset', 'tiny', '--max-steps', '4', '--checkpoint-every', '2', '--device', 'cpu',
                   '--run-dir', str(tmp_path / 'run')])
    line = _error_line(capsys.readouterr().err)
    assert status == 1
    assert line.startswith('most-net train: error: out of memory on cpu in training step 3 with batch_size=4 at image_size=64: '
                           'lower batch_size (--batch-size 2) or image_size and start a new run'), line
    assert f'the last good checkpoint {tmp_path}/run/checkpoints/last.pt (step 2) is intact' in line


def test_out_of_memory_in_the_test_predictions_names_eval_batch_size(tmp_path, monkeypatch, capsys):
    import most_net.evaluation
    monkeypatch.setattr(most_net.evaluation, 'predict_split', _out_of_memory)
    status = main(['train', '--preset', 'tiny', '--max-steps', '2', '--device', 'cpu', '--run-dir', str(tmp_path / 'run')])
    line = _error_line(capsys.readouterr().err)
    assert status == 1
    assert line.startswith('most-net train: error: out of memory on cpu sketching the test split with eval_batch_size=8 at '
                           'image_size=64: lower eval_batch_size; training is done and saved, so predict again with: '
                           'most-net train '
                           f'--preset tiny --max-steps 2 --device cpu --eval-batch-size 4 --run-dir {tmp_path}/run '
                           '--resume'), line


@pytest.fixture(scope='module')
def faces(tmp_path_factory, reference_run) -> Path:
    folder = tmp_path_factory.mktemp('faces')
    rng = np.random.default_rng(0)
    for index in range(5): Image.fromarray(rng.integers(0, 256, (250, 200, 3), dtype=np.uint8)).save(folder / f'face{index}.png')
    return folder


def test_sketch_falls_back_to_smaller_batches_then_names_the_batch_size(tmp_path, monkeypatch, capsys, faces, reference_run):
    from most_net.inference import Sketcher
    real_generate, sizes = Sketcher.generate, []
    def fits_two(self, batch):
        sizes.append(len(batch))
        return _out_of_memory() if len(batch) > 2 else real_generate(self, batch)
    monkeypatch.setattr(Sketcher, 'generate', fits_two)
    options = [str(faces), '--checkpoint', str(reference_run), '--no-align', '--device', 'cpu', '--batch-size', '8']
    assert main(['sketch', *options, '-o', str(tmp_path / 'fell_back')]) == 0
    captured = capsys.readouterr()
    assert sizes == [5, 2, 2, 1] and len(list((tmp_path / 'fell_back').glob('*_sketch.png'))) == 5
    said = 'sketch: out of memory on cpu with 5 faces at a time (64 px); trying 2 (a lower --batch-size avoids this)'
    assert said in captured.err
    monkeypatch.setattr(Sketcher, 'generate', _out_of_memory)
    assert main(['sketch', *options, '-o', str(tmp_path / 'never')]) == 1
    assert _error_line(capsys.readouterr().err) == ('most-net sketch: error: out of memory on cpu even one face at a time '
                                                    '(64 x 64 px; batch size 8 halved down to 1): free memory on cpu or sketch '
                                                    'on the CPU (--device cpu)')
    assert not (tmp_path / 'never').exists()


def test_sketch_write_fault_is_one_line(tmp_path, monkeypatch, capsys, faces, reference_run):
    WriteFaults(monkeypatch, r'/\.face2_sketch\.png\.', errno.ENOSPC)
    status = main(['sketch', str(faces), '--checkpoint', str(reference_run), '--no-align', '--device', 'cpu', '-o',
                   str(tmp_path / 'out')])
    assert status == 1
    assert _error_line(capsys.readouterr().err).startswith(
        f'most-net sketch: error: cannot write {tmp_path}/out/face2_sketch.png: no space left on the disk (')
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['face0_sketch.png', 'face1_sketch.png']   # no temporary file


# -- one process per run folder ----------------------------------------------------------------------------------------

def test_a_second_process_on_a_running_folder_is_refused_and_a_killed_run_leaves_no_stale_lock(tmp_path, capsys):
    run_dir = tmp_path / 'run'
    child = subprocess.Popen([sys.executable, '-c', MAIN, 'train', *OPTIONS, '--max-steps', '100000', '--run-dir', str(run_dir),
                              '--no-evaluate'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / 'checkpoints' / 'last.pt').exists():     # training runs and has a checkpoint to resume
            assert child.poll() is None and time.monotonic() < deadline, 'training did not start'
            time.sleep(0.05)
        assert main(['train', *OPTIONS, '--run-dir', str(run_dir), '--resume', '--no-evaluate']) == 1
        assert _error_line(capsys.readouterr().err).startswith(
            f'most-net train: error: {run_dir} is being trained by process {child.pid} on ')
    finally:
        child.kill()                                                   # SIGKILL: no chance to release anything
        child.wait()
    step = load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step']
    assert main(['train', *OPTIONS, '--max-steps', str(step + 2), '--run-dir', str(run_dir), '--resume', '--no-evaluate']) == 0
    assert load_checkpoint(run_dir / 'checkpoints' / 'last.pt')['step'] == step + 2
