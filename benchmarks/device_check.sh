#!/usr/bin/env bash
# The recorder's checks on a CUDA GPU, as one short script (about 3 minutes on an H200): what the CPU-only
# CI cannot run. From the repository root, on a machine whose python3 has torch (with CUDA) and h5py:
#
#     bash benchmarks/device_check.sh            # logs also go to $OUT when it is set
#
# 1. the device tests (tests/models/test_recorder_device.py: a CUDA run records what a CPU run records;
#    recording by hand never synchronizes the training thread, under torch.cuda.set_sync_debug_mode
#    'error'; a network rebuilt from a CUDA recording runs on the CPU) and the recorder's CPU tests;
# 2. the MNIST-size recording overhead with training on the GPU (benchmarks/bench_recording.py mnist).
# hud is not installed there (its torch pin is for CPU machines): the checkout is put on PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-$(mktemp -d)}"
nvidia-smi -L || true
python3 -c "import torch, h5py; print('torch', torch.__version__, 'h5py', h5py.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
status=0
python3 -m pytest -q -rs -p no:cacheprovider tests/models/test_recorder_device.py tests/models/test_recorder.py 2>&1 | tee "$out/pytest.log" || status=1
timeout 300 python3 benchmarks/bench_recording.py mnist --epochs 4 --repeats 3 --device cuda 2>&1 | tee "$out/bench_mnist_cuda.log" || status=1
echo "device_check: exit $status (logs in $out)"
exit $status
