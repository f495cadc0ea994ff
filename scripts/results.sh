#!/usr/bin/env bash
# Short CPU runs of every training experiment on the built-in corpus, as in docs/results.md:
# reduced widths, a few epochs; each run's folder is logs/results/<name>, timings in logs/results/times.tsv.
# Usage: bash scripts/results.sh [name ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=offline HF_HUB_OFFLINE=1
BIN=.venv/bin
OUT=logs/results
mkdir -p "$OUT"
COMMON=(trainer=cpu data.num_workers=2 data.pin_memory=false callbacks.rich_progress_bar=null trainer.enable_progress_bar=false)

run() {  # name, overrides...
  local name=$1; shift
  rm -rf "${OUT:?}/$name"  # a fresh run folder
  local start=$SECONDS
  "$BIN/speakerid-train" "${COMMON[@]}" "hydra.run.dir=$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
  printf '%s\t%s\n' "$name" "$((SECONDS - start))" >> "$OUT/times.tsv"
}

evaluate() {  # name: identification (top-1/top-5) and the full report
  "$BIN/speakerid-eval" "ckpt_path=$OUT/$1/checkpoints/last.ckpt" > "$OUT/$1.eval.log" 2>&1
}

want() { [ $# -eq 0 ] || [[ " $* " == *" $NAME "* ]]; }
ALL=("$@")

NAME=ge2e_audio_encoder; want "${ALL[@]}" && run $NAME experiment=$NAME model.backbone.depth=64 trainer.max_epochs=6
NAME=deep_speaker; want "${ALL[@]}" && run $NAME experiment=$NAME 'model.backbone.channels=[16,32,64,128]' trainer.max_epochs=5
NAME=deep_speaker_triplet; want "${ALL[@]}" && run $NAME experiment=$NAME 'model.backbone.channels=[16,32,64,128]' \
  "init_from=$OUT/deep_speaker/checkpoints/last.ckpt" trainer.max_epochs=3
NAME=hive_mtl; want "${ALL[@]}" && run $NAME experiment=$NAME 'model.backbone.backbone.channels=[16,32,64,128]' trainer.max_epochs=5
# the original's lr 1e-4 and 20 epochs of 64 do not move in a few hundred steps: lr 1e-3, batches of 32
IDEN=(model.backbone.width=16 model.backbone.embed_dim=128 features.num_mels=112 optimizer.lr=1e-3
  data.batch_size=32 trainer.max_epochs=20 scheduler.scheduler.step_size=8)
NAME=resnet18_vox1_iden; want "${ALL[@]}" && run $NAME experiment=$NAME "${IDEN[@]}" && evaluate $NAME
NAME=resnet18_vox1_iden_ccl; want "${ALL[@]}" && run $NAME experiment=$NAME "${IDEN[@]}" && evaluate $NAME
NAME=ecapa_aam; want "${ALL[@]}" && run $NAME experiment=$NAME model.backbone.channels=128 trainer.max_epochs=5
NAME=resnet34_aam; want "${ALL[@]}" && run $NAME experiment=$NAME model.backbone.width=8 \
  model.backbone.embed_dim=128 callbacks.margin_warmup.steps=200 data.batch_size=32 trainer.max_epochs=5
# The published recipes at CPU size: widths of the rows above, their schedules compressed to a few
# epochs (warm-up 1 epoch, margin 0 -> 0.2 over epochs 2-4, the last 3 epochs averaged), then the
# large-margin stage from the averaged weights for 1 epoch; one CPU process instead of 2 GPUs.
CPU_RECIPE=(trainer=cpu trainer.devices=1 data.num_workers=2 data.num_speakers=null)
WESPEAKER=(trainer.max_epochs=6 scheduler.warmup_epochs=1 callbacks.margin_schedule.increase_start_epoch=2
  callbacks.margin_schedule.fix_start_epoch=4 callbacks.average.num=3)
ECAPA_CPU=(model.backbone.channels=128 model.backbone.embed_dim=128 model.backbone.attention_channels=64
  model.backbone.se_channels=64)
RESNET_CPU=(model.backbone.width=8 model.backbone.embed_dim=128)
NAME=wespeaker_ecapa512; want "${ALL[@]}" && run $NAME experiment=$NAME "${CPU_RECIPE[@]}" "${WESPEAKER[@]}" "${ECAPA_CPU[@]}"
NAME=wespeaker_ecapa512_lm; want "${ALL[@]}" && run $NAME experiment=$NAME "${CPU_RECIPE[@]}" "${ECAPA_CPU[@]}" \
  trainer.max_epochs=1 "init_from=$OUT/wespeaker_ecapa512/checkpoints/averaged.ckpt"
NAME=wespeaker_resnet34; want "${ALL[@]}" && run $NAME experiment=$NAME "${CPU_RECIPE[@]}" "${WESPEAKER[@]}" "${RESNET_CPU[@]}" \
  data.batch_size=32
NAME=speechbrain_ecapa; want "${ALL[@]}" && run $NAME experiment=$NAME "${CPU_RECIPE[@]}" "${ECAPA_CPU[@]}" \
  trainer.max_epochs=1 scheduler.step_size=36
echo "done: $OUT"
