#!/usr/bin/env bash
# The mlp backend's checks on a CUDA GPU, in one run of under 8 minutes; each part writes its results to
# $OUT (or .hpt/gpu-check) as it goes, and a part that runs out of its time leaves what it measured:
#  1. tests/test_torch_gpu.py on the device (a mixed stack against plain PyTorch; the shared update rule);
#  2. benchmarks/population.py: --batch-trials K against one trial at a time on the same GPU, digits at
#     K = 1, 16, 64, 256, 1024 and the 50,000-row set at K = 16, 64, 256 (the sequential side capped at 64
#     and 16 trials: at K = 1024 one at a time would take longer than the whole check);
#  3. benchmarks/population_profile.py: kernels, copies and the GPU's busy share of one K = 64 and K = 256 batch;
#  4. benchmarks/population_e2e.py: a whole random-search study's trials per minute one at a time on the GPU,
#     with --batch-trials 64 and auto, and with --workers 16 on the same machine's CPU.
# Goals on an H200-class GPU: 20x at K = 64 and 50x at K = 256 over one at a time, the GPU busy at least half
# of a K = 256 batch, --batch-trials auto 3x the trials per minute of --workers 16.
#
# It needs PyTorch, scikit-learn, pandas, scipy and pytest, not MLflow (nothing is tracked), so it runs on a
# bare GPU machine from the repository root:
#     bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.hpt/gpu-check}
mkdir -p "$out"
# without an install, hpt's plugins are found through a dist-info holding pyproject.toml's entry points
site="$out/site" && mkdir -p "$site/hpt_checkout-0.dist-info"
printf 'Metadata-Version: 2.1\nName: hpt-checkout\nVersion: 0\n' > "$site/hpt_checkout-0.dist-info/METADATA"
python3 -c "import tomllib; eps = tomllib.load(open('pyproject.toml', 'rb'))['project']['entry-points']['hpt']
print('[hpt]'); [print(f'{k} = {v}') for k, v in eps.items()]" > "$site/hpt_checkout-0.dist-info/entry_points.txt"
export PYTHONPATH="core:plugins:$site" PYTHONUNBUFFERED=1
part() {  # part SECONDS FILE COMMAND...: run a part under a time limit, its output shown and kept
    local seconds=$1 file=$2
    shift 2
    echo "== $* (at most ${seconds}s)" | tee -a "$out/$file"
    timeout "$seconds" "$@" 2>&1 | tee -a "$out/$file"
    return "${PIPESTATUS[0]}"
}
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/device.txt"
if ! part 60 tests.txt python3 -m pytest --noconftest -p no:cacheprovider -n 0 -q tests/test_torch_gpu.py; then
    echo "== the GPU tests failed: the benchmarks run without CUDA graphs" | tee -a "$out/tests.txt"
    export HPT_CUDA_GRAPHS=0
fi
part 150 population.txt python3 benchmarks/population.py --device cuda --repeats 1 --datasets digits \
    --ks 1,16,64,256,1024 --sequential-trials 64 --cache "$out/population-cuda.json"
part 100 population.txt python3 benchmarks/population.py --device cuda --repeats 1 --datasets classification \
    --ks 16,64,256 --large-sequential-trials 16 --cache "$out/population-cuda.json"
part 40 profile.txt python3 benchmarks/population_profile.py --device cuda --ks 64,256
HPT_CUDA_GRAPHS=0 part 25 profile.txt python3 benchmarks/population_profile.py --device cuda --ks 64  # graphs off
part 100 e2e.txt python3 benchmarks/population_e2e.py --device cuda --workers 16 \
    --modes one:32,batch64:256,batchauto:256,workers:256
