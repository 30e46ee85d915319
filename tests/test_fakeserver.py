"""Tests of the fake LLM server, over real HTTP with the openai SDK and httpx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

try:
    from tests.fakeserver import FakeLLMServer, Reply, serve
except ImportError:  # tests/ itself on sys.path (pytest's rootdir-less prepend mode)
    from fakeserver import FakeLLMServer, Reply, serve  # type: ignore[no-redef]

MESSAGES: Any = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is aspirin"},
]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with serve() as fake:
        yield fake


def client(server: FakeLLMServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0, **kwargs)


def ask(server: FakeLLMServer, **kwargs: Any) -> Any:
    return client(server, **kwargs).chat.completions.create(model="teacher", messages=MESSAGES)


def test_url_and_lifecycle() -> None:
    fake = FakeLLMServer()
    with fake:
        assert fake.url.startswith("http://127.0.0.1:")
        assert fake.openai_base_url == fake.url + "/v1"
        assert httpx.get(fake.url + "/v1/models").status_code == 200
    with pytest.raises(RuntimeError):
        _ = fake.url


def test_default_reply_shape(server: FakeLLMServer) -> None:
    completion = ask(server)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "teacher"
    assert isinstance(completion.created, int)
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == "This is a fake reply."
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5  # "be brief" + "what is aspirin"
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == 10


def test_scripted_replies_in_order(server: FakeLLMServer) -> None:
    server.enqueue("first")
    server.enqueue("second reply", finish_reason="length", prompt_tokens=7, completion_tokens=99)
    assert server.pending == 2
    first, second, third = ask(server), ask(server), ask(server)
    assert first.choices[0].message.content == "first"
    assert second.choices[0].message.content == "second reply"
    assert second.choices[0].finish_reason == "length"
    assert second.usage is not None
    assert (second.usage.prompt_tokens, second.usage.completion_tokens) == (7, 99)
    assert third.choices[0].message.content == "This is a fake reply."
    assert server.pending == 0


def test_responder_computes_reply(server: FakeLLMServer) -> None:
    server.set_responder(lambda request: request["messages"][-1]["content"].upper())
    assert ask(server).choices[0].message.content == "WHAT IS ASPIRIN"
    server.set_responder(lambda request: Reply("cut", finish_reason="length"))
    assert ask(server).choices[0].finish_reason == "length"
    server.enqueue("queued wins")
    assert ask(server).choices[0].message.content == "queued wins"


def test_500_is_internal_server_error(server: FakeLLMServer) -> None:
    server.enqueue("boom", status=500)
    with pytest.raises(openai.InternalServerError) as info:
        ask(server)
    assert info.value.status_code == 500
    assert "boom" in str(info.value)


def test_429_carries_retry_after(server: FakeLLMServer) -> None:
    server.enqueue("", status=429)
    server.enqueue("", status=429, headers={"Retry-After": "7"})
    with pytest.raises(openai.RateLimitError) as info:
        ask(server)
    assert info.value.response.headers["retry-after"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        ask(server)
    assert info.value.response.headers["retry-after"] == "7"


def test_drop_is_connection_error(server: FakeLLMServer) -> None:
    server.enqueue(fault="drop")
    with pytest.raises(openai.APIConnectionError):
        ask(server)
    assert ask(server).choices[0].message.content == "This is a fake reply."


def test_timeout_fault(server: FakeLLMServer) -> None:
    server.enqueue(fault="timeout", delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(server, timeout=0.2)
    assert time.monotonic() - started < 0.9


def test_delay_still_answers(server: FakeLLMServer) -> None:
    server.enqueue("late", delay_s=0.1)
    assert ask(server, timeout=5).choices[0].message.content == "late"


@pytest.mark.parametrize("fault", ["truncate", "garbage"])
def test_broken_bodies_fail_on_the_client(server: FakeLLMServer, fault: str) -> None:
    server.enqueue("a reply that will not parse", fault=fault)
    with pytest.raises(ValueError):  # the SDK lets json.JSONDecodeError through
        ask(server)
    response = httpx.post(
        server.openai_base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    assert response.status_code == 200  # the next request is served normally
    server.enqueue("x y z", fault=fault)
    response = httpx.post(
        server.openai_base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_stream_sse(server: FakeLLMServer) -> None:
    server.enqueue("aspirin inhibits COX enzymes")
    stream = client(server).chat.completions.create(
        model="teacher", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "aspirin inhibits COX enzymes"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_models_endpoint() -> None:
    with serve(models=["a", "b"]) as fake:
        assert [m.id for m in client(fake).models.list()] == ["a", "b"]


def test_ollama_chat_shape(server: FakeLLMServer) -> None:
    server.enqueue("ollama says hi")
    body = {"model": "llama3.1", "messages": MESSAGES, "stream": False}
    data = httpx.post(server.url + "/api/chat", json=body).json()
    assert data["model"] == "llama3.1"
    assert data["message"] == {"role": "assistant", "content": "ollama says hi"}
    assert data["done"] is True
    assert data["done_reason"] == "stop"
    assert (data["prompt_eval_count"], data["eval_count"]) == (5, 3)
    assert data["created_at"].endswith("Z")


def test_ollama_generate_shape(server: FakeLLMServer) -> None:
    server.enqueue("generated text")
    body = {"model": "llama3.1", "system": "be brief", "prompt": "what is aspirin", "stream": False}
    data = httpx.post(server.url + "/api/generate", json=body).json()
    assert data["response"] == "generated text"
    assert data["done"] is True
    assert (data["prompt_eval_count"], data["eval_count"]) == (5, 2)


def test_ollama_streams_by_default(server: FakeLLMServer) -> None:
    server.enqueue("one two three")
    response = httpx.post(server.url + "/api/chat", json={"model": "m", "messages": MESSAGES})
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "one two three"
    assert [line["done"] for line in lines] == [False, False, False, True]
    assert lines[-1]["eval_count"] == 3


def test_ollama_tags_and_errors(server: FakeLLMServer) -> None:
    tags = httpx.get(server.url + "/api/tags").json()
    assert tags["models"][0]["name"] == "fake-model"
    server.enqueue("overloaded", status=503)
    response = httpx.post(server.url + "/api/chat", json={"model": "m", "messages": MESSAGES})
    assert response.status_code == 503
    assert response.json() == {"error": "overloaded"}


def test_requests_are_recorded(server: FakeLLMServer) -> None:
    ask(server)
    httpx.get(server.url + "/api/tags")
    httpx.post(server.url + "/api/generate", json={"model": "m", "prompt": "p", "stream": False})
    assert server.request_count == 3
    first = server.requests[0]
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["Authorization"] == "Bearer test"
    assert first.headers.get("authorization") == "Bearer test"
    assert first.json["messages"] == MESSAGES
    assert [r.path for r in server.chat_requests()] == ["/v1/chat/completions", "/api/generate"]
    server.reset()
    assert server.request_count == 0 and server.requests == []


def test_unknown_path_is_404(server: FakeLLMServer) -> None:
    with pytest.raises(openai.NotFoundError):
        client(server).embeddings.create(model="m", input="x")


def test_seeded_fault_plan_is_deterministic() -> None:
    plan = {"500": 0.3, "429": 0.2, "drop": 0.1}

    def outcomes() -> list[str]:
        results = []
        with serve(fault_plan=plan, seed=42, retry_after="2") as fake, httpx.Client() as http:
            for _ in range(40):
                try:
                    response = http.post(
                        fake.openai_base_url + "/chat/completions",
                        json={"model": "m", "messages": MESSAGES},
                    )
                except httpx.TransportError:
                    results.append("drop")
                    continue
                results.append(str(response.status_code))
                if response.status_code == 429:
                    assert response.headers["Retry-After"] == "2"
        return results

    first = outcomes()
    assert first == outcomes()
    assert {"200", "500", "429", "drop"} <= set(first)


def test_fault_plan_keeps_queued_reply_for_the_retry() -> None:
    calls = iter([Reply(status=500), None])
    with serve(fault_plan=lambda request: next(calls)) as fake:
        fake.enqueue("the real answer")
        with pytest.raises(openai.InternalServerError):
            ask(fake)
        assert ask(fake).choices[0].message.content == "the real answer"


def test_fault_plan_is_validated() -> None:
    with pytest.raises(ValueError):
        FakeLLMServer(fault_plan={"explode": 0.1})
    with pytest.raises(ValueError):
        FakeLLMServer(fault_plan={"500": 0.7, "429": 0.7})
    with pytest.raises(ValueError):
        Reply(fault="explode")


def test_64_concurrent_requests_are_served_in_parallel() -> None:
    async def run(fake: FakeLLMServer) -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=fake.openai_base_url, api_key="test", max_retries=0
        ) as aclient:
            completions = await asyncio.gather(
                *(aclient.chat.completions.create(model="m", messages=MESSAGES) for _ in range(64))
            )
        return [c.choices[0].message.content or "" for c in completions]

    with serve(latency_s=0.05) as fake:
        started = time.monotonic()
        contents = asyncio.run(run(fake))
        elapsed = time.monotonic() - started
    assert contents == ["This is a fake reply."] * 64
    assert fake.request_count == 64
    assert elapsed < 1.5, f"64 requests took {elapsed:.2f} s: the server is not concurrent"


def test_keep_alive_reuses_connections(server: FakeLLMServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        for _ in range(5):
            response = http.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
            assert response.status_code == 200
            assert response.http_version == "HTTP/1.1"
    assert server.connection_count == 1


def test_stop_interrupts_sleeping_handlers() -> None:
    fake = FakeLLMServer().start()
    fake.enqueue(fault="timeout", delay_s=60)
    with pytest.raises(openai.APITimeoutError):
        ask(fake, timeout=0.2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2
