"""The Kubernetes resources policy-server watches: Kargo's Stages, Promotions and Freight, Argo Rollouts'
AnalysisRuns, and the namespaces Kargo labels as projects."""

from __future__ import annotations

from dataclasses import dataclass

from policy_server.kargo import Kind


@dataclass(frozen=True, slots=True)
class Resource:
    """A custom resource as the API serves it."""

    kind: Kind
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


WATCHED: tuple[Resource, ...] = (
    Resource(Kind.STAGE, "kargo.akuity.io", "v1alpha1", "stages"),
    Resource(Kind.PROMOTION, "kargo.akuity.io", "v1alpha1", "promotions"),
    Resource(Kind.FREIGHT, "kargo.akuity.io", "v1alpha1", "freights"),
    Resource(Kind.ANALYSIS_RUN, "argoproj.io", "v1alpha1", "analysisruns"),
)
PROJECT_LABEL = "kargo.akuity.io/project"
"""Kargo labels every project namespace ``kargo.akuity.io/project=true``."""
PROJECT_SELECTOR = f"{PROJECT_LABEL}=true"
