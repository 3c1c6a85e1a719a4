//! FindCoordinator (key 10), versions 0–4 (v4: batched `coordinator_keys`).
//!
//! This single node is the coordinator of every group (key type 0) and every transactional id
//! (type 1): the answer is this broker's advertised address. Transactions themselves are refused at
//! InitProducerId (`TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, see `init_producer_id`), so a
//! transactional client fails there, at once and clearly, rather than retrying a missing coordinator.
//! Inside the node, each group is served by the shard owning its `__consumer_offsets` partition
//! (`crate::group`); clients never see shards. Any other key type (2, share groups) is
//! `INVALID_REQUEST`.

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use spate_core::ErrorCode;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::FIND_COORDINATOR;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// First version with batched keys.
const FIRST_BATCHED_VERSION: i16 = 4;

/// Answers one FindCoordinator request.
///
/// # Panics
/// If `header` is not a FindCoordinator header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::FindCoordinator, "misrouted request");
    let version = header.api_version;
    let request: FindCoordinatorRequest = decode_checked(header, &FIND_COORDINATOR, body)?;
    let broker = &context.broker;
    let host = StrBytes::from_string(broker.advertised_host.clone());
    let port = i32::from(broker.advertised_port);
    let error = match request.key_type {
        0 | 1 => None,
        other => Some(format!("Unsupported key type {other}")),
    };
    let response = FindCoordinatorResponse::default().with_throttle_time_ms(0);
    if version >= FIRST_BATCHED_VERSION {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key);
                match &error {
                    None => coordinator.with_node_id(BrokerId(broker.node_id)).with_host(host.clone()).with_port(port),
                    Some(message) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(ErrorCode::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(message.clone()))),
                }
            })
            .collect();
        return respond(header, &response.with_coordinators(coordinators));
    }
    let response = match error {
        None => response.with_node_id(BrokerId(broker.node_id)).with_host(host).with_port(port),
        Some(message) => {
            let response =
                response.with_node_id(BrokerId(-1)).with_port(-1).with_error_code(ErrorCode::InvalidRequest.code());
            if version >= 1 {
                response.with_error_message(Some(StrBytes::from_string(message)))
            } else {
                response
            }
        }
    };
    respond(header, &response)
}
