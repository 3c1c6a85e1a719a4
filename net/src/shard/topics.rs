//! The topic table: every topic's name, id, partition count and config overrides; Kafka's naming
//! rules; the placement of partitions on shards; and the table's file.
//!
//! Shard 0 (the controller, `super::controller`) is the table's only writer. Each shard holds a
//! read-only copy (`Rc<TopicTable>`), replaced whole when the controller broadcasts a new version.
//!
//! **Placement.** The shard that owns partition `p` of a topic is
//! `fnv1a_64(topic id bytes ‖ p as big-endian i32) % shard count`: a pure function of data every shard
//! has, so the "placement table" is this function applied to the topic table copy; nothing else is
//! stored or sent. It changes if the shard count changes between runs, which is harmless on a single
//! node: each start opens every partition on its owner of that run.
//!
//! **File.** `<data_dir>/__cluster_metadata/topics.json`, written atomically (temp file, fsync,
//! rename, fsync of the directory), so a crash leaves the old table or the new one, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spate_core::runtime::ShardId;
use uuid::Uuid;

/// Directory under the data directory that holds cluster metadata.
pub const METADATA_DIR: &str = "__cluster_metadata";
/// The topic table's file name in [`METADATA_DIR`].
pub const TOPICS_FILE: &str = "topics.json";
/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEntry {
    /// The name.
    pub name: String,
    /// Its id (UUID v4), shown in Metadata v10+ and used by Fetch v13+.
    pub id: Uuid,
    /// How many partitions: `0..partitions`.
    pub partitions: i32,
    /// Config overrides set on this topic (validated, normalized values).
    pub overrides: BTreeMap<String, String>,
}

/// All topics, at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicTable {
    version: u64,
    by_name: BTreeMap<String, TopicEntry>,
    name_of: HashMap<Uuid, String>,
}

impl TopicTable {
    /// Incremented by every change; copies ignore broadcasts older than what they hold.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The topic with this name.
    pub fn get(&self, name: &str) -> Option<&TopicEntry> {
        self.by_name.get(name)
    }

    /// The topic with this id.
    pub fn by_id(&self, id: &Uuid) -> Option<&TopicEntry> {
        self.name_of.get(id).and_then(|name| self.by_name.get(name))
    }

    /// Every topic, by name.
    pub fn iter(&self) -> impl Iterator<Item = &TopicEntry> {
        self.by_name.values()
    }

    /// How many topics.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// A copy with `topics` added, one version later.
    ///
    /// # Panics
    /// If a name or id is already taken: the controller checks before adding.
    pub fn with_topics(&self, topics: impl IntoIterator<Item = TopicEntry>) -> TopicTable {
        let mut next = self.clone();
        next.version += 1;
        for topic in topics {
            assert!(!next.name_of.contains_key(&topic.id), "topic id {} reused", topic.id);
            next.name_of.insert(topic.id, topic.name.clone());
            let replaced = next.by_name.insert(topic.name.clone(), topic);
            assert!(replaced.is_none(), "topic added twice");
        }
        next
    }

    /// A copy one version later with `changed` replacing the topics of the same names (same ids:
    /// more partitions, other overrides) and the topics named in `removed` gone.
    pub fn with_changes(&self, changed: impl IntoIterator<Item = TopicEntry>, removed: &[String]) -> TopicTable {
        let mut next = self.clone();
        next.version += 1;
        for name in removed {
            if let Some(entry) = next.by_name.remove(name) {
                next.name_of.remove(&entry.id);
            }
        }
        for topic in changed {
            next.name_of.insert(topic.id, topic.name.clone());
            next.by_name.insert(topic.name.clone(), topic);
        }
        next
    }

    /// The existing topic `name` would collide with in metric names (Kafka treats `.` and `_` alike),
    /// if any (other than itself).
    pub fn colliding(&self, name: &str) -> Option<&str> {
        let folded = name.replace('.', "_");
        self.by_name.keys().find(|other| *other != name && other.replace('.', "_") == folded).map(String::as_str)
    }

    /// The table as stored in `topics.json`.
    pub fn to_json(&self) -> String {
        let file = TopicsFile {
            format: 1,
            version: self.version,
            topics: self
                .by_name
                .values()
                .map(|topic| TopicRecord {
                    name: topic.name.clone(),
                    id: topic.id.to_string(),
                    partitions: topic.partitions,
                    configs: topic.overrides.clone(),
                })
                .collect(),
        };
        // Serializing plain strings, numbers and maps of strings cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Parses `topics.json`, checking what a hand edit could break.
    pub fn from_json(text: &str) -> Result<TopicTable, String> {
        let file: TopicsFile = serde_json::from_str(text).map_err(|error| error.to_string())?;
        if file.format != 1 {
            return Err(format!("unknown format {}", file.format));
        }
        let mut table = TopicTable { version: file.version, ..TopicTable::default() };
        for record in file.topics {
            validate_topic_name(&record.name).map_err(|reason| format!("topic {:?}: {reason}", record.name))?;
            let id = Uuid::parse_str(&record.id).map_err(|error| format!("topic {:?}: id: {error}", record.name))?;
            if record.partitions < 1 {
                return Err(format!("topic {:?}: {} partitions", record.name, record.partitions));
            }
            if table.name_of.insert(id, record.name.clone()).is_some() {
                return Err(format!("topic id {id} appears twice"));
            }
            let entry =
                TopicEntry { name: record.name.clone(), id, partitions: record.partitions, overrides: record.configs };
            if table.by_name.insert(record.name.clone(), entry).is_some() {
                return Err(format!("topic {:?} appears twice", record.name));
            }
        }
        Ok(table)
    }

    /// Loads `<data_dir>/__cluster_metadata/topics.json`; an empty table if there is none yet.
    pub fn load(data_dir: &Path) -> Result<TopicTable, String> {
        let path = topics_path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => TopicTable::from_json(&text).map_err(|reason| format!("{}: {reason}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(TopicTable::default()),
            Err(error) => Err(format!("cannot read {}: {error}", path.display())),
        }
    }

    /// Writes the table to `<data_dir>/__cluster_metadata/topics.json` atomically and durably.
    pub fn persist(&self, data_dir: &Path) -> std::io::Result<()> {
        let dir = data_dir.join(METADATA_DIR);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            std::fs::File::open(data_dir)?.sync_all()?;
        }
        let path = dir.join(TOPICS_FILE);
        let tmp = dir.join(format!("{TOPICS_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(self.to_json().as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    }
}

#[derive(Serialize, Deserialize)]
struct TopicsFile {
    format: u32,
    version: u64,
    topics: Vec<TopicRecord>,
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// `<data_dir>/__cluster_metadata/topics.json`.
pub fn topics_path(data_dir: &Path) -> PathBuf {
    data_dir.join(METADATA_DIR).join(TOPICS_FILE)
}

/// `<data_dir>/<topic>-<partition>`, Kafka's partition directory name.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Kafka's topic naming rules (`Topic.validate`): 1 to 249 characters of `[a-zA-Z0-9._-]`, and not
/// `.` or `..`. The reason is Kafka's wording.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_CHARS {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_CHARS} characters, topic name: {name}"
        ));
    }
    if !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')) {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A fresh random topic id (UUID v4), never the nil id nor Kafka's reserved "metadata topic" id.
pub fn new_topic_id() -> Uuid {
    loop {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        // Kafka reserves the zero id and Uuid(0, 1) (METADATA_TOPIC_ID); a v4 id is neither, but check.
        if !id.is_nil() && id.as_u128() != 1 {
            return id;
        }
    }
}

/// The shard that owns `partition` of the topic with id `topic_id` (see the module docs).
///
/// # Panics
/// If `nr_shards` is 0.
pub fn owner_shard(topic_id: &Uuid, partition: i32, nr_shards: usize) -> ShardId {
    assert!(nr_shards > 0, "no shards");
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    for byte in topic_id.as_bytes().iter().chain(partition.to_be_bytes().iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    // The remainder is below nr_shards, which the runtime caps at u16::MAX.
    ShardId::new((hash % nr_shards as u64) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, partitions: i32) -> TopicEntry {
        TopicEntry { name: name.into(), id: new_topic_id(), partitions, overrides: BTreeMap::new() }
    }

    #[test]
    fn kafka_naming_rules() {
        for good in ["a", "A-b_c.9", &"x".repeat(249), "..."] {
            assert_eq!(validate_topic_name(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", &"x".repeat(250), "a b", "a/b", "é", "a\0", "a:b"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_round_trip_and_versions() {
        let mut first = entry("orders", 3);
        first.overrides.insert("retention.ms".into(), "1000".into());
        let table = TopicTable::default().with_topics([first.clone(), entry("b.c", 1)]);
        assert_eq!(table.version(), 1);
        let loaded = TopicTable::from_json(&table.to_json()).unwrap();
        assert_eq!(loaded, table);
        assert_eq!(loaded.by_id(&first.id), Some(&first));
        assert_eq!(loaded.colliding("b_c"), Some("b.c"));
        assert_eq!(loaded.colliding("b.c"), None);

        assert!(TopicTable::from_json("{").is_err());
        let bad_name = table.to_json().replace("\"orders\"", "\"a/b\"");
        assert!(TopicTable::from_json(&bad_name).is_err());
    }

    #[test]
    fn persists_atomically_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TopicTable::load(dir.path()).unwrap().is_empty(), "no file: empty table");
        let table = TopicTable::default().with_topics([entry("t", 2)]);
        table.persist(dir.path()).unwrap();
        table.with_topics([entry("u", 1)]).persist(dir.path()).unwrap();
        let loaded = TopicTable::load(dir.path()).unwrap();
        assert_eq!((loaded.version(), loaded.len()), (2, 2));
        assert!(!dir.path().join(METADATA_DIR).join("topics.json.tmp").exists());
    }

    #[test]
    fn placement_is_stable_and_spreads() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(owner_shard(&id, 0, 1), ShardId::new(0));
        let owners: Vec<u16> = (0..64).map(|partition| owner_shard(&id, partition, 4).get()).collect();
        assert_eq!(owners, (0..64).map(|partition| owner_shard(&id, partition, 4).get()).collect::<Vec<_>>());
        for shard in 0..4 {
            assert!(owners.contains(&shard), "shard {shard} owns none of 64 partitions: {owners:?}");
        }
    }
}
