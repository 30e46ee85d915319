"""The backends that ship with medstore, registered through the plugin hook. Each module is
imported only when its backend is built, so the embedded model's torch never slows a run
against a server."""

from __future__ import annotations

import os
from collections.abc import Callable

from medstore.hookspecs import hookimpl
from medstore.llm import Backend, BackendOptions, BackendUnavailable, configured_base_url


def local(options: BackendOptions) -> Backend:
    from medstore.llm.local import LocalBackend

    if options.structured_output != "auto":
        raise BackendUnavailable(
            "the embedded model decodes JSON stages under their schema itself (xgrammar); "
            "--structured-output is for servers"
        )
    return LocalBackend(options.model, options.base_url)


def openai(options: BackendOptions) -> Backend:
    from medstore.llm.openai_backend import OpenAIBackend

    return OpenAIBackend(
        options.model or os.environ.get("MEDSTORE_MODEL", "gpt-4o-mini"),
        options.base_url or configured_base_url(),
        options.timeout,
        api_key_env=options.api_key_env,
        structured_output=options.structured_output,
        max_reply_bytes=options.max_reply_bytes,
    )


def ollama(options: BackendOptions) -> Backend:
    from medstore.llm.ollama_backend import OllamaBackend

    return OllamaBackend(
        options.model or os.environ.get("MEDSTORE_MODEL", "llama3.1"),
        options.base_url or os.environ.get("MEDSTORE_BASE_URL"),
        options.timeout,
        structured_output=options.structured_output,
        max_reply_bytes=options.max_reply_bytes,
    )


@hookimpl
def register_backends(register: Callable[[str, Callable[[BackendOptions], Backend]], None]) -> None:
    register("local", local)
    register("openai", openai)
    register("ollama", ollama)
