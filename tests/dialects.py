"""Each teacher server's structured-output behaviour, as its source or documentation gives it,
emulated on the fake server (tests/fakeserver.py).

An emulation decides from a request body alone whether the server refuses it (and with what
error) and which schema, if any, it enforces. The model behind it is a stand-in: under an
enforced schema it answers schema-valid JSON (the consult teacher's, or the probe's answer);
left free it answers what the 135M model did in issue 14, valid JSON with the wrong fields,
unless it ``follows_prompt_schema`` (a large model reading the schema from the prompt).

Sources (see the README's compatibility table):
- llama-cpp-python 0.3.36: server/types.py types response_format as
  ``ChatCompletionRequestResponseFormat`` (``type: Literal["text", "json_object"]``, optional
  ``schema``); its RouteErrorHandler turns the validation error into an HTTP 500 whose message
  is the pydantic error; llama_chat_format.py builds a grammar from ``schema`` for json_object
  (llama_grammar.py, whose string characters include raw control characters).
- llama.cpp server (tools/server/server-common.cpp, oaicompat_chat_params_parse): json_object
  takes ``schema``, json_schema takes ``json_schema.schema``, any other type throws
  ``response_format type must be one of "text" or "json_object", but got: ...``.
- vLLM: response_format json_schema is enforced; ``guided_json`` until 0.12, which removed it
  (docs/features/structured_outputs.md); unknown fields are ignored, not refused
  (OpenAIBaseModel logs them).
- DeepSeek (api-docs.deepseek.com/guides/json_mode): json_object only, the prompt must contain
  "json"; json_schema is refused: 400 "This response_format type is unavailable now".
- Ollama: native ``format`` is "json" or a schema (0.5+; before, a string only: an object fails
  to decode into the request); /v1 maps json_schema to format=schema and json_object to "json"
  (openai/openai.go), ignoring other types and any ``schema`` beside json_object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fakeserver import FakeLLMServer, Reply
from .teachers import consult_stage, consult_teacher

PROBE_ANSWER = '{"medstore_probe": 7}'
FREE_PROBE_ANSWER = '{"answer": "no"}'  # what the probe's prompt asks for
FREE_JSON_ANSWER = '{"id": "p-1", "name": "Alex K."}'  # valid JSON, the wrong object


def response_format(request: dict[str, Any]) -> dict[str, Any]:
    value = request.get("response_format")
    return value if isinstance(value, dict) else {}


def is_probe(request: dict[str, Any]) -> bool:
    return any("medstore_probe" in json.dumps(v) for v in request.values() if isinstance(v, dict))


def mentions_json(request: dict[str, Any]) -> bool:
    return any("json" in m.get("content", "").lower() for m in request.get("messages", []))


def schema_in_prompt(request: dict[str, Any]) -> bool:
    return any("JSON schema" in m.get("content", "") for m in request.get("messages", []))


@dataclass
class Emulation:
    """A server's rules: ``refusal`` (the error it answers, or None) and ``enforced`` (the schema
    its decoding obeys, or None)."""

    name: str
    refusal: Callable[[dict[str, Any]], Reply | None]
    enforced: Callable[[dict[str, Any]], dict[str, Any] | None]
    follows_prompt_schema: bool = False
    raw_newlines: bool = False  # its grammar lets a raw newline into a string

    def install(self, server: FakeLLMServer) -> FakeLLMServer:
        server.fault_plan = self.refusal
        server.set_responder(self.answer)
        return server

    def answer(self, request: dict[str, Any]) -> str:
        constrained = self.enforced(request) is not None
        if is_probe(request):
            return PROBE_ANSWER if constrained else FREE_PROBE_ANSWER
        if constrained and self.raw_newlines:
            return consult_teacher(request).replace("a driver, ", "a driver,\n")
        if consult_stage(request) == "reasoning" or constrained:
            return consult_teacher(request)
        if self.follows_prompt_schema and schema_in_prompt(request):
            return consult_teacher(request)
        return FREE_JSON_ANSWER


# OpenAI ------------------------------------------------------------------------------------------
def openai_refusal(request: dict[str, Any]) -> Reply | None:
    kind = response_format(request).get("type")
    if kind not in (None, "text", "json_object", "json_schema"):
        return Reply(
            status=400,
            content=f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and "
            "'json_schema'. (param: response_format.type)",
        )
    if kind == "json_object" and not mentions_json(request):
        return Reply(
            status=400,
            content="'messages' must contain the word 'json' in some form, to use "
            "'response_format' of type 'json_object'.",
        )
    return None


def json_schema_enforced(request: dict[str, Any]) -> dict[str, Any] | None:
    fmt = response_format(request)
    return (
        (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    )


OPENAI = Emulation("openai", openai_refusal, json_schema_enforced)


# vLLM --------------------------------------------------------------------------------------------
def vllm_enforced(request: dict[str, Any]) -> dict[str, Any] | None:
    structured = request.get("structured_outputs") or {}
    return json_schema_enforced(request) or structured.get("json")


def vllm_legacy_enforced(request: dict[str, Any]) -> dict[str, Any] | None:
    return json_schema_enforced(request) or request.get("guided_json")


def vllm_refusal(request: dict[str, Any]) -> Reply | None:
    kind = response_format(request).get("type")
    if kind not in (None, "text", "json_object", "json_schema", "structural_tag"):
        return Reply(
            status=400,
            content="1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input "
            f"should be 'text', 'json_object', 'json_schema' or 'structural_tag' [input_value="
            f"'{kind}']",
        )
    return None


VLLM = Emulation("vllm", vllm_refusal, vllm_enforced)
VLLM_LEGACY = Emulation("vllm<0.12", vllm_refusal, vllm_legacy_enforced)


# llama-cpp-python (the Python server) ------------------------------------------------------------
def llama_cpp_python_refusal(request: dict[str, Any]) -> Reply | None:
    kind = response_format(request).get("type")
    if "response_format" in request and kind not in ("text", "json_object"):
        # Verbatim from a real 0.3.36 server (the traceback lines after it left out).
        return Reply(
            status=500,
            content="1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
            "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", "
            f"'input': '{kind}', 'ctx': {{'expected': \"'text' or 'json_object'\"}}}}",
        )
    return None


def json_object_schema_enforced(request: dict[str, Any]) -> dict[str, Any] | None:
    fmt = response_format(request)
    return fmt.get("schema") if fmt.get("type") == "json_object" else None


# Its grammar's string character is [^"\\] (llama_grammar.py), so raw newlines get through.
LLAMA_CPP_PYTHON = Emulation(
    "llama-cpp-python", llama_cpp_python_refusal, json_object_schema_enforced, raw_newlines=True
)


# llama.cpp's C++ server (llama-server) -----------------------------------------------------------
def llama_server_refusal(request: dict[str, Any]) -> Reply | None:
    kind = response_format(request).get("type", "")
    if kind not in ("", "text", "json_object", "json_schema"):
        return Reply(
            status=400,
            content='response_format type must be one of "text" or "json_object", but got: ' + kind,
        )
    return None


def llama_server_enforced(request: dict[str, Any]) -> dict[str, Any] | None:
    return json_object_schema_enforced(request) or json_schema_enforced(request)


LLAMA_SERVER = Emulation("llama.cpp server", llama_server_refusal, llama_server_enforced)


# DeepSeek ----------------------------------------------------------------------------------------
def deepseek_refusal(request: dict[str, Any]) -> Reply | None:
    kind = response_format(request).get("type")
    if kind not in (None, "text", "json_object"):
        return Reply(status=400, content="This response_format type is unavailable now")
    if kind == "json_object" and not mentions_json(request):
        return Reply(
            status=400,
            content="Prompt must contain the word 'json' in some form to use 'response_format' "
            "of type 'json_object'.",
        )
    return None


DEEPSEEK = Emulation("deepseek", deepseek_refusal, lambda request: None, follows_prompt_schema=True)


# Ollama ------------------------------------------------------------------------------------------
def ollama_refusal(request: dict[str, Any]) -> Reply | None:
    fmt = request.get("format")
    if fmt not in (None, "", "json") and not isinstance(fmt, dict):
        return Reply(status=400, content=f"invalid format: {fmt!r}")
    return None


def ollama_old_refusal(request: dict[str, Any]) -> Reply | None:
    if isinstance(request.get("format"), dict):
        return Reply(
            status=400,
            content="json: cannot unmarshal object into Go struct field ChatRequest.format "
            "of type string",
        )
    return None


def ollama_enforced(request: dict[str, Any]) -> dict[str, Any] | None:
    fmt = request.get("format")
    return fmt if isinstance(fmt, dict) else None


OLLAMA = Emulation("ollama", ollama_refusal, ollama_enforced)
OLLAMA_OLD = Emulation("ollama<0.5", ollama_old_refusal, ollama_enforced)
OLLAMA_V1 = Emulation("ollama /v1", lambda request: None, json_schema_enforced)
