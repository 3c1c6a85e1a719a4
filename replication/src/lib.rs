//! Partition replication and the Raft controller (roadmap stage 2; nothing here yet).
