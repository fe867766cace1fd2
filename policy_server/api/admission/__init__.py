"""``/v1/admission/promotions``: the Kubernetes admission webhook for Promotion creation."""
