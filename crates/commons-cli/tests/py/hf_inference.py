"""`huggingface_hub.InferenceClient` against a Commons hub's inference route, as a user would
call a hosted model: `python hf_inference.py IMAGE_MODEL_URL TEXT_MODEL_URL DIGIT_PNG DIGIT`.
Run with HF_TOKEN set. Prints `ALL CHECKS PASSED` at the end.
"""

import sys

from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from checks import check


def main():
    image_model, text_model, png, digit = sys.argv[1:5]

    images = InferenceClient(model=image_model)
    # Without parameters the client sends the file's bytes as the body.
    classes = images.image_classification(png)
    check(len(classes) == 10, f"ten digits scored: {classes}")
    check(classes[0].label == digit, f"the digit is {digit}: {classes[0]}")
    check(abs(sum(c.score for c in classes) - 1.0) < 1e-4, "probabilities sum to one")
    check(all(a.score >= b.score for a, b in zip(classes, classes[1:])), "most likely first")
    # With parameters it sends JSON with the image in base64.
    top = images.image_classification(png, top_k=3)
    check([c.label for c in top] == [c.label for c in classes[:3]], f"top_k=3 keeps the three most likely: {top}")
    with open(png, "rb") as f:
        check(images.image_classification(f.read())[0].label == digit, "bytes in memory too")

    texts = InferenceClient(model=text_model)
    answer = texts.text_classification("This phone is great, the battery lasts for days and I love it.")
    check({c.label for c in answer} == {"positive", "negative"}, f"the recipe's class names: {answer}")
    check(abs(sum(c.score for c in answer) - 1.0) < 1e-4, "probabilities sum to one")
    check(len(texts.text_classification("Terrible, it broke after a day.", top_k=1)) == 1, "top_k=1")

    try:
        texts.text_classification("")
        check(False, "empty text is refused")
    except HfHubHTTPError as e:
        check(e.response.status_code == 400 and "empty" in str(e), f"empty text is refused clearly: {e}")
    print("ALL CHECKS PASSED")


main()
