#!/usr/bin/env bash
# The whole model zoo in one call on one GPU: every registry entry trained (the gpu profile's models and
# lengths), saved, loaded back and measured, plus the metrics bench.
#
#   scripts/zoo-gpu.sh OUT_DIR [SECONDS]          (make zoo-gpu ZOO_OUT=OUT_DIR)
#
# Entries train as parallel processes on the one GPU (each is launch-bound at these sizes, so they overlap
# well). One still training after SECONDS (default 330) stops there and is saved and measured, marked
# train_status 'interrupted' with the steps it took (the longest, the PixelCNN, trained in 266 s alone on an
# H200). Saving and measuring take up to a minute or two more, so the call fits a 9-minute device lease.
# Writes at most 8 files of at most 16 MiB into OUT_DIR:
#   zoo.tgz.NN   the zoo folder (safetensors + manifest per entry) as one gzipped tar in 15 MiB parts
#   bench.jsonl  one benchmarks.jsonl line per entry (model 'zoo', measured on the saved file) + the metrics bench
#   logs.tar     each run's log, the timings, nvidia-smi
# Land it here with: make zoo-install ZOO_IN=OUT_DIR. Needs only torch, torchvision, torchmetrics,
# safetensors, scikit-learn, scipy, matplotlib and tqdm: no jupyter. Fashion-MNIST is read through
# $COURSE_SYSTEM_DATA / $COURSE_DATA as everywhere else.
set -uo pipefail
out=${1:?usage: scripts/zoo-gpu.sh OUT_DIR [SECONDS]}
limit=${2:-330}
py=${PYTHON:-python3}
device=${ZOO_DEVICE:-cuda}
work=$(mktemp -d)
mkdir -p "$out" "$work/zoo" "$work/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
# the data folder is filled once, before the runs that read it start together
"$py" -c "from course_lib.data import ensure_dataset; ensure_dataset('fashion-mnist', download=False)" || exit 1
: >"$work/metrics.jsonl"
for bench in ${ZOO_BENCH-metrics}; do  # the benches with no zoo entry (ZOO_BENCH="" runs none)
  "$py" -m course_lib.bench "$bench" --profile "${ZOO_PROFILE:-gpu}" --device "$device" \
    >>"$work/metrics.jsonl" 2>>"$work/logs/benches.err"
done &
metrics=$!
# shellcheck disable=SC2086
"$py" -m course_lib.zoo train ${ZOO_ENTRIES:-all} --device "$device" --out "$work/zoo" --jobs 16 --time-limit "$limit" \
  ${ZOO_PROFILE:+--profile $ZOO_PROFILE} ${ZOO_STEPS:+--steps $ZOO_STEPS} 2>&1 | tee "$work/logs/zoo-train.txt"
wait "$metrics"
# one folder per entry when several train side by side; one entry alone (ZOO_ENTRIES=NAME) writes into zoo/ itself
cat "$work"/zoo/bench.jsonl "$work"/zoo/*/bench.jsonl >"$out/bench.jsonl" 2>/dev/null
grep -h "^{" "$work/metrics.jsonl" >>"$out/bench.jsonl"
nvidia-smi >"$work/logs/nvidia-smi.txt" 2>&1
cp -r "$work/zoo/logs" "$work/logs/entries" 2>/dev/null
rm -rf "$work/zoo/logs"
echo "zoo-gpu finished in $(( $(date +%s) - start )) s" | tee -a "$work/logs/zoo-train.txt"
tar -C "$work" -cf "$out/logs.tar" logs
tar -C "$work/zoo" -cz . | split -b 15M -d - "$out/zoo.tgz."
ls -la "$out"
