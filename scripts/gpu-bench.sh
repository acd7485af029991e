#!/usr/bin/env bash
# The gpu profile of every family's bench, in one call on one GPU, with the trained weights kept.
#
#   scripts/gpu-bench.sh OUT_DIR [SECONDS]
#
# Runs the benches as parallel processes on the one GPU (each is launch-bound at these sizes, so
# they overlap well). A run still training after SECONDS (default 400) gets SIGINT: the shared loop
# stops there, and the bench evaluates and reports what it has (its line says train_status
# 'interrupted' and the steps it took); GRACE seconds later (default 90) it is killed. The whole
# call then fits a 9-minute device lease. Writes into OUT_DIR: bench.jsonl (one bench line per run, as benchmarks.jsonl
# takes them), weights.tgz.NN (the models each bench trained, as course checkpoints: `bench --save`),
# and logs.tar (each run's stderr, and how it ended). Needs only torch, torchvision, torchmetrics,
# safetensors, scikit-learn, scipy and matplotlib: no jupyter. Fashion-MNIST is read through
# $COURSE_SYSTEM_DATA / $COURSE_DATA as everywhere else.
set -uo pipefail
out=${1:?usage: scripts/gpu-bench.sh OUT_DIR [SECONDS]}
limit=${2:-400}
grace=${GRACE:-90}
py=${PYTHON:-python3}
work=$(mktemp -d)
mkdir -p "$out" "$work/weights" "$work/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2

jobs=(
  "dcgan --loss non-saturating" "dcgan --loss hinge" "dcgan --loss least-squares" "dcgan --loss wgan-gp"
  "cgan" "vae" "pixelcnn" "metrics"
)
if [ -n "${GPU_BENCH_JOBS:-}" ]; then IFS=';' read -r -a jobs <<<"$GPU_BENCH_JOBS"; fi  # e.g. "cgan;vae": a rerun of some
start=$(date +%s)
# the data folder is filled once, before the runs that read it start together
"$py" -c "from course_lib.data import ensure_dataset; ensure_dataset('fashion-mnist', download=False)" || exit 1
pids=()
for i in "${!jobs[@]}"; do
  # shellcheck disable=SC2086
  ( timeout -s INT -k "$grace" "$limit" "$py" -m course_lib.bench ${jobs[$i]} --profile ${GPU_BENCH_PROFILE:-gpu} --device ${GPU_BENCH_DEVICE:-cuda} --save "$work/weights" \
      >"$work/job$i.jsonl" 2>"$work/logs/job$i.err"
    echo "${jobs[$i]}: exit $? after $(( $(date +%s) - start )) s" >>"$work/logs/status.txt" ) &
  pids+=($!)
done
wait "${pids[@]}"
grep -h "^{" "$work"/job*.jsonl >"$out/bench.jsonl"  # the loop also prints a line when interrupted
nvidia-smi >"$work/logs/nvidia-smi.txt" 2>&1
ls -la "$work/weights" >"$work/logs/weights.txt"
tar -C "$work" -cf "$out/logs.tar" logs
# A device call brings back at most 8 files of 16 MiB: the weights travel as one gzipped tar in 15 MiB
# parts (`cat weights.tgz.* | tar -xz` joins them).
tar -C "$work/weights" -cz . | split -b 15M -d - "$out/weights.tgz."
cat "$work/logs/status.txt"
echo "gpu-bench finished in $(( $(date +%s) - start )) s"
