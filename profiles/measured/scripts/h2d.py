"""Host<->device copy bandwidth, pinned and pageable, 1 GiB, CUDA events (median of 5)."""
import statistics, torch
n = 1 << 30
dev = torch.device("cuda:0")
d = torch.empty(n, dtype=torch.uint8, device=dev)
for pinned in (True, False):
    h = torch.empty(n, dtype=torch.uint8, pin_memory=pinned)
    for name, fn in (("h2d", lambda: d.copy_(h, non_blocking=pinned)), ("d2h", lambda: h.copy_(d, non_blocking=pinned))):
        fn(); torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); fn(); b.record(); torch.cuda.synchronize()
            ts.append(a.elapsed_time(b) * 1e-3)
        print(f"{name} pinned={pinned} bytes={n} median_s={statistics.median(ts):.5f} GBps={n / statistics.median(ts) / 1e9:.2f}")
