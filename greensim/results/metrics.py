"""Turn a simulation's raw output into tables and a summary, with carbon attribution.

Accounting (``carbon.accounting``), both always computed, one chosen for the headline columns:

* ``provisioned``: every provisioned GPU's energy, idle included, and its embodied carbon over
  the whole run (horizon H): what an operator of dedicated GPUs pays;
* ``busy``: energy only while busy, embodied carbon x busy time / lifetime (ACT's T/LT x E
  with T the execution time): idle capacity is assumed to serve other work.

Attribution to requests: each instance's idle energy (provisioned only) and embodied carbon
are shared among the requests it served in proportion to their GPU-busy-time share; its
operational carbon in proportion to their energy share. The parts sum to the totals; carbon
of an instance that served no request is reported as ``unattributed_gco2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from greensim.base.lazy import lazy_module
from greensim.base.units import J_PER_KWH
from greensim.carbon import embodied_gco2, operational_gco2  # noqa: F401 (public re-exports)
from greensim.carbon.embodied import embodied_by_scheme, embodied_charge_gco2
from greensim.carbon.intensity import CarbonIntensity
from greensim.core.simulation import SimOutput

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["ACCOUNTINGS", "InstanceCarbonSpec", "Tables", "build_tables"]

ACCOUNTINGS = ("provisioned", "busy")


@dataclass(frozen=True)
class InstanceCarbonSpec:
    """What carbon accounting needs to know of an instance."""

    gpu: str
    tp: int
    embodied_kgco2e: float  # per GPU [kgCO2e]
    lifetime_years: float
    scheme: str = "linear"  # embodied amortisation scheme (greensim.carbon.embodied)
    age_years: float = 0.0  # GPU age at t = 0 [years]
    extended_years: Optional[float] = None  # scheme "extended": extra service years
    host_kgco2e_per_gpu: float = 0.0  # host server's embodied share per GPU [kgCO2e]
    site: str = "default"  # data-centre site (carbon.sites); "default": carbon.pue
    pue: Optional[float] = None  # the site's PUE [-]; None: build_tables' pue (carbon.pue)
    intensity: Optional[CarbonIntensity] = None  # the site's grid intensity; None: build_tables' intensity
    power_cap_w: Optional[float] = None  # per-GPU power cap [W] (greensim.hardware.powercap); None: uncapped
    pp: int = 1  # pipeline stages (greensim.hardware.pipeline); the instance has tp x pp GPUs

    @property
    def n_gpus(self) -> int:
        """GPUs of the instance: ``tp x pp``."""
        return self.tp * self.pp


@dataclass
class Tables:
    requests: pd.DataFrame
    instances: pd.DataFrame
    timeline: pd.DataFrame
    summary: Dict[str, Any]
    regions: Optional[pd.DataFrame] = None  # per-region totals (carbon.compare_regions)
    extra: Optional[Dict[str, pd.DataFrame]] = None  # a policy's own tables (router.report()), e.g. "plans"
    files: Optional[Dict[str, Callable[[Path], Any]]] = None  # other files: name -> writer(path), e.g. trace.json


def _spec_summary(spec: Sequence[Any]) -> Dict[str, float]:
    """Speculative statistics over all speculative instances (none: no keys): acceptance
    (accepted / drafted draft tokens), tokens per verify step, draft / link / verify time shares."""
    if not spec:
        return {}
    steps = sum(i.n_verify_steps for i in spec)
    drafted = sum(i.n_drafted for i in spec)
    emitted = sum(i.n_emitted for i in spec)
    t_d, t_l, t_v = (sum(getattr(i, a) for i in spec) for a in ("draft_time_s", "link_time_s", "verify_time_s"))
    tot = t_d + t_l + t_v
    nan = float("nan")
    out = {
        "spec_acceptance": (emitted - steps) / drafted if drafted else nan,
        "spec_tokens_per_verify": emitted / steps if steps else nan,
        "spec_draft_time_share": t_d / tot if tot > 0 else nan,
        "spec_link_time_share": t_l / tot if tot > 0 else nan,
        "spec_verify_time_share": t_v / tot if tot > 0 else nan,
    }
    pipe = [i for i in spec if getattr(i, "pipelined", False)]
    if pipe:  # pipelined drafting: pre-drafts used at the next step, of those drafted
        pre = sum(i.n_predrafts for i in pipe)
        out["spec_predraft_used_frac"] = sum(i.n_predrafts_used for i in pipe) / pre if pre else nan
    return out


def _mean_and_percentiles(x: np.ndarray, qs: Sequence[float]) -> tuple[float, List[float]]:
    """``np.nanmean(x)`` (nan when no value is finite) and ``np.percentile(x[np.isfinite(x)], q)``
    (nan when none is) for each ``q``: the same values, from at most one copy of the finite values,
    partitioned in place (``x`` is the caller's own copy and may be reordered; 1M requests: ~8 MB
    less at the peak of building the tables)."""
    fin = np.isfinite(x)
    nan = float("nan")
    mean = float(np.nanmean(x)) if fin.any() else nan
    xf = x if fin.all() else x[fin]
    if not xf.size:
        return mean, [nan] * len(qs)
    return mean, [float(v) for v in np.percentile(xf, list(qs), overwrite_input=True)]


def _served(rec, k: int):
    """Requests that used instance ``k``, with their busy-time [s] and energy [J] shares there.

    The primary part is ``rec.instance``; disaggregation modes add parts
    (``rec.parts``: DPD decode instance, DSD draft GPU). Instances of different parts are
    disjoint, so a request appears at most once per instance, except in runs with GPU
    failures, whose extra parts (work moved off a request when a failure restarted it) may
    name an instance again: callers then add with ``np.add.at``.
    """
    served = np.flatnonzero((rec.instance == k) & ~rec.rejected)
    if not rec.parts:
        return served, rec.busy_s[served], rec.energy_j[served]
    ids, busy, joules = [served], [rec.busy_s[served]], [rec.energy_j[served]]
    fparts = getattr(rec, "failure_parts", ())
    for part in rec.parts:
        inst_col, busy_col, j_col = part
        if any(part is f for f in fparts):  # work done before a failure: kept if later rejected
            m = np.flatnonzero(inst_col == k)
        else:
            m = np.flatnonzero((inst_col == k) & ~rec.rejected)
        ids.append(m)
        busy.append(busy_col[m])
        joules.append(j_col[m])
    return np.concatenate(ids), np.concatenate(busy), np.concatenate(joules)


def _charge_requests(
    rec, k: int, idle_j: float, op: float, emb: float, charged_j: float, busy_acc: bool, lost_parts, into
) -> tuple[int, float, bool]:
    """Share instance ``k``'s energy and carbon among the requests it served (module docstring),
    adding to ``into`` = (energy, operational, embodied, lost-work carbon) per request in place.

    Returns (requests served, energy of lost work [J], whether anything was charged). A function of
    its own so that its per-request temporaries are freed when it returns (1M requests on two
    instances: ~24 MB that stayed alive while the columns were built).
    """
    req_energy, req_op, req_emb, req_lost_c = into
    served, share_busy, share_j = _served(rec, k)
    tot_busy = share_busy.sum()
    lost_j_k = 0.0
    if not (served.size and tot_busy > 0):
        return int(served.size), lost_j_k, False
    w = share_busy / tot_busy
    e_i = share_j + idle_j * w
    e_c = share_j if busy_acc else e_i
    c_op = op * e_c / charged_j if charged_j > 0 else 0.0 * e_c
    if lost_parts is None:
        req_energy[served] += e_c  # += : a request may use two instances (DPD, DSD)
        req_op[served] += c_op
        req_emb[served] += emb * w
    else:  # failures: a request may appear twice on one instance
        np.add.at(req_energy, served, e_c)
        np.add.at(req_op, served, c_op)
        np.add.at(req_emb, served, emb * w)
        for inst_col, b_col, j_col in lost_parts:  # the same charge rule, for lost work
            m = np.flatnonzero(inst_col == k)
            if m.size:
                wl = b_col[m] / tot_busy
                el = j_col[m] if busy_acc else j_col[m] + idle_j * wl
                lost_j_k += float(j_col[m].sum())
                np.add.at(req_lost_c, m, (op * el / charged_j if charged_j > 0 else 0.0 * el) + emb * wl)
    return int(served.size), lost_j_k, True


def _failure_summary(rec, instances, req_lost_c, slo_met, done, H: float) -> Dict[str, Any]:
    """What GPU failures cost: downtime, restarts, lost work, its carbon and the SLO of the
    requests a failure restarted (``n_requeues`` > 0) against the others."""
    hit = rec.n_requeues > 0
    return {
        "failure_down_s": float(instances["down_s"].sum()),
        "failure_restarted_requests": int(hit.sum()),
        "failure_lost_tokens": int(rec.extra["failure_lost_tokens"].sum()),
        "failure_lost_busy_s": float(rec.extra["failure_lost_busy_s"].sum()),
        "failure_lost_energy_kwh": float(rec.extra["failure_lost_energy_j"].sum()) / J_PER_KWH,
        "failure_lost_gco2": float(req_lost_c.sum()),
        "failure_restarted_slo_attainment_frac": float(slo_met[hit].mean()) if hit.any() else float("nan"),
        "failure_untouched_slo_attainment_frac": float(slo_met[~hit].mean()) if (~hit).any() else float("nan"),
    }


def _by_site(instances: pd.DataFrame, requests: pd.DataFrame, done: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Per-site totals (instance groups without a site are ``default``).

    A request counts at the site of the instance it was routed to (``requests.instance``).
    """
    g = instances.groupby("site", sort=True)
    sums = g[["operational_gco2", "embodied_gco2", "carbon_gco2", "energy_j"]].sum()  # one pass, same sums
    out: Dict[str, Dict[str, float]] = {
        f"{c}_by_site": {str(k): float(v) for k, v in sums[c].items()}
        for c in ("operational_gco2", "embodied_gco2", "carbon_gco2")
    }
    out["energy_kwh_by_site"] = {str(k): float(v) / J_PER_KWH for k, v in sums["energy_j"].items()}
    # requests done per site: counts per instance (the table's instances are numbered 0..k-1)
    per_instance = np.bincount(requests["instance"].to_numpy()[done], minlength=len(instances))
    site_of = instances["site"].to_numpy()
    n = int(done.sum())
    out["request_share_by_site"] = {
        str(k): float(per_instance[: len(site_of)][site_of == k].sum()) / n if n else float("nan") for k in sums.index
    }
    out["intensity_mean_gco2_per_kwh_by_site"] = {
        str(k): float(v) for k, v in g["intensity_mean_gco2_per_kwh"].first().items()
    }
    return out


def build_tables(
    out: SimOutput,
    specs: Sequence[InstanceCarbonSpec],
    intensity: CarbonIntensity,
    pue: float,
    ttft_slo_s: np.ndarray,
    tpot_slo_s: np.ndarray,
    accounting: str = "provisioned",
    consume: bool = False,
) -> Tables:
    """Per-request, per-instance and timeline tables plus the summary dict.

    ``pue`` prices the energy of instances whose spec has no site PUE (``carbon.pue``);
    ``accounting`` ("provisioned" or "busy", module docstring) picks the headline carbon columns.
    ``consume``: ``out.record``'s first-scheduled, first-token and done times may be overwritten
    (they become the queue-delay, TTFT and end-to-end columns, without a copy); the values of
    the tables do not depend on it.
    """
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"accounting {accounting!r} (valid: {', '.join(ACCOUNTINGS)})")
    busy_acc = accounting == "busy"
    t, rec = out.table, out.record
    n = len(t)
    H = out.horizon_s
    nbins = max(1, int(np.ceil(H / out.bin_s)) if H > 0 else 1)
    edges = np.arange(nbins) * out.bin_s
    width = np.minimum(out.bin_s, np.maximum(H - edges, 0.0))

    req_energy = np.zeros(n)
    req_op = np.zeros(n)
    req_emb = np.zeros(n)
    inst_rows: List[Dict[str, Any]] = []
    tl_frames: List[Dict[str, np.ndarray]] = []
    unattributed = 0.0
    total_op_bins = np.zeros(nbins)
    total_power_bins = np.zeros(nbins)
    ci_bins = np.asarray(intensity.mean_over(edges, edges + out.bin_s), dtype=float)
    ci_cache = {id(intensity): ci_bins}
    emb_if = {"linear": 0.0, "extended": 0.0, "sunk": 0.0}
    both = {f"{p}_{a}": 0.0 for p in ("operational_gco2", "embodied_gco2") for a in ACCOUNTINGS}
    busy_energy_total = 0.0
    lost_parts = getattr(rec, "lost_parts", None)  # runs with GPU failures
    req_lost_c = np.zeros(n)
    for k, (inst, spec) in enumerate(zip(out.instances, specs)):
        led = inst.ledger
        m = min(nbins, len(led.bin_busy_s))
        busy_s = np.zeros(nbins)
        busy_j = np.zeros(nbins)
        busy_s[:m] = led.bin_busy_s[:m]
        busy_j[:m] = led.bin_busy_j[:m]
        idle_p = inst.perf.idle_power_w
        idle_s_bins = np.maximum(width - busy_s, 0.0)
        energy_bins = busy_j + idle_p * idle_s_bins
        pue_k = spec.pue if spec.pue is not None else pue
        src = spec.intensity if spec.intensity is not None else intensity
        ci_k = ci_cache.get(id(src))
        if ci_k is None:
            ci_k = ci_cache[id(src)] = np.asarray(src.mean_over(edges, edges + out.bin_s), dtype=float)
        op_bins_prov = energy_bins / J_PER_KWH * ci_k * pue_k  # = operational_gco2(energy_bins, bin_s, src, pue_k)
        op_bins_busy = busy_j / J_PER_KWH * ci_k * pue_k
        op_bins = op_bins_busy if busy_acc else op_bins_prov
        total_op_bins += op_bins
        total_power_bins += np.divide(energy_bins, width, out=np.zeros(nbins), where=width > 0)
        idle_s = max(H - led.busy_s, 0.0)
        idle_j = idle_p * idle_s
        energy = led.busy_j + idle_j
        e_kg = spec.embodied_kgco2e + spec.host_kgco2e_per_gpu
        op_acc, emb_acc = {}, {}
        for acc, op_b, t_charged in (("provisioned", op_bins_prov, H), ("busy", op_bins_busy, min(led.busy_s, H))):
            op_acc[acc] = float(op_b.sum())
            emb_acc[acc] = embodied_charge_gco2(
                e_kg,
                spec.n_gpus,
                t_charged,
                spec.lifetime_years,
                spec.scheme,
                spec.age_years,
                spec.extended_years,
                where=f"carbon ({spec.gpu})",
            )
            both[f"operational_gco2_{acc}"] += op_acc[acc]
            both[f"embodied_gco2_{acc}"] += emb_acc[acc]
        busy_energy_total += led.busy_j
        op, emb = op_acc[accounting], emb_acc[accounting]
        charged_j = led.busy_j if busy_acc else energy
        by_scheme = embodied_by_scheme(
            e_kg,
            spec.n_gpus,
            min(led.busy_s, H) if busy_acc else H,
            spec.lifetime_years,
            spec.age_years,
            spec.extended_years,
        )
        for sch, v in by_scheme.items():
            emb_if[sch] += v
        n_served, lost_j_k, charged = _charge_requests(
            rec, k, idle_j, op, emb, charged_j, busy_acc, lost_parts, (req_energy, req_op, req_emb, req_lost_c)
        )
        if not charged:
            unattributed += op + emb
        inst_rows.append(
            {
                "instance": k,
                "name": inst.cfg.name,
                "gpu": spec.gpu,
                "tp": spec.tp,
                "pp": spec.pp,
                "kv_blocks": inst.total_kv_blocks,
                "n_requests": n_served,
                "n_iterations": inst.n_iterations,
                "n_preemptions": inst.n_preemptions,
                **(inst.spec_stats() if hasattr(inst, "spec_stats") else {}),
                **(inst.prefix_cache.stats() if getattr(inst, "prefix_cache", None) is not None else {}),
                "busy_s": led.busy_s,
                "idle_s": idle_s,
                "utilization_frac": led.busy_s / H if H > 0 else 0.0,
                "busy_energy_j": led.busy_j,
                "idle_energy_j": idle_j,
                "energy_j": energy,
                "operational_gco2": op,
                "embodied_gco2": emb,
                "carbon_gco2": op + emb,
                **{
                    f"{p}_{a}": d[a]
                    for a in ACCOUNTINGS
                    for p, d in (("operational_gco2", op_acc), ("embodied_gco2", emb_acc))
                },
                **{f"carbon_gco2_{a}": op_acc[a] + emb_acc[a] for a in ACCOUNTINGS},
                "embodied_kgco2e_per_gpu": spec.embodied_kgco2e,
                "host_kgco2e_per_gpu": spec.host_kgco2e_per_gpu,
                "embodied_scheme": spec.scheme,
                "age_years": spec.age_years,
                "power_cap_w": float("nan") if spec.power_cap_w is None else spec.power_cap_w,
                "site": spec.site,
                "pue": pue_k,
                "intensity_mean_gco2_per_kwh": float(np.sum(ci_k * width) / np.sum(width))
                if np.sum(width) > 0
                else float("nan"),
                **{f"embodied_if_{k}_gco2": v for k, v in by_scheme.items()},
                "down_s": inst.down_s(H) if hasattr(inst, "down_s") else 0.0,
                "n_failures": int(getattr(inst, "n_failures", 0)),
                **({} if lost_parts is None else {"failure_lost_energy_j": lost_j_k}),
                **(
                    {"n_fallback_iterations": inst.n_fallback_iterations}
                    if lost_parts is not None and getattr(inst, "draft", None) is not None
                    else {}
                ),
            }
        )
        q_l, b_l, area_l = led.series(nbins, H)  # states held through each bin, to the horizon
        qmax = np.maximum(np.asarray(q_l, dtype=np.int64), 0)
        bmax = np.maximum(np.asarray(b_l, dtype=np.int64), 0)
        bmean = np.divide(np.asarray(area_l, dtype=float), width, out=np.zeros(nbins), where=width > 0)
        tl_frames.append(
            {
                "t_s": edges,
                "instance": np.full(nbins, k, dtype=np.int64),
                "power_w": np.divide(energy_bins, width, out=np.zeros(nbins), where=width > 0),
                "energy_j": energy_bins,
                "busy_energy_j": busy_j,
                "busy_frac": np.divide(busy_s, width, out=np.zeros(nbins), where=width > 0),
                "queue_max": qmax,
                "batch_max": bmax,
                "batch_mean": bmean,
                "operational_gco2": op_bins,
                "intensity_gco2_per_kwh": ci_k,
                "carbon_gco2_per_s": np.divide(op_bins, width, out=np.zeros(nbins), where=width > 0),
            }
        )

    nout = t.n_output_tokens
    # tpot = (done - first token) / (n_out - 1) where n_out > 1, else nan (the same operations as
    # np.where(nout > 1, (done - first) / np.maximum(nout - 1, 1), nan), with one full-size temporary)
    tpot = rec.done_s - rec.first_token_s
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(tpot, np.maximum(nout - 1, 1), out=tpot)
    tpot[nout <= 1] = np.nan
    # consume: the record's time columns become the table's (same values, 1M requests: 24 MB less)
    ttft = np.subtract(rec.first_token_s, t.arrival_s, out=rec.first_token_s if consume else None)
    e2e = np.subtract(rec.done_s, t.arrival_s, out=rec.done_s if consume else None)
    done = ~rec.rejected
    sent_s = t.arrival_s
    if "network_delay_s" in rec.extra:  # time at the instance: less the one-way trip there
        sent_s = t.arrival_s + rec.extra["network_delay_s"] / 2
    queue_delay = np.subtract(rec.first_scheduled_s, sent_s, out=rec.first_scheduled_s if consume else None)
    if "network_delay_s" in rec.extra:
        queue_delay[(queue_delay < 0) & (queue_delay > -1e-9)] = 0.0  # float rounding of arrival + delay
    ttft_ok = ttft <= ttft_slo_s
    tpot_ok = np.where(nout > 1, tpot <= tpot_slo_s, True)
    slo_met = done & ttft_ok & tpot_ok
    gpu_busy = rec.busy_s
    for _, busy_col, _ in rec.parts:
        gpu_busy = gpu_busy + busy_col
    requests = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "instance": rec.instance,
            "arrival_s": t.arrival_s,
            "n_input_tokens": t.n_input_tokens,
            "n_output_tokens": nout,
            "queue_delay_s": queue_delay,
            "ttft_s": ttft,
            "tpot_s": tpot,
            "e2e_s": e2e,
            "n_preemptions": rec.n_preemptions,
            "n_requeues": rec.n_requeues,
            "n_generated_tokens": rec.n_generated,
            "gpu_busy_s": gpu_busy,
            "energy_j": req_energy,
            "operational_gco2": req_op,
            "embodied_gco2": req_emb,
            "carbon_gco2": req_op + req_emb,
            "slo_class": t.slo_class if t.slo_class is not None else np.full(n, "", dtype=object),
            "ttft_slo_s": ttft_slo_s,
            "tpot_slo_s": tpot_slo_s,
            "slo_met": slo_met,
            "rejected": rec.rejected,
            "reject_reason": rec.reject_reason,
            **rec.extra,
            **({} if lost_parts is None else {"failure_lost_gco2": req_lost_c}),
        },
        copy=False,
    )  # columns are fresh arrays: no second copy (1M requests: ~200 MB saved)
    instances = pd.DataFrame(inst_rows)
    # one frame from the instances' columns end to end (one DataFrame instead of one per instance + concat)
    timeline = pd.DataFrame({c: np.concatenate([f[c] for f in tl_frames]) for c in tl_frames[0]}, copy=False)
    n_done = int(done.sum())
    op_total = float(instances["operational_gco2"].sum())
    emb_total = float(instances["embodied_gco2"].sum())
    energy_total = float(instances["energy_j"].sum())
    out_tokens = float(nout[done].sum())
    carbon_total = op_total + emb_total
    summary: Dict[str, Any] = {
        "n_requests": n,
        "n_completed": n_done,
        "n_rejected": int(rec.rejected.sum()),
        "n_preemptions": int(rec.n_preemptions.sum()),
        "n_failures": int(sum(getattr(i, "n_failures", 0) for i in out.instances)),
        "n_requeues": int(getattr(rec, "n_requeues", np.zeros(1, dtype=np.int64)).sum()),
        "duration_s": H,
        "throughput_rps": n_done / H if H > 0 else 0.0,
        "output_tokens_per_s": out_tokens / H if H > 0 else 0.0,
        "goodput_rps": float(slo_met.sum()) / H if H > 0 else 0.0,
        "slo_attainment_frac": float(slo_met.mean()) if n else 0.0,
        "ttft_attainment_frac": float((done & ttft_ok).mean()) if n else 0.0,
        "tpot_attainment_frac": float((done & tpot_ok).mean()) if n else 0.0,
    }
    timed = [
        ("ttft_s", ttft),
        ("tpot_s", tpot),
        ("e2e_s", e2e),
        ("queue_delay_s", requests["queue_delay_s"].to_numpy()),
    ]
    timed += [(c, rec.extra[c]) for c in ("decode_wait_s", "kv_transfer_s") if c in rec.extra]
    if "kv_transfer_bytes" in rec.extra:
        summary["kv_transfer_bytes"] = float(rec.extra["kv_transfer_bytes"].sum())
    if "cached_prompt_tokens" in rec.extra:  # prefix caching: hit rates over completed requests
        hit = rec.extra["cached_prompt_tokens"][done]
        n_in_done = float(t.n_input_tokens[done].sum())
        summary["prefix_cached_prompt_tokens"] = int(hit.sum())
        summary["prefix_hit_tokens_frac"] = float(hit.sum()) / n_in_done if n_in_done else 0.0
        summary["prefix_hit_requests_frac"] = float((hit > 0).mean()) if hit.size else 0.0
    if lost_parts is not None:
        summary.update(_failure_summary(rec, instances, req_lost_c, slo_met, done, H))
    summary.update(_spec_summary([i for i in out.instances if hasattr(i, "spec_stats")]))
    for name, x in timed:
        qs = (50, 90, 99)
        summary[f"{name}_mean"], ps = _mean_and_percentiles(x[done], qs)  # x[done]: a copy of its own
        summary.update({f"{name}_p{q}": p for q, p in zip(qs, ps)})
    summary.update(
        {
            "energy_kwh": energy_total / J_PER_KWH,
            "busy_energy_kwh": busy_energy_total / J_PER_KWH,
            "accounting": accounting,
            "operational_gco2": op_total,
            "embodied_gco2": emb_total,
            "carbon_gco2": carbon_total,
            "unattributed_gco2": unattributed,
            "carbon_gco2_per_request": carbon_total / n_done if n_done else float("nan"),
            "operational_gco2_per_request": op_total / n_done if n_done else float("nan"),
            "embodied_gco2_per_request": emb_total / n_done if n_done else float("nan"),
            "carbon_gco2_per_1k_output_tokens": 1000 * carbon_total / out_tokens if out_tokens else float("nan"),
            "operational_gco2_per_1k_output_tokens": 1000 * op_total / out_tokens if out_tokens else float("nan"),
            "embodied_gco2_per_1k_output_tokens": 1000 * emb_total / out_tokens if out_tokens else float("nan"),
            **both,
            **{f"carbon_gco2_{a}": both[f"operational_gco2_{a}"] + both[f"embodied_gco2_{a}"] for a in ACCOUNTINGS},
            **{
                f"carbon_gco2_per_request_{a}": (both[f"operational_gco2_{a}"] + both[f"embodied_gco2_{a}"]) / n_done
                if n_done
                else float("nan")
                for a in ACCOUNTINGS
            },
            **_by_site(instances, requests, done),
            "embodied_scheme": {s.gpu: s.scheme for s in specs},
            **{
                f"embodied_gco2_if_{k}": v
                for k, v in emb_if.items()
                if k != "extended" or any(s.extended_years is not None for s in specs)
            },
            **{
                f"carbon_gco2_per_request_if_{k}": (op_total + v) / n_done if n_done else float("nan")
                for k, v in emb_if.items()
                if k != "extended" or any(s.extended_years is not None for s in specs)
            },
            "intensity_mean_gco2_per_kwh": float(np.sum(ci_bins * width) / np.sum(width))
            if np.sum(width) > 0
            else float("nan"),
            "intensity_n_filled": int(getattr(intensity, "n_filled", 0)),
            "gpu_utilization_frac": {str(r["name"]) + f"#{r['instance']}": r["utilization_frac"] for r in inst_rows},
        }
    )
    return Tables(requests, instances, timeline, summary)
