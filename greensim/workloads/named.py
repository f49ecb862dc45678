"""Named traces: the public traces in ``../shared/data/traces`` (see its PROVENANCE.md).

Each name maps to a file name, the reader that loads it and the row count the
provenance documents. Files are looked up, in order, in the experiment's
``workload.data_dir`` and the ``traces/`` folder of the shared data
(:func:`greensim.base.paths.shared_data_dir`: ``$GREENSIM_DATA_DIR``, else
``../shared/data`` from the working directory or beside a source checkout). Nothing is
copied into the package.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from greensim.base.errors import TraceError
from greensim.base.paths import shared_data_dir
from greensim.base.registry import Registry

__all__ = ["NamedTrace", "TRACES", "trace_dirs", "find_named_trace", "resolve_trace_source"]


@dataclass(frozen=True)
class NamedTrace:
    """A public trace known by name.

    name : registry name; file : file name in the trace folder; format : reader name;
    rows : documented row count; has_arrivals : per-request arrival times present;
    extras : optional columns; description, license, source : from PROVENANCE.md.
    """

    name: str
    file: str
    format: str
    rows: int
    has_arrivals: bool
    description: str
    license: str
    source: str
    extras: Tuple[str, ...] = ()


TRACES: Registry = Registry("named trace")

_PROV = "../shared/data/traces/PROVENANCE.md"
for _t in (
    NamedTrace(
        "azure_llm_2023_conv",
        "azure_llm_2023_conv.csv",
        "csv",
        19366,
        True,
        "Azure LLM inference 2023, conversation service, 1 hour (Splitwise, ISCA'24)",
        "CC-BY-4.0",
        f"Azure/AzurePublicDataset data/AzureLLMInferenceTrace_conv.csv ({_PROV} section 1)",
    ),
    NamedTrace(
        "azure_llm_2023_code",
        "azure_llm_2023_code.csv",
        "csv",
        8819,
        True,
        "Azure LLM inference 2023, coding service, 1 hour (Splitwise, ISCA'24)",
        "CC-BY-4.0",
        f"Azure/AzurePublicDataset data/AzureLLMInferenceTrace_code.csv ({_PROV} section 1)",
    ),
    NamedTrace(
        "mooncake_fast25_conversation",
        "mooncake_fast25_conversation.csv",
        "mooncake",
        12031,
        True,
        "Mooncake (Kimi) conversation trace, 1 hour, 512-token prefix-block hashes (FAST'25)",
        "Apache-2.0",
        f"kvcache-ai/Mooncake FAST25-release/traces/conversation_trace.jsonl ({_PROV} section 2)",
        ("hash_ids",),
    ),
    NamedTrace(
        "mooncake_fast25_synthetic",
        "mooncake_fast25_synthetic.csv",
        "mooncake",
        3993,
        True,
        "Mooncake synthetic trace: public-dataset lengths, Poisson arrivals (FAST'25)",
        "Apache-2.0",
        f"kvcache-ai/Mooncake FAST25-release/traces/synthetic_trace.jsonl ({_PROV} section 2)",
        ("hash_ids",),
    ),
    NamedTrace(
        "sharegpt_lengths_llama2tok",
        "sharegpt_lengths_llama2tok.csv",
        "lengths",
        30731,
        False,
        "ShareGPT conversation lengths, Llama-2 tokenizer, <= ~8k tokens (lengths only)",
        "Apache-2.0 (counts only)",
        f"microsoft/sarathi-serve data/processed_traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv "
        f"({_PROV} section 3)",
    ),
    NamedTrace(
        "arxiv_summarization_lengths_llama2tok",
        "arxiv_summarization_lengths_llama2tok.csv",
        "lengths",
        28257,
        False,
        "arXiv summarization lengths, Llama-2 tokenizer, <= 4096 tokens (lengths only)",
        "MIT (counts only)",
        f"microsoft/vidur data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv "
        f"({_PROV} section 4)",
    ),
    NamedTrace(
        "servegen_rate_profile_10min",
        "servegen_rate_profile_10min.csv",
        "servegen",
        6336,
        False,
        "ServeGen (Alibaba Bailian) total request rate per 10-minute window, 5 models (rate profile, not per request)",
        "Apache-2.0",
        f"alibaba/ServeGen data/<category>/<model>/chunk-*-trace.csv, aggregated ({_PROV} section 5)",
    ),
):
    TRACES.register(_t.name)(_t)


def trace_dirs(data_dir: Optional[str] = None) -> List[Path]:
    """Folders searched for named traces, in order."""
    out: List[Path] = []
    if data_dir:
        out.append(Path(data_dir))
    if os.environ.get("GREENSIM_TRACE_DIR"):
        warnings.warn(
            "$GREENSIM_TRACE_DIR is no longer read: set $GREENSIM_DATA_DIR to the shared data folder "
            "(the one holding traces/), or workload.data_dir.",
            FutureWarning,
            stacklevel=2,
        )
    out.append(shared_data_dir() / "traces")
    seen, uniq = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def find_named_trace(
    name: str, data_dir: Optional[str] = None, field: str = "workload.name"
) -> Tuple[NamedTrace, Path]:
    """The :class:`NamedTrace` and the path of its file; errors list the folders searched."""
    info: NamedTrace = TRACES.get(name, field=field)
    dirs = trace_dirs(data_dir)
    for d in dirs:
        p = d / info.file
        if p.is_file():
            return info, p
    raise TraceError(
        f"{field}: trace '{name}' needs the file {info.file}, not found in "
        f"{', '.join(str(d) for d in dirs)}. Set workload.data_dir to the folder holding it, "
        f"or $GREENSIM_DATA_DIR to the shared data folder (the one with traces/ inside)."
    )


def resolve_trace_source(
    name_or_path: str, data_dir: Optional[str] = None, field: str = "trace"
) -> Tuple[Optional[NamedTrace], Path]:
    """A file path as is (if it exists), else a named trace."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return None, p
    if name_or_path in TRACES:
        return find_named_trace(name_or_path, data_dir, field)
    if p.suffix:
        raise TraceError(
            f"{field}: trace file '{name_or_path}' not found. Check the path, or give a trace name "
            f"({', '.join(TRACES.names())})."
        )
    return find_named_trace(name_or_path, data_dir, field)  # unknown name: the registry lists valid ones
