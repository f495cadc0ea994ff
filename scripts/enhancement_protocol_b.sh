#!/usr/bin/env bash
# Seed 001's enhancement protocol with a speakerid encoder (docs/enhancement.md, protocol b):
# a 400-speaker built-in corpus split three ways, speaker-disjoint:
#   encoder   - the first 150 training speakers (sorted ids) train the default recipe,
#   enhancer  - the other training speakers (never heard by the encoder) train each enhancer,
#   test      - 100 held-out speakers, the corpus's veri_test2.txt.
# Then all nine enhancement losses. Everything lands in logs/protocol_b/ (times in times.tsv);
# `python scripts/enhancement_table.py logs/protocol_b` prints the table.
# Usage: bash scripts/enhancement_protocol_b.sh [loss ...]   (default: all nine)
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=offline HF_HUB_OFFLINE=1
BIN=.venv/bin
OUT=logs/protocol_b
STORE=data/embeddings/protocol_b
mkdir -p "$OUT"
QUIET=(callbacks.rich_progress_bar=null trainer.enable_progress_bar=false)
DATA=(data.corpus.root=data/synthetic400 data.corpus.num_speakers=400 data.corpus.test_speakers=100)
timed() {  # name, command...
  local name=$1 start=$SECONDS; shift
  "$@" > "$OUT/$name.log" 2>&1
  printf '%s\t%s\n' "$name" "$((SECONDS - start))" >> "$OUT/times.tsv"
}

if [ ! -f "$OUT/encoder/checkpoints/last.ckpt" ]; then
  rm -rf "$OUT/encoder"
  timed encoder "$BIN/speakerid-train" "${DATA[@]}" data.max_speakers=150 data.num_speakers=150 \
    trainer.max_epochs=10 "${QUIET[@]}" "hydra.run.dir=$OUT/encoder"
fi
[ -f "$STORE/meta.json" ] || timed embed "$BIN/speakerid-embed" \
  "ckpt_path=$OUT/encoder/checkpoints/last.ckpt" "output=$STORE" crops=0  # whole utterances, as protocol (a)
# The enhancer's utterances: training-side speakers the encoder did not train on.
"$BIN/python" - "$OUT/encoder/checkpoints/last.ckpt" "$STORE" "$OUT/enhancer_train.txt" <<'PY'
import sys
import hydra
from speakerid.data.embedding_store import EmbeddingStore
from speakerid.inference import load_checkpoint

config = load_checkpoint(sys.argv[1])["speakerid"]["config"]  # resolved when training
dm = hydra.utils.instantiate(config["data"])
dm.setup("fit")
encoder = set(dm.speakers)
tested = {u.speaker for u in dm.test_trials.utterances}
store = EmbeddingStore(sys.argv[2])
rows = [(s, i) for i, s in zip(store.ids, store.speakers) if s not in encoder | tested]
with open(sys.argv[3], "w") as f:
    f.writelines(f"{s} {i}.wav\n" for s, i in rows)
print(f"encoder: {len(encoder)} speakers; enhancer: {len({s for s, _ in rows})} speakers, "
      f"{len(rows)} utterances; test: {len(tested)} speakers")
PY

LOSSES=("$@")
[ ${#LOSSES[@]} -gt 0 ] || LOSSES=(mse mae cosine mse_cosine softmax mse_softmax triplet_cosine domain_adaptation domain_adaptation_mse)
for loss in "${LOSSES[@]}"; do
  rm -rf "${OUT:?}/$loss"
  choice="enhance_loss=$loss"  # the domain-adaptation losses want one speaker per batch: their experiments
  [[ $loss == domain_adaptation* ]] && choice="experiment=enhance_$loss"
  timed "$loss" "$BIN/speakerid-enhance" "data.store=$STORE" "data.train_list=$OUT/enhancer_train.txt" \
    data.num_speakers=134 "$choice" "${QUIET[@]}" "hydra.run.dir=$OUT/$loss"
done
