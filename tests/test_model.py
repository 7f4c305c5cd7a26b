"""The memory dictionary and the networks: the memory against slot-by-slot references, the generator's
promises (memory untouched at evaluation, gradients only where the paper sends them, checkpoints
that restore the memory) and the input checks. Tiny sizes; the paper-size and compile tests are slow."""
from __future__ import annotations

import dataclasses
import io

import pytest
import torch
import torch.nn.functional as F

from most_net.core import MostNetError
from most_net.memory import MemoryDictionary, from_slots, to_slots
from most_net.networks import (CONFIG_VERSION, VARIANTS, GeneratorOutput, ModelConfig, MOSTNet, PatchDiscriminator,
                               UNetGenerator, build_discriminator, build_generator, count_parameters)

TINY = ModelConfig(base_channels=16, feature_channels=32, encoder_blocks=1, num_si_blocks=2, si_hidden_channels=16,
                   decoder_blocks=1, num_slots=64, read_chunk=100, unet_downs=6, disc_channels=16)


def images(batch: int = 2, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            torch.rand(batch, 1, size, size, generator=generator) * 2 - 1)


def tiny_model(variant: str = 'most_net', seed: int = 0, **changes) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_generator(dataclasses.replace(TINY, variant=variant, **changes))


def memory_state(model) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in model.memory.state_dict().items()}


# -- the memory against references ---------------------------------------------------------------------

def loop_reference(table: torch.Tensor, slots: torch.Tensor, momentum: float) -> tuple[torch.Tensor, list[int]]:
    """Eq. 5-6 one slot at a time: each slot picks its most similar entry by cosine; each picked entry moves
    one EMA step towards the mean of the slots that picked it."""
    picked: dict[int, list[torch.Tensor]] = {}
    for slot in slots:
        cosines = [float(F.cosine_similarity(slot, entry, dim=0)) for entry in table]
        picked.setdefault(max(range(len(table)), key=cosines.__getitem__), []).append(slot)
    new = table.clone()
    for index, members in picked.items():
        new[index] = momentum * table[index] + (1 - momentum) * torch.stack(members).mean(dim=0)
    return new, [len(picked.get(i, [])) for i in range(len(table))]


def structured_slots(memory: MemoryDictionary, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Photo slots where 12 positions crowd onto key 5 (and most keys get none); sketch slots crowd onto value 2."""
    generator = torch.Generator().manual_seed(seed)
    noise = lambda n: 0.05 * torch.randn(n, memory.dim, generator=generator)
    photo = torch.cat([torch.randn(9, memory.dim, generator=generator), 3 * memory.keys[5] + noise(12)])
    sketch = torch.cat([2 * memory.values[2] + noise(8), torch.randn(13, memory.dim, generator=generator)])
    return photo, sketch


def test_update_equals_slot_by_slot_reference():
    torch.manual_seed(0)
    memory = MemoryDictionary(num_slots=24, dim=8, momentum=0.9, temperature=0.1, read_chunk=5)
    photo, sketch = structured_slots(memory)
    expected_keys, key_votes = loop_reference(memory.keys, photo, 0.9)
    expected_values, value_votes = loop_reference(memory.values, sketch, 0.9)
    before = {name: buffer.clone() for name, buffer in memory.state_dict().items()}
    memory.update(photo, sketch)
    torch.testing.assert_close(memory.keys, expected_keys, rtol=0, atol=1e-6)
    torch.testing.assert_close(memory.values, expected_values, rtol=0, atol=1e-6)
    assert key_votes[5] >= 12 and value_votes[2] >= 8                    # crowded entries
    unpicked = [i for i, votes in enumerate(key_votes) if votes == 0]
    assert len(unpicked) > 10
    assert torch.equal(memory.keys[unpicked], before['keys'][unpicked])   # untouched, bit for bit
    assert memory.key_usage.tolist() == key_votes and memory.value_usage.tolist() == value_votes
    assert int(memory.update_steps) == 1


def test_update_renormalises_keys_only_when_asked():
    torch.manual_seed(0)
    plain = MemoryDictionary(num_slots=24, dim=8, momentum=0.9)
    torch.manual_seed(0)
    unit = MemoryDictionary(num_slots=24, dim=8, momentum=0.9, renormalise_keys=True)
    photo, sketch = structured_slots(plain)
    plain.update(photo, sketch)
    unit.update(photo, sketch)
    assert abs(float(plain.keys[5].norm()) - 1) > 1e-3
    torch.testing.assert_close(unit.keys.norm(dim=1), torch.ones(24))
    torch.testing.assert_close(unit.keys[5], F.normalize(plain.keys[5], dim=0))
    assert torch.equal(unit.values, plain.values)


def test_update_statistics_split_and_half_batches():
    def fresh():
        torch.manual_seed(0)
        return MemoryDictionary(num_slots=24, dim=8, momentum=0.9)
    whole, two_step, halves = fresh(), fresh(), fresh()
    photo, sketch = structured_slots(whole)
    whole.update(photo, sketch)
    two_step.apply_update(*two_step.update_statistics(photo, sketch))
    first = halves.update_statistics(photo[:10], sketch[:10])
    second = halves.update_statistics(photo[10:], sketch[10:])
    halves.apply_update(*(a + b for a, b in zip(first, second)))
    for name, tensor in whole.state_dict().items():
        assert torch.equal(two_step.state_dict()[name], tensor), name
        torch.testing.assert_close(halves.state_dict()[name].float(), tensor.float(), rtol=0, atol=1e-6)
    key_sums, key_counts, value_sums, value_counts = first
    assert key_sums.shape == value_sums.shape == (24, 8) and key_counts.shape == value_counts.shape == (24,)
    assert float(key_counts.sum()) == 10


def test_update_does_not_build_a_graph():
    memory = MemoryDictionary(num_slots=8, dim=4)
    photo = torch.randn(6, 4, requires_grad=True)
    memory.update(photo, torch.randn(6, 4))
    assert not memory.keys.requires_grad and memory.keys.grad_fn is None


def naive_read(memory: MemoryDictionary, queries: torch.Tensor) -> torch.Tensor:
    cosines = F.normalize(queries, dim=1) @ F.normalize(memory.keys, dim=1).T
    return torch.softmax(cosines / memory.temperature, dim=1) @ memory.values


@pytest.mark.parametrize('chunk', [7, 50, 4096])
def test_read_equals_naive_attention(chunk):
    torch.manual_seed(0)
    memory = MemoryDictionary(num_slots=32, dim=8, temperature=0.05, read_chunk=chunk)
    memory.values.mul_(3)                                   # values off the unit sphere, as after training
    queries = torch.randn(50, 8)
    torch.testing.assert_close(memory.read(queries), naive_read(memory, queries), rtol=1e-6, atol=1e-6)


def test_refinement_loss_equals_naive_and_shares_the_read():
    torch.manual_seed(0)
    memory = MemoryDictionary(num_slots=32, dim=8, temperature=0.1, read_chunk=7)
    photo, sketch = torch.randn(50, 8), torch.randn(50, 8)
    attention = lambda slots, table: torch.softmax(
        F.normalize(slots, dim=1) @ F.normalize(table, dim=1).T / memory.temperature, dim=1)
    expected = (attention(photo, memory.keys) - attention(sketch, memory.values)).abs().sum(dim=1).mean()
    loss = memory.refinement_loss(photo, sketch)
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)
    read, shared_loss = memory.read_with_refinement(photo, sketch)
    torch.testing.assert_close(read, memory.read(photo), rtol=0, atol=1e-6)
    torch.testing.assert_close(shared_loss, loss, rtol=0, atol=1e-6)


def test_memory_gradients_reach_queries_only():
    memory = MemoryDictionary(num_slots=16, dim=8, read_chunk=5)
    photo, sketch = torch.randn(12, 8, requires_grad=True), torch.randn(12, 8, requires_grad=True)
    read, loss = memory.read_with_refinement(photo, sketch)
    (read.sum() + loss).backward()
    assert photo.grad.abs().sum() > 0 and sketch.grad.abs().sum() > 0
    assert all(buffer.grad is None and not buffer.requires_grad for buffer in memory.buffers())
    assert list(memory.parameters()) == []


def test_memory_arithmetic_is_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    memory = MemoryDictionary(num_slots=32, dim=8, momentum=0.9)
    queries = torch.randn(40, 8).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        read = memory.read(queries)
        statistics = memory.update_statistics(queries, queries)
    assert read.dtype == torch.bfloat16 and all(s.dtype == torch.float32 for s in statistics)
    torch.testing.assert_close(read.float(), naive_read(memory, queries.float()), rtol=0, atol=2e-2)


def test_assignments_and_slot_folding():
    torch.manual_seed(0)
    memory = MemoryDictionary(num_slots=8, dim=4, read_chunk=3)
    assert memory.assignments(memory.keys * 5).tolist() == list(range(8))
    feature_map = torch.randn(2, 4, 3, 5)
    slots = to_slots(feature_map)
    assert slots.shape == (30, 4) and torch.equal(from_slots(slots, 2, 3, 5), feature_map)
    with pytest.raises(MostNetError, match=r'\(N, 4\)'):
        memory.read(torch.randn(3, 5))


def test_memory_rejects_bad_settings():
    for kwargs, message in [({'momentum': 1.0}, 'momentum'), ({'temperature': 0.0}, 'temperature'),
                            ({'read_chunk': 0}, 'read_chunk'), ({'num_slots': 0}, 'num_slots')]:
        with pytest.raises(MostNetError, match=message):
            MemoryDictionary(**kwargs)


# -- the generator ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('batch', [1, 4])
def test_output_shape_and_range(variant, batch):
    model = tiny_model(variant).train()
    photo, sketch = images(batch)
    output = model(photo, sketch)
    assert isinstance(output, GeneratorOutput)
    assert output.fake.shape == (batch, 1, 64, 64)
    assert output.fake.abs().max() <= 1 and torch.isfinite(output.fake).all()
    if variant == 'most_net':
        assert output.mr_loss.shape == () and 0 <= float(output.mr_loss.detach()) <= 2
    else:
        assert output.mr_loss is None
    if model.config.use_memory:
        assert output.read_features.shape == (batch, 32, 16, 16)
    else:
        assert output.read_features is None
    model.eval()
    with torch.no_grad():
        assert model(photo).fake.shape == (batch, 1, 64, 64)


@pytest.mark.parametrize('variant', ['most_net', 'most_net_no_mr'])
def test_training_forward_updates_then_reads(variant):
    model = tiny_model(variant).train()
    photo, sketch = images()
    before = memory_state(model)
    output = model(photo, sketch)
    assert not torch.equal(model.memory.keys, before['keys']) and not torch.equal(model.memory.values, before['values'])
    assert int(model.memory.key_usage.sum()) == int(model.memory.value_usage.sum()) == 2 * 16 * 16
    with torch.no_grad():   # the read in the forward pass is the read of the updated memory
        queries = to_slots(model.photo_encoder(photo))
        torch.testing.assert_close(to_slots(output.read_features), model.memory.read(queries), rtol=0, atol=1e-5)


def test_eval_and_photo_only_forwards_leave_memory_bit_identical():
    model = tiny_model().train()
    photo, sketch = images()
    model(photo, sketch)                       # a training step moves the memory away from its initial state
    before = memory_state(model)
    model(photo)                               # training mode, photo only
    model.eval()
    with torch.no_grad():
        model(photo)
        validation = model(photo, sketch)      # evaluation with a sketch: MR loss only
    model(photo, sketch)                       # evaluation with autograd on
    assert validation.mr_loss is not None
    for name, buffer in model.memory.state_dict().items():
        assert torch.equal(buffer, before[name]), f'memory.{name} changed'


def test_eval_forward_is_deterministic_and_ignores_the_sketch():
    model = tiny_model().eval()
    photo, sketch = images()
    with torch.no_grad():
        assert torch.equal(model(photo).fake, model(photo, sketch).fake)


def test_mr_loss_reaches_both_encoders_not_the_memory():
    model = tiny_model().train()
    photo, sketch = images()
    output = model(photo, sketch)
    output.mr_loss.backward()
    for encoder in (model.photo_encoder, model.sketch_encoder):
        assert all(p.grad is not None for p in encoder.parameters())
        assert sum(float(p.grad.abs().sum()) for p in encoder.parameters()) > 0
    assert all(p.grad is None for p in model.decoder.parameters())   # the MR loss does not pass the read path
    assert all(b.grad is None and not b.requires_grad for b in model.memory.buffers())


def test_fake_gradient_reaches_photo_encoder_through_the_read():
    model = tiny_model().train()
    photo, sketch = images()
    model(photo, sketch).fake.mean().backward()
    assert sum(float(p.grad.abs().sum()) for p in model.photo_encoder.parameters()) > 0
    assert all(p.grad is None for p in model.sketch_encoder.parameters())   # only via the MR loss


def test_no_mr_variant_runs_sketch_encoder_without_autograd():
    model = tiny_model('most_net_no_mr').train()
    photo, sketch = images()
    output = model(photo, sketch)
    output.fake.mean().backward()
    assert output.mr_loss is None and all(p.grad is None for p in model.sketch_encoder.parameters())


def test_memory_steers_the_output():
    model = tiny_model().eval()
    photo, _ = images()
    with torch.no_grad():
        first = model(photo).fake
        model.memory.values.mul_(-1)
        assert not torch.allclose(model(photo).fake, first)


def test_state_dict_round_trip_restores_memory_and_output():
    model = tiny_model(seed=0).train()
    photo, sketch = images()
    for _ in range(2): model(photo, sketch)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    restored = tiny_model(seed=1)
    assert not torch.equal(restored.memory.keys, model.memory.keys)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    for name, tensor in model.memory.state_dict().items():
        assert torch.equal(restored.memory.state_dict()[name], tensor), name
    assert {'memory.keys', 'memory.values', 'memory.key_usage'} <= set(model.state_dict())
    model.eval(); restored.eval()
    with torch.no_grad():
        assert torch.equal(model(photo).fake, restored(photo).fake)


def test_ablation_switches_reach_the_model():
    model = tiny_model(num_slots=16, temperature=0.2, momentum=0.9, num_si_blocks=1, renormalise_keys=True, read_chunk=33)
    memory = model.memory
    built = (memory.num_slots, memory.temperature, memory.momentum, memory.renormalise_keys, memory.read_chunk)
    assert built == (16, 0.2, 0.9, True, 33)
    assert len(model.si_blocks) == 1
    no_memory = tiny_model('most_net_no_memory')
    assert no_memory.memory is None and no_memory.sketch_encoder is None


def test_channels_last_matches_contiguous():
    model = tiny_model().eval()
    photo, _ = images()
    with torch.no_grad():
        reference = model(photo).fake
        model = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(photo.contiguous(memory_format=torch.channels_last)).fake, reference,
                                   rtol=0, atol=1e-4)


def test_bf16_autocast_forward_and_backward():
    model = tiny_model().train()
    photo, sketch = images()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        output = model(photo, sketch)
    (output.fake.float().mean() + output.mr_loss).backward()
    assert output.mr_loss.dtype == torch.float32 and model.memory.keys.dtype == torch.float32
    assert torch.isfinite(output.fake.float()).all()


# -- baseline, discriminator, configuration -------------------------------------------------------------

def test_unet_and_patchgan_match_pix2pix_sizes():
    # pix2pix prints 54.414 M (unet_256, 3 -> 3 channels) and 2.769 M (basic D on 6 channels)
    with torch.device('meta'):   # shapes only
        assert round(count_parameters(UNetGenerator(ModelConfig(variant='pix2pix', out_channels=3))) / 1e6, 3) == 54.414
        assert round(count_parameters(PatchDiscriminator(ModelConfig(out_channels=3))) / 1e6, 3) == 2.769
        assert sum(isinstance(m, torch.nn.Dropout) for m in UNetGenerator().modules()) == 3


def test_discriminator_logits_per_patch():
    discriminator = build_discriminator(TINY)
    photo, sketch = images(3)
    assert discriminator(photo, sketch).shape == (3, 1, 6, 6)
    with pytest.raises(MostNetError, match='same batch size'):
        discriminator(photo, sketch[:2])


def test_default_models_construct_with_paper_settings():
    with torch.device('meta'):
        generator = build_generator()
        no_memory = build_generator(ModelConfig(variant='most_net_no_memory'))
        unet = build_generator(ModelConfig(variant='pix2pix'))
    assert isinstance(generator, MOSTNet) and generator.config == ModelConfig()
    assert (generator.memory.num_slots, generator.memory.momentum, len(generator.si_blocks)) == (512, 0.999, 3)
    assert isinstance(unet, UNetGenerator)
    assert count_parameters(generator) > count_parameters(no_memory)


@pytest.mark.slow
def test_default_model_forward_at_256():
    torch.manual_seed(0)
    model = MOSTNet().train()
    photo, sketch = images(1, 256)
    output = model(photo, sketch)
    assert output.fake.shape == (1, 1, 256, 256) and output.read_features.shape == (1, 256, 64, 64)
    assert int(model.memory.key_usage.sum()) == 64 * 64
    unet = UNetGenerator().eval()
    with torch.no_grad():
        assert unet(photo).fake.shape == (1, 1, 256, 256)


def test_config_round_trip_and_rejections():
    config = dataclasses.replace(TINY, variant='most_net_no_mr')
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()['config_version'] == CONFIG_VERSION
    with pytest.raises(MostNetError, match=r"unknown model option\(s\) \['slots'\]"):
        ModelConfig.from_dict({**config.to_dict(), 'slots': 5})
    with pytest.raises(MostNetError, match='config_version 99'):
        ModelConfig.from_dict({**config.to_dict(), 'config_version': 99})
    with pytest.raises(MostNetError, match='variant'):
        ModelConfig(variant='cyclegan')


@pytest.mark.parametrize('photo, sketch, message', [
    (torch.zeros(2, 1, 64, 64), None, '1 channels, this network expects 3'),
    (torch.zeros(3, 64, 64), None, r'image\[None\]'),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), None, 'floating point'),
    (torch.zeros(2, 3, 62, 64), None, 'divisible by 4'),
    (torch.zeros(2, 3, 64, 64), torch.zeros(1, 1, 64, 64), 'same batch size'),
    (torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 32, 32), 'same batch size, height and width'),
    (torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64), 'sketch has 3 channels'),
])
def test_generator_input_checks(photo, sketch, message):
    with pytest.raises(MostNetError, match=message):
        tiny_model()(photo, sketch)


def test_unet_input_size_check():
    with pytest.raises(MostNetError, match='divisible by 64'):
        tiny_model('pix2pix')(torch.zeros(1, 3, 96, 96))


@pytest.mark.slow
def test_compiled_training_forward_has_no_graph_break():
    eager, compiled = tiny_model().train(), tiny_model().train()
    compiled_forward = torch.compile(compiled, fullgraph=True)
    photo, sketch = images()
    expected, got = eager(photo, sketch), compiled_forward(photo, sketch)
    torch.testing.assert_close(got.fake, expected.fake, rtol=0, atol=1e-4)
    torch.testing.assert_close(got.mr_loss, expected.mr_loss, rtol=0, atol=1e-4)
    for name, tensor in eager.memory.state_dict().items():
        torch.testing.assert_close(compiled.memory.state_dict()[name].float(), tensor.float(), rtol=0, atol=1e-5)
    (got.fake.mean() + got.mr_loss).backward()
    assert all(p.grad is not None for p in compiled.photo_encoder.parameters())
