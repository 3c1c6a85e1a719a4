//! DescribeCluster (key 60), versions 0–1: this broker alone, the cluster id from `meta.properties`,
//! this node as the controller, and no authorized operations (`-2147483648`, Kafka's "not asked / no
//! ACLs"). v1's `endpoint_type` 2 (controllers) gets the same node: it is the controller too.

use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::DESCRIBE_CLUSTER;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Kafka's "no authorized operations": `Integer.MIN_VALUE`.
pub const NO_AUTHORIZED_OPERATIONS: i32 = i32::MIN;

/// Answers one DescribeCluster request.
///
/// # Panics
/// If `header` is not a DescribeCluster header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DescribeCluster, "misrouted request");
    let request: DescribeClusterRequest = decode_checked(header, &DESCRIBE_CLUSTER, body)?;
    let broker = &context.broker;
    let this = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id))
        .with_host(StrBytes::from_string(broker.advertised_host.clone()))
        .with_port(i32::from(broker.advertised_port))
        .with_rack(None);
    let mut response = DescribeClusterResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(vec![this])
        .with_cluster_authorized_operations(NO_AUTHORIZED_OPERATIONS);
    if header.api_version >= 1 {
        response = response.with_endpoint_type(request.endpoint_type);
    }
    respond(header, &response)
}
