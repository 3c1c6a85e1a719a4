//! What the handlers need to know about this broker. Fixed at startup; every shard holds a copy.

/// This broker's identity, as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub node_id: i32,
    /// The host clients are told to connect to (`--advertise`).
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: u16,
    /// The cluster id from `meta.properties`.
    pub cluster_id: String,
}
