#!/bin/bash
# greensim issue 4: TP=2 profiles (NCCL all-reduce per layer) on the lent 2-GPU machine.
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
P=/tmp/prof
mkdir -p $P
{ date -u; nvidia-smi; nvidia-smi topo -m; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.device_count())"; } > $OUT/env.txt 2>&1
timeout 300 python3 profiler.py --shapes shapes.json --out $P --window-s 0.2 --idle-s 2 --model-budget-s 70 --device cuda:0 --tp 2 --no-mixed --budget-s 150 \
  --models Llama-3.1-8B,Llama-2-13B > $OUT/tp2.log 2>&1
tar czf $OUT/profiles.tar.gz -C $P .
date -u
