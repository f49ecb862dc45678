#!/bin/bash
# issue 15, second GPU: like run.sh, output tarred every 15 s (few files come back per call)
cd "$(dirname "$0")"
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1
GPU=$1; BUDGET=$2; MODELS=$3; EXTRA=${4:-}
cp ../../greensim/tools/{profiler,torch_decoder,backend}.py .
P=/tmp/prof; mkdir -p $P
{ date -u; nvidia-smi; python3 h2d.py; } > $P/env_$GPU.txt 2>&1
( while true; do tar czf $OUT/prof.tgz -C $P . 2>/dev/null; sleep 15; done ) &
timeout $((BUDGET+45)) python3 profiler.py --shapes shapes.json --gpu $GPU --out $P --window-s 0.2 --power-s 1.0 --idle-s 2 --settle-s 3 \
   --device cuda:0 --budget-s $BUDGET --models $MODELS $EXTRA > $P/log_$GPU.txt 2>&1
echo "rc=$?" >> $P/log_$GPU.txt
tar czf $OUT/prof.tgz -C $P .
tail -3 $P/log_$GPU.txt
