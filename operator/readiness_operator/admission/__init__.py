"""Admission: the validating webhook, its TLS, and generated ValidatingAdmissionPolicies."""
