#!/bin/bash
# greensim issue 4: measured profiles on the lent 2-GPU H100 machine.
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
GPU=${GPU:-H100-SXM}
P=/tmp/prof
mkdir -p $P
{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,pci.bus_id --format=csv;
  python3 -c "import torch, pynvml; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"; } > $OUT/env.txt 2>&1
C="python3 profiler.py --shapes shapes.json --gpu $GPU --out $P --window-s 0.3 --idle-s 2 --model-budget-s 60"
timeout 330 $C --device cuda:0 --budget-s 270 --models Llama-2-13B,OPT-13B,Llama-3.1-8B,Qwen2.5-7B,Qwen2.5-0.5B,OPT-125M > $OUT/gpu0.log 2>&1 &
A=$!
timeout 330 $C --device cuda:1 --budget-s 270 --models Llama-2-7B,OPT-6.7B,Llama-3.2-3B,Llama-3.2-1B,OPT-1.3B > $OUT/gpu1.log 2>&1 &
B=$!
wait $A; wait $B
if [ "${TP2:-1}" = 1 ]; then
  timeout 170 $C --device cuda:0 --tp 2 --budget-s 100 --models Llama-3.1-8B,Llama-2-13B > $OUT/tp2.log 2>&1
fi
tar czf $OUT/profiles.tar.gz -C $P .
ls -R $P | head -50
date -u
