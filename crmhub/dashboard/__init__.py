"""The ops endpoints of the API: Prometheus ``/metrics``, ``/ready``, the live dashboard and its stream."""
