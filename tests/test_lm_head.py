"""TRL's fused LM head fitted to a CPU (medstore/training/lm_head.py): smaller tiles and the
labelled positions only, with the same loss and gradients as TRL's own settings."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from trl.kernels import chunked_logprob
from trl.trainer import utils
from trl.trainer.utils import add_fused_lm_head

from medstore.training import lm_head


@pytest.fixture
def trl_settings(monkeypatch):
    """Whatever a test changes in TRL's module settings is put back afterwards."""
    monkeypatch.setattr(chunked_logprob, "TOKEN_CHUNK_SIZE", chunked_logprob.TOKEN_CHUNK_SIZE)
    monkeypatch.setattr(utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    monkeypatch.setattr(utils, "_use_triton", utils._use_triton)


def tiny_model() -> LlamaForCausalLM:
    """A vocabulary over two CPU vocabulary tiles; 2 x 1,300 positions span three token tiles."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=20_000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    return model


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 20_000, (2, 1300), generator=generator)
    labels = torch.full_like(input_ids, -100)
    labels[0, 1000:] = input_ids[0, 1000:]  # the answer: the last 300 tokens of row 0
    # row 1 has no label at all (a prompt cut before its answer): it must add nothing
    return {"input_ids": input_ids, "labels": labels}


def loss_and_gradients(model: LlamaForCausalLM) -> tuple[tuple[float, float], list[torch.Tensor]]:
    model.zero_grad()
    outputs = model(**batch(), fused_lm_head=True)
    outputs.loss.backward()
    entropy = outputs.entropy[0, 999:].sum()  # the labelled positions, shifted by one
    return (outputs.loss.item(), entropy.item()), [p.grad.clone() for p in model.parameters()]


def test_cpu_settings_give_trl_s_loss_and_gradients(trl_settings) -> None:
    model = tiny_model()
    (loss, entropy), gradients = loss_and_gradients(model)

    assert lm_head.fit_fused_lm_head_to_cpu() is True
    assert chunked_logprob.TOKEN_CHUNK_SIZE == lm_head.CPU_TOKEN_TILE
    assert utils._CHUNKED_LOGPROB_CHUNK_SIZE == lm_head.CPU_VOCAB_TILE
    assert utils._use_triton(torch.device("cpu")) is True  # labelled positions only
    (fitted_loss, fitted_entropy), fitted = loss_and_gradients(model)

    assert fitted_loss == pytest.approx(loss, rel=1e-5)
    assert fitted_entropy == pytest.approx(entropy, rel=1e-5)
    for expected, got in zip(gradients, fitted, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_fitting_twice_wraps_trl_s_answer_once(trl_settings) -> None:
    lm_head.fit_fused_lm_head_to_cpu()
    fitted = utils._use_triton
    lm_head.fit_fused_lm_head_to_cpu()
    assert utils._use_triton is fitted


def test_other_devices_keep_trl_s_answer() -> None:
    for trl_answer in (True, False):
        answer = lm_head.compact_on_cpu(lambda device, value=trl_answer: value)
        assert answer(torch.device("cuda")) is trl_answer
        assert answer(torch.device("cpu")) is True


def test_a_trl_without_these_settings_is_left_alone(trl_settings, monkeypatch) -> None:
    monkeypatch.delattr(utils, "_CHUNKED_LOGPROB_CHUNK_SIZE")
    tile = chunked_logprob.TOKEN_CHUNK_SIZE
    assert lm_head.fit_fused_lm_head_to_cpu() is False
    assert tile == chunked_logprob.TOKEN_CHUNK_SIZE
