#!/bin/bash
# issue 15: kernel-level profiles (CUDA graphs every phase, verify steps, >=1.5 s NVML power windows)
# usage: bash .devwork/prof15/run.sh <GPU label> <budget s> <models...>
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1
GPU=$1; BUDGET=$2; MODELS=$3; EXTRA=${4:-}
cp ../../greensim/tools/{profiler,torch_decoder,backend}.py .
P=$OUT/prof; mkdir -p $P
{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,power.limit,power.default_limit,clocks.max.sm,pci.bus_id,pcie.link.gen.max,pcie.link.width.max --format=csv;
  python3 -c "import torch, pynvml; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"; } > $OUT/env_$GPU.txt 2>&1
python3 h2d.py > $OUT/h2d_$GPU.txt 2>&1
timeout $((BUDGET+60)) python3 profiler.py --shapes shapes.json --gpu $GPU --out $P --window-s 0.2 --power-s 1.2 --idle-s 2 --settle-s 3 \
   --device cuda:0 --budget-s $BUDGET --models $MODELS $EXTRA > $OUT/log_$GPU.txt 2>&1
echo "rc=$?" >> $OUT/log_$GPU.txt
date -u >> $OUT/log_$GPU.txt
