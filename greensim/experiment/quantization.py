"""Experiment schema, ``quantization`` section (top level and per instance group)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from greensim.experiment.model import StrictModel

__all__ = ["Quantization", "QUALITY_NOTE", "quantization_on"]

#: said in the results of every run with quantisation on
QUALITY_NOTE = (
    "quantised weights / activations / KV cache change only memory, bytes and compute rate here; "
    "their effect on output quality (accuracy, perplexity, acceptance) is out of scope and not modelled"
)


class Quantization(StrictModel):
    """Stored dtypes of the model's layer weights, GEMM activations and KV cache.

    Weight-only (activations fp16: W8A16 / W4A16, AWQ / GPTQ / Marlin-style kernels) saves
    memory and weight bytes streamed, and computes in fp16 after dequantising; W8A8 (weights and
    activations int8) or FP8 also run the GEMMs on the GPU's int8 / fp8 tensor cores, which must
    exist (profiles/gpus.yaml: none on V100 for either, no fp8 before Ada / Hopper). Embeddings,
    LM head and norms stay fp16. Quality effects are out of scope.
    """

    weights: Literal["fp16", "bf16", "fp8", "int8", "int4"] = Field(
        "fp16", description="stored dtype of the layers' linear weights (default fp16: unquantised)"
    )
    activations: Literal["fp16", "bf16", "int8", "fp8"] = Field(
        "fp16",
        description="GEMM input dtype: fp16 = weight-only quantisation; int8 (with weights int8, W8A8) or "
        "fp8 (with weights fp8) runs the GEMMs on that dtype's tensor cores",
    )
    kv: Literal["fp16", "bf16", "fp8", "int8"] = Field(
        "fp16", description="KV-cache dtype (fp8 / int8 halve KV memory and KV reads; attention computes in fp16)"
    )
    group_size: int = Field(
        128,
        ge=1,
        description="int8 / int4 weights: weights per scale group (default 128, the AWQ and GPTQ default group size)",
    )
    scale_bytes: int = Field(2, ge=0, description="bytes per group scale (default 2: one fp16 scale per group)")
    dequant_overhead_frac: float = Field(
        0.0,
        ge=0,
        description="weight-only GEMMs: compute time x (1 + this) for dequantising in the kernel. Default 0, "
        "an assumption: kernels such as Marlin overlap dequantisation with the tensor-core math "
        "(Frantar et al. 2024, arXiv 2408.11743); raise it for kernels that do not",
    )

    @model_validator(mode="after")
    def _combination(self):
        if self.activations in ("int8", "fp8") and self.weights != self.activations:
            raise ValueError(
                f"activations {self.activations} needs weights {self.activations} too (got weights {self.weights}); "
                f"set weights: {self.activations}, or activations: fp16 for weight-only quantisation"
            )
        return self

    @property
    def active(self) -> bool:
        """Whether anything is below 16 bits."""
        half = ("fp16", "bf16")
        return not (self.weights in half and self.activations in half and self.kv in half)

    def apply(self, model):
        """``model`` (a :class:`greensim.hardware.catalog.ModelSpec`) with these dtypes."""
        if not self.active:
            return model
        return model.quantized(
            weights=self.weights,
            activations=self.activations,
            kv=self.kv,
            group_size=self.group_size,
            scale_bytes=self.scale_bytes,
            dequant_overhead_frac=self.dequant_overhead_frac,
        )


def quantization_on(exp) -> bool:
    """Whether any instance group of experiment ``exp`` runs quantised."""
    top = exp.quantization
    return any(
        q is not None and q.active
        for q in (g.quantization if g.quantization is not None else top for g in exp.cluster.instances)
    )
