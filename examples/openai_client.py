"""Talk to `plinth serve` with the official openai client.

    plinth serve                      # SmolLM2-135M-Instruct on 127.0.0.1:8000
    python examples/openai_client.py
"""

from __future__ import annotations

import os

from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=os.environ.get("PLINTH_API_KEY", "none"))
model = client.models.list().data[0].id

reply = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=32,
    temperature=0)
print(reply.choices[0].message.content)

stream = client.completions.create(model=model, prompt="Once upon a time", max_tokens=32, stream=True,
                                   stream_options={"include_usage": True})
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].text, end="", flush=True)
    elif chunk.usage:
        print(f"\n[{chunk.usage.completion_tokens} tokens]")
