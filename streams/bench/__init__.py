"""`streams bench`: the pipeline's throughput, latency and stage costs beside a raw Kafka chain, in one run.

Modules: `corpus` (raw events from the BBC corpus), `procs` (worker and child processes), `promtext` (/metrics
parsing), `kafkaio` (topics, backlog, committed reads, latency), `chain` (the raw aiokafka exactly-once chain),
`quixchain` (the Quix Streams peer), `report` (the pure results: ratios, goals, JSON, text) and `run` (the run).
"""
