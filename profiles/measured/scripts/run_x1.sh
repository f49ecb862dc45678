#!/bin/bash
# greensim issue 4: measured profiles on the lent 1-GPU H100 machine (serial, incremental files).
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1
GPU=${GPU:-H100-SXM}
P=/tmp/prof
mkdir -p $P
{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,pci.bus_id --format=csv;
  python3 -c "import torch, pynvml; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"; } > $OUT/env.txt 2>&1
timeout 520 python3 profiler.py --shapes shapes.json --gpu $GPU --out $P --window-s 0.2 --idle-s 2 --model-budget-s 35 --device cuda:0 --budget-s 470 \
  --models Llama-3.1-8B,Llama-2-7B,Llama-2-13B,Qwen2.5-7B,OPT-6.7B,OPT-13B,Llama-3.2-1B,Llama-3.2-3B,Qwen2.5-0.5B,OPT-1.3B,OPT-125M > $OUT/gpu0.log 2>&1
tar czf $OUT/profiles.tar.gz -C $P .
date -u
