//! `spate produce TOPIC`: one record per line of stdin.
//!
//! A line is the value, or `KEY<SEP>VALUE` with `--key-separator SEP` (split at the first SEP); key
//! and value are read in `--key-format` / `--value-format` ([`super::formats`]). Records go to
//! `--partition P`, else to the partition Kafka's default partitioner gives their key (murmur2), else
//! round-robin. Records are batched per partition (up to `--batch-bytes`) and sent to each leader as
//! one Produce; from a terminal each line is sent as it is typed. Prints what was written where.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, IsTerminal};
use std::os::fd::AsFd;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use serde_json::{json, Value};
use spate_core::batch::{BatchBuilder, BatchOptions, Compression};
use spate_core::record::RecordSpec;

use super::client::{kafka_error, quoted, Admin, CliError, CliResult, TopicInfo};
use super::formats::DataFormat;
use super::output::{print_json, Progress, Table};
use super::topic::parse_key_value;
use super::Common;
use bench::client::topic_name;
use bench::producer::key_partition;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Send every record to this partition
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// Each line is KEY<SEP>VALUE, split at the first SEP (without it, lines are values with no key)
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// How keys are written on the lines
    #[arg(long, value_enum, default_value_t)]
    pub key_format: DataFormat,
    /// How values are written on the lines
    #[arg(long, value_enum, default_value_t)]
    pub value_format: DataFormat,
    /// A header added to every record, KEY=VALUE (repeatable)
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Compression codec of the batches
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Codec,
    /// Acknowledgement: 0 (none), 1 (the leader), all (every in-sync replica)
    #[arg(long, value_name = "0|1|all", default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Largest batch per partition before it is sent, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub batch_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        _ => Err(format!("{text:?}: acks is 0, 1 or all")),
    }
}

/// What was written to one partition.
#[derive(Default)]
struct Written {
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

struct Producer<'a> {
    admin: &'a mut Admin,
    args: &'a ProduceArgs,
    topic: TopicInfo,
    timeout_ms: i32,
    builders: BTreeMap<i32, BatchBuilder>,
    pending_bytes: usize,
    written: BTreeMap<i32, Written>,
}

pub fn run(common: &Common, args: ProduceArgs) -> CliResult<()> {
    let mut admin = Admin::connect(common)?;
    let topic = admin.topic(&args.topic)?;
    let partition_count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if let Some(partition) = args.partition {
        if !(0..partition_count).contains(&partition) {
            return Err(CliError(format!(
                "topic {} has no partition {partition} (it has {partition_count})",
                quoted(&args.topic)
            )));
        }
    }
    let timeout_ms = i32::try_from(common.request_timeout().as_millis()).unwrap_or(i32::MAX);
    let mut producer = Producer {
        admin: &mut admin,
        args: &args,
        topic,
        timeout_ms,
        builders: BTreeMap::new(),
        pending_bytes: 0,
        written: BTreeMap::new(),
    };
    let stdin = std::io::stdin();
    // Interactive input is sent line by line; piped input in batches.
    let interactive = stdin.is_terminal();
    let mut progress = Progress::new("producing", stdin_file_bytes());
    let (mut next_partition, mut line_number) = (0i32, 0u64);
    for line in stdin.lock().lines() {
        let line = line.map_err(|error| CliError(format!("cannot read stdin: {error}")))?;
        line_number += 1;
        progress.advance(line.len() as u64 + 1);
        let text = line.strip_suffix('\r').unwrap_or(&line);
        let (key, value) = match parse_line(&args, text) {
            Ok(parsed) => parsed,
            Err(error) => {
                // Everything before the bad line is sent, so the error's count is exact.
                producer.flush()?;
                progress.finish();
                return Err(CliError(format!(
                    "stdin line {line_number}: {error} ({} records before it were produced)",
                    producer.written.values().map(|written| written.records).sum::<u64>()
                )));
            }
        };
        let partition = match (args.partition, &key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => key_partition(key, partition_count),
            (None, None) => {
                let partition = next_partition;
                next_partition = (next_partition + 1) % partition_count;
                partition
            }
        };
        producer.push(partition, key.as_deref(), &value);
        if interactive || producer.pending_bytes >= args.batch_bytes {
            producer.flush()?;
        }
    }
    producer.flush()?;
    progress.finish();
    print_summary(common, &args, &producer.written);
    Ok(())
}

/// Bytes on stdin when it is a file (for the progress bar's total).
fn stdin_file_bytes() -> Option<u64> {
    let file = File::from(std::io::stdin().as_fd().try_clone_to_owned().ok()?);
    let metadata = file.metadata().ok()?;
    metadata.is_file().then_some(metadata.len())
}

fn parse_line(args: &ProduceArgs, line: &str) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    let (key, value) = match &args.key_separator {
        Some(separator) => match line.split_once(separator.as_str()) {
            Some((key, value)) => (Some(key), value),
            None => return Err(format!("no key separator {separator:?} in the line")),
        },
        None => (None, line),
    };
    let key = key.map(|key| args.key_format.parse(key).map_err(|error| format!("key: {error}"))).transpose()?;
    let value = args.value_format.parse(value).map_err(|error| format!("value: {error}"))?;
    Ok((key, value))
}

impl Producer<'_> {
    fn push(&mut self, partition: i32, key: Option<&[u8]>, value: &[u8]) {
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(0));
        let headers: Vec<(&str, Option<&[u8]>)> =
            self.args.headers.iter().map(|(key, value)| (key.as_str(), Some(value.as_bytes()))).collect();
        let builder = self.builders.entry(partition).or_default();
        let before = builder.encoded_len();
        builder.push(&RecordSpec { key, value: Some(value), headers: &headers, timestamp_ms });
        self.pending_bytes += builder.encoded_len() - before;
    }

    /// Sends every pending batch, one Produce per leader, and notes where the records landed.
    fn flush(&mut self) -> CliResult<()> {
        let (mut batches, mut counts) = (BTreeMap::new(), BTreeMap::new());
        for (&partition, builder) in &mut self.builders {
            if builder.record_count() == 0 {
                continue;
            }
            let count = i64::from(builder.record_count());
            let batch =
                builder.finish(BatchOptions::default(), self.args.compression.compression()).map_err(|code| {
                    CliError(format!("cannot compress a batch with {:?}: {code}", self.args.compression))
                })?;
            batches.insert(partition, batch);
            counts.insert(partition, count);
        }
        self.pending_bytes = 0;
        if batches.is_empty() {
            return Ok(());
        }
        let partitions: Vec<i32> = batches.keys().copied().collect();
        for (leader, partitions) in self.admin.by_leader(&self.topic, &partitions)? {
            let data: Vec<PartitionProduceData> = partitions
                .iter()
                .filter_map(|&partition| batches.remove(&partition).map(|batch| (partition, batch)))
                .map(|(partition, batch)| {
                    PartitionProduceData::default().with_index(partition).with_records(Some(batch.into()))
                })
                .collect();
            let request = ProduceRequest::default()
                .with_transactional_id(None)
                .with_acks(self.args.acks)
                .with_timeout_ms(self.timeout_ms)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(&self.topic.name))
                    .with_partition_data(data)]);
            if self.args.acks == 0 {
                let version = self.admin.version(&leader, ApiKey::Produce)?;
                self.admin.send(&leader, ApiKey::Produce, version, &request)?;
                for partition in &partitions {
                    let count = counts.get(partition).copied().unwrap_or(0);
                    self.written.entry(*partition).or_default().records += count as u64;
                }
                continue;
            }
            let (_, response): (i16, ProduceResponse) = self.admin.call(&leader, ApiKey::Produce, |_| request)?;
            for answer in response.responses.iter().flat_map(|topic| &topic.partition_responses) {
                if answer.error_code != 0 {
                    let what = format!("Produce {} partition {}", quoted(&self.topic.name), answer.index);
                    return Err(kafka_error(&leader, &what, answer.error_code, answer.error_message.as_ref()));
                }
                let count = counts.get(&answer.index).copied().unwrap_or(0);
                let written = self.written.entry(answer.index).or_default();
                written.records += count as u64;
                written.first_offset.get_or_insert(answer.base_offset);
                written.last_offset = Some(answer.base_offset + count - 1);
            }
        }
        Ok(())
    }
}

fn print_summary(common: &Common, args: &ProduceArgs, written: &BTreeMap<i32, Written>) {
    let total: u64 = written.values().map(|written| written.records).sum();
    if common.json {
        let partitions: Vec<Value> = written
            .iter()
            .map(|(partition, written)| {
                json!({
                    "partition": partition,
                    "records": written.records,
                    "first_offset": written.first_offset,
                    "last_offset": written.last_offset,
                })
            })
            .collect();
        print_json(&json!({
            "topic": args.topic,
            "records": total,
            "acks": if args.acks == -1 { "all".to_owned() } else { args.acks.to_string() },
            "partitions": partitions,
        }));
        return;
    }
    if total > 0 {
        let mut table = Table::new(&["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
        let text = |offset: Option<i64>| offset.map_or_else(|| "-".to_owned(), |offset| offset.to_string());
        for (partition, written) in written {
            table.row(vec![
                partition.to_string(),
                written.records.to_string(),
                text(written.first_offset),
                text(written.last_offset),
            ]);
        }
        table.print();
    }
    println!("produced {total} records to {}", quoted(&args.topic));
}
