//! DeleteTopics (key 20), versions 1–6: by name (v1–5 `topic_names`, v6 `topics[].name`) or by id
//! (v6 `topics[].topic_id`).
//!
//! The controller removes the topics from the table (persisted, then broadcast: no shard routes to
//! them any more), then every owner closes the topic's logs and renames each partition directory to
//! `<topic>-<p>.<uuid>-delete`, removed in the background as Kafka does (see
//! `shard::controller::admin`). The answer comes once that is done. A missing name is
//! `UNKNOWN_TOPIC_OR_PARTITION`, a missing id `UNKNOWN_TOPIC_ID`, a topic named twice
//! `INVALID_REQUEST`, a v6 entry with both a name and an id `INVALID_REQUEST`. Internal topics
//! are not protected yet (Spate has none). Error messages are sent from v5.

use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_core::runtime::ShardId;
use spate_core::ErrorCode;
use uuid::Uuid;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::DELETE_TOPICS;
use crate::header::RequestHeader;
use crate::shard::controller::{ControllerCall, ControllerReply, DeleteOutcome, TopicRef};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// First version with per-topic states (name or id).
const FIRST_TOPIC_ID_VERSION: i16 = 6;

/// Answers one DeleteTopics request.
///
/// # Panics
/// If `header` is not a DeleteTopics header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DeleteTopics, "misrouted request");
    let version = header.api_version;
    let request: DeleteTopicsRequest = decode_checked(header, &DELETE_TOPICS, body)?;
    // Each entry: the reference to delete, or an answer already decided.
    let entries: Vec<Result<TopicRef, DeleteOutcome>> = if version >= FIRST_TOPIC_ID_VERSION {
        request
            .topics
            .iter()
            .map(|topic| match (&topic.name, topic.topic_id.is_nil()) {
                (Some(name), true) => Ok(TopicRef::Name(name.to_string())),
                (None, false) => Ok(TopicRef::Id(topic.topic_id)),
                (name, _) => Err(DeleteOutcome {
                    name: name.as_ref().map(|name| name.to_string()),
                    id: topic.topic_id,
                    result: Err((
                        ErrorCode::InvalidRequest,
                        "Exactly one of topic name and topic id must be given.".to_owned(),
                    )),
                }),
            })
            .collect()
    } else {
        request.topic_names.iter().map(|name| Ok(TopicRef::Name(name.to_string()))).collect()
    };
    let refs: Vec<TopicRef> = entries.iter().filter_map(|entry| entry.as_ref().ok().cloned()).collect();
    let mut answers = Vec::new().into_iter();
    if !refs.is_empty() {
        let call = ShardRequest::Controller(ControllerCall::DeleteTopics(refs.clone()));
        if let Ok(ShardReply::Controller(ControllerReply::DeleteTopics(outcomes))) =
            context.call(ShardId::new(0), call).await
        {
            answers = outcomes.into_iter();
        }
    }
    let responses = entries
        .into_iter()
        .map(|entry| {
            let outcome = match entry {
                Err(decided) => decided,
                Ok(reference) => answers.next().unwrap_or_else(|| DeleteOutcome {
                    name: match &reference {
                        TopicRef::Name(name) => Some(name.clone()),
                        TopicRef::Id(_) => None,
                    },
                    id: match reference {
                        TopicRef::Id(id) => id,
                        TopicRef::Name(_) => Uuid::nil(),
                    },
                    result: Err((ErrorCode::UnknownServerError, "the controller is not available".to_owned())),
                }),
            };
            result(version, outcome)
        })
        .collect();
    respond(header, &DeleteTopicsResponse::default().with_throttle_time_ms(0).with_responses(responses))
}

fn result(version: i16, outcome: DeleteOutcome) -> DeletableTopicResult {
    let name = outcome.name.map(|name| TopicName(StrBytes::from_string(name)));
    let answer = if version >= FIRST_TOPIC_ID_VERSION {
        DeletableTopicResult::default().with_name(name).with_topic_id(outcome.id)
    } else {
        // v1–5 names are not nullable: every entry there came with a name.
        DeletableTopicResult::default().with_name(Some(name.unwrap_or_default()))
    };
    match outcome.result {
        Ok(()) => answer.with_error_code(0),
        Err((code, message)) if version >= 5 => {
            answer.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
        }
        Err((code, _)) => answer.with_error_code(code.code()),
    }
}
