#!/bin/bash
# issue 15: H200 re-measurement with the current profiler; outputs tarred every 15 s
# usage (device tool, kind nvidia-h200, needs_h200 for the 70B model): copy this folder with shapes.json
# (python make_shapes.py <models> > shapes.json) and run
#   bash run_issue15_h200.sh H200 470 Llama-3.1-70B,Llama-3.1-8B,...,Llama-2-13B A "--model-budget-s 50"
# Run 2026-12-06 20:18-20:29 UTC (runs A and B, see profiles/measured/PROVENANCE.md).
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1
GPU=$1; BUDGET=$2; MODELS=$3; TAG=$4; EXTRA=${5:-}
cp ../../greensim/tools/{profiler,torch_decoder,backend}.py .
P=/tmp/prof; mkdir -p $P
{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,power.limit,power.default_limit,clocks.max.sm,pci.bus_id --format=csv;
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; python3 h2d.py; } > $P/env_${GPU}_$TAG.txt 2>&1
( while true; do tar czf $OUT/prof_$TAG.tgz -C $P . 2>/dev/null; sleep 15; done ) &
timeout $((BUDGET+60)) python3 profiler.py --shapes shapes.json --gpu $GPU --out $P --window-s 0.2 --power-s 1.0 --idle-s 2 --settle-s 3 \
   --device cuda:0 --budget-s $BUDGET --models $MODELS $EXTRA > $P/log_${GPU}_$TAG.txt 2>&1
echo "rc=$?" >> $P/log_${GPU}_$TAG.txt; date -u >> $P/log_${GPU}_$TAG.txt
kill %1 2>/dev/null; sleep 1
tar czf $OUT/prof_$TAG.tgz -C $P .
tail -5 $P/log_${GPU}_$TAG.txt
