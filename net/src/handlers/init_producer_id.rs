//! InitProducerId (key 22), versions 0–5: producer ids for idempotent producers.
//!
//! With `transactional_id` null (an idempotent producer, the default of the Java client and of
//! librdkafka), the controller (shard 0) hands out a fresh producer id with epoch 0 — a new id on
//! every call, as Kafka does for non-transactional producers, whatever `producer_id` / `producer_epoch`
//! the client sends (v3+). Ids come in blocks persisted before use (`shard::producer_ids`), so a
//! restart never hands an id out twice. Sequence numbers are not checked yet (README).
//!
//! Transactions are not supported: a non-null `transactional_id` is answered
//! `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` (53), which every client treats as fatal at once (rather
//! than `COORDINATOR_NOT_AVAILABLE`, which they would retry until their own timeout); FindCoordinator
//! names this node for transaction keys so the client gets this far. If the id file cannot be
//! written the answer is `KAFKA_STORAGE_ERROR` (`UNKNOWN_SERVER_ERROR` if it could not be read at start).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use spate_core::runtime::ShardId;
use spate_core::ErrorCode;
use tracing::warn;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::INIT_PRODUCER_ID;
use crate::header::RequestHeader;
use crate::shard::controller::{ControllerCall, ControllerReply};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// Answers one InitProducerId request.
///
/// # Panics
/// If `header` is not an InitProducerId header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::InitProducerId, "misrouted request");
    let request: InitProducerIdRequest = decode_checked(header, &INIT_PRODUCER_ID, body)?;
    let result = if let Some(transactional_id) = &request.transactional_id {
        warn!(transactional_id = %transactional_id.0, "transactions are not supported; InitProducerId refused");
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else {
        match context.call(ShardId::new(0), ShardRequest::Controller(ControllerCall::ProducerId)).await {
            Ok(ShardReply::Controller(ControllerReply::ProducerId(result))) => result,
            _ => Err(ErrorCode::UnknownServerError),
        }
    };
    let response = InitProducerIdResponse::default().with_throttle_time_ms(0);
    let response = match result {
        Ok(id) => response.with_error_code(0).with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(code) => response.with_error_code(code.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
    };
    respond(header, &response)
}
