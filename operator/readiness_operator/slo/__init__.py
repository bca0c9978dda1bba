"""SLO gates: batched PromQL per SLO, a measurement store with outage semantics, the client."""
