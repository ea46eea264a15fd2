//! Trying a published model: `commons predict` on an image file (from a model directory and from
//! a repository on the hub), and the hub's inference route through the official
//! `huggingface_hub.InferenceClient` for an image and a text classifier, with bad input,
//! private models and models that are not classifiers refused clearly; `commons generate` with a
//! character language model; the route's bounds on bodies held in memory.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{BIN, Hub, assert_python_passed, mnist_png, python_script, python_venv};

fn train(recipe: &str, data: &Path, out: &Path, overrides: &[&str]) -> PathBuf {
    let mut command = Command::new(BIN);
    command.args(["train", recipe, "--data"]).arg(data).arg("--out").arg(out).args(["--set", "training.threads=1"]);
    for o in overrides {
        command.args(["--set", o]);
    }
    let trained = command.output().expect("run commons train");
    assert!(trained.status.success(), "commons train {recipe} failed: {}", String::from_utf8_lossy(&trained.stderr));
    out.to_path_buf()
}

/// A request the route must refuse: path, token, content type, body, the status expected and
/// words its message must hold.
type Refusal<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, u16, &'a str);

fn json_of(out: &std::process::Output, what: &str) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn published_classifiers_answer_commons_predict_and_the_inference_client() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = commons_data::fetch("mnist").expect("MNIST must be fetchable");
    let sentiment = commons_data::fetch("uci-sentiment").expect("UCI sentiment must be fetchable");
    // One epoch each: the MLP reaches ~95% on MNIST's test set, the small LSTM beats chance.
    let mnist_model = train("keras-mnist-mlp", &mnist, &tmp.path().join("mnist-mlp"), &["training.epochs=1"]);
    let text_model = train("lstm-sentiment", &sentiment, &tmp.path().join("sentiment"), &["training.epochs=1", "layers.2.hidden=16"]);

    let images = commons_data::idx::read_images(&mnist.join("t10k-images-idx3-ubyte")).unwrap();
    let labels = commons_data::idx::read_labels(&mnist.join("t10k-labels-idx1-ubyte")).unwrap();
    let predict = |model: &Path, input: &Path| {
        Command::new(BIN).arg("predict").arg(model).arg("--input").arg(input).args(["--json", "--top-k", "3"]).output().unwrap()
    };
    // The first test images at their own size and at twice it (resized back to 28×28).
    for (index, scale) in [(0, 1), (1, 2), (2, 1)] {
        let png = tmp.path().join(format!("digit-{index}.png"));
        mnist_png(&images, index, scale, &png);
        let classes = json_of(&predict(&mnist_model, &png), "commons predict");
        assert_eq!(classes.len(), 3, "--top-k 3");
        assert_eq!(classes[0]["label"], labels[index].to_string(), "test image {index} at {scale}×: {classes:?}");
        assert!(classes[0]["score"].as_f64().unwrap() > 0.5, "{classes:?}");
    }
    let digit = tmp.path().join("digit-0.png");
    let not_an_image = tmp.path().join("not-an-image.png");
    std::fs::write(&not_an_image, "a digit, honestly").unwrap();
    let empty = tmp.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let generate = Command::new(BIN).arg("generate").arg(&mnist_model).args(["--prompt", "the "]).output().unwrap();
    let stderr = String::from_utf8_lossy(&generate.stderr);
    assert!(!generate.status.success() && stderr.contains("not a character language model"), "{stderr}");
    for (input, expected) in
        [(&not_an_image, "not an image"), (&empty, "the image is empty"), (&tmp.path().join("missing.png"), "cannot read the image")]
    {
        let answer = predict(&mnist_model, input);
        let stderr = String::from_utf8_lossy(&answer.stderr);
        assert!(!answer.status.success() && stderr.contains(expected), "{}: {stderr}", input.display());
        assert!(answer.stdout.is_empty(), "nothing on stdout for a refused input");
    }

    // Published on a hub: `commons predict` fetches the repository's model files.
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = hub.cli(hf_home.path(), args);
        assert!(out.status.success(), "commons {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    cli(&["repo", "create", "alice/mnist-mlp"]);
    cli(&["upload", "alice/mnist-mlp", mnist_model.to_str().unwrap()]);
    cli(&["repo", "create", "alice/sentiment", "--private"]);
    cli(&["upload", "alice/sentiment", text_model.to_str().unwrap()]);
    cli(&["repo", "create", "alice/just-a-readme"]);
    let readme = tmp.path().join("README.md");
    std::fs::write(&readme, "# Nothing to run\n").unwrap();
    cli(&["upload", "alice/just-a-readme", readme.to_str().unwrap()]);
    let classes = json_of(&cli(&["predict", "alice/mnist-mlp", "--input", digit.to_str().unwrap(), "--json"]), "predict from the hub");
    assert_eq!(classes.len(), 10);
    assert_eq!(classes[0]["label"], labels[0].to_string());

    // The official client against the inference route.
    let python = python_venv("huggingface_hub", "2.4.0");
    let out = python_script(&python, "hf_inference.py", &hub.url(), hf_home.path())
        .env("HF_TOKEN", &hub.token)
        .arg(format!("{}/hf-inference/models/alice/mnist-mlp", hub.url()))
        .arg(format!("{}/hf-inference/models/alice/sentiment", hub.url()))
        .arg(&digit)
        .arg(labels[0].to_string())
        .output()
        .unwrap();
    assert_python_passed(&out, "InferenceClient");

    // The model's page offers a "Try it" form, which classifies an uploaded image in the page.
    let page = |path: &str, token: Option<&str>| {
        let mut request = reqwest::blocking::Client::new().get(format!("{}{path}", hub.url())).header("accept", "text/html");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().unwrap();
        let cookie = answer.headers().get("set-cookie").map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
        (answer.status().as_u16(), answer.text().unwrap(), cookie)
    };
    let (status, card, cookie) = page("/alice/mnist-mlp", None);
    assert_eq!(status, 200);
    // A browser's visit: the form's token goes with the cookie it came with.
    let cookie = cookie.expect("a first visit gets the cookie its forms' tokens are checked against");
    let csrf = card.split(r#"name="csrf" value=""#).nth(1).and_then(|v| v.split('"').next()).expect("the form's token").to_string();
    assert!(card.contains(r#"action="/alice/mnist-mlp/try""#) && card.contains(r#"name="image""#), "a Try it form for an image: {card}");
    let (_, readme_card, _) = page("/alice/just-a-readme", None);
    assert!(!readme_card.contains("/try"), "no form where there is no model to run");
    let try_it = |path: &str, token: Option<&str>, field: &str, file_name: Option<&str>, value: &[u8]| {
        let boundary = "commons-test-boundary";
        // Bearer clients need no form token; a browser sends its cookie and the form's token.
        let csrf = if token.is_some() { "" } else { csrf.as_str() };
        let mut body =
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\n").into_bytes();
        match file_name {
            Some(f) => body.extend(
                format!("content-disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\ncontent-type: image/png\r\n\r\n").bytes(),
            ),
            None => body.extend(format!("content-disposition: form-data; name=\"{field}\"\r\n\r\n").bytes()),
        }
        body.extend_from_slice(value);
        body.extend(format!("\r\n--{boundary}--\r\n").bytes());
        let mut request = reqwest::blocking::Client::new()
            .post(format!("{}{path}", hub.url()))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        request = match token {
            Some(token) => request.bearer_auth(token),
            None => request.header("cookie", &cookie),
        };
        let answer = request.send().unwrap();
        (answer.status().as_u16(), answer.text().unwrap())
    };
    let digit_png = std::fs::read(&digit).unwrap();
    let (status, html) = try_it("/alice/mnist-mlp/try", None, "image", Some("digit.png"), &digit_png);
    assert_eq!(status, 200, "{html}");
    let first_row = html.split("<tbody><tr><td>").nth(1).expect("a table of classes");
    assert!(first_row.starts_with(&format!("{}</td>", labels[0])), "the digit's class first: {first_row}");
    assert_eq!(html.matches("<tr><td>").count(), 5, "the five likeliest classes");
    assert!(!html.contains(r#"class="generated""#), "a classifier's page shows no generated text: {html}");
    let (status, html) = try_it("/alice/mnist-mlp/try", None, "image", Some("digit.png"), b"not a picture");
    assert_eq!(status, 400);
    assert!(html.contains("not an image") && html.contains(r#"name="image""#), "the refusal on the form: {html}");
    // A private text model: its form is the owner's, not a stranger's.
    assert_eq!(page("/alice/sentiment/try", None).0, 404);
    assert_eq!(try_it("/alice/sentiment/try", None, "text", None, b"a wonderful film").0, 404);
    let (status, form, _) = page("/alice/sentiment/try", Some(&hub.token));
    assert_eq!(status, 200);
    assert!(form.contains(r#"name="text""#), "a text box for a text model: {form}");
    let (status, html) = try_it("/alice/sentiment/try", Some(&hub.token), "text", None, b"a wonderful film");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<td>positive</td>") && html.contains("<td>negative</td>") && html.contains("a wonderful film"), "{html}");

    // Refusals, each a JSON error that says why.
    let http = reqwest::blocking::Client::new();
    let post = |path: &str, token: Option<&str>, content_type: &str, body: Vec<u8>| {
        let mut request = http.post(format!("{}{path}", hub.url())).header("content-type", content_type).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().unwrap();
        let status = answer.status().as_u16();
        (status, answer.json::<serde_json::Value>().unwrap_or_default())
    };
    let png = std::fs::read(&digit).unwrap();
    let cases: Vec<Refusal<'_>> = vec![
        ("/hf-inference/models/alice/mnist-mlp", None, "image/png", b"GIF89a but not really".to_vec(), 400, "not an image"),
        (
            "/hf-inference/models/alice/mnist-mlp",
            None,
            "application/json",
            br#"{"inputs": "https://example.com/digit.png"}"#.to_vec(),
            400,
            "fetches no URLs",
        ),
        (
            "/hf-inference/models/alice/mnist-mlp",
            None,
            "application/json",
            br#"{"inputs": 7}"#.to_vec(),
            400,
            "an image model reads an image",
        ),
        (
            "/hf-inference/models/alice/sentiment",
            Some(hub.token.as_str()),
            "application/json",
            br#"{"inputs": "   "}"#.to_vec(),
            400,
            "the text is empty",
        ),
        ("/hf-inference/models/alice/sentiment", Some(hub.token.as_str()), "image/png", png.clone(), 400, "reads JSON"),
        ("/hf-inference/models/alice/sentiment", None, "application/json", br#"{"inputs": "great"}"#.to_vec(), 404, ""),
        ("/hf-inference/models/alice/just-a-readme", None, "image/png", png.clone(), 400, "holds no config.json"),
        ("/hf-inference/models/alice/missing", None, "image/png", png.clone(), 404, ""),
        ("/hf-inference/models/alice/mnist-mlp", None, "image/png", vec![0u8; 21 << 20], 413, "larger than"),
    ];
    for (path, token, content_type, body, status, message) in cases {
        let (got, error) = post(path, token, content_type, body);
        assert_eq!(got, status, "{path} ({content_type}): {error}");
        assert!(error["error"].is_string(), "{path}: a JSON error: {error}");
        assert!(error["message"].as_str().unwrap_or_default().contains(message), "{path}: {error}");
    }
}

#[test]
fn a_language_model_generates_text_by_cli_and_through_the_inference_client() {
    let tmp = tempfile::tempdir().unwrap();
    let gensim = commons_data::fetch("gensim-test-data").expect("gensim test data must be fetchable (pip gensim==4.4.0)");
    let corpus = gensim.join("lee_background.cor");
    let model = train(
        "char-rnn",
        &corpus,
        &tmp.path().join("char-rnn"),
        &["training.epochs=1", "layers.1.hidden=32", "data.dataset=gensim-lee-background"],
    );
    let model = model.to_str().unwrap();
    let generate = |args: &[&str]| Command::new(BIN).arg("generate").args(args).output().unwrap();

    let text = generate(&[model, "--prompt", "the ", "--length", "60", "--seed", "3"]);
    assert!(text.status.success(), "commons generate: {}", String::from_utf8_lossy(&text.stderr));
    let line =
        |out: std::process::Output| String::from_utf8(out.stdout).unwrap().strip_suffix('\n').map(str::to_string).unwrap_or_default();
    let text = line(text);
    let text = text.as_str();
    assert!(text.starts_with("the "), "the prompt comes first: {text:?}");
    assert_eq!(text.chars().count(), 64, "the prompt and 60 characters: {text:?}");
    let corpus_chars: std::collections::HashSet<char> = std::fs::read_to_string(&corpus).unwrap().chars().chain(['\n']).collect();
    assert!(text.chars().all(|c| corpus_chars.contains(&c)), "only characters of the corpus (no padding or unknown marks): {text:?}");
    let again = generate(&[model, "--prompt", "the ", "--length", "60", "--seed", "3"]);
    assert_eq!(line(again), text, "same seed, same text");
    let other = generate(&[model, "--prompt", "the ", "--length", "60", "--seed", "4"]);
    assert_ne!(line(other), text, "another seed, another text");

    // Refusals print nothing on stdout and say why on stderr.
    for (answer, expected) in [
        (Command::new(BIN).args(["predict", model, "--input", "a sentence"]).output().unwrap(), "not a classifier"),
        (generate(&[model, "--temperature", "0"]), "must be above 0"),
        (generate(&[model, "--length", "1000000"]), "at most 100000"),
    ] {
        let stderr = String::from_utf8_lossy(&answer.stderr);
        assert!(!answer.status.success() && stderr.contains(expected), "{expected}: {stderr}");
        assert!(answer.stdout.is_empty(), "{expected}: nothing on stdout, got {:?}", String::from_utf8_lossy(&answer.stdout));
    }

    // Published: `generate` fetches it; the inference route says it classifies nothing.
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| hub.cli(hf_home.path(), args);
    for args in [["repo", "create", "alice/char-rnn"].as_slice(), &["upload", "alice/char-rnn", model]] {
        let out = cli(args);
        assert!(out.status.success(), "commons {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let published = cli(&["generate", "alice/char-rnn", "--prompt", "the ", "--length", "60", "--seed", "3"]);
    assert_eq!(line(published), text, "the published model generates the same text");

    // The official client generates the same text through the inference route.
    let python = python_venv("huggingface_hub", "2.4.0");
    let out = python_script(&python, "hf_text_generation.py", &hub.url(), hf_home.path())
        .env("HF_TOKEN", &hub.token)
        .arg(format!("{}/hf-inference/models/alice/char-rnn", hub.url()))
        .arg("the ")
        .arg(text)
        .output()
        .unwrap();
    assert_python_passed(&out, "InferenceClient.text_generation");
    // Its page offers to write on from a beginning: what `commons generate` writes by default.
    let expected = line(generate(&[model, "--prompt", "the "]));
    let (html, cookie) = {
        let answer =
            reqwest::blocking::Client::new().get(format!("{}/alice/char-rnn", hub.url())).header("accept", "text/html").send().unwrap();
        let cookie = answer.headers().get("set-cookie").map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
        (answer.text().unwrap(), cookie.expect("a form's cookie"))
    };
    assert!(html.contains(r#"action="/alice/char-rnn/try""#) && html.contains("Write on"), "a Try it form to write on: {html}");
    let csrf = html.split(r#"name="csrf" value=""#).nth(1).and_then(|v| v.split('"').next()).expect("the form's token");
    let boundary = "commons-test-boundary";
    let form = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"text\"\r\n\r\nthe \r\n--{boundary}--\r\n"
    );
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/alice/char-rnn/try", hub.url()))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .header("cookie", cookie)
        .body(form)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let html = answer.text().unwrap();
    let written = html.split(r#"<p class="generated""#).nth(1).and_then(|p| p.split("</p>").next()).expect("what the model wrote");
    let written = written.split("</span>").nth(1).unwrap_or_default();
    let unescaped = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#x27;", "'"), ("&#39;", "'"), ("&#x2f;", "/"), ("&amp;", "&")]
        .iter()
        .fold(written.to_string(), |text, (from, to)| text.replace(from, to));
    assert_eq!(format!("the {unescaped}"), expected, "the page writes what `commons generate` writes");

    // Asked to classify, or sent bytes, it says what it is.
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/hf-inference/models/alice/char-rnn", hub.url()))
        .body("the weather")
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let error: serde_json::Value = answer.json().unwrap();
    assert!(error["message"].as_str().unwrap().contains("a language model reads JSON"), "{error}");
}

#[test]
fn inference_bodies_wait_for_a_slot_so_a_crowd_of_uploads_costs_bounded_memory() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    // One model turn, so two bodies in memory at once; a request waits a second for a slot.
    let env = vec![
        ("COMMONS_INFERENCE_CONCURRENCY".to_string(), "1".to_string()),
        ("COMMONS_INFERENCE_QUEUE_SECONDS".to_string(), "1".to_string()),
    ];
    let hub = Hub::start_with_env(&tmp.path().join("data"), "alice", &["--no-worker"], env);
    let out = Command::new(BIN)
        .args(["repo", "create", "alice/model"])
        .env("HF_ENDPOINT", hub.url())
        .env("HF_TOKEN", &hub.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let address = format!("127.0.0.1:{}", hub.port);
    // Two callers announce 10 MiB images and send them slowly: each holds a slot.
    let slow: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            write!(
                stream,
                "POST /hf-inference/models/alice/model HTTP/1.1\r\nHost: {address}\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n",
                10 << 20
            )
            .unwrap();
            stream.write_all(&[0u8; 4096]).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let http = reqwest::blocking::Client::new();
    let post = || {
        http.post(format!("{}/hf-inference/models/alice/model", hub.url()))
            .header("content-type", "image/png")
            .body(vec![1u8; 100])
            .send()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let busy = post();
    assert_eq!(busy.status().as_u16(), 503, "a third body waits for a slot, then is turned away");
    assert!(busy.headers().contains_key("retry-after"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "it waited its second first");
    let error: serde_json::Value = busy.json().unwrap();
    assert_eq!(error["code"], "Busy", "{error}");

    // The slow callers give up: their slots come back, and the next request is answered.
    for mut stream in slow {
        stream.shutdown(std::net::Shutdown::Both).ok();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).ok();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = post();
        if answer.status().as_u16() == 400 {
            let error: serde_json::Value = answer.json().unwrap();
            assert!(error["message"].as_str().unwrap().contains("holds no config.json"), "{error}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slots never came back: {}", answer.status());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
