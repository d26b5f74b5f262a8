#!/usr/bin/env bash
# The mlp backend's checks on a CUDA GPU, in one run of a few minutes: the GPU tests (a mixed stack
# against each member alone on the device; the shared update rule against torch.optim's CPU kernels),
# then benchmarks/population.py on the device (trials per minute of --batch-trials K against one trial
# at a time on the same GPU: K = 4, 16, 64 on digits, K = 4, 16 on the 50,000-row set).
#
# It needs only PyTorch, scikit-learn, pandas and pytest (no install: MLflow and the strategies are not
# used), so it runs on a bare GPU machine from the repository root:
#     bash benchmarks/gpu_check.sh            # results and logs in $OUT, or .hpt/gpu-check
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=core:plugins PYTHONUNBUFFERED=1
out=${OUT:-.hpt/gpu-check}
mkdir -p "$out"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/device.txt"
python3 -m pytest --noconftest -p no:cacheprovider -n 0 -q tests/test_torch_gpu.py 2>&1 | tee "$out/tests.txt"
population() {
    timeout "${POPULATION_SECONDS:-240}" python3 benchmarks/population.py --device cuda --repeats 1 \
        --cache "$out/population-cuda.json" "$@" 2>&1 | tee -a "$out/population.txt"
}
population --datasets digits --ks 4,16,64
population --datasets classification --ks 4,16
