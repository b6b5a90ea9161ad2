"""Offline batch generation with the default model (SmolLM2-135M-Instruct) on the best device.

    python examples/offline_generate.py            # or PLINTH_DEVICE=cpu python ...
"""

from plinth import LLM, SamplingParams


def main() -> None:
    llm = LLM(max_model_len=1024)
    prompts = ["The capital of France is", "def fibonacci(n):", "Three facts about the Moon:"]
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=48, seed=0)
    for out in llm.generate(prompts, params):
        print(f"{out.prompt!r} -> {out.outputs[0].text!r}")
    answer = llm.chat([{"role": "user", "content": "What is the capital of France?"}],
                      SamplingParams(temperature=0, max_tokens=32))[0]
    print("chat:", answer.outputs[0].text)


if __name__ == "__main__":
    main()
