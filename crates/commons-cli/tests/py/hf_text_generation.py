"""`huggingface_hub.InferenceClient.text_generation` against a Commons character language model,
as a user would call a hosted one: `python hf_text_generation.py MODEL_URL PROMPT EXPECTED`, where
EXPECTED is what `commons generate` wrote for the prompt with 60 characters, seed 3 and its temperature 0.8. Run with
HF_TOKEN set. Prints `ALL CHECKS PASSED` at the end.
"""

import sys
import warnings

from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from checks import check


def main():
    url, prompt, expected = sys.argv[1:4]
    client = InferenceClient(model=url)
    text = client.text_generation(prompt, max_new_tokens=60, seed=3, temperature=0.8)
    check(text == expected, f"the prompt and the same 60 characters as `commons generate`: {text!r}")
    continuation = client.text_generation(prompt, max_new_tokens=60, seed=3, temperature=0.8, return_full_text=False)
    check(continuation == expected[len(prompt):], f"return_full_text=False: the continuation only: {continuation!r}")
    other = client.text_generation(prompt, max_new_tokens=60, seed=4, temperature=0.8)
    check(other != text and len(other) == len(text), "another seed, another text of the same length")
    # A parameter these models cannot honour is refused by name; the client then asks again
    # without it, and says so.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        retried = client.text_generation(prompt, max_new_tokens=60, seed=3, temperature=0.8, top_p=0.9)
    check(retried == text, f"top_p dropped on the client's retry: {retried!r}")
    check(any("top_p" in str(w.message) for w in caught), f"the client warned that top_p was ignored: {[str(w.message) for w in caught]}")

    for kwargs, status, words in [
        ({"max_new_tokens": 1_000_000}, 400, "max_new_tokens"),
        ({"max_new_tokens": 10, "temperature": 0.0}, 400, "temperature"),
        ({"prompt": "a" * 100_000, "max_new_tokens": 10}, 400, "prompt of 100000 bytes"),
    ]:
        try:
            client.text_generation(kwargs.pop("prompt", prompt), **kwargs)
            check(False, f"{kwargs} is refused")
        except HfHubHTTPError as e:
            check(e.response.status_code == status and words in str(e), f"{kwargs} is refused clearly: {e}")
    print("ALL CHECKS PASSED")


main()
