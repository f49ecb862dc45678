#!/bin/bash
# greensim issue 4: the 70B models on one H200 (weights ~131 GiB).
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1
P=/tmp/prof
mkdir -p $P
{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,pci.bus_id --format=csv;
  python3 -c "import torch, pynvml; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"; } > $OUT/env.txt 2>&1
timeout 330 python3 profiler.py --shapes shapes.json --gpu H200 --out $P --window-s 0.2 --idle-s 2 --model-budget-s 60 --device cuda:0 --budget-s 150 \
  --models Llama-3.1-70B,Llama-2-70B > $OUT/gpu0.log 2>&1
tar czf $OUT/profiles.tar.gz -C $P .
date -u
