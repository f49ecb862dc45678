"""A hand-written decoder with random weights, the torch :class:`~greensim.tools.profiler.Backend`.

Needs torch (``pip install 'greensim[profile]'``); nothing else in greensim imports it.

Model: per layer a fused QKV projection (GQA), rotary embedding (Llama/Qwen; OPT uses a
learned position table, here an added vector), ``scaled_dot_product_attention``, an output
projection, and a gated SiLU MLP with fused gate/up (Llama/Qwen) or a ReLU MLP (OPT);
RMSNorm or LayerNorm; LM head on the last token of a prefill, on every decode token and on
every new token of a speculative verify step. RoPE and SiLU-and-multiply are compiled into
one kernel each with ``torch.compile`` where available (``GREENSIM_PROFILE_FUSE=0``: eager).
KV cache: one contiguous ``[batch, kv_heads, capacity, head_dim]`` K and V per layer. With
``tp > 1`` heads, KV heads, MLP columns and the vocabulary are split over the GPUs and an
NCCL all-reduce follows the output and down projections (Megatron-style), as in vLLM.

Compared to vLLM: no paged attention (contiguous cache), no sampler, no scheduler or
tokenizer CPU work, one sequence per prefill, no quantisation. Every phase is replayed as a
CUDA graph, so the times are GPU kernel time without Python launch cost: what an engine's
kernels take. The engine's own CPU time (scheduling, sampling, eager launches) is modelled
separately (``performance.engine``, profiles/engines.yaml).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F

try:
    from greensim.tools.backend import Backend
except ImportError:  # standalone run next to backend.py
    from backend import Backend  # type: ignore

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _nvml():
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001  (no NVML: power columns become NaN)
        return None


class _Layer:
    def __init__(self, s: Mapping[str, Any], tp: int, dev, dt):
        h, hd = s["hidden_size"], s["head_dim"]
        self.nh, self.nkv = s["n_heads"] // tp, max(1, s["n_kv_heads"] // tp)
        self.hd = hd
        inter = s["intermediate_size"] // tp
        self.gated = s.get("gated_mlp", True)
        self.rms = s.get("norm", "rms") == "rms"
        w = lambda *shape: torch.randn(*shape, device=dev, dtype=dt) * 0.02  # noqa: E731
        self.wqkv = w((self.nh + 2 * self.nkv) * hd, h)
        self.wo = w(h, self.nh * hd)
        self.wup = w(inter * (2 if self.gated else 1), h)
        self.wdown = w(h, inter)
        self.n1 = torch.ones(h, device=dev, dtype=dt)
        self.n2 = torch.ones(h, device=dev, dtype=dt)
        self.bias = not self.rms  # OPT has biases
        if self.bias:
            self.bqkv = torch.zeros((self.nh + 2 * self.nkv) * hd, device=dev, dtype=dt)
            self.bup = torch.zeros(self.wup.shape[0], device=dev, dtype=dt)

    def norm(self, x, w):
        if self.rms:
            return F.rms_norm(x, (x.shape[-1],), w, 1e-5)
        return F.layer_norm(x, (x.shape[-1],), w, None, 1e-5)

    def mlp(self, x, act):
        u = F.linear(x, self.wup, self.bup if self.bias else None)
        u = act(u) if self.gated else F.relu(u)
        return F.linear(u, self.wdown)


def _rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def _silu_mul(u):
    g, u = u.chunk(2, dim=-1)
    return F.silu(g) * u


def _fused(fn, *example):
    """``fn`` compiled by torch.compile (one fused kernel, dynamic shapes), or ``fn`` itself
    when compilation is unavailable or disagrees with eager on ``example``."""
    if os.environ.get("GREENSIM_PROFILE_FUSE", "1") == "0":
        return fn, "eager (GREENSIM_PROFILE_FUSE=0)"
    try:
        import torch._dynamo

        # one compiled graph per input rank/shape class: the grid's many batch sizes must not
        # hit dynamo's default recompile limit (8), which fails the cell under fullgraph
        for knob in ("cache_size_limit", "recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 256)
        c = torch.compile(fn, dynamic=True, fullgraph=True)
        ref = fn(*example)
        got = c(*example)
        # bf16 products of unit-normal values: differences of a few ulps (~0.03) are rounding
        if not torch.allclose(ref.float(), got.float(), atol=1e-1, rtol=5e-2):
            return fn, "eager (compiled result differed)"
        return c, "torch.compile (dynamic, fullgraph)"
    except Exception as exc:  # noqa: BLE001  (no triton / compiler: eager, say so)
        return fn, f"eager (torch.compile failed: {type(exc).__name__})"


class TorchBackend(Backend):
    """Random-weight decoder on one GPU (or ``tp`` GPUs, one process each)."""

    def __init__(
        self,
        shape: Mapping[str, Any],
        tp: int = 1,
        rank: int = 0,
        device: str = "cuda",
        dtype: str = "bfloat16",
        graphs: bool = True,
    ):
        self.s, self.tp, self.rank = dict(shape), tp, rank
        self.graphs, self.eager_cells = graphs, 0
        self.cuda = device.startswith("cuda")
        base = int(device.split(":")[1]) if self.cuda and ":" in device else 0
        rank_dev = base + rank  # NVML indices match with CUDA_DEVICE_ORDER=PCI_BUS_ID
        if tp > 1:
            import torch.distributed as dist

            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29517")
            if self.cuda:
                torch.cuda.set_device(rank_dev)
            dist.init_process_group("nccl" if self.cuda else "gloo", rank=rank, world_size=tp)
            self.dist = dist
        else:
            self.dist = None
        self.dev = torch.device(f"cuda:{rank_dev}" if self.cuda else "cpu")
        if self.cuda:
            # events, graphs and streams use the current device: make it ours (a TP1 run on
            # cuda:1 without this timed an idle cuda:0 stream)
            torch.cuda.set_device(self.dev)
        self.dt = DTYPES[dtype]
        self.nv = _nvml() if self.cuda else None
        self._handles = [self.nv.nvmlDeviceGetHandleByIndex(base + i) for i in range(tp)] if self.nv else []
        self.layers: List[_Layer] = []
        self._live: List[Any] = []
        self._fits = self._build()

    # -- model ----------------------------------------------------------------
    def _weight_bytes(self) -> float:
        s, tp = self.s, self.tp
        h, hd = s["hidden_size"], s["head_dim"]
        per = (
            h * (s["n_heads"] + 2 * s["n_kv_heads"]) * hd
            + s["n_heads"] * hd * h
            + h * s["intermediate_size"] * (3 if s.get("gated_mlp", True) else 2)
        )
        return 2.0 * (s["n_layers"] * per + 2 * s["vocab_size"] * h) / tp

    def _build(self) -> bool:
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.dev)
            if self._weight_bytes() > 0.97 * free:
                return False
        s = self.s
        for _ in range(s["n_layers"]):
            self.layers.append(_Layer(s, self.tp, self.dev, self.dt))
        h = s["hidden_size"]
        self.emb = torch.randn(s["vocab_size"] // self.tp, h, device=self.dev, dtype=self.dt) * 0.02
        self.lm = (
            self.emb
            if s.get("tied_embeddings")
            else (torch.randn(s["vocab_size"] // self.tp, h, device=self.dev, dtype=self.dt) * 0.02)
        )
        self.nf = torch.ones(h, device=self.dev, dtype=self.dt)
        self.pos = torch.zeros(h, device=self.dev, dtype=self.dt)
        self.rope = s.get("rope", True)
        hd = s["head_dim"]
        ex = torch.randn(2, 3, 5, hd, device=self.dev, dtype=self.dt)
        cs = torch.randn(5, hd // 2, device=self.dev, dtype=self.dt)
        self._rope_fn, self.fuse_rope = _fused(_rope, ex, cs, cs) if self.cuda else (_rope, "eager (cpu)")
        ex = torch.randn(3, 2 * 64, device=self.dev, dtype=self.dt)
        self._act_fn, self.fuse_act = _fused(_silu_mul, ex) if self.cuda else (_silu_mul, "eager (cpu)")
        self.sms = torch.cuda.get_device_properties(self.dev).multi_processor_count if self.cuda else 1
        self.split_kv = False
        if self.cuda and os.environ.get("GREENSIM_PROFILE_SPLIT_KV", "1") != "0":
            try:  # flash-decoding needs the flash kernel's log-sum-exp
                qq = torch.randn(2, 2, 4, hd, device=self.dev, dtype=self.dt)
                kk = torch.randn(2 * 2, 2, 256, hd, device=self.dev, dtype=self.dt)
                self.split_kv = True
                got = self._attend(qq, kk, kk, 2, 2, 256, 512)
                ref = F.scaled_dot_product_attention(
                    qq,
                    kk.view(2, 2, 2, 256, hd).transpose(1, 2).reshape(2, 2, 512, hd),
                    kk.view(2, 2, 2, 256, hd).transpose(1, 2).reshape(2, 2, 512, hd),
                )
                self.split_kv = bool(torch.allclose(got.float(), ref.float(), atol=2e-2, rtol=2e-2))
            except Exception as exc:  # noqa: BLE001  (no flash kernel: plain SDPA, said in info())
                print(f"  split-KV attention unavailable ({type(exc).__name__}: {str(exc)[:120]})", flush=True)
                self.split_kv = False
        self.sync()
        return True

    def fits(self) -> bool:
        return self._fits

    def _allreduce(self, x):
        if self.dist is not None:
            self.dist.all_reduce(x)
        return x

    def _rot(self, n_pos: int, start: int):
        hd = self.s["head_dim"]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=self.dev, dtype=torch.float32) / hd))
        t = torch.arange(start, start + n_pos, device=self.dev, dtype=torch.float32)
        f = torch.outer(t, inv)
        return f.cos().to(self.dt), f.sin().to(self.dt)

    def _forward(self, x, kv, prefill: Optional[tuple], decode: Optional[tuple], verify: Optional[tuple] = None):
        """x: [tokens, h] (prefill tokens first, then one token per decode sequence, or the
        ``batch * T`` tokens of a verify step). prefill: (P, cos, sin); decode: (B, ctx, cos,
        sin); verify: (B, T, ctx, cos, sin, mask_fn)."""
        P = prefill[0] if prefill else 0
        rope, act = self._rope_fn, self._act_fn
        if not self.rope:
            x = x + self.pos  # OPT: learned positions (a gathered row added)
        for li, L in enumerate(self.layers):
            r = x
            y = L.norm(x, L.n1)
            qkv = F.linear(y, L.wqkv, L.bqkv if L.bias else None)
            q, k, v = qkv.split([L.nh * L.hd, L.nkv * L.hd, L.nkv * L.hd], dim=-1)
            g = L.nh // L.nkv
            outs = []
            if prefill:
                _, cos, sin = prefill
                qp = q[:P].view(P, L.nh, L.hd).transpose(0, 1)
                kp = k[:P].view(P, L.nkv, L.hd).transpose(0, 1)
                vp = v[:P].view(P, L.nkv, L.hd).transpose(0, 1)
                if self.rope:
                    qp, kp = rope(qp, cos, sin), rope(kp, cos, sin)
                kc, vc = kv["p"][li]
                kc[0, :, :P].copy_(kp)
                vc[0, :, :P].copy_(vp)
                o = F.scaled_dot_product_attention(
                    qp.unsqueeze(0), kp.unsqueeze(0), vp.unsqueeze(0), is_causal=True, enable_gqa=L.nh != L.nkv
                )
                outs.append(o[0].transpose(0, 1).reshape(P, L.nh * L.hd))
            if decode:
                B, ctx, cos, sin, S, c = decode
                qd = q[P:].view(B, L.nkv, g, L.hd)
                kd = k[P:].view(B, L.nkv, 1, L.hd)
                vd = v[P:].view(B, L.nkv, 1, L.hd)
                if self.rope:
                    qd, kd = rope(qd, cos, sin), rope(kd, cos, sin)
                kc, vc = kv["d"][li]
                self._put(kc, vc, kd, vd, B, S, c, ctx)
                # GQA decode: the g query heads of a KV head act as g query positions.
                o = self._attend(qd, kc, vc, B, S, c, ctx + 1)
                outs.append(o.reshape(B, L.nh * L.hd))
            if verify:
                B, T, ctx, cos, sin, mask, S, c = verify
                qv = q.view(B, T, L.nkv, g, L.hd).permute(0, 2, 3, 1, 4)  # B, kv, g, T, hd
                kn = k.view(B, T, L.nkv, L.hd).transpose(1, 2)
                vn = v.view(B, T, L.nkv, L.hd).transpose(1, 2)
                if self.rope:
                    qv, kn = rope(qv, cos, sin), rope(kn, cos, sin)
                kc, vc = kv["v"][li]
                self._put(kc, vc, kn, vn, B, S, c, ctx)
                # native GQA: a KV head's g query heads x T positions as g*T queries
                qv = qv.reshape(B, L.nkv, g * T, L.hd)
                if S == 1:
                    o = F.scaled_dot_product_attention(qv, kc[:, :, : ctx + T], vc[:, :, : ctx + T], attn_mask=mask(g))
                else:  # split-KV: the causal mask among the T new tokens is dropped (same work, T^2/2 pairs)
                    o = self._attend(qv, kc, vc, B, S, c, ctx + T)
                outs.append(o.view(B, L.nkv, g, T, L.hd).permute(0, 3, 1, 2, 4).reshape(B * T, L.nh * L.hd))
            a = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
            x = r + self._allreduce(F.linear(a, L.wo))
            x = x + self._allreduce(L.mlp(L.norm(x, L.n2), act))
        if verify:
            z = x  # a verify step scores every new token
        else:
            last = []
            if prefill:
                last.append(x[P - 1 : P])
            if decode:
                last.append(x[P:])
            z = last[0] if len(last) == 1 else torch.cat(last, 0)
        z = F.rms_norm(z, (z.shape[-1],), self.nf, 1e-5)
        return F.linear(z, self.lm)

    def _splits(self, batch: int, n_keys: int) -> int:
        """KV splits of a decode/verify attention (flash-decoding): enough (batch x KV head x
        split) blocks for two per SM, each split at least 256 keys; 1 without split-KV."""
        if not self.split_kv:
            return 1
        nkv = max(1, self.s["n_kv_heads"] // self.tp)
        want = math.ceil(2 * self.sms / (batch * nkv))
        return max(1, min(want, n_keys // 256, 64))

    @staticmethod
    def _put(kc, vc, kn, vn, B: int, S: int, c: int, pos: int) -> None:
        """Write new K/V (``[B, kv, t, hd]``) at position ``pos`` of a (split) cache."""
        t = kn.shape[2]
        si, off = min(pos // c, S - 1), min(pos % c, c - t)
        kc.view(B, S, *kc.shape[1:])[:, si, :, off : off + t].copy_(kn)
        vc.view(B, S, *vc.shape[1:])[:, si, :, off : off + t].copy_(vn)

    def _attend(self, q, kc, vc, B: int, S: int, c: int, n_keys: int):
        """Attention of ``q`` ``[B, kv, G, hd]`` over ``n_keys`` cached tokens, split over ``S``
        chunks of ``c`` keys (cache ``[B*S, kv, c, hd]``), partial results merged by their
        log-sum-exp as flash-decoding does."""
        if S == 1:
            return F.scaled_dot_product_attention(q, kc[:, :, :n_keys], vc[:, :, :n_keys])
        G, hd = q.shape[2], q.shape[3]
        qs = q.unsqueeze(1).expand(B, S, *q.shape[1:]).reshape(B * S, *q.shape[1:])
        o, lse = torch.ops.aten._scaled_dot_product_flash_attention(qs, kc, vc)[:2]
        w = torch.softmax(lse.view(B, S, -1, G), dim=1).unsqueeze(-1).to(o.dtype)
        return (o.view(B, S, -1, G, hd) * w).sum(dim=1)

    def _kv(self, batch: int, cap: int, tokens: int = 0):
        """KV cache for ``batch`` sequences of ``cap`` tokens, or None if it and the activations of
        ``tokens`` tokens in flight (default: batch + cap) do not fit in 90% of free memory."""
        s = self.s
        nkv = max(1, s["n_kv_heads"] // self.tp)
        need = 2.0 * s["n_layers"] * batch * nkv * cap * s["head_dim"] * 2
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.dev)
            tokens = tokens or batch + cap
            act = (
                4.0 * tokens * max(s["intermediate_size"] // self.tp * 2, s["hidden_size"] * 4) * 2
                + 2.0 * max(batch, 1) * s["vocab_size"] // self.tp * 4
                + 256 * 2**20
            )
            if need + act > 0.9 * free:
                return None
        return [
            (
                torch.zeros(batch, nkv, cap, s["head_dim"], device=self.dev, dtype=self.dt),
                torch.zeros(batch, nkv, cap, s["head_dim"], device=self.dev, dtype=self.dt),
            )
            for _ in range(s["n_layers"])
        ]

    def _ok(self, kvs: Dict[str, Any]) -> bool:
        ok = all(v is not None for v in kvs.values())
        if self.dist is not None:  # every rank must agree, or NCCL hangs
            t = torch.tensor([1 if ok else 0], device=self.dev)
            self.dist.all_reduce(t, op=self.dist.ReduceOp.MIN)
            ok = bool(t.item())
        return ok

    def make_prefill(self, tokens: int):
        kv = {"p": self._kv(1, tokens, tokens)}
        if not self._ok(kv):
            return None
        x = torch.randn(tokens, self.s["hidden_size"], device=self.dev, dtype=self.dt) * 0.02
        cos, sin = self._rot(tokens, 0)
        self._live = [kv, x]
        return self._graph(lambda: self._forward(x, kv, (tokens, cos, sin), None))

    def make_mixed(self, prompt: int, batch: int, ctx: int):
        S = self._splits(batch, ctx + 1)
        c = math.ceil((ctx + 1) / S)
        kv = {"p": self._kv(1, prompt, prompt + batch), "d": self._kv(batch * S, c, prompt + batch)}
        if not self._ok(kv):
            return None
        x = torch.randn(prompt + batch, self.s["hidden_size"], device=self.dev, dtype=self.dt) * 0.02
        cp, sp = self._rot(prompt, 0)
        cd, sd = self._rot(1, ctx)
        self._live = [kv, x]
        cd, sd = cd.view(1, 1, 1, -1), sd.view(1, 1, 1, -1)
        return self._graph(lambda: self._forward(x, kv, (prompt, cp, sp), (batch, ctx, cd, sd, S, c)))

    def make_decode(self, batch: int, ctx: int):
        S = self._splits(batch, ctx + 1)
        c = math.ceil((ctx + 1) / S)
        kv = {"d": self._kv(batch * S, c, batch)}
        if not self._ok(kv):
            return None
        x = torch.randn(batch, self.s["hidden_size"], device=self.dev, dtype=self.dt) * 0.02
        cd, sd = self._rot(1, ctx)
        cd, sd = cd.view(1, 1, 1, -1), sd.view(1, 1, 1, -1)
        self._live = [kv, x]
        self._eager_decode = lambda: self._forward(x, kv, None, (batch, ctx, cd, sd, S, c))
        return self._graph(self._eager_decode)

    def make_verify(self, batch: int, new_tokens: int, ctx: int):
        """One speculative verify step: ``batch`` sequences each score ``new_tokens`` tokens
        (causal among themselves) over ``ctx`` cached tokens; logits for every new token."""
        T = new_tokens
        S = self._splits(batch, ctx + T)
        c = math.ceil((ctx + T) / S)
        kv = {"v": self._kv(batch * S, c, batch * T)}
        if not self._ok(kv):
            return None
        x = torch.randn(batch * T, self.s["hidden_size"], device=self.dev, dtype=self.dt) * 0.02
        cv, sv = self._rot(T, ctx)
        # query (group member gi, position ti) sees the ctx cached tokens and new tokens <= ti
        allowed = torch.ones(T, ctx + T, dtype=torch.bool, device=self.dev)
        allowed[:, ctx:] = torch.tril(torch.ones(T, T, dtype=torch.bool, device=self.dev))
        self._live = [kv, x]
        masks: Dict[int, Any] = {}

        def mask(g: int):
            if g not in masks:
                masks[g] = allowed.repeat(g, 1)
            return masks[g]

        return self._graph(lambda: self._forward(x, kv, None, None, verify=(batch, T, ctx, cv, sv, mask, S, c)))

    def _graph(self, step: Callable[[], Any]):
        """``step`` captured as a CUDA graph (kernel time only, as an engine running CUDA graphs
        sees it); eager if capture fails (said in the log and in ``info()``)."""
        if not self.cuda or not self.graphs:
            return step
        st = torch.cuda.Stream(self.dev)
        st.wait_stream(torch.cuda.current_stream(self.dev))
        with torch.cuda.stream(st):
            for _ in range(2):
                step()
        torch.cuda.current_stream(self.dev).wait_stream(st)
        try:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                step()
        except Exception as exc:  # noqa: BLE001  (fall back to eager, say so)
            print(f"  CUDA graph capture failed ({str(exc)[:200]}); timing eagerly", flush=True)
            self.eager_cells += 1
            torch.cuda.synchronize(self.dev)
            return step
        self._live.append(g)
        return g.replay

    def count_kernels_per_layer(self) -> Optional[float]:
        """GPU kernels per decoder layer of one decode step (batch 4, context 512), counted with
        torch.profiler on an eager run: the implementation's kernel count, which sets its
        per-layer latency floor (greensim.hardware.kernel). None if the profiler is unavailable."""
        if not self.cuda:
            return None
        try:
            from torch.profiler import ProfilerActivity, profile

            def kernels(n_layers: int) -> int:
                keep, self.layers = self.layers, self.layers[:n_layers]
                try:
                    step = self.make_decode(4, 512)
                    if step is None:
                        return -1
                    eager = self._eager_decode
                    eager()
                    torch.cuda.synchronize(self.dev)
                    with profile(activities=[ProfilerActivity.CUDA]) as prof:
                        eager()
                        torch.cuda.synchronize(self.dev)
                    return sum(1 for e in prof.events() if e.device_type.name == "CUDA")
                finally:
                    self.layers = keep
                    self.release()

            n = min(2, len(self.layers))
            a, b = kernels(1), kernels(n)
            if a < 0 or b < 0 or n < 2:
                return None
            return float(b - a) / (n - 1)  # the difference removes the LM head and final norm
        except Exception as exc:  # noqa: BLE001  (profiling is optional: say so)
            print(f"  kernel count unavailable ({type(exc).__name__}: {str(exc)[:120]})", flush=True)
            return None

    def release(self) -> None:
        self._live = []
        if self.cuda:
            torch.cuda.empty_cache()

    # -- timing and power -------------------------------------------------------
    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.dev)
        if self.dist is not None:
            self.dist.barrier()

    def elapsed_s(self, fn: Callable[[], None], n: int) -> List[float]:
        if n <= 0:
            return []
        if not self.cuda:
            out = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return out
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
        ev[0].record()
        for i in range(n):
            fn()
            ev[i + 1].record()
        torch.cuda.synchronize(self.dev)
        return [ev[i].elapsed_time(ev[i + 1]) * 1e-3 for i in range(n)]

    def energy_j(self) -> Optional[float]:
        if not self._handles:
            return None
        try:
            return sum(self.nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles) * 1e-3
        except Exception:  # noqa: BLE001
            return None

    def power_w(self) -> Optional[float]:
        if not self._handles:
            return None
        return sum(self.nv.nvmlDeviceGetPowerUsage(h) for h in self._handles) * 1e-3

    def sleep(self, s: float) -> None:
        time.sleep(s)

    def info(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "dtype": str(self.dt),
            "tp": self.tp,
            "kv_cache": "contiguous",
            "graphs": "every phase (prefill, decode, verify, mixed) replayed as a CUDA graph"
            if self.graphs
            else "eager",
            "cells_timed_eagerly_after_capture_failure": self.eager_cells,
            "attention": "torch.nn.functional.scaled_dot_product_attention, native GQA (no K/V expansion)",
            "decode_attention": "split-KV (flash-decoding: flash kernel per chunk, log-sum-exp merge)"
            if getattr(self, "split_kv", False)
            else "scaled_dot_product_attention, unsplit",
            "fused_rope": getattr(self, "fuse_rope", ""),
            "fused_silu_mul": getattr(self, "fuse_act", ""),
        }
        if self.cuda:
            d["gpu_name"] = torch.cuda.get_device_name(self.dev)
            d["cuda_device_order"] = os.environ.get("CUDA_DEVICE_ORDER", "")
            if self.nv:
                d["nvml_names"] = [self.nv.nvmlDeviceGetName(h) for h in self._handles]
                d["driver"] = self.nv.nvmlSystemGetDriverVersion()
                d["power_limit_w"] = self.nv.nvmlDeviceGetEnforcedPowerLimit(self._handles[0]) * 1e-3
                d["power_source"] = "NVML total energy counter difference over each cell's window (>= power_s)"
                d["power_limit_default_w"] = self.nv.nvmlDeviceGetPowerManagementDefaultLimit(self._handles[0]) * 1e-3
        return d

    def close(self) -> None:
        self.layers = []
        self._live = []
        if self.cuda:
            torch.cuda.empty_cache()
        if self.dist is not None:
            self.dist.barrier()
            self.dist.destroy_process_group()
            self.dist = None
