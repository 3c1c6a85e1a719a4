//! ConsumerGroupDescribe (key 69), versions 0–1: consumer-protocol groups as their coordinator
//! sees them: state, group and assignment epochs, assignor, and each member's subscription,
//! assignment and target assignment ([`crate::group::consumer`]). A group that does not exist, or
//! is a classic group, is `GROUP_ID_NOT_FOUND` (as in Kafka). Authorized operations stay at
//! Kafka's "not asked" default.

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::consumer::{call_coordinator, ConsumerCall, ConsumerReply};
use crate::guard::schemas::CONSUMER_GROUP_DESCRIBE;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one ConsumerGroupDescribe request.
///
/// # Panics
/// If `header` is not a ConsumerGroupDescribe header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::ConsumerGroupDescribe, "misrouted request");
    let request: ConsumerGroupDescribeRequest = decode_checked(header, &CONSUMER_GROUP_DESCRIBE, body)?;
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in request.group_ids {
        let call = ConsumerCall::Describe(group_id.to_string());
        let described = match call_coordinator(context, group_id.as_str(), call).await {
            Ok(ConsumerReply::Describe(described)) => *described,
            Ok(_) => unreachable!("the coordinator answers a describe with a describe"),
            Err(code) => DescribedGroup::default().with_group_id(group_id).with_error_code(code),
        };
        groups.push(described);
    }
    respond(header, &ConsumerGroupDescribeResponse::default().with_throttle_time_ms(0).with_groups(groups))
}
