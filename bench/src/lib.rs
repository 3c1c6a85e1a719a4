//! `spate-bench`: a load generator that speaks the Kafka protocol to any Kafka-compatible broker.
//!
//! Producers and consumers run as pinned threads with blocking sockets: each producer accumulates
//! per-partition batches (`batch.size`, `linger.ms`, compression, idempotence) and pipelines Produce
//! requests (`max.in.flight`); each consumer fetches its partitions, checks CRCs and walks every record.
//! Latencies go into HDR histograms, measured from each message's intended send time, so fixed-rate
//! runs are free of coordinated omission. See `bench/README.md`.

pub mod cli;
pub mod client;
pub mod consumer;
pub mod loopback;
pub mod producer;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;
